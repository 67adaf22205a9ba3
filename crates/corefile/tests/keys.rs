//! Server-block key inspection (CoreDNS register_test, normalize_test,
//! cidr_test shapes) with exact error texts.

mod common;

use common::*;
use ferrodns_corefile::{
    ServerBlock, Token, Transport, ZoneAddr, inspect_keys, normalize_exact, split_host_port,
};

fn block_of(keys: &[&str]) -> ServerBlock {
    ServerBlock {
        keys: keys
            .iter()
            .map(|k| Token {
                text: (*k).to_owned(),
                file: "Corefile".into(),
                line: 1,
            })
            .collect(),
        directives: vec![],
    }
}

fn inspect(keys: &[&str], port: &str) -> Result<Vec<String>, String> {
    inspect_keys(&block_of(keys), port)
        .map(|z| z.iter().map(ZoneAddr::to_string).collect())
        .map_err(|e| e.to_string())
}

#[test]
fn inspect_server_blocks_table() {
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static str,
        Result<Vec<&'static str>, &'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "simple dns",
            &["example.org"],
            "53",
            Ok(vec!["dns://example.org.:53"]),
        ),
        (
            "uppercase dns",
            &["EXAMPLE.ORG"],
            "53",
            Ok(vec!["dns://example.org.:53"]),
        ),
        (
            "dns with port",
            &["example.org:1053"],
            "53",
            Ok(vec!["dns://example.org.:1053"]),
        ),
        (
            "tls",
            &["tls://example.org"],
            "53",
            Ok(vec!["tls://example.org.:853"]),
        ),
        (
            "quic",
            &["quic://example.org"],
            "53",
            Ok(vec!["quic://example.org.:853"]),
        ),
        (
            "grpc",
            &["grpc://example.org"],
            "53",
            Ok(vec!["grpc://example.org.:443"]),
        ),
        (
            "https",
            &["https://example.org."],
            "53",
            Ok(vec!["https://example.org.:443"]),
        ),
        (
            "https3",
            &["https3://example.org"],
            "53",
            Ok(vec!["https3://example.org.:443"]),
        ),
        (
            "multiple hosts same key",
            &["example.org,example.com:1053"],
            "53",
            Ok(vec!["dns://example.org,example.com.:1053"]),
        ),
        (
            "multiple keys",
            &["example.org", "example.com:1053"],
            "53",
            Ok(vec!["dns://example.org.:53", "dns://example.com.:1053"]),
        ),
        (
            "fqdn input",
            &["example.org."],
            "53",
            Ok(vec!["dns://example.org.:53"]),
        ),
        ("root zone", &["."], "53", Ok(vec!["dns://.:53"])),
        ("dns.port default", &["."], "1053", Ok(vec!["dns://.:1053"])),
        (
            "explicit port wins over dns.port",
            &["example.org:53"],
            "1053",
            Ok(vec!["dns://example.org.:53"]),
        ),
        (
            "dns.port not used for tls",
            &["tls://."],
            "1053",
            Ok(vec!["tls://.:853"]),
        ),
        (
            "port normalised",
            &["example.org:053"],
            "53",
            Ok(vec!["dns://example.org.:53"]),
        ),
        (
            "signed port",
            &["example.org:+5"],
            "53",
            Ok(vec!["dns://example.org.:5"]),
        ),
        (
            "explicit scheme and port",
            &["dns://.:1053"],
            "53",
            Ok(vec!["dns://.:1053"]),
        ),
        (
            "unix without port",
            &["unix://sock"],
            "53",
            Ok(vec!["unix://sock.:"]),
        ),
        (
            "non-numeric port is part of the name",
            &["a:b"],
            "53",
            Ok(vec!["dns://a:b.:53"]),
        ),
        (
            "upper-case scheme is not a scheme",
            &["DNS://x"],
            "53",
            Ok(vec!["dns://dns://x.:53"]),
        ),
        (
            "plain IP is a name",
            &["10.0.0.1"],
            "53",
            Ok(vec!["dns://10.0.0.1.:53"]),
        ),
        (
            "prefix too long is a name",
            &["10.0.0.0/33"],
            "53",
            Ok(vec!["dns://10.0.0.0/33.:53"]),
        ),
        (
            "non-ASCII lower-cased",
            &["ÉXAMPLE.ORG"],
            "53",
            Ok(vec!["dns://éxample.org.:53"]),
        ),
        ("escaped dot", &["a\\.b"], "53", Ok(vec!["dns://a\\.b.:53"])),
        (
            "reverse /8",
            &["10.0.0.0/8:1053"],
            "53",
            Ok(vec!["dns://10.in-addr.arpa.:1053"]),
        ),
        (
            "reverse /15 split, extra zones after the key's first",
            &["10.0.0.0/15", "example.org"],
            "53",
            Ok(vec![
                "dns://0.10.in-addr.arpa.:53",
                "dns://1.10.in-addr.arpa.:53",
                "dns://example.org.:53",
            ]),
        ),
        (
            "reverse /0",
            &["0.0.0.0/0"],
            "53",
            Ok(vec!["dns://in-addr.arpa.:53"]),
        ),
        (
            "IPv6 /1 rounds to a nibble",
            &["8000::/1"],
            "53",
            Ok(vec![
                "dns://8.ip6.arpa.:53",
                "dns://9.ip6.arpa.:53",
                "dns://a.ip6.arpa.:53",
                "dns://b.ip6.arpa.:53",
                "dns://c.ip6.arpa.:53",
                "dns://d.ip6.arpa.:53",
                "dns://e.ip6.arpa.:53",
                "dns://f.ip6.arpa.:53",
            ]),
        ),
        (
            "trailing colon",
            &[".:"],
            "53",
            Err("error inspecting server blocks: expecting data after last colon: \".:\""),
        ),
        (
            "empty key",
            &[""],
            "53",
            Err("error inspecting server blocks: expecting data after last colon: \"\""),
        ),
        (
            "quoted in the message",
            &["a b\t\u{1}:"],
            "53",
            Err(
                "error inspecting server blocks: expecting data after last colon: \"a b\\t\\x01:\"",
            ),
        ),
        (
            "invalid domain",
            &["mple.org.."],
            "53",
            Err("error inspecting server blocks: zone is not a valid domain name: mple.org.."),
        ),
        (
            "leading dot",
            &[".a"],
            "53",
            Err("error inspecting server blocks: zone is not a valid domain name: .a"),
        ),
        (
            "label of 64 octets",
            &["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org"],
            "53",
            Err(
                "error inspecting server blocks: zone is not a valid domain name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org",
            ),
        ),
        (
            "label of 63 octets",
            &["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org"],
            "53",
            Ok(vec![
                "dns://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org.:53",
            ]),
        ),
        (
            "dangling escape",
            &["a\\"],
            "53",
            Err("error inspecting server blocks: zone is not a valid domain name: a\\"),
        ),
        (
            "invalid CIDR ::/0",
            &["::/0"],
            "53",
            Err("error inspecting server blocks: invalid CIDR ::/0"),
        ),
        (
            "invalid CIDR 0::/8",
            &["0::/8"],
            "53",
            Err("error inspecting server blocks: invalid CIDR 0::/8"),
        ),
        (
            "invalid CIDR mapped",
            &["::fFFF:B:F/115"],
            "53",
            Err("error inspecting server blocks: invalid CIDR ::fFFF:B:F/115"),
        ),
        (
            "error in a later key stops everything",
            &["example.org", "bad..name"],
            "53",
            Err("error inspecting server blocks: zone is not a valid domain name: bad..name"),
        ),
    ];
    for (name, keys, port, want) in cases {
        let want = want
            .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>())
            .map_err(str::to_owned);
        assert_eq!(inspect(keys, port), want, "case {name:?}");
    }
}

#[test]
fn zone_length_limits() {
    let long = "a".repeat(301);
    assert_eq!(
        inspect(&[&long], "53"),
        Err("error inspecting server blocks: specified zone is too long: 301 > 255".to_owned())
    );
    // 255 octets pass the first check but the qualified name is 256 long
    let label = "a".repeat(63);
    let name = format!("{label}.{label}.{label}.{}", "a".repeat(63));
    assert_eq!(name.len(), 255);
    assert_eq!(
        inspect(&[&name], "53"),
        Err("error inspecting server blocks: specified zone is too long: 256 > 255".to_owned())
    );
    let name = format!("{label}.{label}.{label}.{}", "a".repeat(61));
    assert_eq!(name.len(), 253);
    assert_eq!(
        inspect(&[&name], "53"),
        Ok(vec![format!("dns://{name}.:53")])
    );
}

#[test]
fn normalize_exact_table() {
    let nib = |first: &str| {
        format!("{first}.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.")
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (".:53", owned(&["."])),
        ("example.org:53", owned(&["example.org."])),
        ("example.org.:53", owned(&["example.org."])),
        ("10.0.0.0/8:53", owned(&["10.in-addr.arpa."])),
        (
            "10.0.0.0/15",
            owned(&["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]),
        ),
        (
            "10.9.3.0/18",
            (0..64).map(|i| format!("{i}.9.10.in-addr.arpa.")).collect(),
        ),
        (
            "2001:db8::/29",
            ["8", "9", "a", "b", "c", "d", "e", "f"]
                .iter()
                .map(|n| format!("{n}.b.d.0.1.0.0.2.ip6.arpa."))
                .collect(),
        ),
        (
            "2001:db8::/30",
            ["8", "9", "a", "b"]
                .iter()
                .map(|n| format!("{n}.b.d.0.1.0.0.2.ip6.arpa."))
                .collect(),
        ),
        ("2001:db8::/115", vec![nib("0"), nib("1")]),
        (
            "2001:db8::/114",
            vec![nib("0"), nib("1"), nib("2"), nib("3")],
        ),
        (
            "2001:db8::/113",
            (0..8).map(|i| nib(&i.to_string())).collect(),
        ),
        (
            "2001:db8::/112",
            owned(&["0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."]),
        ),
        (
            "2001:db8::/108",
            owned(&["0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."]),
        ),
        ("::fFFF:B:F/115", vec![]),
        ("dns://example.org", owned(&["example.org."])),
        ("Example.ORG.", owned(&["example.org."])),
    ];
    for (input, mut want) in cases {
        want.sort();
        let mut got = normalize_exact(input);
        got.sort();
        assert_eq!(got, want, "input {input:?}");
    }
}

#[test]
fn cidr_split_table() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "10.0.0.0/15",
            vec!["0.10.in-addr.arpa.", "1.10.in-addr.arpa."],
        ),
        ("10.0.0.0/16", vec!["0.10.in-addr.arpa."]),
        (
            "192.168.1.1/23",
            vec!["0.168.192.in-addr.arpa.", "1.168.192.in-addr.arpa."],
        ),
        (
            "10.129.60.0/22",
            vec![
                "60.129.10.in-addr.arpa.",
                "61.129.10.in-addr.arpa.",
                "62.129.10.in-addr.arpa.",
                "63.129.10.in-addr.arpa.",
            ],
        ),
        (
            "2001:db8::/31",
            vec!["8.b.d.0.1.0.0.2.ip6.arpa.", "9.b.d.0.1.0.0.2.ip6.arpa."],
        ),
        ("10.1.2.3/8", vec!["10.in-addr.arpa."]),
        ("10.0.0.0/08", vec!["10.in-addr.arpa."]),
    ];
    for (input, want) in cases {
        let (hosts, port) = split_host_port(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(hosts, owned(&want), "input {input:?}");
        assert_eq!(port, "", "input {input:?}");
    }
    // /27 expands to all 32 /32 zones in order
    let (hosts, _) = split_host_port("10.0.0.0/27").unwrap();
    assert_eq!(hosts.len(), 32);
    assert_eq!(hosts[0], "0.0.0.10.in-addr.arpa.");
    assert_eq!(hosts[31], "31.0.0.10.in-addr.arpa.");
}

#[test]
fn keys_from_a_parsed_corefile() {
    let blocks =
        parse_coredns("example.org:1053 10.0.0.0/15 {\n whoami\n}\ntls://Example.COM {\n}\n")
            .unwrap();
    let zones: Vec<Vec<ZoneAddr>> = blocks
        .iter()
        .map(|b| inspect_keys(b, "53").unwrap())
        .collect();
    assert_eq!(
        zones[0],
        vec![
            ZoneAddr {
                transport: Transport::Dns,
                zone: "example.org.".into(),
                port: "1053".into()
            },
            ZoneAddr {
                transport: Transport::Dns,
                zone: "0.10.in-addr.arpa.".into(),
                port: "53".into()
            },
            ZoneAddr {
                transport: Transport::Dns,
                zone: "1.10.in-addr.arpa.".into(),
                port: "53".into()
            },
        ]
    );
    assert_eq!(zones[1][0].to_string(), "tls://example.com.:853");

    let blocks = parse_coredns(". {\n}\nexa\\ {\n}\n").unwrap();
    let err = inspect_keys(&blocks[1], "53").unwrap_err();
    assert_eq!(
        err.to_string(),
        "error inspecting server blocks: zone is not a valid domain name: exa\\"
    );
    assert_eq!(err.file(), Some("Corefile"));
    assert_eq!(err.line(), Some(3));
}

#[test]
fn transport_helpers() {
    let cases = [
        (Transport::Dns, "dns", "53"),
        (Transport::Tls, "tls", "853"),
        (Transport::Quic, "quic", "853"),
        (Transport::Grpc, "grpc", "443"),
        (Transport::Https, "https", "443"),
        (Transport::Https3, "https3", "443"),
        (Transport::Unix, "unix", ""),
    ];
    for (t, scheme, port) in cases {
        assert_eq!(t.scheme(), scheme);
        assert_eq!(t.default_port(), port);
        let key = format!("{scheme}://x");
        assert_eq!(Transport::split_scheme(&key), (t, "x"));
    }
    assert_eq!(Transport::split_scheme("x.org"), (Transport::Dns, "x.org"));
}
