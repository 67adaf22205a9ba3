//! # log
//!
//! Query logging as CoreDNS's *log* plugin does it: for each request whose name falls under one
//! of the configured names, the rest of the chain runs and one line is written at INFO through
//! the `querylog` tracing target, from a format with placeholders. A `class` option restricts the
//! lines to replies of some classes (success, denial, error).
//!
//! ```text
//! log [NAMES...] [FORMAT] {
//!     class CLASSES...
//! }
//! ```

use std::collections::BTreeSet;

use ferrodns_pkg::names::is_subdomain;
use ferrodns_plugin::proto::op::{Message, MessageType, Metadata, OpCode, ResponseCode};
use ferrodns_plugin::wire::WireHeader;
pub use ferrodns_plugin::wire::{client_write, rcode_reply, uncompressed_len};
use ferrodns_plugin::{Descriptor, Next, Plugin, PluginError, Reply, Request, async_trait};

pub mod replacer;
mod setup;

use ferrodns_pkg::response;
pub use ferrodns_pkg::response::{Class, Type};
pub use replacer::{Node, Recorded};
pub use setup::parse;

/// The directive name.
pub const NAME: &str = "log";

/// The tracing target query lines are written to.
pub const TARGET: &str = "querylog";

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The Common Log Format, the default.
pub const COMMON_LOG_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration}";

/// The Common Log Format followed by the query's opcode.
pub const COMBINED_LOG_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration} \"{>opcode}\"";

/// The default format.
pub const DEFAULT_LOG_FORMAT: &str = COMMON_LOG_FORMAT;

/// One logging rule: the requests it covers, how it prints them and which replies it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The name (fully qualified, as written otherwise) whose subtree this rule covers.
    pub name_scope: String,
    /// The format, with `{common}` and `{combined}` expanded.
    pub format: String,
    /// The classes of replies that are logged (`All` when no `class` option was given).
    pub classes: BTreeSet<Class>,
}

impl Rule {
    pub(crate) fn new(name_scope: String, format: &str) -> Self {
        Rule {
            name_scope,
            format: format.to_string(),
            classes: BTreeSet::new(),
        }
    }
}

/// A rule ready to serve.
#[derive(Debug, Clone)]
struct Compiled {
    rule: Rule,
    nodes: Vec<Node>,
}

/// The request handler.
#[derive(Debug, Clone)]
pub struct Logger {
    rules: Vec<Compiled>,
}

impl Logger {
    /// A logger for these rules.
    pub fn new(rules: Vec<Rule>) -> Self {
        Logger {
            rules: rules
                .into_iter()
                .map(|rule| Compiled {
                    nodes: replacer::parse_format(&rule.format),
                    rule,
                })
                .collect(),
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }
}

#[async_trait]
impl Plugin for Logger {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        let name = ferrodns_pkg::text::name_lower(&req.qname());
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| is_subdomain(&r.rule.name_scope, &name))
        else {
            return next.serve(req).await;
        };

        let start = tokio::time::Instant::now();
        let result = next.serve(req).await;
        let duration = start.elapsed();

        let seen = Seen::of(req, &result);
        let tpe = response::typify(seen.message(&result), response::unix_now());
        let class = Class::of(tpe);
        // As CoreDNS's log, publish the reply's type and class (metadata on only).
        req.set_metadata("log/type", tpe.as_str());
        req.set_metadata("log/class", class.as_str());
        if rule.rule.classes.contains(&Class::All) || rule.rule.classes.contains(&class) {
            let rec = Recorded {
                reply: seen.rcode_flags(&result),
                size: seen.size(&result),
                duration,
                name,
            };
            let line = replacer::render(&rule.nodes, req, &rec);
            tracing::info!(target: TARGET, "{line}");
        }
        result
    }
}

/// What the log plugin saw written, CoreDNS's recorder in short: the reply the chain returned,
/// a decoded copy of a wire reply, or the reply the server will write for an error rcode.
enum Seen {
    /// The chain returned a message; read it in place.
    Returned,
    /// A decoded copy of a wire reply, with its flags and size as sent.
    Decoded {
        msg: Message,
        flags: u16,
        size: usize,
    },
    /// The reply the server writes for an rcode the chain did not write.
    Synthesized(Message),
    /// Nothing was written.
    Nothing,
}

impl Seen {
    fn of(req: &Request, result: &Result<Reply, PluginError>) -> Seen {
        let rcode = match result {
            Ok(Reply::Message(_)) => return Seen::Returned,
            Ok(Reply::Wire(b)) => return Seen::decode(b),
            Ok(Reply::Drop) => return Seen::Nothing,
            Ok(Reply::Rcode(rc)) => *rc,
            Err(e) => e.rcode,
        };
        if client_write(rcode) {
            return Seen::Nothing;
        }
        Seen::Synthesized(rcode_reply(req.message(), rcode))
    }

    fn decode(b: &[u8]) -> Seen {
        let Some(h) = WireHeader::read(b) else {
            return Seen::Nothing;
        };
        let msg = match Message::from_vec(b) {
            Ok(m) => m,
            Err(_) => {
                // Keep what the header says.
                let mut m = Message::new(h.id, MessageType::Response, OpCode::from_u8(h.opcode()));
                m.metadata = metadata_from_flags(h.id, h.flags);
                m
            }
        };
        let size = uncompressed_len(&msg).unwrap_or(b.len());
        Seen::Decoded {
            msg,
            flags: h.flags,
            size,
        }
    }

    fn message<'a>(&'a self, result: &'a Result<Reply, PluginError>) -> Option<&'a Message> {
        match (self, result) {
            (Seen::Returned, Ok(Reply::Message(m))) => Some(m),
            (Seen::Decoded { msg, .. }, _) | (Seen::Synthesized(msg), _) => Some(msg),
            _ => None,
        }
    }

    fn rcode_flags(&self, result: &Result<Reply, PluginError>) -> Option<(u16, u16)> {
        match self {
            Seen::Decoded { msg, flags, .. } => {
                Some((u16::from(msg.metadata.response_code), *flags))
            }
            _ => self.message(result).map(|m| {
                (
                    u16::from(m.metadata.response_code),
                    header_flags(&m.metadata),
                )
            }),
        }
    }

    fn size(&self, result: &Result<Reply, PluginError>) -> usize {
        match self {
            Seen::Decoded { size, .. } => *size,
            _ => self.message(result).and_then(uncompressed_len).unwrap_or(0),
        }
    }
}

fn header_flags(m: &Metadata) -> u16 {
    use replacer::flags::*;
    let mut f = 0;
    if m.message_type == MessageType::Response {
        f |= QR;
    }
    for (on, bit) in [
        (m.authoritative, AA),
        (m.truncation, TC),
        (m.recursion_desired, RD),
        (m.recursion_available, RA),
        (m.authentic_data, AD),
        (m.checking_disabled, CD),
    ] {
        if on {
            f |= bit;
        }
    }
    f
}

fn metadata_from_flags(id: u16, f: u16) -> Metadata {
    use replacer::flags::*;
    let kind = if f & QR != 0 {
        MessageType::Response
    } else {
        MessageType::Query
    };
    let mut m = Metadata::new(id, kind, OpCode::from_u8(((f >> 11) & 0xf) as u8));
    m.authoritative = f & AA != 0;
    m.truncation = f & TC != 0;
    m.recursion_desired = f & RD != 0;
    m.recursion_available = f & RA != 0;
    m.authentic_data = f & AD != 0;
    m.checking_disabled = f & CD != 0;
    m.response_code = ResponseCode::from_low((f & 0xf) as u8);
    m
}
