//! Reading one resource record from its text, as miekg/dns's `NewRR` does (origin `.`, default
//! TTL 3600, class IN), on hickory's zone-file parser.

use ferrodns_plugin::proto::rr::{Name, Record};
use ferrodns_plugin::proto::serialize::txt::Parser;

/// Parse one record. An empty text (or only a comment) is an error here; miekg/dns returns no
/// record and no error, which CoreDNS then fails on.
pub fn parse_rr(text: &str) -> Result<Record, String> {
    // A line that starts with a name: the owner is read as miekg/dns reads names (hickory's
    // reader applies IDNA rules and refuses `ab_9.example.`), and hickory reads the rest with
    // the owner written `@`.
    let (owner, input) = match text.split_once(char::is_whitespace) {
        Some((first, rest)) if !first.is_empty() && !first.starts_with(';') => {
            let owner = ferrodns_pkg::text::name_from_presentation(first, Some(&Name::root()))
                .ok_or_else(|| format!("dns: bad owner name \"{first}\""))?;
            (Some(owner), format!("$TTL 3600\n@ {rest}\n"))
        }
        _ => (None, format!("$TTL 3600\n{text}\n")),
    };
    let (_, records) = Parser::new(input, None, Some(Name::root()))
        .parse()
        .map_err(|e| format!("dns: {e}"))?;
    let mut record = records
        .into_values()
        .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .next()
        .ok_or_else(|| "dns: no record in template output".to_string())?;
    if let Some(owner) = owner {
        record.name = owner;
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrodns_plugin::proto::rr::{DNSClass, RecordType};

    #[test]
    fn records() {
        let r = parse_rr("example.org. 60 IN A 10.0.0.1").unwrap();
        assert_eq!(r.record_type(), RecordType::A);
        assert_eq!(r.ttl, 60);
        let r = parse_rr("example.org A 10.0.0.1").unwrap();
        assert_eq!(r.ttl, 3600);
        assert_eq!(r.dns_class, DNSClass::IN);
        assert_eq!(r.name.to_string(), "example.org.");
        let r =
            parse_rr("invalid. 60 IN SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)").unwrap();
        assert_eq!(r.record_type(), RecordType::SOA);
        assert!(parse_rr("x. 60 IN A nope").is_err());
        assert!(parse_rr("").is_err());
    }
}
