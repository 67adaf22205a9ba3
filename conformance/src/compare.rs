//! Comparing what the two servers did, and saying how they differ in lines a person can read.
//! CoreDNS is the reference: "missing in ferrodns" is what CoreDNS had and ferrodns did not.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use crate::case::{Part, Query};
use crate::client::Outcome;
use crate::wire::{self, Reply, Rr};

/// The reference's name in diffs.
pub const REF: &str = "coredns";
/// The candidate's name in diffs.
pub const SUT: &str = "ferrodns";

/// How one side's outcome reads in a diff.
pub fn describe(o: &Outcome) -> String {
    match o {
        Outcome::NoReply(why) => format!("no reply ({why})"),
        Outcome::Reply(b) => match wire::parse_reply(b) {
            Ok(r) => r.summary(),
            Err(e) => format!("unparsable reply of {} bytes ({e})", b.len()),
        },
    }
}

/// The differences between two outcomes of one query; empty when they agree.
pub fn outcomes(q: &Query, a: &Outcome, b: &Outcome) -> Vec<String> {
    outcomes_in(q, a, b, None)
}

/// As [`outcomes`]; with `serials`, the serial of every SOA record that lies in that window is
/// read as `{SERIAL}` (kubernetes cases: see [`soa_serials`]).
pub fn outcomes_in(
    q: &Query,
    a: &Outcome,
    b: &Outcome,
    serials: Option<&RangeInclusive<u32>>,
) -> Vec<String> {
    match (a, b) {
        (Outcome::NoReply(_), Outcome::NoReply(_)) => Vec::new(),
        (Outcome::Reply(_), Outcome::NoReply(_)) | (Outcome::NoReply(_), Outcome::Reply(_)) => {
            vec![format!(
                "reply: {REF} {}, {SUT} {}",
                describe(a),
                describe(b)
            )]
        }
        (Outcome::Reply(x), Outcome::Reply(y)) => replies(q, x, y, serials),
    }
}

fn replies(q: &Query, x: &[u8], y: &[u8], serials: Option<&RangeInclusive<u32>>) -> Vec<String> {
    let mut d = Vec::new();
    if q.bytes && x != y {
        d.push("bytes differ:".to_string());
        d.push(format!("  {REF}:  {}", wire::hex(x)));
        d.push(format!("  {SUT}: {}", wire::hex(y)));
    }
    let (ra, rb) = match (wire::parse_reply(x), wire::parse_reply(y)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(ea), Err(eb)) => {
            if x != y && !q.bytes {
                d.push(format!(
                    "neither reply parses ({REF}: {ea}; {SUT}: {eb}) and the bytes differ:"
                ));
                d.push(format!("  {REF}:  {}", wire::hex(x)));
                d.push(format!("  {SUT}: {}", wire::hex(y)));
            }
            return d;
        }
        (Ok(_), Err(e)) => {
            d.push(format!("{SUT}'s reply does not parse: {e}"));
            d.push(format!("  {SUT}: {}", wire::hex(y)));
            return d;
        }
        (Err(e), Ok(_)) => {
            d.push(format!(
                "{REF}'s reply does not parse (but {SUT}'s does): {e}"
            ));
            d.push(format!("  {REF}:  {}", wire::hex(x)));
            return d;
        }
    };
    let (mut ra, mut rb) = (ra, rb);
    if let Some(w) = serials {
        soa_serials(&mut ra, w);
        soa_serials(&mut rb, w);
    }
    parsed(q, &ra, &rb, &mut d);
    d
}

/// Write `{SERIAL}` for the serial of each SOA record that lies in `window`. The kubernetes
/// plugin's serial is the Unix time of the last change its process saw, so two processes
/// watching the same API server may differ by a second or two; what is checked is that each is
/// such a time (between the API server's start and now), not which second it is. See
/// DIFFERENCES.md.
pub fn soa_serials(r: &mut Reply, window: &RangeInclusive<u32>) {
    const SOA: u16 = 6;
    for rr in r.sections.iter_mut().flatten() {
        if rr.rtype != SOA {
            continue;
        }
        let mut fields: Vec<String> = rr.rdata.split_whitespace().map(String::from).collect();
        if let Some(serial) = fields.get_mut(2)
            && serial.parse::<u32>().is_ok_and(|n| window.contains(&n))
        {
            *serial = "{SERIAL}".to_string();
            rr.rdata = fields.join(" ");
        }
    }
}

fn field(d: &mut Vec<String>, name: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) {
    let (a, b) = (a.to_string(), b.to_string());
    if a != b {
        d.push(format!("{name}: {REF} {a}, {SUT} {b}"));
    }
}

/// Compare two parsed replies.
pub fn parsed(q: &Query, a: &Reply, b: &Reply, d: &mut Vec<String>) {
    let ignored = |p: Part| q.ignore.contains(&p);
    field(d, "id", a.id, b.id);
    field(
        d,
        "opcode",
        wire::opcode_name(a.opcode()),
        wire::opcode_name(b.opcode()),
    );
    field(
        d,
        "rcode",
        wire::rcode_name(a.rcode()),
        wire::rcode_name(b.rcode()),
    );
    if !ignored(Part::Flags) {
        field(
            d,
            "flags",
            format!("[{}]", a.flag_names()),
            format!("[{}]", b.flag_names()),
        );
    }
    if !ignored(Part::Question) && a.questions != b.questions {
        d.push(format!(
            "question: {REF} {:?}, {SUT} {:?}",
            a.questions, b.questions
        ));
    }
    for (i, (part, name)) in [
        (Part::Answer, "answer"),
        (Part::Authority, "authority"),
        (Part::Additional, "additional"),
    ]
    .into_iter()
    .enumerate()
    {
        if !ignored(part) {
            section(name, &a.sections[i], &b.sections[i], q, d);
        }
    }
    if !ignored(Part::Opt) {
        opt(a, b, d);
    }
    field(d, "trailing bytes", a.trailing, b.trailing);
}

fn section(name: &str, a: &[Rr], b: &[Rr], q: &Query, d: &mut Vec<String>) {
    let exact_ttl = q.ttl.is_none();
    let ta: Vec<String> = a.iter().map(|r| r.text(exact_ttl)).collect();
    let tb: Vec<String> = b.iter().map(|r| r.text(exact_ttl)).collect();
    let (missing, extra) = multiset_diff(&ta, &tb);
    for m in &missing {
        d.push(format!("{name}: missing in {SUT}: {m}"));
    }
    for e in &extra {
        d.push(format!("{name}: extra in {SUT}:   {e}"));
    }
    if missing.is_empty() && extra.is_empty() && q.ordered && ta != tb {
        d.push(format!("{name}: order differs:"));
        d.push(format!("  {REF}:  {}", ta.join(" | ")));
        d.push(format!("  {SUT}: {}", tb.join(" | ")));
    }
    if let Some([lo, hi]) = q.ttl {
        for (who, rrs) in [(REF, a), (SUT, b)] {
            for r in rrs.iter().filter(|r| r.ttl < lo || r.ttl > hi) {
                d.push(format!(
                    "{name}: TTL outside [{lo}, {hi}] in {who}: {}",
                    r.text(true)
                ));
            }
        }
    }
}

/// Items of `a` not in `b` and of `b` not in `a`, counting repeats.
pub fn multiset_diff(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for x in a {
        *count.entry(x).or_default() += 1;
    }
    for x in b {
        *count.entry(x).or_default() -= 1;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (k, n) in count {
        for _ in 0..n.max(0) {
            missing.push(k.to_string());
        }
        for _ in 0..(-n).max(0) {
            extra.push(k.to_string());
        }
    }
    (missing, extra)
}

fn opt(a: &Reply, b: &Reply, d: &mut Vec<String>) {
    match (a.opts.as_slice(), b.opts.as_slice()) {
        ([], []) => {}
        ([oa], [ob]) => {
            if oa != ob {
                d.push(format!("opt: {REF} {}", oa.text()));
                d.push(format!("     {SUT} {}", ob.text()));
            }
        }
        (x, y) => {
            let show = |o: &[wire::Opt]| {
                if o.is_empty() {
                    "absent".to_string()
                } else {
                    o.iter().map(|o| o.text()).collect::<Vec<_>>().join(" + ")
                }
            };
            d.push(format!("opt: {REF} {}, {SUT} {}", show(x), show(y)));
        }
    }
}

/// Check what the case asserts about one side (expected reply or not, rcode).
pub fn expectations(q: &Query, who: &str, o: &Outcome) -> Vec<String> {
    let mut d = Vec::new();
    if let Some(exp) = q.expect {
        let want = exp == crate::case::Expect::Reply;
        if o.is_reply() != want {
            d.push(format!(
                "{who}: the case expects {}, got {}",
                if want { "a reply" } else { "no reply" },
                describe(o)
            ));
        }
    }
    if let Some(rc) = &q.rcode {
        let want = wire::parse_rcode(rc).unwrap_or(u16::MAX);
        let got = match o {
            Outcome::Reply(b) => wire::parse_reply(b).ok().map(|r| r.rcode()),
            Outcome::NoReply(_) => None,
        };
        if got != Some(want) {
            d.push(format!(
                "{who}: the case expects rcode {}, got {}",
                wire::rcode_name(want),
                describe(o)
            ));
        }
    }
    d
}

/// A line diff (longest common subsequence): `- ` lines only the reference printed, `+ ` lines
/// only the candidate printed, `  ` shared context next to a change.
pub fn lines(a: &[String], b: &[String]) -> Vec<String> {
    if a == b {
        return Vec::new();
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    // Keep one line of context around changes.
    let changed: Vec<bool> = out.iter().map(|l| !l.starts_with("  ")).collect();
    out.iter()
        .enumerate()
        .filter(|(k, _)| {
            changed[*k]
                || (*k > 0 && changed[*k - 1])
                || (*k + 1 < changed.len() && changed[*k + 1])
        })
        .map(|(_, l)| l.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Query {
        toml::from_str("name = \"example.org.\"").unwrap()
    }

    fn reply(rcode: u16, aa: bool, answers: &[&str], opt_size: Option<u16>) -> Vec<u8> {
        let mut m = vec![0, 100, 0x81, rcode as u8, 0, 1, 0, 0, 0, 0, 0, 0];
        if aa {
            m[2] |= 0x04;
        }
        wire::encode_name("example.org.", &mut m).unwrap();
        m.extend_from_slice(&[0, 1, 0, 1]);
        for a in answers {
            wire::encode_name("example.org.", &mut m).unwrap();
            m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend(a.split('.').map(|x| x.parse::<u8>().unwrap()));
        }
        m[7] = answers.len() as u8;
        if let Some(s) = opt_size {
            m.push(0);
            m.extend_from_slice(&[0, 41]);
            m.extend_from_slice(&s.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            m[11] = 1;
        }
        m
    }

    #[test]
    fn kubernetes_soa_serials_compare_as_times_in_the_window() {
        let soa = |serial: u32| wire::Reply {
            id: 1,
            flags: 0x8500,
            questions: Vec::new(),
            sections: [
                Vec::new(),
                vec![wire::Rr {
                    name: "cluster.local.".into(),
                    ttl: 5,
                    class: 1,
                    rtype: 6,
                    rdata: format!(
                        "ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"
                    ),
                }],
                Vec::new(),
            ],
            opts: Vec::new(),
            trailing: 0,
            len: 0,
        };
        let window = 1_796_545_000..=1_796_545_100;
        let (mut a, mut b) = (soa(1_796_545_010), soa(1_796_545_011));
        soa_serials(&mut a, &window);
        soa_serials(&mut b, &window);
        assert_eq!(a, b);
        assert!(a.sections[1][0].rdata.contains(" {SERIAL} 7200 "));
        // 0 (not synced, multicluster) and times outside the run stay numbers.
        let (mut a, mut b) = (soa(0), soa(1_796_546_000));
        soa_serials(&mut a, &window);
        soa_serials(&mut b, &window);
        assert!(a.sections[1][0].rdata.contains(" 0 7200 "));
        assert!(b.sections[1][0].rdata.contains(" 1796546000 "));
    }

    #[test]
    fn identical_replies_have_no_diff() {
        let r = Outcome::Reply(reply(0, true, &["192.0.2.1"], Some(1232)));
        assert!(outcomes(&query(), &r, &r.clone()).is_empty());
    }

    #[test]
    fn a_wrong_reply_reads_field_by_field() {
        let a = Outcome::Reply(reply(0, true, &["192.0.2.1", "192.0.2.2"], Some(1232)));
        let b = Outcome::Reply(reply(2, false, &["192.0.2.2"], None));
        let d = outcomes(&query(), &a, &b).join("\n");
        assert!(
            d.contains("rcode: coredns NOERROR, ferrodns SERVFAIL"),
            "{d}"
        );
        assert!(
            d.contains("flags: coredns [qr aa rd], ferrodns [qr rd]"),
            "{d}"
        );
        assert!(
            d.contains("answer: missing in ferrodns: example.org. 60 IN A 192.0.2.1"),
            "{d}"
        );
        assert!(
            d.contains("opt: coredns size=1232 version=0 do=false ext-rcode=0, ferrodns absent"),
            "{d}"
        );
    }

    #[test]
    fn sections_are_multisets_unless_ordered() {
        let a = Outcome::Reply(reply(0, true, &["192.0.2.1", "192.0.2.2"], None));
        let b = Outcome::Reply(reply(0, true, &["192.0.2.2", "192.0.2.1"], None));
        assert!(outcomes(&query(), &a, &b).is_empty());
        let mut q = query();
        q.ordered = true;
        assert!(outcomes(&q, &a, &b)[0].contains("order differs"));
    }

    #[test]
    fn ttl_bounds() {
        let mut q = query();
        q.ttl = Some([0, 30]);
        let a = Outcome::Reply(reply(0, true, &["192.0.2.1"], None));
        let d = outcomes(&q, &a, &a.clone()).join("\n");
        assert!(d.contains("TTL outside [0, 30] in coredns"), "{d}");
    }

    #[test]
    fn reply_versus_silence() {
        let a = Outcome::Reply(reply(1, false, &[], None));
        let b = Outcome::NoReply("timeout".into());
        let d = outcomes(&query(), &a, &b);
        assert_eq!(
            d,
            vec![
                "reply: coredns QUERY FORMERR [qr rd] qd=1 an=0 ns=0 ar=0, ferrodns no reply (timeout)"
            ]
        );
    }

    #[test]
    fn line_diff_marks_each_side() {
        let a: Vec<String> = ["x", "same", "old"].iter().map(|s| s.to_string()).collect();
        let b: Vec<String> = ["x", "same", "new"].iter().map(|s| s.to_string()).collect();
        assert_eq!(lines(&a, &b), vec!["  same", "- old", "+ new"]);
        assert!(lines(&a, &a).is_empty());
    }
}
