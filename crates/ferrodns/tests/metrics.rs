//! The prometheus plugin end to end: two blocks naming one address share one listener, and the
//! queries they serve show up in CoreDNS's families.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use hickory_proto::rr::RecordType;

fn scrape(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    out
}

#[test]
fn blocks_share_the_metrics_listener_and_queries_are_counted() {
    let free = |_| {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let (dns, http) = (free(0), free(1));
    let corefile = format!(
        "example.org:{dns} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{http}\n    whoami\n}}\n\
         .:{dns} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{http}\n    errors\n}}\n"
    );
    let srv = Running::start(&corefile, &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], dns));
    udp(addr, &query("www.example.org.", RecordType::A));
    udp(
        addr,
        &with_edns(query("www.example.org.", RecordType::MX), 1232, true, 0),
    );
    // The root block's chain ends after errors: SERVFAIL written by the server.
    udp(addr, &query("other.test.", RecordType::A));
    let body = scrape(http);
    let server = format!("dns://127.0.0.1:{dns}");
    for want in [
        format!(
            "coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"A\",view=\"\",zone=\"example.org.\"}} 1"
        ),
        format!(
            "coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"MX\",view=\"\",zone=\"example.org.\"}} 1"
        ),
        format!(
            "coredns_dns_do_requests_total{{server=\"{server}\",view=\"\",zone=\"example.org.\"}} 1"
        ),
        format!(
            "coredns_dns_responses_total{{plugin=\"whoami\",rcode=\"NOERROR\",server=\"{server}\",view=\"\",zone=\"example.org.\"}} 2"
        ),
        format!(
            "coredns_dns_responses_total{{plugin=\"\",rcode=\"SERVFAIL\",server=\"{server}\",view=\"\",zone=\".\"}} 1"
        ),
        format!(
            "coredns_plugin_enabled{{name=\"whoami\",server=\"{server}\",view=\"\",zone=\"example.org.\"}} 1"
        ),
        "coredns_panics_total 0".to_string(),
        "coredns_build_info{goversion=".to_string(),
    ] {
        assert!(body.contains(&want), "missing {want}\n{body}");
    }
    drop(srv);
}

/// Cache hits answered on the UDP fast path are counted by prometheus exactly as hits that go
/// through the chain (TCP): same families, same labels, one count per query.
#[test]
fn fast_path_hits_are_counted_like_chain_hits() {
    let free = |_| {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let (dns, http) = (free(0), free(1));
    let corefile = format!(
        ".:{dns} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{http}\n    cache\n    \
         template IN A example.org {{\n        answer \"{{{{ .Name }}}} 60 IN A 192.0.2.1\"\n    }}\n}}\n"
    );
    let srv = Running::start(&corefile, &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], dns));
    for _ in 0..10 {
        let r = udp(addr, &query("www.example.org.", RecordType::A));
        assert_eq!(r.answers.len(), 1);
    }
    for _ in 0..10 {
        let r = tcp(addr, &query("www.example.org.", RecordType::A));
        assert_eq!(r.answers.len(), 1);
    }
    let text = scrape(http);
    let line = |needle: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{text}"))
            .to_string()
    };
    let server = format!("dns://127.0.0.1:{dns}");
    for proto in ["udp", "tcp"] {
        assert_eq!(
            line(&format!(
                "coredns_dns_requests_total{{family=\"1\",proto=\"{proto}\",server=\"{server}\",type=\"A\",view=\"\",zone=\".\"}}"
            ))
            .rsplit(' ')
            .next(),
            Some("10"),
            "{proto}"
        );
        assert!(
            text.contains(&format!(
                "coredns_dns_response_size_bytes_count{{proto=\"{proto}\",server=\"{server}\",view=\"\",zone=\".\"}} 10"
            )),
            "{proto} sizes:\n{text}"
        );
    }
    // 20 replies written by cache (the plugin after prometheus), one of them from a miss.
    assert!(
        text.contains(&format!(
            "coredns_dns_responses_total{{plugin=\"cache\",rcode=\"NOERROR\",server=\"{server}\",view=\"\",zone=\".\"}} 20"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "coredns_dns_request_duration_seconds_count{{server=\"{server}\",view=\"\",zone=\".\"}} 20"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "coredns_cache_hits_total{{server=\"{server}\",type=\"success\",view=\"\",zones=\".\"}} 19"
        )),
        "{text}"
    );
    drop(srv);
}
