//! Corefile rendering byte for byte against the upstream manifest's ConfigMap Corefile
//! (`tests/fixtures/nodelocaldns.Corefile.base`, copied from `nodelocaldns.yaml`), after the
//! install step of each kube-proxy mode, and the writer's validation, logging-free failures
//! and error counting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrodns_node_cache::corefile::{CorefileWriter, RenderParams, UpdateError, render};
use ferrodns_node_cache::kubedns::{self, KubeDnsConfig};

const RAW: &[u8] = include_bytes!("fixtures/nodelocaldns.Corefile.base");
/// The ConfigMap after the iptables-mode install substitution (local 169.254.20.10,
/// cluster.local, `__PILLAR__DNS__SERVER__` = kube-dns ClusterIP 10.96.0.10).
const IPTABLES: &[u8] = include_bytes!("fixtures/iptables.Corefile.base");
/// The ConfigMap after the IPVS-mode install substitution (`,__PILLAR__DNS__SERVER__` deleted,
/// `__PILLAR__CLUSTER__DNS__` = 10.96.0.10).
const IPVS: &[u8] = include_bytes!("fixtures/ipvs.Corefile.base");
/// The iptables-mode template with the `.` block's forward in upstream's TCP-block form.
const TCP_UPSTREAM: &[u8] = include_bytes!("fixtures/tcp-upstream.Corefile.base");

fn params(cluster: &str, local_ip: &str) -> RenderParams {
    RenderParams {
        cluster_dns: cluster.to_string(),
        local_ip: local_ip.to_string(),
        port: "53".to_string(),
        prometheus_listen_address: Some(":9253".to_string()),
    }
}

fn iptables_params() -> RenderParams {
    params("10.96.0.11", "169.254.20.10,10.96.0.10")
}

fn config(stubs: &[(&str, &[&str])], upstreams: &[&str]) -> KubeDnsConfig {
    KubeDnsConfig {
        federations: BTreeMap::new(),
        stub_domains: stubs
            .iter()
            .map(|(d, s)| (d.to_string(), s.iter().map(|x| x.to_string()).collect()))
            .collect(),
        upstream_nameservers: upstreams.iter().map(|x| x.to_string()).collect(),
    }
}

fn two_stubs() -> KubeDnsConfig {
    config(
        &[
            ("consul.local", &["10.150.0.1"]),
            ("acme.example", &["1.2.3.4", "[fd00::53]:5353"]),
        ],
        &[],
    )
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn no_kube_dns_config() {
    let out = render(IPTABLES, &KubeDnsConfig::default(), &iptables_params());
    assert_eq!(
        text(&out.corefile),
        include_str!("fixtures/expected/iptables-empty.Corefile")
    );
    assert_eq!(out.upstream_servers, "/etc/resolv.conf");
    assert!(!out.tcp_block_missing);
    // Spot checks on what the file must say.
    let s = text(&out.corefile);
    assert!(s.contains("    forward . /etc/resolv.conf\n"));
    assert!(s.contains("    forward . 10.96.0.11 {\n            force_tcp\n    }\n"));
    assert!(s.contains("    bind 169.254.20.10 10.96.0.10\n"));
}

#[test]
fn two_stub_domains_in_sorted_order() {
    let out = render(IPTABLES, &two_stubs(), &iptables_params());
    assert_eq!(
        text(&out.corefile),
        include_str!("fixtures/expected/iptables-stubs.Corefile")
    );
    let s = text(&out.corefile);
    assert!(s.ends_with(
        "\n    }\n\nacme.example:53 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 1.2.3.4 [fd00::53]:5353\n}\n\nconsul.local:53 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 10.150.0.1\n}\n"
    ));
}

#[test]
fn upstreams_replace_the_placeholder_when_there_is_no_tcp_block() {
    let cfg = config(&[], &["8.8.8.8", "8.8.4.4:53"]);
    let out = render(IPTABLES, &cfg, &iptables_params());
    assert_eq!(
        text(&out.corefile),
        include_str!("fixtures/expected/iptables-upstreams.Corefile")
    );
    assert!(out.tcp_block_missing);
    assert_eq!(out.upstream_servers, "8.8.8.8 8.8.4.4:53");
}

#[test]
fn upstreams_rewrite_the_tcp_block_to_udp() {
    let cfg = config(&[], &["8.8.8.8", "8.8.4.4:53"]);
    let out = render(TCP_UPSTREAM, &cfg, &iptables_params());
    assert_eq!(
        text(&out.corefile),
        include_str!("fixtures/expected/tcp-upstreams.Corefile")
    );
    assert!(!out.tcp_block_missing);
    // Without custom upstreams the TCP block stays, pointing at resolv.conf.
    let out = render(TCP_UPSTREAM, &KubeDnsConfig::default(), &iptables_params());
    assert!(
        text(&out.corefile)
            .contains("    forward . /etc/resolv.conf {\n            force_tcp\n    }\n")
    );
}

#[test]
fn ipvs_mode_blanks_the_dns_server_placeholder() {
    let mut cfg = two_stubs();
    cfg.upstream_nameservers = vec!["8.8.8.8".to_string()];
    let out = render(IPVS, &cfg, &params("10.96.0.11", "169.254.20.10"));
    assert_eq!(
        text(&out.corefile),
        include_str!("fixtures/expected/ipvs-stubs-upstreams.Corefile")
    );
    // The trailing space of `bind` stays, as upstream.
    assert!(text(&out.corefile).contains("    bind 169.254.20.10 \n"));
}

#[test]
fn missing_cluster_ip_renders_nil() {
    let cluster = ferrodns_node_cache::corefile::cluster_dns_from("kube-dns-upstream", |_| None);
    assert_eq!(cluster, "<nil>");
    let out = render(
        RAW,
        &KubeDnsConfig::default(),
        &params(&cluster, "169.254.20.10,10.96.0.10"),
    );
    assert_eq!(
        text(&out.corefile),
        include_str!("fixtures/expected/raw-nil.Corefile")
    );
    let s = text(&out.corefile);
    assert!(s.contains("    forward . <nil> {\n"));
    // The domain placeholder is the installer's job, not node-cache's.
    assert!(s.starts_with("__PILLAR__DNS__DOMAIN__:53 {\n"));
}

#[test]
fn prometheus_endpoint_placeholder() {
    let t = b"prometheus __PILLAR__PROMETHEUS__ENDPOINT__\n";
    let out = render(t, &KubeDnsConfig::default(), &iptables_params());
    assert_eq!(text(&out.corefile), "prometheus :9253\n");
    let mut p = iptables_params();
    p.prometheus_listen_address = None;
    let out = render(t, &KubeDnsConfig::default(), &p);
    assert_eq!(out.corefile, t.to_vec());
}

#[test]
fn stub_block_uses_the_port() {
    let mut p = iptables_params();
    p.port = "1053".to_string();
    let out = render(b"", &config(&[("a.b", &["1.1.1.1"])], &[]), &p);
    assert_eq!(
        text(&out.corefile),
        "\na.b:1053 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 1.1.1.1\n}\n"
    );
}

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "nc-render-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Counter(AtomicUsize);

impl ferrodns_node_cache::corefile::ErrorSink for Counter {
    fn error(&self, kind: &str) {
        assert_eq!(kind, "configmap");
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn writer(dir: &std::path::Path, sink: Arc<Counter>) -> CorefileWriter {
    CorefileWriter {
        base_corefile: dir.join("Corefile.base"),
        corefile: dir.join("Corefile"),
        params: iptables_params(),
        reload_with_signal: false,
        sink,
    }
}

#[test]
fn writer_writes_in_place_and_counts_errors() {
    let dir = temp_dir("writer");
    let sink = Arc::new(Counter(AtomicUsize::new(0)));
    let w = writer(&dir, sink.clone());

    // No template yet: read error, counted, nothing written.
    match w.update(&KubeDnsConfig::default()) {
        Err(UpdateError::ReadTemplate { message, .. }) => assert_eq!(
            message,
            format!(
                "open {}: no such file or directory",
                dir.join("Corefile.base").display()
            )
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.0.load(Ordering::SeqCst), 1);
    assert!(!dir.join("Corefile").exists());

    std::fs::write(dir.join("Corefile.base"), IPTABLES).unwrap();
    // A longer file first, to see the truncation.
    std::fs::write(dir.join("Corefile"), vec![b'x'; 10_000]).unwrap();
    w.update(&two_stubs()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("Corefile")).unwrap(),
        include_str!("fixtures/expected/iptables-stubs.Corefile")
    );

    // A stub domain whose server is a hostname passes kube-dns's check but not forward's:
    // error counted, file untouched.
    let bad = config(&[("acme.local", &["ns.example.com"])], &[]);
    let err = w.update(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid config: invalid nameservers [ns.example.com] for the stub domain acme.local: not an IP address or file: \"ns.example.com\""
    );
    assert_eq!(sink.0.load(Ordering::SeqCst), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("Corefile")).unwrap(),
        include_str!("fixtures/expected/iptables-stubs.Corefile")
    );

    // Output in a missing directory: write error, counted.
    let mut w2 = writer(&dir, sink.clone());
    w2.corefile = dir.join("missing/Corefile");
    assert!(matches!(
        w2.update(&KubeDnsConfig::default()),
        Err(UpdateError::Write { .. })
    ));
    assert_eq!(sink.0.load(Ordering::SeqCst), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn closures_are_sinks() {
    let dir = temp_dir("closure");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let w = CorefileWriter {
        base_corefile: dir.join("nope"),
        corefile: dir.join("Corefile"),
        params: iptables_params(),
        reload_with_signal: false,
        sink: Arc::new(move |_: &str| {
            c.fetch_add(1, Ordering::SeqCst);
        }),
    };
    assert!(w.update(&KubeDnsConfig::default()).is_err());
    assert_eq!(count.load(Ordering::SeqCst), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parsed_configmap_renders() {
    let data: BTreeMap<String, String> = [(
        "stubDomains".to_string(),
        r#"{"consul.local": ["10.150.0.1"], "acme.example": ["1.2.3.4", "[fd00::53]:5353"]}"#
            .to_string(),
    )]
    .into_iter()
    .collect();
    let cfg = kubedns::parse(&data).unwrap();
    assert_eq!(cfg, two_stubs());
    cfg.validate_forward().unwrap();
}
