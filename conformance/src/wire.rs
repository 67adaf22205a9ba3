//! DNS messages at the byte level, for the harness: building the queries of a case exactly as
//! written (flags, OPT, mixed case, raw bytes), and reading replies strictly, keeping what a
//! lenient decoder would hide (the OPT record's real UDP size, duplicate OPTs, trailing bytes,
//! the case of every name). Record data is rendered in presentation format with hickory-proto.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;

/// The header flag bits, by name, in the order `dig` prints them.
pub const FLAG_BITS: &[(&str, u16)] = &[
    ("qr", 0x8000),
    ("aa", 0x0400),
    ("tc", 0x0200),
    ("rd", 0x0100),
    ("ra", 0x0080),
    ("z", 0x0040),
    ("ad", 0x0020),
    ("cd", 0x0010),
];

const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADVERS", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

const OPCODES: &[(&str, u8)] = &[
    ("QUERY", 0),
    ("IQUERY", 1),
    ("STATUS", 2),
    ("NOTIFY", 4),
    ("UPDATE", 5),
];

/// The name of a (full, 12-bit) rcode.
pub fn rcode_name(rcode: u16) -> String {
    RCODES
        .iter()
        .find(|(_, v)| *v == rcode)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| format!("RCODE{rcode}"))
}

/// An rcode by name (`NOERROR`, `BADVERS`, `RCODE12`) or number.
pub fn parse_rcode(s: &str) -> Result<u16> {
    let up = s.to_ascii_uppercase();
    if let Some((_, v)) = RCODES.iter().find(|(n, _)| *n == up) {
        return Ok(*v);
    }
    up.trim_start_matches("RCODE")
        .parse()
        .with_context(|| format!("unknown rcode {s:?}"))
}

/// The name of an opcode.
pub fn opcode_name(op: u8) -> String {
    OPCODES
        .iter()
        .find(|(_, v)| *v == op)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| format!("OPCODE{op}"))
}

/// A record type by mnemonic (`A`, `TYPE65534`) or number.
pub fn parse_type(s: &str) -> Result<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return Ok(n);
    }
    if let Some(n) = s.to_ascii_uppercase().strip_prefix("TYPE") {
        return n.parse().with_context(|| format!("bad type {s:?}"));
    }
    let t: RecordType = s
        .to_ascii_uppercase()
        .parse()
        .with_context(|| format!("unknown record type {s:?}"))?;
    Ok(u16::from(t))
}

/// A class by mnemonic (`IN`, `CH`, `CLASS9`) or number.
pub fn parse_class(s: &str) -> Result<u16> {
    let up = s.to_ascii_uppercase();
    Ok(match up.as_str() {
        "IN" => 1,
        "CH" | "CHAOS" => 3,
        "HS" => 4,
        "NONE" => 254,
        "ANY" => 255,
        _ => {
            if let Ok(n) = up.parse::<u16>() {
                n
            } else if let Some(n) = up.strip_prefix("CLASS") {
                n.parse().with_context(|| format!("bad class {s:?}"))?
            } else {
                bail!("unknown class {s:?}")
            }
        }
    })
}

/// Hex text (whitespace, `:` and `#`-to-end-of-line comments allowed) to bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let mut digits = String::new();
    for line in s.lines() {
        let line = line.split('#').next().unwrap_or("");
        digits.extend(line.chars().filter(|c| !c.is_whitespace() && *c != ':'));
    }
    if !digits.len().is_multiple_of(2) {
        bail!("hex text has an odd number of digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .with_context(|| format!("bad hex {:?}", &digits[i..i + 2]))
        })
        .collect()
}

/// Bytes as lowercase hex, grouped for reading.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 && i % 2 == 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// A domain name in presentation format to wire format, keeping the case of every label.
/// `\.` and `\DDD` escapes are understood.
pub fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<()> {
    if name == "." || name.is_empty() {
        out.push(0);
        return Ok(());
    }
    let mut label: Vec<u8> = Vec::new();
    let mut chars = name.bytes().peekable();
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<()> {
        if label.is_empty() {
            bail!("empty label in {name:?}");
        }
        if label.len() > 63 {
            bail!("label longer than 63 bytes in {name:?}");
        }
        out.push(label.len() as u8);
        out.append(label);
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            b'.' => flush(&mut label, out)?,
            b'\\' => {
                let Some(n) = chars.next() else {
                    bail!("dangling escape in {name:?}")
                };
                if n.is_ascii_digit() {
                    let d2 = chars.next().unwrap_or(b'x');
                    let d3 = chars.next().unwrap_or(b'x');
                    let s = [n, d2, d3];
                    let v: u8 = std::str::from_utf8(&s)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .with_context(|| format!("bad \\DDD escape in {name:?}"))?;
                    label.push(v);
                } else {
                    label.push(n);
                }
            }
            _ => label.push(c),
        }
    }
    if !label.is_empty() {
        flush(&mut label, out)?;
    }
    out.push(0);
    Ok(())
}

/// What goes into a query that the harness builds.
#[derive(Debug, Clone)]
pub struct QueryParts {
    /// Message ID.
    pub id: u16,
    /// Opcode (4 bits).
    pub opcode: u8,
    /// Flag names to set (`rd`, `cd`, `ad`, `z`, `aa`, `tc`, `ra`, `qr`).
    pub flags: Vec<String>,
    /// The question.
    pub name: String,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// OPT record, if any.
    pub edns: Option<OptParts>,
}

/// An OPT record to send.
#[derive(Debug, Clone)]
pub struct OptParts {
    /// Advertised UDP size (the OPT class).
    pub size: u16,
    /// EDNS version.
    pub version: u8,
    /// DO bit.
    pub dnssec_ok: bool,
    /// The other 15 flag bits.
    pub z: u16,
    /// Options: code and data.
    pub options: Vec<(u16, Vec<u8>)>,
}

/// Build the query bytes.
pub fn build_query(q: &QueryParts) -> Result<Vec<u8>> {
    let mut flags: u16 = u16::from(q.opcode & 0xf) << 11;
    for f in &q.flags {
        let Some((_, bit)) = FLAG_BITS.iter().find(|(n, _)| n.eq_ignore_ascii_case(f)) else {
            bail!("unknown header flag {f:?}");
        };
        flags |= bit;
    }
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    encode_name(&q.name, &mut out)?;
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    if let Some(e) = &q.edns {
        out.push(0);
        out.extend_from_slice(&41u16.to_be_bytes());
        out.extend_from_slice(&e.size.to_be_bytes());
        let ttl: u32 = (u32::from(e.version) << 16)
            | if e.dnssec_ok { 0x8000 } else { 0 }
            | u32::from(e.z & 0x7fff);
        out.extend_from_slice(&ttl.to_be_bytes());
        let mut rdata = Vec::new();
        for (code, data) in &e.options {
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(data);
        }
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Ok(out)
}

/// A resource record of a reply.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rr {
    /// Owner name as sent (case kept).
    pub name: String,
    /// TTL.
    pub ttl: u32,
    /// Class.
    pub class: u16,
    /// Type.
    pub rtype: u16,
    /// Record data in presentation format.
    pub rdata: String,
}

impl Rr {
    /// The record as one zone-file line, with or without its TTL.
    pub fn text(&self, with_ttl: bool) -> String {
        let class = DNSClass::from(self.class);
        let rtype = RecordType::from(self.rtype);
        if with_ttl {
            format!(
                "{} {} {} {} {}",
                self.name, self.ttl, class, rtype, self.rdata
            )
        } else {
            format!("{} {} {} {}", self.name, class, rtype, self.rdata)
        }
    }
}

/// The OPT record of a reply, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// Owner name (must be the root).
    pub owner: String,
    /// UDP size (the raw class value, not floored).
    pub size: u16,
    /// Upper 8 bits of the rcode.
    pub ext_rcode: u8,
    /// EDNS version.
    pub version: u8,
    /// DO bit.
    pub dnssec_ok: bool,
    /// The other flag bits.
    pub z: u16,
    /// Options in order: code and data.
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Opt {
    /// One line for diffs.
    pub fn text(&self) -> String {
        let mut s = format!(
            "size={} version={} do={} ext-rcode={}",
            self.size, self.version, self.dnssec_ok, self.ext_rcode
        );
        if self.z != 0 {
            let _ = write!(s, " z={:#06x}", self.z);
        }
        if self.owner != "." {
            let _ = write!(s, " owner={}", self.owner);
        }
        for (code, data) in &self.options {
            let _ = write!(s, " option{}=[{}]", code, hex(data));
        }
        s
    }
}

/// A reply, read strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Message ID.
    pub id: u16,
    /// The 16 flag bits as sent (opcode and low rcode included).
    pub flags: u16,
    /// Questions as `name class type`.
    pub questions: Vec<String>,
    /// Answer, authority, additional (without OPT records).
    pub sections: [Vec<Rr>; 3],
    /// OPT records found in the additional section (normally zero or one).
    pub opts: Vec<Opt>,
    /// Bytes after the last record.
    pub trailing: usize,
    /// Total length.
    pub len: usize,
}

impl Reply {
    /// Opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The full rcode: header bits plus the OPT's upper bits.
    pub fn rcode(&self) -> u16 {
        let high = self
            .opts
            .first()
            .map(|o| u16::from(o.ext_rcode))
            .unwrap_or(0);
        (high << 4) | (self.flags & 0xf)
    }

    /// The set flag names.
    pub fn flag_names(&self) -> String {
        let names: Vec<&str> = FLAG_BITS
            .iter()
            .filter(|(_, b)| self.flags & b != 0)
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(" ")
        }
    }

    /// One line: rcode, flags, counts.
    pub fn summary(&self) -> String {
        format!(
            "{} {} [{}] qd={} an={} ns={} ar={}{}",
            opcode_name(self.opcode()),
            rcode_name(self.rcode()),
            self.flag_names(),
            self.questions.len(),
            self.sections[0].len(),
            self.sections[1].len(),
            self.sections[2].len() + self.opts.len(),
            if self.opts.is_empty() { "" } else { " +opt" }
        )
    }
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8> {
        let v = *self.msg.get(self.pos).context("message ends early")?;
        self.pos += 1;
        Ok(v)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok((u32::from(self.u16()?) << 16) | u32::from(self.u16()?))
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).context("length overflow")?;
        let b = self.msg.get(self.pos..end).context("message ends early")?;
        self.pos = end;
        Ok(b)
    }

    /// A name, following compression pointers (at most 64 of them).
    fn name(&mut self) -> Result<String> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut jumps = 0;
        let mut total = 0usize;
        loop {
            let len = *self.msg.get(pos).context("name runs past the message")? as usize;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        pos += 1;
                        break;
                    }
                    let label = self
                        .msg
                        .get(pos + 1..pos + 1 + len)
                        .context("label runs past the message")?;
                    // Names over 255 bytes are invalid, but a server may still send one:
                    // read it so that it can be compared. Only runaway names stop.
                    total += len + 1;
                    if total > 4096 {
                        bail!("name longer than 4096 bytes");
                    }
                    for &c in label {
                        match c {
                            b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b' ' | b'@' | b'$' => {
                                out.push('\\');
                                out.push(c as char);
                            }
                            0x21..=0x7e => out.push(c as char),
                            _ => {
                                let _ = write!(out, "\\{c:03}");
                            }
                        }
                    }
                    out.push('.');
                    pos += len + 1;
                }
                0xc0 => {
                    let lo = *self
                        .msg
                        .get(pos + 1)
                        .context("pointer runs past the message")?;
                    if !jumped {
                        self.pos = pos + 2;
                        jumped = true;
                    }
                    jumps += 1;
                    if jumps > 64 {
                        bail!("compression pointer loop");
                    }
                    pos = ((len & 0x3f) << 8) | lo as usize;
                }
                _ => bail!("bad label type {len:#04x}"),
            }
        }
        if !jumped {
            self.pos = pos;
        }
        if out.is_empty() {
            out.push('.');
        }
        Ok(out)
    }
}

/// Read a reply. Fails on anything that does not parse.
pub fn parse_reply(msg: &[u8]) -> Result<Reply> {
    let mut r = Reader { msg, pos: 0 };
    if msg.len() < HEADER_LEN {
        bail!("{} bytes, shorter than a header", msg.len());
    }
    let id = r.u16()?;
    let flags = r.u16()?;
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let name = r.name()?;
        let t = r.u16()?;
        let c = r.u16()?;
        questions.push(format!(
            "{} {} {}",
            name,
            DNSClass::from(c),
            RecordType::from(t)
        ));
    }
    let mut sections: [Vec<Rr>; 3] = Default::default();
    let mut opts = Vec::new();
    for (i, count) in counts[1..].iter().enumerate() {
        for _ in 0..*count {
            let name = r.name()?;
            let rtype = r.u16()?;
            let class = r.u16()?;
            let ttl = r.u32()?;
            let rdlen = r.u16()? as usize;
            let start = r.pos;
            let rdata = r.bytes(rdlen)?.to_vec();
            if rtype == 41 {
                let mut options = Vec::new();
                let mut o = Reader {
                    msg: &rdata,
                    pos: 0,
                };
                while o.pos < rdata.len() {
                    let code = o.u16()?;
                    let len = o.u16()? as usize;
                    options.push((code, o.bytes(len)?.to_vec()));
                }
                opts.push(Opt {
                    owner: name,
                    size: class,
                    ext_rcode: (ttl >> 24) as u8,
                    version: (ttl >> 16) as u8,
                    dnssec_ok: ttl & 0x8000 != 0,
                    z: (ttl & 0x7fff) as u16,
                    options,
                });
                if i != 2 {
                    bail!("OPT record outside the additional section");
                }
                continue;
            }
            let text = render_rdata(msg, start, rtype, rdlen, &rdata);
            sections[i].push(Rr {
                name,
                ttl,
                class,
                rtype,
                rdata: text,
            });
        }
    }
    Ok(Reply {
        id,
        flags,
        questions,
        sections,
        opts,
        trailing: msg.len() - r.pos,
        len: msg.len(),
    })
}

/// Record data in presentation format; RFC 3597 `\# len hex` when hickory cannot read it.
fn render_rdata(msg: &[u8], start: usize, rtype: u16, rdlen: usize, raw: &[u8]) -> String {
    let mut d = BinDecoder::new(msg);
    let ok = d.read_slice(start).is_ok();
    if ok
        && let Ok(rd) = RData::read(&mut d, RecordType::from(rtype), Restrict::new(rdlen as u16))
        && d.index() == start + rdlen
    {
        return rd.to_string();
    }
    format!("\\# {} {}", rdlen, hex(raw).replace(' ', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip_keeps_case_and_opt_size() {
        let q = QueryParts {
            id: 77,
            opcode: 0,
            flags: vec!["rd".into(), "cd".into()],
            name: "ExAmple.ORG.".into(),
            qtype: parse_type("AAAA").unwrap(),
            qclass: parse_class("IN").unwrap(),
            edns: Some(OptParts {
                size: 100,
                version: 1,
                dnssec_ok: true,
                z: 0,
                options: vec![(10, vec![1, 2, 3, 4, 5, 6, 7, 8])],
            }),
        };
        let b = build_query(&q).unwrap();
        let r = parse_reply(&b).unwrap();
        assert_eq!(r.id, 77);
        assert_eq!(r.flag_names(), "rd cd");
        assert_eq!(r.questions, vec!["ExAmple.ORG. IN AAAA"]);
        assert_eq!(r.opts.len(), 1);
        assert_eq!(r.opts[0].size, 100, "not floored to 512");
        assert_eq!(r.opts[0].version, 1);
        assert!(r.opts[0].dnssec_ok);
        assert_eq!(r.opts[0].options, vec![(10, vec![1, 2, 3, 4, 5, 6, 7, 8])]);
    }

    #[test]
    fn pointer_loop_is_an_error() {
        let mut b = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse_reply(&b).is_err());
    }

    #[test]
    fn names_and_codes() {
        assert_eq!(parse_rcode("badvers").unwrap(), 16);
        assert_eq!(rcode_name(16), "BADVERS");
        assert_eq!(parse_type("TYPE65280").unwrap(), 65280);
        assert_eq!(parse_class("CH").unwrap(), 3);
        assert_eq!(
            parse_hex("00 01 # c\nab:cd").unwrap(),
            vec![0, 1, 0xab, 0xcd]
        );
        let mut out = Vec::new();
        encode_name("a\\.b.c", &mut out).unwrap();
        assert_eq!(out, vec![3, b'a', b'.', b'b', 1, b'c', 0]);
    }
}
