//! The hosts handler on real temp files: answers, PTR, wildcards, fallthrough, reload (through
//! an explicit `read`, the call the reload ticker makes) and the metrics.

use std::sync::Arc;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Plugin, Reply, Shared};
use ferrodns_plugin_hosts::{Hosts, HostsMetrics, ReadOutcome, parse};
use ferrodns_plugin_test::{self as testkit, Fixed, TempDir};

const HOSTS: &str = "
127.0.0.1 localhost localhost.domain
::1 localhost localhost.domain
10.0.0.1 example.org
::FFFF:10.0.0.2 example.com
10.0.0.3 Example.COM
10.0.0.4 a.example.net b.example.net # comment
192.168.1.10 *.wild.org
192.168.1.11 a.wild.org
fe80::1%eth0 v6.example.org
reject this line
";

/// A temporary directory holding a hosts file `hosts` with `content`.
fn hosts_dir(tag: &str, content: &str) -> TempDir {
    let t = TempDir::new(tag);
    t.write("hosts", content);
    t
}

fn hosts(directive: &str) -> Hosts {
    let cfg =
        testkit::parse_in(&mut testkit::block(&["."]), "hosts", directive, parse).expect("config");
    Hosts::new(cfg, HostsMetrics::unregistered())
}

/// (rcode, AA, answer data as text, answer owners) or None when the next plugin answered.
async fn ask(
    h: &Arc<Hosts>,
    name: &str,
    t: RecordType,
) -> Option<(ResponseCode, bool, Vec<String>, Vec<String>)> {
    let chain: Vec<Arc<dyn Plugin>> = vec![h.clone(), Fixed::rcode(ResponseCode::Refused)];
    let mut req = testkit::request(name, t);
    match testkit::run(&chain, &mut req).await.expect("no error") {
        Reply::Message(m) if m.metadata.response_code == ResponseCode::Refused => None,
        Reply::Message(m) => {
            for r in &m.answers {
                assert_eq!(r.ttl, 3600);
            }
            Some((
                m.metadata.response_code,
                m.metadata.authoritative,
                m.answers.iter().map(|r| r.data.to_string()).collect(),
                m.answers.iter().map(|r| r.name.to_string()).collect(),
            ))
        }
        Reply::Rcode(r) => Some((r, false, vec![], vec![])),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn answers_from_file() {
    let t = hosts_dir("answers", HOSTS);
    let h = Arc::new(hosts(&format!("hosts {}", t.file("hosts"))));
    assert!(matches!(h.read(), ReadOutcome::Loaded(_)));
    assert_eq!(h.read(), ReadOutcome::Unchanged);

    let ok = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let r = ask(&h, "example.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(
        (r.0, r.1, r.2),
        (ResponseCode::NoError, true, ok(&["10.0.0.1"]))
    );
    let r = ask(&h, "EXAMPLE.com.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.2, ok(&["10.0.0.2", "10.0.0.3"]));
    assert_eq!(
        r.3,
        ok(&["example.com.", "example.com."]),
        "owner is the lowercased qname"
    );
    let r = ask(&h, "localhost.", RecordType::AAAA)
        .await
        .expect("answer");
    assert_eq!(r.2, ok(&["::1"]));
    let r = ask(&h, "v6.example.org.", RecordType::AAAA)
        .await
        .expect("answer");
    assert_eq!(r.2, ok(&["fe80::1"]));
    // The name exists with the other family only: NODATA.
    let r = ask(&h, "example.org.", RecordType::AAAA)
        .await
        .expect("answer");
    assert_eq!((r.0, r.1, r.2.len()), (ResponseCode::NoError, true, 0));
    // Other types of a known name: NODATA.
    let r = ask(&h, "example.org.", RecordType::MX)
        .await
        .expect("answer");
    assert_eq!((r.0, r.2.len()), (ResponseCode::NoError, 0));
    // Unknown name: SERVFAIL without fallthrough.
    let r = ask(&h, "nothing.example.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.0, ResponseCode::ServFail);
    // Wildcards match exactly one label; explicit names win.
    let r = ask(&h, "x.wild.org.", RecordType::A).await.expect("answer");
    assert_eq!(r.2, ok(&["192.168.1.10"]));
    let r = ask(&h, "a.wild.org.", RecordType::A).await.expect("answer");
    assert_eq!(r.2, ok(&["192.168.1.11"]));
    let r = ask(&h, "deep.x.wild.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.0, ResponseCode::ServFail);
    let r = ask(&h, "wild.org.", RecordType::A).await.expect("answer");
    assert_eq!(r.0, ResponseCode::ServFail);
    // PTR from the generated reverse data, in file order.
    let r = ask(&h, "1.0.0.127.in-addr.arpa.", RecordType::PTR)
        .await
        .expect("answer");
    assert_eq!(r.2, ok(&["localhost.", "localhost.domain."]));
    let r = ask(&h, "4.0.0.10.in-addr.arpa.", RecordType::PTR)
        .await
        .expect("answer");
    assert_eq!(r.2, ok(&["a.example.net.", "b.example.net."]));
    let r = ask(
        &h,
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
        RecordType::PTR,
    )
    .await
    .expect("answer");
    assert_eq!(r.2, ok(&["localhost.", "localhost.domain."]));
    // No PTR data: the next plugin answers, fallthrough or not; wildcards make no PTR.
    assert!(
        ask(&h, "10.1.168.192.in-addr.arpa.", RecordType::PTR)
            .await
            .is_none()
    );
    assert!(
        ask(&h, "9.9.9.9.in-addr.arpa.", RecordType::PTR)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn zones_and_fallthrough() {
    let t = hosts_dir("zones", HOSTS);
    let h = Arc::new(hosts(&format!(
        "hosts {} example.org {{\n 10.9.9.9 inline.example.org other.net\n fallthrough example.org\n }}",
        t.file("hosts")
    )));
    h.read();
    // Out of the zones: next plugin.
    assert!(ask(&h, "example.com.", RecordType::A).await.is_none());
    // In the zones, known, file and inline.
    let r = ask(&h, "inline.example.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.2, ["10.9.9.9"]);
    // Unknown name in the fallthrough zone.
    assert!(ask(&h, "nope.example.org.", RecordType::A).await.is_none());
    // Names outside the zones are not even kept for PTR.
    let r = ask(&h, "9.9.9.10.in-addr.arpa.", RecordType::PTR)
        .await
        .expect("answer");
    assert_eq!(r.2, ["inline.example.org."]);
}

#[tokio::test]
async fn fallthrough_unsupported() {
    let t = hosts_dir("unsupported", HOSTS);
    let h = Arc::new(hosts(&format!(
        "hosts {} {{\n fallthrough\n fallthrough_unsupported\n }}",
        t.file("hosts")
    )));
    h.read();
    assert!(ask(&h, "example.org.", RecordType::TXT).await.is_none());
    assert!(
        ask(&h, "missing.example.org.", RecordType::TXT)
            .await
            .is_none()
    );
    let r = ask(&h, "example.org.", RecordType::AAAA)
        .await
        .expect("answer");
    assert_eq!((r.0, r.2.len()), (ResponseCode::NoError, 0));

    let h = Arc::new(hosts(&format!(
        "hosts {} {{\n fallthrough example.net\n fallthrough_unsupported\n }}",
        t.file("hosts")
    )));
    h.read();
    let r = ask(&h, "example.org.", RecordType::TXT)
        .await
        .expect("answer");
    assert_eq!((r.0, r.1, r.2.len()), (ResponseCode::NoError, true, 0));
}

#[tokio::test]
async fn no_reverse() {
    let t = hosts_dir("noreverse", HOSTS);
    let h = Arc::new(hosts(&format!(
        "hosts {} {{\n no_reverse\n }}",
        t.file("hosts")
    )));
    h.read();
    assert!(
        ask(&h, "1.0.0.10.in-addr.arpa.", RecordType::PTR)
            .await
            .is_none()
    );
    let r = ask(&h, "example.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.2, ["10.0.0.1"]);
}

#[tokio::test]
async fn reload_keeps_old_data_when_file_disappears() {
    let t = hosts_dir("reload", "10.0.0.1 example.org\n");
    let h = Arc::new(hosts(&format!(
        "hosts {} {{\n 10.1.1.1 inline.org\n }}",
        t.file("hosts")
    )));
    assert_eq!(h.read(), ReadOutcome::Loaded(2));
    std::fs::write(
        t.file("hosts"),
        "10.0.0.2 example.org\n10.0.0.3 example.org\n",
    )
    .expect("write");
    assert_eq!(h.read(), ReadOutcome::Loaded(4));
    let r = ask(&h, "example.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.2, ["10.0.0.2", "10.0.0.3"]);
    std::fs::remove_file(t.file("hosts")).expect("rm");
    assert_eq!(h.read(), ReadOutcome::Unreadable);
    let r = ask(&h, "example.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.2, ["10.0.0.2", "10.0.0.3"]);
    let r = ask(&h, "inline.org.", RecordType::A).await.expect("answer");
    assert_eq!(r.2, ["10.1.1.1"]);
}

#[tokio::test]
async fn metrics_after_read() {
    let t = hosts_dir("metrics", "10.0.0.1 example.org\n");
    let shared = Shared::default();
    let dir = t.file("hosts");
    let block = testkit::setup_with(
        &ferrodns_plugin_hosts::DESCRIPTOR,
        &format!("hosts {dir}"),
        &shared,
    )
    .expect("setup");
    assert_eq!(block.plugins.len(), 1);
    for l in shared.lifecycles() {
        l.on_startup().await.expect("startup");
    }
    let text = shared.metrics.encode();
    assert!(
        text.contains(&format!("coredns_hosts_entries{{hostsfile=\"{dir}\"}} 2")),
        "{text}"
    );
    assert!(
        text.contains("coredns_hosts_reload_timestamp_seconds "),
        "{text}"
    );
    for l in shared.lifecycles() {
        l.on_shutdown().await;
    }
}

#[tokio::test]
async fn directory_reads_as_empty() {
    let t = hosts_dir("dir", "10.0.0.1 example.org\n");
    let h = Arc::new(hosts(&format!(
        "hosts {} {{\n 10.1.1.1 inline.org\n }}",
        t.path().display()
    )));
    assert_eq!(h.read(), ReadOutcome::Loaded(0));
    let r = ask(&h, "inline.org.", RecordType::A).await.expect("answer");
    assert_eq!(r.2, ["10.1.1.1"]);
    let r = ask(&h, "example.org.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(r.0, ResponseCode::ServFail);
}
