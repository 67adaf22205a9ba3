//! Parses a Corefile and prints its server blocks (keys, directive tokens,
//! inspected zones) as JSON, or the error CoreDNS would print.
//!
//! Usage: `cargo run -p ferrodns-corefile --example dump -- FILE [DNS_PORT]`

use ferrodns_corefile::{ParseOptions, Token, inspect_keys, parse};

/// The directive list of CoreDNS v1.14.7 (plugin.cfg order).
const DIRECTIVES: &[&str] = &[
    "root",
    "metadata",
    "geoip",
    "cancel",
    "proxyproto",
    "quic",
    "grpc_server",
    "https",
    "https3",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "shed",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "rewrite",
    "autopath",
    "acl",
    "cache",
    "header",
    "dnssec",
    "tls",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
];

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_tok(t: &Token) -> String {
    format!(
        "{{\"t\":{},\"f\":{},\"l\":{}}}",
        json_str(&t.text),
        json_str(&t.file),
        t.line
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: dump FILE [DNS_PORT]");
        std::process::exit(2);
    };
    if file == "--lex" {
        let path = args.get(2).map_or("", String::as_str);
        let input = std::fs::read(path).unwrap_or_default();
        let toks: Vec<String> = ferrodns_corefile::tokenize("", &input)
            .iter()
            .map(json_tok)
            .collect();
        println!("LEX [{}]", toks.join(","));
        return;
    }
    let port = args.get(2).map_or("53", String::as_str);
    let input = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: {e}");
            std::process::exit(2);
        }
    };
    let is_directive = |name: &str| DIRECTIVES.contains(&name);
    let opts = ParseOptions::process_env(&is_directive);
    let blocks = match parse(file, &input, &opts) {
        Ok(b) => b,
        Err(e) => {
            println!("ERR {e}");
            return;
        }
    };
    let mut parts = Vec::new();
    for b in &blocks {
        let keys: Vec<String> = b.keys.iter().map(|k| json_str(&k.text)).collect();
        let mut dirs: Vec<_> = b.directives.iter().collect();
        dirs.sort_by(|a, b| a.name.cmp(&b.name));
        let dirs: Vec<String> = dirs
            .iter()
            .map(|d| {
                let toks: Vec<String> = d.tokens.iter().map(json_tok).collect();
                format!(
                    "{{\"name\":{},\"tokens\":[{}]}}",
                    json_str(&d.name),
                    toks.join(",")
                )
            })
            .collect();
        let zones = match inspect_keys(b, port) {
            Ok(z) => {
                let z: Vec<String> = z.iter().map(|z| json_str(&z.to_string())).collect();
                if z.is_empty() {
                    String::new()
                } else {
                    format!(",\"zones\":[{}]", z.join(","))
                }
            }
            Err(e) => format!(",\"kerr\":{}", json_str(&e.message())),
        };
        parts.push(format!(
            "{{\"keys\":[{}],\"dirs\":[{}]{}}}",
            keys.join(","),
            dirs.join(","),
            zones
        ));
    }
    println!("OK [{}]", parts.join(","));
}
