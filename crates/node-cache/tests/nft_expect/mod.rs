//! What `nft` shows for node-cache's table, for the tests that read it back.

#![allow(dead_code)]

/// What `nft list table inet nodelocaldns` prints for the listen addresses `ips` (counters at
/// zero, the fingerprint comment as `*`).
pub fn expected_listing(ips: &[&str]) -> String {
    let skip = "comment \"NodeLocal DNS Cache: skip conntrack\"";
    let allow = "comment \"NodeLocal DNS Cache: allow DNS traffic\"";
    let c = "counter packets 0 bytes 0";
    let fams: Vec<(&str, &str)> = ips
        .iter()
        .map(|a| (if a.contains(':') { "ip6" } else { "ip" }, *a))
        .collect();
    let mut s = String::from("table inet nodelocaldns {\n\tcomment \"node-cache ");
    // The fingerprint is checked apart; the listing is compared after it.
    s.push_str("*\"\n");
    let chain = |name: &str, hook: &str, rules: &[String]| {
        let mut out = format!(
            "\tchain {name} {{\n\t\ttype filter hook {hook} priority raw; policy accept;\n"
        );
        for r in rules {
            out.push_str(&format!("\t\t{r}\n"));
        }
        out.push_str("\t}\n");
        out
    };
    let pre: Vec<String> = fams
        .iter()
        .flat_map(|(f, a)| {
            ["tcp", "udp"].map(|p| format!("{f} daddr {a} {p} dport 53 {c} notrack {skip}"))
        })
        .collect();
    let input: Vec<String> = fams
        .iter()
        .flat_map(|(f, a)| {
            ["tcp", "udp"].map(|p| format!("{f} daddr {a} {p} dport 53 {c} accept {allow}"))
        })
        .collect();
    let mut output = Vec::new();
    for &(f, a) in &fams {
        for p in ["tcp", "udp"] {
            output.push(format!("{f} saddr {a} {p} sport 53 {c} notrack {skip}"));
        }
        for p in ["tcp", "udp"] {
            output.push(format!("{f} daddr {a} {p} dport 53 {c} notrack {skip}"));
        }
        output.push(format!("{f} daddr {a} tcp dport 8080 {c} notrack {skip}"));
        output.push(format!("{f} saddr {a} tcp sport 8080 {c} notrack {skip}"));
    }
    for &(f, a) in &fams {
        for p in ["tcp", "udp"] {
            output.push(format!("{f} saddr {a} {p} sport 53 {c} accept {allow}"));
        }
    }
    s.push_str(&chain("prerouting", "prerouting", &pre));
    s.push('\n');
    s.push_str(&chain("input", "input", &input));
    s.push('\n');
    s.push_str(&chain("output", "output", &output));
    s.push_str("}\n");
    s
}

/// The listing with the fingerprint replaced by `*`.
pub fn without_fingerprint(listing: &str) -> String {
    listing
        .lines()
        .map(|l| {
            if l.starts_with("\tcomment \"node-cache ") {
                "\tcomment \"node-cache *\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The listing with every counter at zero.
pub fn zero_counters(listing: &str) -> String {
    let mut out = String::new();
    for line in listing.split_inclusive('\n') {
        match line.find("counter packets ") {
            Some(at) => {
                let rest = &line[at..];
                // "counter packets N bytes M" and what follows.
                let words: Vec<&str> = rest.splitn(6, ' ').collect();
                out.push_str(&line[..at]);
                out.push_str("counter packets 0 bytes 0");
                if let Some(tail) = words.get(5) {
                    out.push(' ');
                    out.push_str(tail);
                } else {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}
