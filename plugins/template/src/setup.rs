//! Reading the `template` directive from the Corefile.

use std::sync::Arc;

use ferrodns_go::regexp::compile_captures;
use ferrodns_pkg::text::{class_from_str, rcode_from_str, type_from_str};
use ferrodns_plugin::corefile::normalize_exact;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Families, MAX_REGEXP_LEN, NAME, Template, TemplateHandler, TemplateRule};

/// Read every `template` line (CoreDNS's `templateParse`).
pub fn parse(c: &mut Setup<'_>) -> Result<Vec<TemplateRule>, SetupError> {
    let perr = |e: SetupError| SetupError::plugin(NAME, e);
    let mut out = Vec::new();
    let block_zones = c.zone_names();
    while c.next() {
        if !c.next_arg() {
            return Err(perr(c.arg_err()));
        }
        let qclass = class_from_str(c.val())
            .ok_or_else(|| perr(c.err(format!("invalid query class {}", c.val()))))?;
        if !c.next_arg() {
            return Err(perr(c.arg_err()));
        }
        let qtype = type_from_str(c.val())
            .ok_or_else(|| perr(c.err(format!("invalid RR class {}", c.val()))))?;
        let args = c.remaining_args();
        let zones: Vec<String> = if args.is_empty() {
            block_zones.clone()
        } else {
            args.iter().flat_map(|a| normalize_exact(a)).collect()
        };
        let mut t = TemplateRule {
            zones,
            rcode: 0,
            regex: Vec::new(),
            answer: Vec::new(),
            additional: Vec::new(),
            authority: Vec::new(),
            qclass,
            qtype,
            ederror: None,
            fall: None,
        };
        while c.next_block() {
            match c.val() {
                "match" => {
                    let args = c.remaining_args();
                    if args.is_empty() {
                        return Err(perr(c.arg_err()));
                    }
                    for r in args {
                        if r.len() > MAX_REGEXP_LEN {
                            return Err(perr(c.err(format!(
                                "regex pattern too long: {} > {MAX_REGEXP_LEN}",
                                r.len()
                            ))));
                        }
                        let re = compile_captures(&r)
                            .map_err(|e| perr(c.err(format!("could not parse regex: {r}, {e}"))))?;
                        t.regex.push((re, r));
                    }
                }
                section @ ("answer" | "additional" | "authority") => {
                    let section = section.to_string();
                    let args = c.remaining_args();
                    if args.is_empty() {
                        return Err(perr(c.arg_err()));
                    }
                    for a in args {
                        let tmpl = Template::parse(&section, &a).map_err(|e| {
                            let nl = if section == "answer" { "" } else { "\n" };
                            perr(c.err(format!("could not compile template: {}, {e}{nl}", c.val())))
                        })?;
                        match section.as_str() {
                            "answer" => t.answer.push(tmpl),
                            "additional" => t.additional.push(tmpl),
                            _ => t.authority.push(tmpl),
                        }
                    }
                }
                "rcode" => {
                    if !c.next_arg() {
                        return Err(perr(c.arg_err()));
                    }
                    t.rcode = rcode_from_str(c.val())
                        .ok_or_else(|| perr(c.err(format!("unknown rcode {}", c.val()))))?;
                }
                "ederror" => {
                    let args = c.remaining_args();
                    if args.len() != 1 && args.len() != 2 {
                        return Err(perr(c.arg_err()));
                    }
                    let code = ferrodns_go::strconv::parse_uint(&args[0], 10, 16).map_err(|e| {
                        perr(c.err(format!(
                            "error parsing extended DNS error code {}, {e}\n",
                            c.val()
                        )))
                    })?;
                    t.ederror = Some((code as u16, args.get(1).cloned().unwrap_or_default()));
                }
                "fallthrough" => {
                    let args = c.remaining_args();
                    t.fall = Some(if args.is_empty() {
                        vec![".".to_string()]
                    } else {
                        args.iter().flat_map(|a| normalize_exact(a)).collect()
                    });
                }
                "upstream" => {
                    c.remaining_args();
                }
                _ => return Err(perr(c.arg_err())),
            }
        }
        if t.regex.is_empty() {
            let all = compile_captures(".*").map_err(|e| perr(SetupError::new(e)))?;
            t.regex.push((all, ".*".to_string()));
        }
        out.push(t);
    }
    Ok(out)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let templates = parse(c)?;
    let zones = templates.iter().flat_map(|t| t.zones.clone()).collect();
    let metrics = Families::register(c.metrics());
    c.add_plugin(Arc::new(TemplateHandler {
        zones,
        templates,
        metrics,
    }));
    Ok(())
}
