//! An RFC 1035 master file reader with miekg/dns's conventions: `$ORIGIN`, `$TTL`, `$INCLUDE`,
//! owner and TTL inheritance (an explicit TTL is the default until a `$TTL`, 0 without
//! either), parentheses, comments and quoted strings. Record data is handed to hickory's parser
//! one record at a time; DNAME records (which hickory does not parse) are read here.

use std::path::{Path, PathBuf};

use ferrodns_plugin::proto::rr::rdata::NULL;
use ferrodns_plugin::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ferrodns_plugin::proto::serialize::binary::BinEncodable;
use ferrodns_plugin::proto::serialize::txt::Parser;

/// The TTL of records without one when no `$TTL` or earlier TTL applies (miekg/dns uses 0).
pub const DEFAULT_TTL: u32 = 0;

const MAX_INCLUDE_DEPTH: usize = 7;

/// One logical line: its tokens, whether it started with blank space, and its line number.
struct Line {
    tokens: Vec<String>,
    blank_start: bool,
    number: usize,
}

/// Split text into logical lines (parentheses join lines; `;` comments; quotes kept).
fn lines(text: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut paren = 0usize;
    let mut in_quote = false;
    let mut comment = false;
    let mut line_no = 1usize;
    let mut start_line = 1usize;
    let mut at_line_start = true;
    let mut blank_start = false;
    let mut chars = text.chars().peekable();
    let flush_tok = |cur: &mut String, tokens: &mut Vec<String>| {
        if !cur.is_empty() {
            tokens.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        if at_line_start && paren == 0 {
            blank_start = c == ' ' || c == '\t';
            start_line = line_no;
            at_line_start = false;
        }
        if comment {
            if c == '\n' {
                comment = false;
            } else {
                continue;
            }
        }
        if in_quote {
            cur.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    if n == '\n' {
                        line_no += 1;
                    }
                    cur.push(n);
                }
            } else if c == '"' {
                in_quote = false;
                flush_tok(&mut cur, &mut tokens);
            } else if c == '\n' {
                line_no += 1;
            }
            continue;
        }
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                flush_tok(&mut cur, &mut tokens);
                cur.push('"');
                in_quote = true;
            }
            ';' => {
                flush_tok(&mut cur, &mut tokens);
                comment = true;
            }
            '(' => {
                flush_tok(&mut cur, &mut tokens);
                paren += 1;
            }
            ')' => {
                flush_tok(&mut cur, &mut tokens);
                if paren == 0 {
                    return Err(format!("extra closing brace at line: {line_no}"));
                }
                paren -= 1;
            }
            ' ' | '\t' | '\r' => flush_tok(&mut cur, &mut tokens),
            '\n' => {
                flush_tok(&mut cur, &mut tokens);
                line_no += 1;
                if paren == 0 {
                    if !tokens.is_empty() {
                        out.push(Line {
                            tokens: std::mem::take(&mut tokens),
                            blank_start,
                            number: start_line,
                        });
                    }
                    at_line_start = true;
                }
            }
            c => cur.push(c),
        }
    }
    if in_quote {
        return Err(format!("unbalanced quote at line: {line_no}"));
    }
    if paren > 0 {
        return Err(format!("unbalanced brace at line: {line_no}"));
    }
    flush_tok(&mut cur, &mut tokens);
    if !tokens.is_empty() {
        out.push(Line {
            tokens,
            blank_start,
            number: start_line,
        });
    }
    Ok(out)
}

/// A TTL as miekg/dns reads it: seconds, or BIND units (`1h30m`, `2D`).
fn parse_ttl(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let mut total: u64 = 0;
    let mut num: u64 = 0;
    let mut have = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = num.checked_mul(10)?.checked_add(u64::from(d))?;
            have = true;
            continue;
        }
        let mult = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        if !have {
            return None;
        }
        total = total.checked_add(num.checked_mul(mult)?)?;
        num = 0;
        have = false;
    }
    if have {
        return None;
    }
    u32::try_from(total).ok()
}

fn parse_name(s: &str, origin: &Name) -> Result<Name, String> {
    if s == "@" {
        return Ok(origin.clone());
    }
    ferrodns_pkg::text::name_from_presentation(s, Some(origin))
        .ok_or_else(|| format!("bad owner name \"{s}\""))
}

fn record_type(s: &str) -> Option<RecordType> {
    let up = s.to_ascii_uppercase();
    if let Some(n) = up.strip_prefix("TYPE")
        && let Ok(code) = n.parse::<u16>()
    {
        return Some(RecordType::from(code));
    }
    match up.parse::<RecordType>() {
        Ok(RecordType::Unknown(_)) | Err(_) => None,
        Ok(t) => Some(t),
    }
}

/// Reads master files into records.
pub struct Reader {
    origin: Name,
    default_ttl: Option<(u32, bool)>,
    last_owner: Option<Name>,
    records: Vec<Record>,
}

impl Reader {
    /// Read `text` (from `file`) with `origin`.
    pub fn read(text: &str, origin: &Name, file: &str) -> Result<Vec<Record>, String> {
        let mut r = Reader {
            origin: origin.clone(),
            default_ttl: None,
            last_owner: None,
            records: Vec::new(),
        };
        r.read_text(text, Path::new(file), 0)?;
        Ok(r.records)
    }

    fn read_text(&mut self, text: &str, file: &Path, depth: usize) -> Result<(), String> {
        let at = |n: usize| format!("at line: {n}");
        for line in lines(text)? {
            let mut toks = line.tokens.iter().map(String::as_str).peekable();
            let Some(&first) = toks.peek() else {
                continue;
            };
            if !line.blank_start && first.starts_with('$') {
                toks.next();
                let arg = toks.next();
                match first.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let Some(a) = arg else {
                            return Err(format!(
                                "dns: expecting $ORIGIN value, got: \"\" {}",
                                at(line.number)
                            ));
                        };
                        self.origin = Name::parse(a, Some(&self.origin)).map_err(|_| {
                            format!("dns: bad origin name: \"{a}\" {}", at(line.number))
                        })?;
                    }
                    "$TTL" => {
                        let ttl = arg.and_then(parse_ttl).ok_or_else(|| {
                            format!(
                                "dns: expecting $TTL value, got: \"{}\" {}",
                                arg.unwrap_or(""),
                                at(line.number)
                            )
                        })?;
                        self.default_ttl = Some((ttl, true));
                    }
                    "$INCLUDE" => {
                        let Some(a) = arg else {
                            return Err(format!(
                                "dns: expecting $INCLUDE value, got: \"\" {}",
                                at(line.number)
                            ));
                        };
                        if depth >= MAX_INCLUDE_DEPTH {
                            return Err(format!(
                                "dns: too deeply nested $INCLUDE {}",
                                at(line.number)
                            ));
                        }
                        let mut path = PathBuf::from(a);
                        if !path.is_absolute() {
                            path = file.parent().unwrap_or(Path::new(".")).join(path);
                        }
                        let inc = std::fs::read_to_string(&path).map_err(|e| {
                            format!(
                                "dns: failed to open `{}': {} {}",
                                path.display(),
                                e,
                                at(line.number)
                            )
                        })?;
                        let saved = self.origin.clone();
                        if let Some(o) = toks.next() {
                            self.origin = Name::parse(o, Some(&saved)).map_err(|_| {
                                format!("dns: bad origin name: \"{o}\" {}", at(line.number))
                            })?;
                        }
                        self.read_text(&inc, &path, depth + 1)?;
                        self.origin = saved;
                    }
                    other => {
                        return Err(format!(
                            "dns: unsupported directive {other} {}",
                            at(line.number)
                        ));
                    }
                }
                continue;
            }
            let owner = if line.blank_start {
                self.last_owner
                    .clone()
                    .ok_or_else(|| format!("dns: no owner name {}", at(line.number)))?
            } else {
                let t = toks.next().unwrap_or("@");
                parse_name(t, &self.origin).map_err(|e| format!("dns: {e} {}", at(line.number)))?
            };
            self.last_owner = Some(owner.clone());
            let mut ttl: Option<u32> = None;
            let mut rtype: Option<RecordType> = None;
            for t in toks.by_ref() {
                if ttl.is_none()
                    && let Some(v) = parse_ttl(t)
                {
                    ttl = Some(v);
                    continue;
                }
                match t.to_ascii_uppercase().as_str() {
                    "IN" | "CH" | "HS" | "CS" | "NONE" | "ANY" => continue,
                    u if u.starts_with("CLASS") && u[5..].parse::<u16>().is_ok() => continue,
                    _ => {}
                }
                rtype =
                    Some(record_type(t).ok_or_else(|| {
                        format!("dns: unknown RR type \"{t}\" {}", at(line.number))
                    })?);
                break;
            }
            let rtype = rtype.ok_or_else(|| format!("dns: missing RR type {}", at(line.number)))?;
            let ttl = match ttl {
                Some(v) => {
                    if !matches!(self.default_ttl, Some((_, true))) {
                        self.default_ttl = Some((v, false));
                    }
                    v
                }
                None => self.default_ttl.map(|(v, _)| v).unwrap_or(DEFAULT_TTL),
            };
            let rdata: Vec<&str> = toks.collect();
            let record = self
                .make(&owner, ttl, rtype, &rdata)
                .map_err(|e| format!("dns: bad {rtype} {e} {}", at(line.number)))?;
            self.records.push(record);
        }
        Ok(())
    }

    fn make(
        &self,
        owner: &Name,
        ttl: u32,
        rtype: RecordType,
        rdata: &[&str],
    ) -> Result<Record, String> {
        if rdata.first() == Some(&"\\#") {
            return generic(owner, ttl, rtype, &rdata[1..]);
        }
        match rtype {
            // Loaded so that the zone refuses them with CoreDNS's own error.
            RecordType::NSEC3 | RecordType::NSEC3PARAM => {
                let data = RData::Unknown {
                    code: rtype,
                    rdata: NULL::with(vec![0]),
                };
                return Ok(Record::from_rdata(owner.clone(), ttl, data));
            }
            RecordType::RRSIG
            | RecordType::NSEC
            | RecordType::DNSKEY
            | RecordType::DS
            | RecordType::CDS
            | RecordType::CDNSKEY => {
                let bytes = crate::dnssec::rdata(rtype, rdata, &self.origin)?;
                let data = RData::Unknown {
                    code: rtype,
                    rdata: opaque(bytes),
                };
                let mut r = Record::from_rdata(owner.clone(), ttl, data);
                r.dns_class = DNSClass::IN;
                return Ok(r);
            }
            RecordType::KEY | RecordType::SIG => {
                return Err("record: KEY and SIG records are not supported by ferrodns".to_string());
            }
            _ => {}
        }
        if rtype == RecordType::DNAME {
            let [target] = rdata else {
                return Err("DNAME: wrong number of fields".to_string());
            };
            let target = parse_name(target, &self.origin)?;
            let bytes = target.to_bytes().map_err(|e| e.to_string())?;
            let data = RData::Unknown {
                code: RecordType::DNAME,
                rdata: opaque(bytes),
            };
            let mut r = Record::from_rdata(owner.clone(), ttl, data);
            r.dns_class = DNSClass::IN;
            return Ok(r);
        }
        // The owner is written `@` (the origin) and put back after: hickory's reader applies IDNA
        // rules to names and would refuse owners that miekg/dns takes (`ab_9`).
        let text = format!(
            "$ORIGIN {}\n@ {} IN {} {}\n",
            self.origin,
            ttl,
            rtype,
            rdata.join(" ")
        );
        let (_, sets) = Parser::new(text, None, Some(self.origin.clone()))
            .parse()
            .map_err(|e| e.to_string())?;
        let rec = sets
            .values()
            .flat_map(|s| s.records_without_rrsigs())
            .next()
            .cloned()
            .ok_or_else(|| "no record".to_string())?;
        let mut rec = rec;
        rec.name = owner.clone();
        rec.ttl = ttl;
        Ok(rec)
    }
}

/// Opaque record data; empty is allowed (`\# 0`), which `NULL::with` asserts against.
fn opaque(bytes: Vec<u8>) -> NULL {
    let mut n = NULL::new();
    n.anything = bytes;
    n
}

/// RFC 3597 generic record data: `\# LENGTH HEX...`, kept as opaque wire data.
fn generic(owner: &Name, ttl: u32, rtype: RecordType, rest: &[&str]) -> Result<Record, String> {
    let Some((len, hex)) = rest.split_first() else {
        return Err("missing length of generic data".to_string());
    };
    let len: usize = len.parse().map_err(|_| format!("bad length \"{len}\""))?;
    let hex: String = hex.concat();
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("bad hex in generic data".to_string());
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    if bytes.len() != len {
        return Err("generic data length mismatch".to_string());
    }
    let data = RData::Unknown {
        code: rtype,
        rdata: opaque(bytes),
    };
    let mut r = Record::from_rdata(owner.clone(), ttl, data);
    r.dns_class = DNSClass::IN;
    Ok(r)
}

/// The target of a DNAME record read by [`Reader`].
pub fn dname_target(r: &Record) -> Option<Name> {
    if r.record_type() != RecordType::DNAME {
        return None;
    }
    match &r.data {
        RData::Unknown { rdata, .. } => {
            use ferrodns_plugin::proto::serialize::binary::{BinDecodable, BinDecoder};
            let mut d = BinDecoder::new(&rdata.anything);
            Name::read(&mut d).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;
    use ferrodns_plugin::proto::rr::Name;

    #[test]
    fn generic_data_of_length_zero_is_read() {
        // Found by the zonefile fuzz target: `\# 0` tripped hickory's assertion that NULL
        // data is never empty (a debug-build panic while loading a zone).
        let origin = Name::from_ascii("example.org.").unwrap();
        let text = "example.org. 3600 IN TYPE65534 \\# 0\n";
        let records = Reader::read(text, &origin, "db.example.org").expect("reads");
        assert_eq!(records.len(), 1);
    }
}
