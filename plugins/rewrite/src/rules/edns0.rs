//! `edns0` rules: EDNS0 options of the request (local, NSID, client subnet) set, appended,
//! replaced or removed, optionally reverted in the reply.

use std::net::IpAddr;

use ferrodns_plugin::proto::op::Edns;
use ferrodns_plugin::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use ferrodns_plugin::{Request, edns, is_metadata_label};

use super::{Outcome, ResponseRule};

/// The EDNS0 action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace or add.
    Set,
    /// Add when missing.
    Append,
    /// Replace when present.
    Replace,
    /// Remove.
    Unset,
}

/// What an EDNS0 local option carries.
#[derive(Debug, Clone)]
pub enum LocalData {
    /// Fixed bytes.
    Bytes(Vec<u8>),
    /// A `{variable}` filled from the request.
    Variable(String),
}

/// An EDNS0 rule.
#[derive(Debug, Clone)]
pub enum Edns0Rule {
    /// `local CODE DATA`.
    Local {
        /// Action.
        action: Action,
        /// Option code.
        code: u16,
        /// Payload.
        data: LocalData,
        /// Undo in the reply.
        revert: bool,
    },
    /// `nsid`.
    Nsid {
        /// Action.
        action: Action,
        /// Undo in the reply.
        revert: bool,
    },
    /// `subnet V4LEN V6LEN`.
    Subnet {
        /// Action.
        action: Action,
        /// IPv4 source prefix length.
        v4: u8,
        /// IPv6 source prefix length.
        v6: u8,
        /// Undo in the reply.
        revert: bool,
    },
}

fn parse_action(s: &str) -> Option<Action> {
    Some(match s {
        "set" => Action::Set,
        "append" => Action::Append,
        "replace" => Action::Replace,
        "unset" => Action::Unset,
        _ => return None,
    })
}

const VARIABLES: [&str; 7] = [
    "{qname}",
    "{qtype}",
    "{client_ip}",
    "{client_port}",
    "{protocol}",
    "{server_ip}",
    "{server_port}",
];

/// Parse an `edns0` rule's arguments (after the field name; CoreDNS's `newEdns0Rule`).
pub(super) fn new_edns0_rule(args: &[String]) -> Result<Edns0Rule, String> {
    if args.len() < 2 {
        return Err("too few arguments for an EDNS0 rule".into());
    }
    let rule_type = args[0].to_lowercase();
    let action_s = args[1].to_lowercase();
    let action = parse_action(&action_s)
        .ok_or_else(|| format!("invalid action: {}", ferrodns_go::strconv::quote(&action_s)))?;
    if action == Action::Unset {
        return match rule_type.as_str() {
            "local" => {
                if args.len() != 3 {
                    return Err("local unset action requires exactly two arguments".into());
                }
                let code = ferrodns_go::strconv::parse_uint(&args[2], 0, 16)? as u16;
                edns::support_option(code);
                Ok(Edns0Rule::Local {
                    action,
                    code,
                    data: LocalData::Bytes(Vec::new()),
                    revert: false,
                })
            }
            "nsid" => {
                if args.len() != 2 {
                    return Err("nsid unset action requires exactly one argument".into());
                }
                Ok(Edns0Rule::Nsid {
                    action,
                    revert: false,
                })
            }
            "subnet" => {
                if args.len() != 2 {
                    return Err("subnet unset action requires exactly one argument".into());
                }
                Ok(Edns0Rule::Subnet {
                    action,
                    v4: 0,
                    v6: 0,
                    revert: false,
                })
            }
            _ => Err(format!(
                "invalid rule type {}",
                ferrodns_go::strconv::quote(&rule_type)
            )),
        };
    }
    let mut args = args.to_vec();
    let mut revert = false;
    if args.last().map(String::as_str) == Some("revert") {
        revert = true;
        args.pop();
    }
    match rule_type.as_str() {
        "local" => {
            if args.len() != 4 {
                return Err("EDNS0 local rules require three or four args".into());
            }
            let code = ferrodns_go::strconv::parse_uint(&args[2], 0, 16)? as u16;
            let v = &args[3];
            let data = if v.starts_with('{') && v.ends_with('}') {
                let ok = VARIABLES.contains(&v.as_str())
                    || (v.len() >= 2 && is_metadata_label(&v[1..v.len() - 1]));
                if !ok {
                    return Err(format!(
                        "unsupported variable name {}",
                        ferrodns_go::strconv::quote(v)
                    ));
                }
                LocalData::Variable(v.clone())
            } else if let Some(hex) = v.strip_prefix("0x") {
                LocalData::Bytes(decode_hex(hex)?)
            } else {
                LocalData::Bytes(v.as_bytes().to_vec())
            };
            edns::support_option(code);
            Ok(Edns0Rule::Local {
                action,
                code,
                data,
                revert,
            })
        }
        "nsid" => {
            if args.len() != 2 {
                return Err("EDNS0 NSID rules can accept no more than one arg".into());
            }
            Ok(Edns0Rule::Nsid { action, revert })
        }
        "subnet" => {
            if args.len() != 4 {
                return Err("EDNS0 subnet rules require three or four args".into());
            }
            let v4 = ferrodns_go::strconv::parse_uint(&args[2], 0, 16)?;
            if v4 > 32 {
                return Err(format!("invalid IPv4 bit mask length {v4}"));
            }
            let v6 = ferrodns_go::strconv::parse_uint(&args[3], 0, 16)?;
            if v6 > 128 {
                return Err(format!("invalid IPv6 bit mask length {v6}"));
            }
            Ok(Edns0Rule::Subnet {
                action,
                v4: v4 as u8,
                v6: v6 as u8,
                revert,
            })
        }
        _ => Err(format!(
            "invalid rule type {}",
            ferrodns_go::strconv::quote(&rule_type)
        )),
    }
}

/// Go's `hex.DecodeString` with its error texts.
fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len() / 2);
    let mut i = 0;
    while i + 1 < b.len() {
        let hi = val(b[i]).ok_or_else(|| {
            format!(
                "encoding/hex: invalid byte: U+{:04X} {}",
                b[i],
                go_char(b[i])
            )
        })?;
        let lo = val(b[i + 1]).ok_or_else(|| {
            format!(
                "encoding/hex: invalid byte: U+{:04X} {}",
                b[i + 1],
                go_char(b[i + 1])
            )
        })?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    if b.len() % 2 == 1 {
        if let Some(&c) = b.last()
            && val(c).is_none()
        {
            return Err(format!(
                "encoding/hex: invalid byte: U+{c:04X} {}",
                go_char(c)
            ));
        }
        return Err("encoding/hex: odd length hex string".into());
    }
    Ok(out)
}

fn go_char(c: u8) -> String {
    format!("'{}'", c as char)
}

/// miekg/dns decodes these option codes into their own types; every other code is a "local"
/// option that a `local` rule may replace.
fn is_miekg_local(code: u16) -> bool {
    !matches!(code, 1..=12 | 15 | 18 | 19)
}

fn opt_mut(req: &mut Request) -> &mut Edns {
    let msg = req.message_mut();
    if msg.edns.is_none() {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        e.set_dnssec_ok(false);
        msg.edns = Some(e);
    }
    // Just set above when missing.
    msg.edns.get_or_insert_with(Edns::new)
}

fn option(code: u16, data: Vec<u8>) -> (EdnsCode, EdnsOption) {
    (EdnsCode::from(code), EdnsOption::Unknown(code, data))
}

fn local_data(req: &Request, var: &str) -> Option<Vec<u8>> {
    let ip = req.src.ip();
    let family_ip = |ip: IpAddr| -> Vec<u8> {
        match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.octets().to_vec(),
                None => v6.octets().to_vec(),
            },
        }
    };
    match var {
        "{qname}" => {
            let mut n = ferrodns_pkg::text::presentation(&req.qname());
            if req.question().is_none() {
                n = ".".into();
            }
            Some(n.into_bytes())
        }
        "{qtype}" => Some(u16::from(req.qtype()).to_be_bytes().to_vec()),
        "{client_ip}" => Some(family_ip(ip)),
        "{server_ip}" => {
            // CoreDNS writes the server's address in the client's family: nothing when the
            // server address has no form in that family (a wildcard `::` for an IPv4 client).
            let client_v4 = match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
            };
            let local = req.local.ip();
            let local_v4 = match local {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            };
            if client_v4 {
                Some(local_v4?.octets().to_vec())
            } else {
                Some(match local {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                })
            }
        }
        "{client_port}" => Some(req.src.port().to_be_bytes().to_vec()),
        "{server_port}" => Some(req.local.port().to_be_bytes().to_vec()),
        "{protocol}" => Some(req.protocol.as_str().as_bytes().to_vec()),
        other => {
            let label = &other[1..other.len() - 1];
            req.metadata(label)
                .filter(|v| !v.is_empty())
                .map(|v| v.as_bytes().to_vec())
        }
    }
}

/// The ECS option payload for the client's address (as miekg/dns packs it).
fn ecs_payload(req: &Request, v4: u8, v6: u8) -> Vec<u8> {
    let (family, bits, addr): (u16, u8, Vec<u8>) = match req.src.ip() {
        IpAddr::V4(a) => (1, v4, a.octets().to_vec()),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => (1, v4, m.octets().to_vec()),
            None => (2, v6, a.octets().to_vec()),
        },
    };
    let mut out = family.to_be_bytes().to_vec();
    out.push(bits);
    out.push(0);
    let need = usize::from(bits).div_ceil(8);
    for (i, b) in addr.iter().take(need).enumerate() {
        let keep = (usize::from(bits).saturating_sub(i * 8)).min(8);
        let mask: u8 = if keep == 8 { 0xff } else { !(0xffu8 >> keep) };
        out.push(b & mask);
    }
    out
}

impl Edns0Rule {
    /// Apply the rule to the request's OPT record.
    pub(super) fn apply(&self, req: &mut Request) -> Outcome {
        match self {
            Edns0Rule::Local {
                action,
                code,
                data,
                revert,
            } => {
                let bytes = match data {
                    LocalData::Bytes(b) => b.clone(),
                    LocalData::Variable(v) => match local_data(req, v) {
                        Some(b) => b,
                        None => return Outcome::Ignored,
                    },
                };
                let variable = matches!(data, LocalData::Variable(_));
                let opt = opt_mut(req);
                if *action == Action::Unset {
                    opt.options_mut().remove(EdnsCode::from(*code));
                    return Outcome::Done(Vec::new());
                }
                let opts = &mut opt.options_mut().options;
                if let Some(slot) = opts
                    .iter_mut()
                    .find(|(c, _)| u16::from(*c) == *code && is_miekg_local(*code))
                {
                    if matches!(action, Action::Replace | Action::Set) {
                        let mut resp = Vec::new();
                        if *revert {
                            resp.push(ResponseRule::EdnsReplace(*code, slot.0, slot.1.clone()));
                        }
                        *slot = option(*code, bytes);
                        return Outcome::Done(resp);
                    }
                    if variable {
                        return Outcome::Ignored;
                    }
                }
                if matches!(action, Action::Append | Action::Set) {
                    opts.push(option(*code, bytes));
                    let resp = if *revert {
                        vec![ResponseRule::EdnsSet(*code)]
                    } else {
                        Vec::new()
                    };
                    return Outcome::Done(resp);
                }
                Outcome::Ignored
            }
            Edns0Rule::Nsid { action, revert } => {
                let opt = opt_mut(req);
                if *action == Action::Unset {
                    opt.options_mut().remove(EdnsCode::from(3));
                    return Outcome::Done(Vec::new());
                }
                let opts = &mut opt.options_mut().options;
                if let Some(slot) = opts.iter_mut().find(|(c, _)| u16::from(*c) == 3)
                    && matches!(action, Action::Replace | Action::Set)
                {
                    let mut resp = Vec::new();
                    if *revert {
                        resp.push(ResponseRule::EdnsReplace(3, slot.0, slot.1.clone()));
                    }
                    *slot = option(3, Vec::new());
                    return Outcome::Done(resp);
                }
                if matches!(action, Action::Append | Action::Set) {
                    opts.push(option(3, Vec::new()));
                    let resp = if *revert {
                        vec![ResponseRule::EdnsSet(3)]
                    } else {
                        Vec::new()
                    };
                    return Outcome::Done(resp);
                }
                Outcome::Ignored
            }
            Edns0Rule::Subnet {
                action,
                v4,
                v6,
                revert,
            } => {
                let payload = ecs_payload(req, *v4, *v6);
                let opt = opt_mut(req);
                if *action == Action::Unset {
                    opt.options_mut().remove(EdnsCode::from(8));
                    return Outcome::Done(Vec::new());
                }
                let opts = &mut opt.options_mut().options;
                if let Some(slot) = opts.iter_mut().find(|(c, _)| u16::from(*c) == 8) {
                    if matches!(action, Action::Replace | Action::Set) {
                        let mut resp = Vec::new();
                        if *revert {
                            resp.push(ResponseRule::EdnsReplace(8, slot.0, slot.1.clone()));
                        }
                        *slot = option(8, payload);
                        return Outcome::Done(resp);
                    }
                    return Outcome::Ignored;
                }
                if matches!(action, Action::Append | Action::Set) {
                    opts.push(option(8, payload));
                    let resp = if *revert {
                        vec![ResponseRule::EdnsSet(8)]
                    } else {
                        Vec::new()
                    };
                    return Outcome::Done(resp);
                }
                Outcome::Ignored
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_masks() {
        let req = ferrodns_plugin_test::request("a.", ferrodns_plugin::proto::rr::RecordType::A);
        assert_eq!(ecs_payload(&req, 24, 56), vec![0, 1, 24, 0, 127, 0, 0]);
        assert_eq!(ecs_payload(&req, 0, 56), vec![0, 1, 0, 0]);
        assert_eq!(ecs_payload(&req, 12, 56), vec![0, 1, 12, 0, 127, 0]);
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("abcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(
            decode_hex("abc"),
            Err("encoding/hex: odd length hex string".into())
        );
        assert_eq!(
            decode_hex("zz"),
            Err("encoding/hex: invalid byte: U+007A 'z'".into())
        );
    }
}
