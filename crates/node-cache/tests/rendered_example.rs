//! corefile-examples/nodelocaldns-rendered.Corefile is what node-cache writes for the
//! manifest's ConfigMap (deploy/nodelocaldns.yaml after the iptables-mode install substitution)
//! with a kube-dns ConfigMap holding a stub domain and custom upstream nameservers, and kube-dns
//! at 127.0.0.2. The conformance suite runs that file beside CoreDNS
//! (conformance/cases/nodelocaldns/rendered.toml), so this test keeps it equal to the renderer's
//! output, byte for byte.

use std::collections::BTreeMap;

use ferrodns_node_cache::corefile::{RenderParams, render};
use ferrodns_node_cache::kubedns::KubeDnsConfig;
use manifest::repo;

mod manifest;

/// The ConfigMap's `Corefile` key after the iptables-mode install substitution.
fn configmap_corefile() -> String {
    manifest::configmap_corefile()
        .replace("__PILLAR__LOCAL__DNS__", "169.254.20.10")
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace("__PILLAR__DNS__SERVER__", "10.96.0.10")
}

#[test]
fn the_rendered_example_is_what_node_cache_writes() {
    let config = KubeDnsConfig {
        federations: BTreeMap::new(),
        stub_domains: BTreeMap::from([("acme.local".to_string(), vec!["127.0.0.4".to_string()])]),
        upstream_nameservers: vec!["127.0.0.3".to_string()],
    };
    let params = RenderParams {
        cluster_dns: "127.0.0.2".to_string(),
        local_ip: "169.254.20.10,10.96.0.10".to_string(),
        port: "53".to_string(),
        prometheus_listen_address: None,
    };
    let rendered = render(configmap_corefile().as_bytes(), &config, &params);
    let out = String::from_utf8(rendered.corefile).unwrap();
    let path = repo().join("corefile-examples/nodelocaldns-rendered.Corefile");
    if std::env::var_os("FERRODNS_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        shipped,
        out,
        "re-run with FERRODNS_BLESS=1 to rewrite {}",
        path.display()
    );
}
