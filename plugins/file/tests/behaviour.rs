//! The file lookup on a real zone file (ported from CoreDNS's lookup, wildcard, delegation, dname
//! and ent tests) and reloads through `Zone::reload_now`, the call the reload ticker makes.

use std::sync::Arc;

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::{Name, Record, RecordType};
use ferrodns_plugin::{Plugin, Reply};
use ferrodns_plugin_file::{Config, File, Outcome, Upstream, lookup, parse};
use ferrodns_plugin_test::{self as testkit, Fixed};

const ZONE: &str = r#"$TTL 3600
$ORIGIN example.org.
@       IN SOA  ns1 hostmaster 10 7200 3600 1209600 3600
        IN NS   ns1
        IN MX   1 mail
ns1     IN A    192.0.2.53
www     IN A    192.0.2.10
mail    IN A    192.0.2.25
        IN AAAA 2001:db8::25
alias   IN CNAME www
ext     IN CNAME www.other.net.
*.wild  IN A    192.0.2.100
a.wild  IN A    192.0.2.101
x.y.ent IN A    192.0.2.102
sub     IN NS   ns.sub
ns.sub  IN A    192.0.2.200
d       IN DNAME other.net.
"#;

fn config(text: &str) -> Config {
    testkit::parse_in(&mut testkit::block(&["example.org."]), "file", text, parse).expect("config")
}

/// Answers www.other.net with one address, everything else NXDOMAIN.
struct FakeUpstream;
impl Upstream for FakeUpstream {
    async fn resolve(&self, name: Name, _qtype: RecordType) -> Option<(ResponseCode, Vec<Record>)> {
        if name.to_string() == "www.other.net." {
            let r = Record::from_rdata(
                name,
                60,
                ferrodns_plugin::proto::rr::RData::A(ferrodns_plugin::proto::rr::rdata::A(
                    [198, 51, 100, 1].into(),
                )),
            );
            return Some((ResponseCode::NoError, vec![r]));
        }
        Some((ResponseCode::NXDomain, vec![]))
    }
}

fn texts(rrs: &[Record]) -> Vec<String> {
    rrs.iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

async fn ask(
    cfg: &Config,
    name: &str,
    t: RecordType,
) -> (Vec<String>, Vec<String>, Vec<String>, Outcome) {
    let data = cfg.zones[0].data();
    let q = Name::from_ascii(name).expect("name");
    let (a, n, e, o) = lookup(&data, &FakeUpstream, &q, t, false).await;
    (texts(&a), texts(&n), texts(&e), o)
}

#[tokio::test]
async fn lookups() {
    let t = testkit::TempDir::new("lookups");
    let f = t.write("db", ZONE);
    let cfg = config(&format!("file {f}"));

    let (a, n, e, o) = ask(&cfg, "www.example.org.", RecordType::A).await;
    assert_eq!(a, ["www.example.org. A 192.0.2.10"]);
    assert_eq!(n, ["example.org. NS ns1.example.org."]);
    assert!(e.is_empty());
    assert_eq!(o, Outcome::Success);

    let (a, n, e, _) = ask(&cfg, "example.org.", RecordType::NS).await;
    assert_eq!(a, ["example.org. NS ns1.example.org."]);
    assert!(n.is_empty());
    assert_eq!(e, ["ns1.example.org. A 192.0.2.53"]);

    let (a, _, e, _) = ask(&cfg, "example.org.", RecordType::MX).await;
    assert_eq!(a, ["example.org. MX 1 mail.example.org."]);
    assert_eq!(
        e,
        [
            "mail.example.org. A 192.0.2.25",
            "mail.example.org. AAAA 2001:db8::25"
        ]
    );

    let (a, n, _, o) = ask(&cfg, "www.example.org.", RecordType::AAAA).await;
    assert!(a.is_empty());
    assert_eq!(n.len(), 1);
    assert!(n[0].contains(" SOA "));
    assert_eq!(o, Outcome::NoData);

    let (_, n, _, o) = ask(&cfg, "nope.example.org.", RecordType::A).await;
    assert!(n[0].contains(" SOA "));
    assert_eq!(o, Outcome::NameError);

    let (a, _, _, o) = ask(&cfg, "ent.example.org.", RecordType::A).await;
    assert!(a.is_empty());
    assert_eq!(o, Outcome::Success);

    let (a, _, _, _) = ask(&cfg, "alias.example.org.", RecordType::A).await;
    assert_eq!(
        a,
        [
            "alias.example.org. CNAME www.example.org.",
            "www.example.org. A 192.0.2.10"
        ]
    );

    let (a, _, _, o) = ask(&cfg, "ext.example.org.", RecordType::A).await;
    assert_eq!(
        a,
        [
            "ext.example.org. CNAME www.other.net.",
            "www.other.net. A 198.51.100.1"
        ]
    );
    assert_eq!(o, Outcome::Success);

    let (a, _, _, _) = ask(&cfg, "b.c.wild.example.org.", RecordType::A).await;
    assert_eq!(a, ["b.c.wild.example.org. A 192.0.2.100"]);
    let (a, _, _, _) = ask(&cfg, "a.wild.example.org.", RecordType::A).await;
    assert_eq!(a, ["a.wild.example.org. A 192.0.2.101"]);

    let (a, n, e, o) = ask(&cfg, "x.sub.example.org.", RecordType::A).await;
    assert!(a.is_empty());
    assert_eq!(n, ["sub.example.org. NS ns.sub.example.org."]);
    assert_eq!(e, ["ns.sub.example.org. A 192.0.2.200"]);
    assert_eq!(o, Outcome::Delegation);

    let (a, _, _, o) = ask(&cfg, "www.d.example.org.", RecordType::A).await;
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(a[0].starts_with("d.example.org. DNAME"));
    assert_eq!(a[1], "www.d.example.org. CNAME www.other.net.");
    assert_eq!(o, Outcome::Success);
}

#[tokio::test]
async fn handler_flags_and_refusals() {
    let t = testkit::TempDir::new("handler");
    let f = t.write("db", ZONE);
    let file: Arc<dyn Plugin> = Arc::new(File::new(config(&format!(
        "file {f} {{\n fallthrough\n }}"
    ))));
    let chain: Vec<Arc<dyn Plugin>> = vec![file, Fixed::rcode(ResponseCode::Refused)];
    let run = |name: &'static str, t: RecordType| {
        let chain = chain.clone();
        async move {
            let mut req = testkit::request(name, t);
            testkit::run(&chain, &mut req).await.expect("ok")
        }
    };
    match run("www.example.org.", RecordType::A).await {
        Reply::Message(m) => {
            assert!(m.metadata.authoritative);
            assert_eq!(m.answers.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    match run("x.sub.example.org.", RecordType::A).await {
        Reply::Message(m) => {
            assert!(!m.metadata.authoritative, "referrals are not authoritative");
            assert_eq!(m.authorities.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run("example.org.", RecordType::AXFR).await,
        Reply::Rcode(ResponseCode::Refused)
    ));
    // NXDOMAIN falls through to the next plugin (which says REFUSED here).
    match run("nope.example.org.", RecordType::A).await {
        Reply::Message(m) => assert_eq!(m.metadata.response_code, ResponseCode::Refused),
        other => panic!("{other:?}"),
    }
    // NODATA does not fall through.
    match run("www.example.org.", RecordType::MX).await {
        Reply::Message(m) => {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(m.authorities.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // Out of the zone: next plugin.
    match run("www.example.net.", RecordType::A).await {
        Reply::Message(m) => assert_eq!(m.metadata.response_code, ResponseCode::Refused),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reload_by_serial_keeps_old_data_on_errors() {
    let t = testkit::TempDir::new("reload");
    let f = t.write("db", ZONE);
    let cfg = config(&format!("file {f} {{\n reload 1s\n }}"));
    let zone = cfg.zones[0].clone();
    assert!(!zone.reload_now(), "same serial: nothing to do");

    // A new record with the same serial is not taken.
    t.write("db", &format!("{ZONE}new IN A 192.0.2.77\n"));
    assert!(!zone.reload_now());
    assert_eq!(
        ask(&cfg, "new.example.org.", RecordType::A).await.3,
        Outcome::NameError
    );

    // A new serial is.
    let v11 = ZONE.replace("hostmaster 10 ", "hostmaster 11 ");
    t.write("db", &format!("{v11}new IN A 192.0.2.77\n"));
    assert!(zone.reload_now());
    assert_eq!(
        ask(&cfg, "new.example.org.", RecordType::A).await.0,
        ["new.example.org. A 192.0.2.77"]
    );

    // A broken file keeps the old data, and so does a missing one.
    t.write("db", "this is not a zone\n");
    assert!(!zone.reload_now());
    assert_eq!(
        ask(&cfg, "new.example.org.", RecordType::A).await.3,
        Outcome::Success
    );
    std::fs::remove_file(&f).expect("rm");
    assert!(!zone.reload_now());
    assert_eq!(
        ask(&cfg, "www.example.org.", RecordType::A).await.3,
        Outcome::Success
    );
}

#[tokio::test]
async fn reload_by_mtime_ignores_serial() {
    let t = testkit::TempDir::new("mtime");
    let f = t.write("db", ZONE);
    let cfg = config(&format!("file {f} {{\n reload_by_mtime\n }}"));
    let zone = cfg.zones[0].clone();
    t.write("db", &format!("{ZONE}new IN A 192.0.2.77\n"));
    assert!(zone.reload_now());
    assert_eq!(
        ask(&cfg, "new.example.org.", RecordType::A).await.0,
        ["new.example.org. A 192.0.2.77"]
    );
}

#[tokio::test]
async fn missing_file_then_created() {
    let t = testkit::TempDir::new("late");
    let f = t.file("db");
    let cfg = config(&format!("file {f}"));
    assert_eq!(
        ask(&cfg, "www.example.org.", RecordType::A).await.3,
        Outcome::ServerFailure
    );
    t.write("db", ZONE);
    assert!(cfg.zones[0].reload_now());
    assert_eq!(
        ask(&cfg, "www.example.org.", RecordType::A).await.3,
        Outcome::Success
    );
}

const SIGNED: &str = r#"$TTL 1800
$ORIGIN example.org.
@   IN SOA ns1 hostmaster 2016 14400 3600 604800 14400
    RRSIG SOA 8 2 1800 20160426031301 20160327031301 12051 example.org. FIrzy07a
    NS  ns1
    RRSIG NS 8 2 1800 20160426031301 20160327031301 12051 example.org. ZLtsQhwa
    NSEC a.example.org. NS SOA RRSIG NSEC
a   IN A 192.0.2.1
    RRSIG A 8 3 1800 20160426031301 20160327031301 12051 example.org. lxLotCjW
    NSEC ns1.example.org. A RRSIG NSEC
ns1 IN A 192.0.2.53
    NSEC example.org. A NSEC
"#;

#[tokio::test]
async fn dnssec_records_with_do() {
    let t = testkit::TempDir::new("signed");
    let f = t.write("db", SIGNED);
    let cfg = config(&format!("file {f}"));
    let data = cfg.zones[0].data();
    let q = Name::from_ascii("a.example.org.").expect("name");
    let (a, n, _, _) = lookup(&data, &FakeUpstream, &q, RecordType::A, true).await;
    let types: Vec<RecordType> = a.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::A, RecordType::RRSIG]);
    let types: Vec<RecordType> = n.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::NS, RecordType::RRSIG]);
    let (a, _, _, _) = lookup(&data, &FakeUpstream, &q, RecordType::A, false).await;
    assert_eq!(a.len(), 1);

    let q = Name::from_ascii("b.example.org.").expect("name");
    let (_, n, _, o) = lookup(&data, &FakeUpstream, &q, RecordType::A, true).await;
    assert_eq!(o, Outcome::NameError);
    let types: Vec<RecordType> = n.iter().map(|r| r.record_type()).collect();
    assert_eq!(
        types,
        [
            RecordType::SOA,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::NSEC
        ]
    );
    assert_eq!(
        n[2].name.to_string(),
        "a.example.org.",
        "the NSEC covering b is a's"
    );
    assert_eq!(
        n[3].name.to_string(),
        "example.org.",
        "the NSEC covering the wildcard"
    );
}

#[tokio::test]
async fn wildcard_answers_set_the_zone_wildcard_label() {
    let t = testkit::TempDir::new("wildmeta");
    let f = t.write("db", ZONE);
    let file: Arc<dyn Plugin> = Arc::new(File::new(config(&format!("file {f}"))));
    let chain: Vec<Arc<dyn Plugin>> = vec![file];
    let mut req = testkit::request("b.wild.example.org.", RecordType::A);
    req.enable_metadata();
    testkit::run(&chain, &mut req).await.expect("ok");
    assert_eq!(
        req.metadata("zone/wildcard").as_deref(),
        Some("*.wild.example.org.")
    );
    // A name that exists is no wildcard answer.
    let mut req = testkit::request("a.wild.example.org.", RecordType::A);
    req.enable_metadata();
    testkit::run(&chain, &mut req).await.expect("ok");
    assert_eq!(req.metadata("zone/wildcard"), None);
    // Without metadata nothing is recorded.
    let mut req = testkit::request("b.wild.example.org.", RecordType::A);
    testkit::run(&chain, &mut req).await.expect("ok");
    assert_eq!(req.metadata("zone/wildcard"), None);
}
