//! Ordering rules of loadbalance, ported from CoreDNS's loadbalance_test.go, weighted_test.go and
//! prefer_test.go.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, ResponseCode};
use ferrodns_plugin::proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::{Lifecycle, Plugin, Reply};
use ferrodns_plugin_loadbalance::{
    Config, LoadBalance, Policy, Subnet, Weighted, WeightedLifecycle, parse_weights, prefer,
    round_robin,
};
use ferrodns_plugin_test::{self as testkit, Fixed};

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}
fn a(owner: &str, ip: &str) -> Record {
    let ip: IpAddr = ip.parse().expect("ip");
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name(owner), 300, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name(owner), 300, RData::AAAA(AAAA(v6))),
    }
}
fn cname(owner: &str, target: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
}
fn mx(owner: &str, pref: u16, target: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::MX(MX::new(pref, name(target))))
}
fn txt(owner: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::TXT(TXT::new(vec!["x".into()])))
}

/// (CNAMEs, addresses, MX) counts and whether the order is CNAME < others < address < MX.
fn shape(rrs: &[Record]) -> (usize, usize, usize, bool) {
    let rank = |r: &Record| match r.record_type() {
        RecordType::CNAME => 0,
        RecordType::A | RecordType::AAAA => 2,
        RecordType::MX => 3,
        _ => 1,
    };
    let sorted = rrs.windows(2).all(|w| rank(&w[0]) <= rank(&w[1]));
    let count = |t: &[RecordType]| rrs.iter().filter(|r| t.contains(&r.record_type())).count();
    (
        count(&[RecordType::CNAME]),
        count(&[RecordType::A, RecordType::AAAA]),
        count(&[RecordType::MX]),
        sorted,
    )
}

#[test]
fn round_robin_groups_each_section() {
    let mut answer = vec![
        mx("mx.region2.skydns.test.", 1, "mx1.region2.skydns.test."),
        a("endpoint.region2.skydns.test.", "10.240.0.1"),
        a("endpoint.region2.skydns.test.", "10.240.0.2"),
        mx("mx.region2.skydns.test.", 1, "mx2.region2.skydns.test."),
        cname("cname2.region2.skydns.test.", "cname3.region2.skydns.test."),
        txt("t.region2.skydns.test."),
        a("endpoint.region2.skydns.test.", "10.240.0.3"),
        mx("mx.region2.skydns.test.", 1, "mx3.region2.skydns.test."),
    ];
    let before = answer.clone();
    round_robin(&mut answer);
    assert_eq!(shape(&answer), (1, 3, 3, true));
    assert_eq!(answer[1].record_type(), RecordType::TXT);
    for r in &before {
        assert!(answer.contains(r));
    }
}

#[test]
fn round_robin_shuffles_addresses() {
    let addrs: Vec<Record> = (1..=4)
        .map(|i| a("x.example.", &format!("10.0.0.{i}")))
        .collect();
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..400 {
        let mut s = addrs.clone();
        round_robin(&mut s);
        firsts.insert(s[0].data.to_string());
    }
    assert_eq!(firsts.len(), 4, "every address must come first sometimes");
}

fn reply(qtype: RecordType, answer: Vec<Record>, rcode: ResponseCode) -> Message {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    m.answers = answer;
    let _ = qtype;
    m
}

async fn through(lb: LoadBalance, qtype: RecordType, msg: Message) -> Message {
    let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(lb), Fixed::new(Ok(Reply::message(msg)))];
    let mut req = testkit::request("skydns.test.", qtype);
    match testkit::run(&chain, &mut req).await {
        Ok(Reply::Message(m)) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

fn rr_config() -> Config {
    Config {
        policy: Policy::RoundRobin,
        prefer: Vec::new(),
    }
}

#[tokio::test]
async fn xfr_and_errors_are_untouched() {
    let answer = vec![
        mx("mx.skydns.test.", 1, "mx1.skydns.test."),
        a("a.skydns.test.", "10.0.0.1"),
        cname("c.skydns.test.", "a.skydns.test."),
        a("a.skydns.test.", "10.0.0.2"),
    ];
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let m = through(
            LoadBalance::new(rr_config()),
            t,
            reply(t, answer.clone(), ResponseCode::NoError),
        )
        .await;
        assert_eq!(m.answers, answer, "{t}");
    }
    let m = through(
        LoadBalance::new(rr_config()),
        RecordType::A,
        reply(RecordType::A, answer.clone(), ResponseCode::NXDomain),
    )
    .await;
    assert_eq!(m.answers, answer);
    let m = through(
        LoadBalance::new(rr_config()),
        RecordType::A,
        reply(RecordType::A, answer.clone(), ResponseCode::NoError),
    )
    .await;
    assert_eq!(shape(&m.answers), (1, 2, 1, true));
}

#[test]
fn prefer_orders_by_subnet() {
    let mut records = vec![
        a("example.org.", "10.9.30.1"),
        a("example.org.", "10.9.20.5"),
        a("example.org.", "192.168.1.2"),
        a("example.org.", "10.10.0.1"),
        a("example.org.", "10.9.20.3"),
        a("example.org.", "172.16.0.1"),
        a("example.org.", "2001:db8::1"),
        a("example.org.", "2001:db8:abcd::1"),
        a("example.org.", "fd00::1"),
        cname("example.org.", "alias.example.org."),
    ];
    let subnets: Vec<Subnet> = ["2001:db8::/32", "10.9.20.0/24", "10.9.30.0/24"]
        .iter()
        .map(|s| Subnet::parse(s).expect("cidr"))
        .collect();
    prefer(&mut records, &subnets);
    let got: Vec<String> = records
        .iter()
        .map(|r| match &r.data {
            RData::A(x) => x.0.to_string(),
            RData::AAAA(x) => x.0.to_string(),
            RData::CNAME(c) => c.0.to_string(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(
        got,
        [
            "alias.example.org.",
            "2001:db8::1",
            "2001:db8:abcd::1",
            "10.9.20.5",
            "10.9.20.3",
            "10.9.30.1",
            "192.168.1.2",
            "10.10.0.1",
            "172.16.0.1",
            "fd00::1",
        ]
    );
}

#[test]
fn weight_file_parse() {
    let one = "\nw1,example.org\n192.168.1.15 10\n192.168.1.14 20\n";
    let w = parse_weights(one, "f").expect("ok");
    assert_eq!(w.len(), 1);
    assert_eq!(w["w1,example.org."].len(), 2);
    let two = "# domain 1\nw1.example.org\n192.168.1.15   10\n192.168.1.14   20\n\n# domain 2\nw2.example.org\n # domain 3\n w3.example.org\n 192.168.2.16 11\n 192.168.2.15 12\n 192.168.2.14 13\n";
    let w = parse_weights(two, "f").expect("ok");
    assert_eq!(w.len(), 3);
    assert!(w["w2.example.org."].is_empty());
    assert_eq!(w["w3.example.org."].len(), 3);
    assert!(parse_weights("", "f").expect("ok").is_empty());

    let errs = [
        (
            "w1,example.org\n192.168.1.14\n192.168.1.15 20\n",
            "wrong domain name:\"192.168.1.14\" in weight file f. (Maybe a missing weight value?)",
        ),
        (
            "# missing domain\n192.168.1.14 10\nw2,example.org\n",
            "missing domain name in weight file f",
        ),
        (
            "w1,example.org\n192.168.1.300 10\n",
            "wrong IP address:\"192.168.1.300\" in weight file f",
        ),
        (
            "w1,example.org\n192.168.1.14 300\n",
            "wrong weight value:\"300\" in weight file f",
        ),
        (
            "w1,example.org\n192.168.1.14 0\n",
            "wrong weight value:\"0\" in weight file f",
        ),
        (
            "w1,example.org\n192.168.1.14 +5\n",
            "wrong weight value:\"+5\" in weight file f",
        ),
        (
            "w1,example.org\n192.168.1.14 1 2\n",
            "could not parse weight line:\"192.168.1.14 1 2\" in weight file f",
        ),
    ];
    for (text, want) in errs {
        assert_eq!(
            parse_weights(text, "f").err().as_deref(),
            Some(want),
            "{text}"
        );
    }
}

fn temp_file(content: &str) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    let path = dir.path.join("weights");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(content.as_bytes()).expect("write");
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "ferrodns-lb-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("mkdir");
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
fn weighted_top_record() {
    let (_d, file) = temp_file(
        "endpoint.region2.skydns.test\n10.240.0.2 5\n10.240.0.1 2\nendpoint.region1.skydns.test\n::2 4\n::1 3\n",
    );
    let w = Weighted::new(file, Duration::ZERO);
    assert_eq!(w.update(), Ok(true));
    assert_eq!(w.update(), Ok(false), "unchanged content is not read again");
    let answer = vec![
        cname("cname1.region2.skydns.test.", "cname2.region2.skydns.test."),
        cname(
            "cname6.region2.skydns.test.",
            "endpoint.region2.skydns.test.",
        ),
        a("endpoint.region2.skydns.test.", "10.240.0.1"),
        a("endpoint.region2.skydns.test.", "10.240.0.2"),
        a("endpoint.region2.skydns.test.", "10.240.0.3"),
        a("endpoint.region1.skydns.test.", "::1"),
        a("endpoint.region1.skydns.test.", "::2"),
        mx("mx.region2.skydns.test.", 1, "mx1.region2.skydns.test."),
        mx("mx.region2.skydns.test.", 2, "mx2.region2.skydns.test."),
    ];
    let cases = [
        (0, "10.240.0.2"),
        (4, "10.240.0.2"),
        (5, "::2"),
        (8, "::2"),
        (9, "::1"),
        (11, "::1"),
        (12, "10.240.0.1"),
        (13, "10.240.0.1"),
        (14, "10.240.0.3"),
    ];
    for (v, top) in cases {
        let mut s = answer.clone();
        w.apply_with(&mut s, |sum| {
            assert_eq!(sum, 15);
            v
        });
        assert_eq!(shape(&s), (2, 5, 2, true));
        let first = s
            .iter()
            .find(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
            .expect("address");
        assert_eq!(first, &a(&first.name.to_string(), top), "draw {v}");
    }
}

#[tokio::test]
async fn weighted_startup_errors() {
    // A missing file only warns when it will be read again.
    let missing = Arc::new(Weighted::new(
        "/nonexistent/ferrodns/weights".into(),
        Duration::from_secs(30),
    ));
    let hooks = WeightedLifecycle::new(missing);
    assert!(hooks.on_startup().await.is_ok());
    hooks.on_shutdown().await;
    // Without reload it is fatal.
    let missing = Arc::new(Weighted::new(
        "/nonexistent/ferrodns/weights".into(),
        Duration::ZERO,
    ));
    let err = WeightedLifecycle::new(missing).on_startup().await.err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("plugin/loadbalance: weight file open error")
    );
    // A broken file is always fatal at startup.
    let (_d, file) = temp_file("w1.example.org\n1.2.3.4 0\n");
    let broken = Arc::new(Weighted::new(file.clone(), Duration::from_secs(30)));
    let err = WeightedLifecycle::new(broken).on_startup().await.err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(format!(
            "plugin/loadbalance: wrong weight value:\"0\" in weight file {file}"
        ))
    );
}

#[tokio::test]
async fn weighted_only_for_address_and_srv_questions() {
    let (_d, file) = temp_file("a.skydns.test\n10.0.0.2 255\n");
    let w = Arc::new(Weighted::new(file, Duration::ZERO));
    w.update().expect("weights");
    let cfg = Config {
        policy: Policy::Weighted(w),
        prefer: Vec::new(),
    };
    let answer = vec![
        a("a.skydns.test.", "10.0.0.1"),
        a("a.skydns.test.", "10.0.0.2"),
        cname("c.skydns.test.", "a.skydns.test."),
    ];
    let m = through(
        LoadBalance::new(cfg.clone()),
        RecordType::TXT,
        reply(RecordType::TXT, answer.clone(), ResponseCode::NoError),
    )
    .await;
    assert_eq!(m.answers, answer, "TXT questions are left alone");
    let mut on_top = 0;
    for _ in 0..50 {
        let m = through(
            LoadBalance::new(cfg.clone()),
            RecordType::A,
            reply(RecordType::A, answer.clone(), ResponseCode::NoError),
        )
        .await;
        assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
        if m.answers[1] == a("a.skydns.test.", "10.0.0.2") {
            on_top += 1;
        }
    }
    assert!(on_top > 40, "weight 255 against 1 is nearly always on top");
}
