//! In a pod, `kubernetes` without `kubeconfig` or `endpoint` reaches the API server through the
//! pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT` and the token, CA and namespace at
//! /var/run/secrets/kubernetes.io/serviceaccount. This test builds that world around a real
//! API server without touching the host: each DNS server runs in a private mount namespace
//! (`unshare --mount`) with a tmpfs over /run holding the two files, and answers for a
//! Service created through the API, as the reference CoreDNS does in the same world.
//!
//! Needs root (CI runs as root), util-linux's `unshare`, and the API server binaries that
//! `cargo xtask kube-apiserver` caches (`$FERRODNS_KUBE_APISERVER` and `$FERRODNS_KINE`, or the
//! cache's default place); the reference CoreDNS from `$FERRODNS_COREDNS` when set.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{TempDir, free_port, query, udp};
use ferrodns_kube_testenv::{Action, ApiServer, Bins, READY_LIMIT, TOKEN};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

/// The API server binaries: from the environment (as `cargo xtask ci` passes them), else where
/// `cargo xtask kube-apiserver` caches them.
fn bins() -> Bins {
    let cache = std::env::var_os("FERRODNS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ferrodns")))
        .unwrap_or_default()
        .join("kubernetes-v1.34.2/bin");
    let from = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| cache.join(name))
    };
    let b = Bins {
        apiserver: from("FERRODNS_KUBE_APISERVER", "kube-apiserver"),
        kine: from("FERRODNS_KINE", "kine"),
    };
    assert!(
        b.apiserver.is_file() && b.kine.is_file(),
        "the API server binaries are missing ({} and {}): run `cargo xtask kube-apiserver` once",
        b.apiserver.display(),
        b.kine.display()
    );
    b
}

/// The CA that signed the API server's serving certificate: the last certificate of the chain
/// kube-apiserver wrote for itself.
fn serving_ca(api_dir: &Path) -> String {
    let chain = std::fs::read_to_string(api_dir.join("certs/apiserver.crt"))
        .unwrap_or_else(|e| panic!("reading the API server's certificate: {e}"));
    let last = chain
        .rfind("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate in {chain}"));
    chain[last..].to_string()
}

/// A DNS server started in a private mount namespace that has the service account's files,
/// killed on drop.
struct InPod {
    child: Child,
    port: u16,
}

impl InPod {
    fn start(program: &str, banner: &str, sa: &Path, api_port: u16, dir: &TempDir) -> InPod {
        let port = free_port();
        let corefile = dir.write(
            &format!("Corefile-{port}"),
            &format!(
                "cluster.local:{port} {{\n    kubernetes {{\n        pods insecure\n    }}\n}}\n"
            ),
        );
        let secrets = "/var/run/secrets/kubernetes.io/serviceaccount";
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run; mkdir -p {secrets}; cp {sa}/token {sa}/ca.crt {sa}/namespace {secrets}/; exec \"$0\" -conf {conf}",
            sa = sa.display(),
            conf = corefile.display(),
        );
        let mut child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                program,
            ])
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", api_port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {program} under unshare: {e}"));
        let out = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The banner comes once the kubernetes plugin has listed what it watches (or gave up
        // after its startup_timeout, which would show below as a failed answer).
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) if l.starts_with(banner) => break,
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{program} did not start; printed {seen:?}");
                }
            }
        }
        assert!(
            !seen.iter().any(|l| l.contains("unsynced")),
            "{program} started without the API: {seen:?}"
        );
        InPod { child, port }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for InPod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answer(server: &InPod, name: &str) -> (ResponseCode, Vec<String>) {
    let m = udp(server.addr(), &query(name, RecordType::A));
    let mut ips: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    ips.sort();
    (m.metadata.response_code, ips)
}

#[test]
fn in_cluster_config_from_the_service_account() {
    let dir = TempDir::new("kube-incluster");
    let api_dir = dir.0.join("api");
    let api = ApiServer::start(&bins(), &api_dir, READY_LIMIT)
        .unwrap_or_else(|e| panic!("starting the API server: {e:#}"));
    let api_port: u16 = api
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {}", api.url()));
    let client = api.client().unwrap_or_else(|e| panic!("API client: {e:#}"));
    for obj in [
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"app"}}"#,
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"app"},"spec":{"clusterIP":"10.96.7.7","ports":[{"port":80}]}}"#,
    ] {
        let v = serde_json::from_str(obj).unwrap_or_else(|e| panic!("{e}"));
        client
            .apply(Action::Create, &v)
            .unwrap_or_else(|e| panic!("creating {obj}: {e:#}"));
    }
    // The service account's files, as the kubelet mounts them.
    let sa = dir.0.join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(sa.join("token"), TOKEN).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(sa.join("namespace"), "kube-system").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(sa.join("ca.crt"), serving_ca(&api_dir)).unwrap_or_else(|e| panic!("{e}"));

    let ours = InPod::start(common::bin(), "ferrodns-", &sa, api_port, &dir);
    let names = [
        "web.app.svc.cluster.local.",
        "kubernetes.default.svc.cluster.local.",
        "nope.app.svc.cluster.local.",
    ];
    let got: Vec<_> = names.iter().map(|n| answer(&ours, n)).collect();
    assert_eq!(
        got[0],
        (ResponseCode::NoError, vec!["10.96.7.7".to_string()])
    );
    assert_eq!(
        got[1],
        (ResponseCode::NoError, vec!["10.96.0.1".to_string()])
    );
    assert_eq!(got[2], (ResponseCode::NXDomain, vec![]));

    // The reference CoreDNS in the same world answers the same.
    if let Some(coredns) = std::env::var_os("FERRODNS_COREDNS") {
        let coredns = coredns.to_string_lossy().into_owned();
        let theirs = InPod::start(&coredns, "CoreDNS-", &sa, api_port, &dir);
        let want: Vec<_> = names.iter().map(|n| answer(&theirs, n)).collect();
        assert_eq!(got, want);
    }
}
