//! A real Kubernetes API server on loopback, for the tests of a `kubernetes` plugin and for a
//! developer to point CoreDNS or ferrodns at: `kube-apiserver` backed by kine (an etcd API on
//! SQLite). Both are pinned here, built once per machine into a cache outside the clone (as the
//! reference CoreDNS is, see `coredns.rs`) and reused from there.
//!
//! The build: `go install` cannot build `k8s.io/kubernetes/cmd/kube-apiserver`, because the module's go.mod replaces its
//! `k8s.io/*` staging modules with `./staging/src/...` directories that a module download leaves
//! out. A copy of the module with those replacements dropped, and the staging modules required at
//! their published versions instead, builds.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::procs::Proc;

/// The Kubernetes release whose API server the tests run. Change it here only.
pub const VERSION: &str = "v1.34.2";
/// The version the staging modules (`k8s.io/api`, `k8s.io/client-go`, ...) are published at
/// for [`VERSION`]: v1.X.Y is v0.X.Y.
const STAGING_VERSION: &str = "v0.34.2";
/// The kine release that stores the API server's objects in SQLite.
pub const KINE_VERSION: &str = "v0.17.5";
/// The bearer token that the API server accepts, as a member of `system:masters`.
pub const TOKEN: &str = "testtoken";

/// How long the API server may take to become ready (measured: 2.5 s on 2 idle cores; about
/// 10 s when they are busy).
const READY_LIMIT: Duration = Duration::from_secs(180);

/// The built binaries.
pub struct KubeBins {
    pub apiserver: PathBuf,
    pub kine: PathBuf,
}

/// `~/.cache/ferrodns/kubernetes-<version>` (or `$FERRODNS_CACHE/kubernetes-<version>`).
pub fn cache_dir() -> PathBuf {
    crate::coredns::cache_root().join(format!("kubernetes-{VERSION}"))
}

/// The paths of `kube-apiserver` and `kine`, building whichever is missing first.
pub fn ensure() -> Result<KubeBins> {
    let dir = cache_dir();
    let bins = KubeBins {
        apiserver: dir.join("bin/kube-apiserver"),
        kine: dir.join("bin/kine"),
    };
    if is_apiserver(&bins.apiserver) && is_kine(&bins.kine) {
        return Ok(bins);
    }
    fs::create_dir_all(dir.join("bin"))
        .with_context(|| format!("creating {}", dir.join("bin").display()))?;
    // Two processes that find the binaries missing (tests run in parallel) build them once:
    // the second waits here and then finds them.
    let lock = File::create(dir.join("build.lock"))?;
    lock.lock().context("locking the kubernetes build")?;
    if !is_apiserver(&bins.apiserver) {
        build_apiserver(&dir, &bins.apiserver)?;
    }
    if !is_kine(&bins.kine) {
        build_kine(&dir, &bins.kine)?;
    }
    Ok(bins)
}

fn build_apiserver(dir: &Path, bin: &Path) -> Result<()> {
    println!(
        "kube: building kube-apiserver {VERSION} into {} (once per machine, about 4 minutes)",
        dir.display()
    );
    let started = Instant::now();
    let module = format!("k8s.io/kubernetes@{VERSION}");
    let out = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .output()
        .context("running `go mod download` (is Go on PATH?)")?;
    if !out.status.success() {
        bail!(
            "go mod download {module} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let info: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading `go mod download -json`")?;
    let Some(module_dir) = info["Dir"].as_str() else {
        bail!("no Dir in the output of go mod download {module}");
    };
    let module_dir = Path::new(module_dir);

    // A writable copy without vendor/ (symlinks into the missing staging directories) and
    // without the workspace files that name them; go.mod rewritten.
    let src = dir.join("src");
    if src.exists() {
        fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    copy_tree(
        module_dir,
        &src,
        &["vendor", "go.work", "go.work.sum", "go.mod"],
    )?;
    let go_mod = fs::read_to_string(module_dir.join("go.mod"))?;
    fs::write(src.join("go.mod"), published_staging(&go_mod))?;

    // The version the release build stamps in (hack/lib/version.sh); `--version` prints it,
    // and without it the binary calls itself v0.0.0-master.
    let (major, minor) = {
        let mut parts = VERSION.trim_start_matches('v').split('.');
        (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"))
    };
    let mut ldflags = Vec::new();
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (key, value) in [
            ("gitVersion", VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            ldflags.push(format!("-X {package}.{key}={value}"));
        }
    }
    let tmp = bin.with_extension("tmp");
    let status = Command::new("go")
        .args(["build", "-ldflags", &ldflags.join(" "), "-o"])
        .arg(&tmp)
        .arg("./cmd/kube-apiserver")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .status()
        .context("running `go build`")?;
    if !status.success() {
        bail!(
            "go build ./cmd/kube-apiserver in {} failed ({status})",
            src.display()
        );
    }
    fs::rename(&tmp, bin)?;
    fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    if !is_apiserver(bin) {
        bail!(
            "{} does not say it is kube-apiserver {VERSION}",
            bin.display()
        );
    }
    println!(
        "kube: built kube-apiserver {VERSION} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// go.mod of k8s.io/kubernetes with the `./staging/...` replacements removed and each
/// staging module (required as exactly `v0.0.0`) required at its published version instead.
fn published_staging(go_mod: &str) -> String {
    let mut out = String::with_capacity(go_mod.len());
    for line in go_mod.lines() {
        if line.contains("=> ./staging/") {
            continue;
        }
        let words: Vec<&str> = line
            .trim()
            .trim_start_matches("require ")
            .split_whitespace()
            .collect();
        if words.len() >= 2 && words[0].starts_with("k8s.io/") && words[1] == "v0.0.0" {
            // The module path holds no space: the first " v0.0.0" is the version.
            out.push_str(&line.replacen(" v0.0.0", &format!(" {STAGING_VERSION}"), 1));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn build_kine(dir: &Path, bin: &Path) -> Result<()> {
    println!(
        "kube: building kine {KINE_VERSION} into {} (once per machine, about 2 minutes)",
        dir.display()
    );
    let started = Instant::now();
    crate::coredns::go_install(
        &format!("github.com/k3s-io/kine@{KINE_VERSION}"),
        &[
            "-ldflags",
            &format!("-X github.com/k3s-io/kine/pkg/version.Version={KINE_VERSION}"),
        ],
        &dir.join("bin"),
    )?;
    if !is_kine(bin) {
        bail!(
            "{} does not run as kine {KINE_VERSION} after go install",
            bin.display()
        );
    }
    println!(
        "kube: built kine {KINE_VERSION} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Copy the directory `from` to `to` (which must not exist), symbolic links as links, leaving
/// out the entries of `from` itself named in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst, &[])?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else {
            fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// `kube-apiserver --version` prints `Kubernetes v1.34.2`.
fn is_apiserver(bin: &Path) -> bool {
    crate::coredns::version_output(bin, "--version")
        .split_whitespace()
        .any(|w| w == VERSION)
}

/// `kine --version` prints `kine version v0.17.5 (HEAD)`: the binary starts and is this release.
fn is_kine(bin: &Path) -> bool {
    crate::coredns::version_output(bin, "--version")
        .split_whitespace()
        .any(|w| w == KINE_VERSION)
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
    /// `kine.log` and `kube-apiserver.log`), and wait until `/readyz` answers 200.
    pub fn start(dir: &Path) -> Result<ApiServer> {
        let bins = ensure()?;
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

        let kine_port = free_tcp_port()?;
        let mut kine_cmd = Command::new(&bins.kine);
        kine_cmd.args([
            format!("--listen-address=127.0.0.1:{kine_port}"),
            format!("--endpoint=sqlite://{}", dir.join("state.db").display()),
            // Its metrics listener would otherwise take :8080 on every interface.
            "--metrics-bind-address=0".to_string(),
        ]);
        let mut kine = Proc::spawn("kine", kine_cmd, &dir.join("kine.log"))?;
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
            "--service-cluster-ip-range=10.96.0.0/16".to_string(),
            "--enable-priority-and-fairness=false".to_string(),
        ]);
        let apiserver = Proc::spawn("kube-apiserver", cmd, &dir.join("kube-apiserver.log"))?;

        let kubeconfig = dir.join("kubeconfig");
        fs::write(&kubeconfig, kubeconfig_yaml(port))?;
        let mut server = ApiServer {
            apiserver,
            kine,
            port,
            kubeconfig,
        };
        server.wait_ready()?;
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

    /// Fail with the end of its log when either process has exited.
    pub fn alive(&mut self) -> Result<()> {
        self.kine.alive()?;
        self.apiserver.alive()
    }

    /// Poll `GET /readyz` with the token until it answers 200 (every check, storage and
    /// post-start hook of the server passed).
    fn wait_ready(&mut self) -> Result<()> {
        let tls = Arc::new(tls_config()?);
        let port = self.port;
        let mut last = String::from("no answer");
        let kine = &mut self.kine;
        let result = self
            .apiserver
            .wait_until("answer 200 to /readyz", READY_LIMIT, || {
                kine.alive()?;
                match get(&tls, port, "/readyz?verbose") {
                    Ok((200, _)) => return Ok(true),
                    Ok((status, body)) => last = format!("{status}: {body}"),
                    Err(e) => last = format!("{e:#}"),
                }
                std::thread::sleep(Duration::from_millis(200));
                Ok(false)
            });
        result.with_context(|| format!("the last answer to GET /readyz was {last}"))
    }
}

fn kubeconfig_yaml(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ferrodns-test
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: {TOKEN}
contexts:
- name: ferrodns-test
  context:
    cluster: ferrodns-test
    user: admin
current-context: ferrodns-test
"
    )
}

/// A TLS client that accepts any certificate: the server's is one it made itself at startup
/// (in `certs/` of its directory), and nothing but this loopback test server is reached.
/// Handshake signatures are still checked.
fn tls_config() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `GET path` with the bearer token over HTTPS to 127.0.0.1:`port`: the status code and the
/// body (as sent, not decoded: enough for a message).
fn get(tls: &Arc<rustls::ClientConfig>, port: u16, path: &str) -> Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let conn = rustls::ClientConnection::new(tls.clone(), name)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // The connection closed without a TLS close_notify: what came before is complete.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP/1.1 response: {:?}", text.lines().next()))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    Ok((status, body.to_string()))
}

/// `cargo xtask kube-apiserver [--dir DIR]`: an API server for a developer, until SIGINT or
/// SIGTERM.
pub fn run(args: &[String]) -> Result<()> {
    let mut dir = crate::root().join("target/kube-apiserver");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = PathBuf::from(args.next().context("--dir needs a directory")?),
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask kube-apiserver [--dir DIR]\n\n\
                     Builds kube-apiserver {VERSION} and kine {KINE_VERSION} into {} once per machine,\n\
                     runs them on loopback with their state and logs in DIR (default target/kube-apiserver),\n\
                     prints the path of a kubeconfig for them (bearer token {TOKEN:?}) and `ready`,\n\
                     and stops them on Ctrl-C or SIGTERM.",
                    cache_dir().display()
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; try `cargo xtask kube-apiserver --help`"),
        }
    }
    ensure()?;

    // The signals are taken with sigwait, not a handler: blocked from here on in this (the only)
    // thread. The children start with an empty mask (std resets it), so a Ctrl-C in the
    // terminal reaches them too. SIGCHLD wakes the wait when one of them exits.
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        signals.add(s);
    }
    signals
        .thread_block()
        .context("blocking SIGINT and SIGTERM")?;

    let started = Instant::now();
    let mut server = ApiServer::start(&dir)?;
    println!(
        "kube: {} ready in {:.1}s; logs in {}",
        server.url(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!("kubeconfig: {}", server.kubeconfig().display());
    println!("ready");
    loop {
        let signal = signals.wait().context("waiting for a signal")?;
        if signal != Signal::SIGCHLD {
            println!("kube: {signal}, stopping");
            return Ok(());
        }
        server.alive()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_requires_published_staging_modules() {
        let go_mod = "module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397
\tk8s.io/kms v0.0.0 // indirect
)

require k8s.io/metrics v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/kms => ./staging/src/k8s.io/kms
)

replace k8s.io/metrics => ./staging/src/k8s.io/metrics
";
        let want = "module k8s.io/kubernetes

require (
\tk8s.io/api v0.34.2
\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397
\tk8s.io/kms v0.34.2 // indirect
)

require k8s.io/metrics v0.34.2

replace (
)

";
        assert_eq!(published_staging(go_mod), want);
    }
}
