//! A real Kubernetes API server on loopback for tests: `kube-apiserver` backed by kine (an etcd
//! API on SQLite), started in a directory of its own and killed when dropped, and a small client
//! that creates, patches and deletes objects given as JSON.
//!
//! Shared by `cargo xtask kube-apiserver` (which also builds and caches both binaries, see
//! `xtask/src/kube.rs`) and the conformance harness (which starts one server per kubernetes
//! case). Nothing here reaches beyond 127.0.0.1.

mod http;
mod objects;
pub mod proc;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

pub use http::Client;
pub use objects::{Action, resource_path};
pub use proc::Proc;

/// The bearer token that the API server accepts, as a member of `system:masters`.
pub const TOKEN: &str = "testtoken";
/// The kubeconfig context (and cluster) name.
pub const CONTEXT: &str = "ferrodns-test";
/// The Service ClusterIP ranges: dual-stack, so that a Service can have an IPv6 ClusterIP.
pub const SERVICE_RANGES: &str = "10.96.0.0/16,fd00:10:96::/112";

/// How long the API server may take to become ready (measured: 2.5 s on 2 idle cores; about
/// 10 s when they are busy).
pub const READY_LIMIT: Duration = Duration::from_secs(180);

/// The two binaries a server needs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kine`.
    pub kine: PathBuf,
}

/// A free TCP port on 127.0.0.1 (free when asked; the process that binds it comes soon after).
fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// kube-apiserver and kine running on loopback with their state, certificates and logs in one
/// directory; both killed when dropped.
pub struct ApiServer {
    // Declared first so that it is dropped (killed) first, before its storage.
    apiserver: Proc,
    kine: Proc,
    port: u16,
    kubeconfig: PathBuf,
}

impl ApiServer {
    /// Start kine and kube-apiserver with everything in `dir` (created when missing: the SQLite
    /// state, the service-account keys, the serving certificate, `kubeconfig` and the logs
    /// `kine.log` and `kube-apiserver.log`), and wait (at most `limit`) until `/readyz`
    /// answers 200.
    pub fn start(bins: &Bins, dir: &Path, limit: Duration) -> Result<ApiServer> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;

        // The service-account token signing key: ECDSA P-256 (which kube-apiserver accepts
        // beside RSA), made by rcgen instead of `openssl genrsa`.
        let key = rcgen::KeyPair::generate().context("generating the service-account key")?;
        fs::write(dir.join("sa.key"), key.serialize_pem())?;
        fs::write(dir.join("sa.pub"), key.public_key_pem())?;
        fs::write(
            dir.join("tokens.csv"),
            format!("{TOKEN},admin,admin,system:masters\n"),
        )?;
        client_certificate(&dir.join("certs"))?;

        let kine_port = free_tcp_port()?;
        let mut kine_cmd = Command::new(&bins.kine);
        kine_cmd.args([
            format!("--listen-address=127.0.0.1:{kine_port}"),
            format!("--endpoint=sqlite://{}", dir.join("state.db").display()),
            // Its metrics listener would otherwise take :8080 on every interface.
            "--metrics-bind-address=0".to_string(),
        ]);
        let mut kine = Proc::spawn_tied("kine", kine_cmd, &dir.join("kine.log"))?;
        let kine_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, kine_port));
        kine.wait_until("listen", Duration::from_secs(60), || {
            if TcpStream::connect_timeout(&kine_addr, Duration::from_millis(200)).is_ok() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
            Ok(false)
        })?;

        let port = free_tcp_port()?;
        let mut cmd = Command::new(&bins.apiserver);
        cmd.args([
            format!("--etcd-servers=http://127.0.0.1:{kine_port}"),
            "--storage-media-type=application/json".to_string(),
            "--service-account-issuer=https://kubernetes.default.svc".to_string(),
            format!(
                "--service-account-key-file={}",
                dir.join("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                dir.join("sa.key").display()
            ),
            format!("--cert-dir={}", dir.join("certs").display()),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={port}"),
            "--authorization-mode=AlwaysAllow".to_string(),
            format!("--token-auth-file={}", dir.join("tokens.csv").display()),
            format!(
                "--client-ca-file={}",
                dir.join("certs/client-ca.crt").display()
            ),
            format!("--service-cluster-ip-range={SERVICE_RANGES}"),
            "--enable-priority-and-fairness=false".to_string(),
            // It refuses Pods in a namespace without a `default` ServiceAccount, which only the
            // controller manager (not run here) creates.
            "--disable-admission-plugins=ServiceAccount".to_string(),
        ]);
        let apiserver = Proc::spawn_tied("kube-apiserver", cmd, &dir.join("kube-apiserver.log"))?;

        let kubeconfig = dir.join("kubeconfig");
        fs::write(&kubeconfig, kubeconfig_yaml(port))?;
        let mut server = ApiServer {
            apiserver,
            kine,
            port,
            kubeconfig,
        };
        server.wait_ready(limit)?;
        Ok(server)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig for the server: its URL, its certificate not checked, the bearer token.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client with the bearer token.
    pub fn client(&self) -> Result<Client> {
        Client::new(self.port)
    }

    /// Fail with the end of its log when either process has exited.
    pub fn alive(&mut self) -> Result<()> {
        self.kine.alive()?;
        self.apiserver.alive()
    }

    /// Poll `GET /readyz` with the token until it answers 200 (every check, storage and
    /// post-start hook of the server passed).
    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let client = self.client()?;
        let mut last = String::from("no answer");
        let kine = &mut self.kine;
        let result = self
            .apiserver
            .wait_until("answer 200 to /readyz", limit, || {
                kine.alive()?;
                match client.request("GET", "/readyz?verbose", None) {
                    Ok((200, _)) => return Ok(true),
                    Ok((status, body)) => last = format!("{status}: {body}"),
                    Err(e) => last = format!("{e:#}"),
                }
                std::thread::sleep(Duration::from_millis(100));
                Ok(false)
            });
        result.with_context(|| format!("the last answer to GET /readyz was {last}"))
    }
}

/// A client certificate the API server accepts (user `admin` in `system:masters`), for clients
/// configured with files instead of a kubeconfig (CoreDNS's `tls CERT KEY CACERT`): in `certs`,
/// `client.crt` and `client.key`, and the CA that signed it, `client-ca.crt`, which the server
/// is given. Beside them the server writes its own self-signed `apiserver.crt` (with its CA)
/// and `apiserver.key`.
fn client_certificate(certs: &Path) -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    fs::create_dir_all(certs).with_context(|| format!("creating {}", certs.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ferrodns-test-client-ca");
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name.push(DnType::CommonName, "admin");
    client
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = client.signed_by(&key, &ca_cert, &ca_key)?;
    fs::write(certs.join("client-ca.crt"), ca_cert.pem())?;
    fs::write(certs.join("client.crt"), cert.pem())?;
    fs::write(certs.join("client.key"), key.serialize_pem())?;
    Ok(())
}

fn kubeconfig_yaml(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: {TOKEN}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: admin
current-context: {CONTEXT}
"
    )
}
