//! Queries built once per name into wire bytes; a send copies them and patches the ID.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::LoadError;

/// One name's query in wire form, ID 0.
pub(crate) struct Template {
    pub wire: Vec<u8>,
    /// End of the question's name (it starts at 12).
    pub name_end: usize,
}

impl Template {
    /// The query for `name` of type `qtype`; `name` may carry its own type after a space
    /// (`www.example.org AAAA`, dnsperf's query-file format), which then wins.
    pub(crate) fn build(
        name: &str,
        qtype: RecordType,
        edns: Option<u16>,
    ) -> Result<Self, LoadError> {
        let (name, qtype) = match name.split_once(char::is_whitespace) {
            Some((n, t)) => {
                let t = t.trim();
                let parsed: RecordType = t.parse().map_err(|_| LoadError::InvalidName {
                    name: name.to_string(),
                    reason: format!("unknown query type {t:?}"),
                })?;
                (n, parsed)
            }
            None => (name, qtype),
        };
        let parsed = Name::from_ascii(name).map_err(|e| LoadError::InvalidName {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let mut parsed = parsed;
        parsed.set_fqdn(true);
        let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(parsed, qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            msg.set_edns(e);
        }
        let wire = msg.to_vec().map_err(|e| LoadError::InvalidName {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let mut i = 12;
        while wire[i] != 0 {
            i += 1 + wire[i] as usize;
        }
        Ok(Template {
            wire,
            name_end: i + 1,
        })
    }

    /// Whether `reply` is a response (QR set) carrying this template's question: the same name
    /// (ASCII case ignored), type and class.
    pub(crate) fn matches(&self, reply: &[u8]) -> bool {
        let qend = self.name_end + 4;
        reply.len() >= qend
            && reply[2] & 0x80 != 0
            && reply[4..6] == [0, 1]
            && reply[12..self.name_end].eq_ignore_ascii_case(&self.wire[12..self.name_end])
            && reply[self.name_end..qend] == self.wire[self.name_end..qend]
    }
}

/// `q<i>.<zone>` for i in 0..count.
pub(crate) fn pattern(count: usize, zone: &str) -> Vec<String> {
    let zone = zone.trim_end_matches('.');
    (0..count)
        .map(|i| {
            if zone.is_empty() {
                format!("q{i}.")
            } else {
                format!("q{i}.{zone}.")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matches_its_answer_only() {
        let t = Template::build("q1.Example.org.", RecordType::A, None).unwrap();
        assert_eq!(t.wire.len(), t.name_end + 4);
        let mut reply = t.wire.clone();
        assert!(!t.matches(&reply), "a query is not an answer");
        reply[2] |= 0x80;
        assert!(t.matches(&reply));
        reply[13] = b'Q';
        assert!(t.matches(&reply), "case is ignored");
        let aaaa = Template::build("q1.example.org", RecordType::AAAA, Some(1232)).unwrap();
        assert!(!aaaa.matches(&reply));
        assert!(
            aaaa.wire.len() > aaaa.name_end + 4,
            "OPT follows the question"
        );
        assert!(Template::build("a..b", RecordType::A, None).is_err());
        let typed = Template::build("q1.example.org AAAA", RecordType::A, None).unwrap();
        assert_eq!(typed.wire, aaaa_plain().wire, "a type after the name wins");
        assert!(Template::build("q1.example.org BOGUS", RecordType::A, None).is_err());
    }

    fn aaaa_plain() -> Template {
        Template::build("q1.example.org", RecordType::AAAA, None).unwrap()
    }

    #[test]
    fn pattern_names() {
        assert_eq!(
            pattern(2, "example.org."),
            ["q0.example.org.", "q1.example.org."]
        );
        assert_eq!(pattern(1, "example.org"), ["q0.example.org."]);
    }
}
