//! Log formats: CoreDNS's replacer (`plugin/pkg/replacer`). A format is cut once, at setup, into
//! literal text, known `{placeholders}` and `{/metadata}` labels; anything else in braces stays
//! as written.

use std::fmt::Write;
use std::time::Duration;

use ferrodns_plugin::Request;

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `{type}`: the question type.
    Type,
    /// `{name}`: the question name, lowercased.
    Name,
    /// `{class}`: the question class.
    Class,
    /// `{proto}`: `udp` or `tcp`.
    Proto,
    /// `{size}`: the request's size.
    Size,
    /// `{remote}`: the client's address (IPv6 in brackets).
    Remote,
    /// `{port}`: the client's port.
    Port,
    /// `{local}`: the server's address (IPv6 in brackets).
    Local,
    /// `{>id}`: the query ID.
    Id,
    /// `{>opcode}`: the query opcode, as a number.
    Opcode,
    /// `{>do}`: the DO bit of the query.
    Do,
    /// `{>bufsize}`: the client's buffer size.
    Bufsize,
    /// `{rcode}`: the reply's rcode.
    Rcode,
    /// `{rsize}`: the reply's size, uncompressed.
    Rsize,
    /// `{duration}`: how long the rest of the chain took.
    Duration,
    /// `{>rflags}`: the reply's header flags.
    Rflags,
}

impl Label {
    fn from_placeholder(s: &str) -> Option<Label> {
        Some(match s {
            "{type}" => Label::Type,
            "{name}" => Label::Name,
            "{class}" => Label::Class,
            "{proto}" => Label::Proto,
            "{size}" => Label::Size,
            "{remote}" => Label::Remote,
            "{port}" => Label::Port,
            "{local}" => Label::Local,
            "{>id}" => Label::Id,
            "{>opcode}" => Label::Opcode,
            "{>do}" => Label::Do,
            "{>bufsize}" => Label::Bufsize,
            "{rcode}" => Label::Rcode,
            "{rsize}" => Label::Rsize,
            "{duration}" => Label::Duration,
            "{>rflags}" => Label::Rflags,
            _ => return None,
        })
    }
}

/// One piece of a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Text copied as is.
    Literal(String),
    /// A placeholder.
    Label(Label),
    /// A metadata label (`{/name}` holds `name`).
    Metadata(String),
}

/// The value printed for anything unknown or missing.
pub const EMPTY: &str = "-";

/// Cut a format into nodes the way CoreDNS does: find the first `}`, take the last `{` before
/// it, and decide what the braces hold; unknown placeholders are literal text.
pub fn parse_format(format: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut s = format;
    while let Some(j) = s.find('}') {
        let Some(i) = s[..j].rfind('{') else {
            nodes.push(Node::Literal(s[..=j].to_string()));
            s = &s[j + 1..];
            continue;
        };
        let val = &s[i..=j];
        let node = match Label::from_placeholder(val) {
            Some(label) => Some(Node::Label(label)),
            None => val
                .strip_prefix("{/")
                .map(|rest| Node::Metadata(rest[..rest.len() - 1].to_string())),
        };
        match node {
            Some(node) => {
                if i != 0 {
                    nodes.push(Node::Literal(s[..i].to_string()));
                }
                nodes.push(node);
            }
            None => nodes.push(Node::Literal(s[..=j].to_string())),
        }
        s = &s[j + 1..];
    }
    if !s.is_empty() {
        nodes.push(Node::Literal(s.to_string()));
    }
    nodes
}

/// What is known about the reply when a line is rendered.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The reply's rcode and header flags, `None` when nothing was written.
    pub reply: Option<(u16, u16)>,
    /// The reply's size (0 when nothing was written).
    pub size: usize,
    /// Time spent in the rest of the chain.
    pub duration: Duration,
    /// The question name as it reached this plugin, lowercased (`{name}`: CoreDNS logs the
    /// name the client asked even when a later plugin rewrites it). Empty: the request's name.
    pub name: String,
}

/// Header flag bits in wire order.
pub mod flags {
    /// QR.
    pub const QR: u16 = 0x8000;
    /// AA.
    pub const AA: u16 = 0x0400;
    /// TC.
    pub const TC: u16 = 0x0200;
    /// RD.
    pub const RD: u16 = 0x0100;
    /// RA.
    pub const RA: u16 = 0x0080;
    /// Z.
    pub const Z: u16 = 0x0040;
    /// AD.
    pub const AD: u16 = 0x0020;
    /// CD.
    pub const CD: u16 = 0x0010;
}

fn append_flags(out: &mut String, bits: u16) {
    const NAMES: [(u16, &str); 8] = [
        (flags::QR, "qr"),
        (flags::AA, "aa"),
        (flags::TC, "tc"),
        (flags::RD, "rd"),
        (flags::RA, "ra"),
        (flags::Z, "z"),
        (flags::AD, "ad"),
        (flags::CD, "cd"),
    ];
    let mut first = true;
    for (bit, name) in NAMES {
        if bits & bit != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

/// Seconds as Go's `strconv.FormatFloat(d.Seconds(), 'f', -1, 64)` prints them (Rust's `Display`
/// for `f64` is also the shortest round-trip form without an exponent).
pub fn seconds(d: Duration) -> String {
    let secs = d.as_secs() as f64 + f64::from(d.subsec_nanos()) / 1e9;
    format!("{secs}")
}

/// Render the nodes for one request.
pub fn render(nodes: &[Node], req: &Request, rec: &Recorded) -> String {
    let mut out = String::with_capacity(128);
    for node in nodes {
        match node {
            Node::Literal(s) => out.push_str(s),
            Node::Metadata(label) => match req.metadata(label) {
                Some(v) => out.push_str(&v),
                None => out.push_str(EMPTY),
            },
            Node::Label(label) => append_label(&mut out, *label, req, rec),
        }
    }
    out
}

fn append_label(out: &mut String, label: Label, req: &Request, rec: &Recorded) {
    // Writing into a String cannot fail.
    let _ = match label {
        Label::Rcode => match rec.reply {
            Some((rcode, _)) => match ferrodns_pkg::text::rcode_name(rcode) {
                Some(n) => {
                    out.push_str(n);
                    Ok(())
                }
                None => write!(out, "{rcode}"),
            },
            None => {
                out.push_str(EMPTY);
                Ok(())
            }
        },
        Label::Rsize => write!(out, "{}", rec.size),
        Label::Duration => {
            out.push_str(&seconds(rec.duration));
            out.push('s');
            Ok(())
        }
        Label::Rflags => {
            match rec.reply {
                Some((_, bits)) => append_flags(out, bits),
                None => out.push_str(EMPTY),
            }
            Ok(())
        }
        Label::Type => {
            out.push_str(&ferrodns_pkg::text::type_name(u16::from(req.qtype())));
            Ok(())
        }
        Label::Name => {
            if rec.name.is_empty() {
                out.push_str(&ferrodns_pkg::text::name_lower(&req.qname()));
            } else {
                out.push_str(&rec.name);
            }
            Ok(())
        }
        Label::Class => {
            out.push_str(&ferrodns_pkg::text::class_name(u16::from(req.qclass())));
            Ok(())
        }
        Label::Proto => {
            out.push_str(req.protocol.as_str());
            Ok(())
        }
        Label::Size => write!(out, "{}", req.len()),
        Label::Remote => {
            out.push_str(&ferrodns_pkg::text::ip_rfc3986(req.src.ip()));
            Ok(())
        }
        Label::Port => write!(out, "{}", req.src.port()),
        Label::Local => {
            out.push_str(&ferrodns_pkg::text::ip_rfc3986(req.local.ip()));
            Ok(())
        }
        Label::Id => write!(out, "{}", req.id()),
        Label::Opcode => write!(out, "{}", u8::from(req.message().metadata.op_code)),
        Label::Do => write!(out, "{}", req.do_bit()),
        Label::Bufsize => write!(out, "{}", req.size()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Node {
        Node::Literal(s.to_string())
    }

    #[test]
    fn cuts_formats_like_coredns() {
        assert_eq!(
            parse_format("A {type} B"),
            vec![lit("A "), Node::Label(Label::Type), lit(" B")]
        );
        // Unknown placeholders swallow the text before them into one literal.
        assert_eq!(
            parse_format("x {when} {name}"),
            vec![lit("x {when}"), lit(" "), Node::Label(Label::Name)]
        );
        assert_eq!(
            parse_format("A } {type}"),
            vec![lit("A }"), lit(" "), Node::Label(Label::Type)]
        );
        assert_eq!(
            parse_format("{ {type} }"),
            vec![lit("{ "), Node::Label(Label::Type), lit(" }")]
        );
        assert_eq!(
            parse_format("{/forward/upstream}{/}"),
            vec![
                Node::Metadata("forward/upstream".into()),
                Node::Metadata(String::new())
            ]
        );
        assert_eq!(parse_format("{TYPE}"), vec![lit("{TYPE}")]);
        assert_eq!(parse_format(""), Vec::<Node>::new());
        assert_eq!(parse_format("{"), vec![lit("{")]);
    }

    #[test]
    fn seconds_are_shortest_decimal() {
        assert_eq!(seconds(Duration::from_nanos(37_990_251)), "0.037990251");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_nanos(100)), "0.0000001");
        assert_eq!(seconds(Duration::from_secs(2)), "2");
    }

    #[test]
    fn flags_in_coredns_order() {
        let mut s = String::new();
        append_flags(
            &mut s,
            flags::CD | flags::QR | flags::RD | flags::RA | flags::AD,
        );
        assert_eq!(s, "qr,rd,ra,ad,cd");
        let mut s = String::new();
        append_flags(&mut s, 0);
        assert_eq!(s, "");
    }
}
