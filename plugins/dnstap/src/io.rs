//! Where a tap's frames go: an outgoing connection to a receiver (`dnstap SOCKET`) with a
//! bounded queue, or a listener that receivers connect to (`dnstap listen SOCKET`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls;

use crate::{TARGET, fstrm};

/// How long dialing, the handshake and each write may take (CoreDNS's `tcpTimeout`).
pub const TCP_TIMEOUT: Duration = Duration::from_secs(4);
/// How often buffered frames are flushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often drops are reported and a lost connection is dialled again.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Messages per unit of the `queue` argument.
pub const QUEUE_UNIT: usize = 10_000;
/// Bytes per unit of the `writebuffer` argument (the TCP send buffer).
pub const WRITE_BUFFER_UNIT: usize = 1024 * 1024;
/// Frames queued per connected receiver of a listener before it is dropped as too slow.
pub const LISTENER_CLIENT_QUEUE: usize = 1024;

/// A connection of any kind.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The transport of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket path.
    Unix,
    /// TCP to `host:port`.
    Tcp,
    /// TLS over TCP to `host:port`.
    Tls,
}

impl Transport {
    fn as_str(&self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// An endpoint: its transport and address (a path, or `host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The transport.
    pub transport: Transport,
    /// The path or `host:port`.
    pub address: String,
}

/// A Go-like text for a failed dial or listen: `dial unix /x: connect: no such file or directory`.
fn go_net_error(op: &str, ep: &Endpoint, e: &std::io::Error) -> String {
    let net = match ep.transport {
        Transport::Unix => "unix",
        _ => "tcp",
    };
    let inner = match e.raw_os_error() {
        Some(_) => {
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
        None => e.to_string(),
    };
    let syscall = if op == "dial" { "connect" } else { "bind" };
    format!("{op} {net} {}: {syscall}: {inner}", ep.address)
}

/// TLS settings of an outgoing `tls://` endpoint.
fn client_tls(skip_verify: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| rustls::ClientConfig::builder());
    let config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Arc::new(config)
}

/// `skipverify`: accept any server certificate (Go's `InsecureSkipVerify`), still checking the
/// handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
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

fn host_of(address: &str) -> &str {
    let host = match address.rfind(':') {
        Some(i) => &address[..i],
        None => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Dial an endpoint and run the writer's handshake.
async fn dial(
    ep: &Endpoint,
    write_buffer: usize,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<BufWriter<Box<dyn Stream>>, String> {
    let stream: Box<dyn Stream> = match ep.transport {
        Transport::Unix => {
            let s = tokio::time::timeout(TCP_TIMEOUT, tokio::net::UnixStream::connect(&ep.address))
                .await
                .map_err(|_| format!("dial unix {}: i/o timeout", ep.address))?
                .map_err(|e| go_net_error("dial", ep, &e))?;
            Box::new(s)
        }
        Transport::Tcp | Transport::Tls => {
            let s = tokio::time::timeout(TCP_TIMEOUT, tokio::net::TcpStream::connect(&ep.address))
                .await
                .map_err(|_| format!("dial tcp {}: i/o timeout", ep.address))?
                .map_err(|e| go_net_error("dial", ep, &e))?;
            let _ = socket2::SockRef::from(&s).set_send_buffer_size(write_buffer);
            let _ = s.set_nodelay(false);
            match (ep.transport.clone(), tls) {
                (Transport::Tls, Some(config)) => {
                    let host = host_of(&ep.address);
                    let name = match host.parse::<IpAddr>() {
                        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
                        Err(_) => rustls::pki_types::ServerName::try_from(host.to_string())
                            .map_err(|e| e.to_string())?,
                    };
                    let connector = tokio_rustls::TlsConnector::from(config.clone());
                    let t = tokio::time::timeout(TCP_TIMEOUT, connector.connect(name, s))
                        .await
                        .map_err(|_| "i/o timeout".to_string())?
                        .map_err(|e| e.to_string())?;
                    Box::new(t)
                }
                _ => Box::new(s),
            }
        }
    };
    let mut w = BufWriter::new(stream);
    fstrm::open_writer(w.get_mut(), TCP_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    Ok(w)
}

async fn write_frame(w: &mut BufWriter<Box<dyn Stream>>, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 4);
    fstrm::data_frame(payload, &mut frame);
    match tokio::time::timeout(TCP_TIMEOUT, w.write_all(&frame)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "i/o timeout",
        )),
    }
}

async fn flush(w: &mut BufWriter<Box<dyn Stream>>) -> std::io::Result<()> {
    match tokio::time::timeout(TCP_TIMEOUT, w.flush()).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "i/o timeout",
        )),
    }
}

async fn finish(mut w: BufWriter<Box<dyn Stream>>) {
    let _ = flush(&mut w).await;
    let mut s = w.into_inner();
    let _ = fstrm::close_writer(&mut s, TCP_TIMEOUT).await;
    let _ = s.shutdown().await;
}

/// An outgoing connection with its bounded queue (CoreDNS's `dio`).
pub struct Outgoing {
    endpoint: Endpoint,
    write_buffer: usize,
    skip_verify: bool,
    tx: mpsc::Sender<Bytes>,
    rx: Mutex<Option<mpsc::Receiver<Bytes>>>,
    dropped: Arc<AtomicU64>,
    quit: watch::Sender<bool>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// A sink to `endpoint` queueing at most `queue` frames, with a TCP send buffer of
    /// `write_buffer` bytes.
    pub fn new(endpoint: Endpoint, queue: usize, write_buffer: usize, skip_verify: bool) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let (quit, _) = watch::channel(false);
        Outgoing {
            endpoint,
            write_buffer,
            skip_verify,
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: Arc::new(AtomicU64::new(0)),
            quit,
        }
    }

    /// Queue a frame; when the queue is full (or the writer is gone) it is dropped and counted.
    pub fn send(&self, frame: Bytes) {
        if self.tx.try_send(frame).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Frames dropped since the last report.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Dial and start the writer (CoreDNS's startup `connect`): a failed dial is returned (and
    /// logged by the caller) but the writer starts anyway and dials again later.
    pub async fn connect(&self) -> Result<(), String> {
        let Some(rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return Ok(());
        };
        let tls = (self.endpoint.transport == Transport::Tls).then(|| client_tls(self.skip_verify));
        let first = dial(&self.endpoint, self.write_buffer, tls.as_ref()).await;
        let (conn, result) = match first {
            Ok(c) => (Some(c), Ok(())),
            Err(e) => (None, Err(e)),
        };
        let writer = Writer {
            endpoint: self.endpoint.clone(),
            write_buffer: self.write_buffer,
            tls,
            rx,
            dropped: self.dropped.clone(),
            quit: self.quit.subscribe(),
        };
        tokio::spawn(writer.run(conn));
        result
    }

    /// Stop the writer: flush, STOP/FINISH, close.
    pub fn close(&self) {
        let _ = self.quit.send(true);
    }
}

struct Writer {
    endpoint: Endpoint,
    write_buffer: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    rx: mpsc::Receiver<Bytes>,
    dropped: Arc<AtomicU64>,
    quit: watch::Receiver<bool>,
}

impl Writer {
    async fn redial(&self) -> Option<BufWriter<Box<dyn Stream>>> {
        dial(&self.endpoint, self.write_buffer, self.tls.as_ref())
            .await
            .ok()
    }

    async fn run(mut self, mut conn: Option<BufWriter<Box<dyn Stream>>>) {
        let start = tokio::time::Instant::now();
        let mut flush_tick = tokio::time::interval_at(start + FLUSH_INTERVAL, FLUSH_INTERVAL);
        let mut check_tick = tokio::time::interval_at(start + CHECK_INTERVAL, CHECK_INTERVAL);
        loop {
            tokio::select! {
                _ = self.quit.changed() => {
                    if let Some(c) = conn.take() {
                        finish(c).await;
                    }
                    return;
                }
                frame = self.rx.recv() => {
                    let Some(frame) = frame else {
                        if let Some(c) = conn.take() {
                            finish(c).await;
                        }
                        return;
                    };
                    match conn.as_mut() {
                        None => {
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(c) => {
                            if write_frame(c, &frame).await.is_err() {
                                self.dropped.fetch_add(1, Ordering::Relaxed);
                                // A broken connection is dialled again at once.
                                conn = self.redial().await;
                            }
                        }
                    }
                }
                _ = flush_tick.tick() => {
                    if let Some(c) = conn.as_mut()
                        && flush(c).await.is_err()
                    {
                        conn = self.redial().await;
                    }
                }
                _ = check_tick.tick() => {
                    let dropped = self.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        tracing::warn!(target: TARGET, "Dropped dnstap messages: {dropped}");
                    }
                    if conn.is_none() {
                        conn = self.redial().await;
                    }
                }
            }
        }
    }
}

/// TLS settings of a listener: certificate, key and an optional CA for client certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenTls {
    /// The certificate file.
    pub cert: String,
    /// The key file.
    pub key: String,
    /// The CA file for client certificates.
    pub ca: Option<String>,
}

struct ListenerState {
    clients: Vec<mpsc::Sender<Bytes>>,
}

/// A listener receivers connect to (`dnstap listen`): every frame goes to every connected
/// receiver; one that cannot keep up is disconnected, the others are not held back.
pub struct Listener {
    endpoint: Endpoint,
    /// TLS files (`tls CERT KEY [CA]`).
    pub tls: Mutex<Option<ListenTls>>,
    /// `skipverify`: client certificates are optional even with a CA.
    pub skip_verify: std::sync::atomic::AtomicBool,
    state: Arc<Mutex<ListenerState>>,
    quit: watch::Sender<bool>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn server_tls(files: &ListenTls, skip_verify: bool) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("open {}: {e}", files.cert))?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("open {}: {e}", files.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("open {ca}: {e}"))? {
                let cert = cert.map_err(|e| e.to_string())?;
                roots.add(cert).map_err(|e| e.to_string())?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if skip_verify {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

impl Listener {
    /// A listener on `endpoint` (not yet listening).
    pub fn new(endpoint: Endpoint) -> Self {
        let (quit, _) = watch::channel(false);
        Listener {
            endpoint,
            tls: Mutex::new(None),
            skip_verify: std::sync::atomic::AtomicBool::new(false),
            state: Arc::new(Mutex::new(ListenerState {
                clients: Vec::new(),
            })),
            quit,
            accept: Mutex::new(None),
        }
    }

    /// Send a frame to every connected receiver, disconnecting the ones that fall behind.
    pub fn send(&self, frame: Bytes) {
        if let Ok(mut st) = self.state.lock() {
            st.clients.retain(|c| c.try_send(frame.clone()).is_ok());
        }
    }

    /// Start listening. `Ok(false)`: a `tls://` listener without certificate and key, which
    /// is not started (CoreDNS warns and goes on).
    pub async fn listen(&self) -> Result<bool, String> {
        let tls = self.tls.lock().ok().and_then(|t| t.clone());
        let skip_verify = self.skip_verify.load(Ordering::Relaxed);
        let acceptor = match self.endpoint.transport {
            Transport::Tls => match tls {
                None => {
                    tracing::warn!(target: TARGET, "TLS listener requires cert and key files");
                    return Ok(false);
                }
                Some(files) => Some(tokio_rustls::TlsAcceptor::from(server_tls(
                    &files,
                    skip_verify,
                )?)),
            },
            _ => None,
        };
        let quit = self.quit.subscribe();
        let state = self.state.clone();
        match self.endpoint.transport {
            Transport::Unix => {
                let ln = tokio::net::UnixListener::bind(&self.endpoint.address)
                    .map_err(|e| go_net_error("listen", &self.endpoint, &e))?;
                let path = self.endpoint.address.clone();
                let task = tokio::spawn(accept_unix(ln, path, state, quit));
                if let Ok(mut a) = self.accept.lock() {
                    *a = Some(task);
                }
            }
            Transport::Tcp | Transport::Tls => {
                let ln = tokio::net::TcpListener::bind(&self.endpoint.address)
                    .await
                    .map_err(|e| go_net_error("listen", &self.endpoint, &e))?;
                let task = tokio::spawn(accept_tcp(ln, acceptor, state, quit));
                if let Ok(mut a) = self.accept.lock() {
                    *a = Some(task);
                }
            }
        }
        Ok(true)
    }

    /// Stop listening and disconnect every receiver (STOP/FINISH).
    pub fn close(&self) {
        let _ = self.quit.send(true);
        if let Ok(mut st) = self.state.lock() {
            st.clients.clear();
        }
    }

    /// [`Listener::close`], returning once the socket is closed (so that a reload can listen
    /// on the same address again).
    pub async fn close_and_wait(&self) {
        self.close();
        let task = self.accept.lock().ok().and_then(|mut a| a.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

fn add_client(
    stream: Box<dyn Stream>,
    state: Arc<Mutex<ListenerState>>,
    quit: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut w = BufWriter::new(stream);
        if let Err(e) = fstrm::open_writer(w.get_mut(), TCP_TIMEOUT).await {
            tracing::warn!(target: TARGET, "Error creating encoder for dnstap client: {e}");
            return;
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(LISTENER_CLIENT_QUEUE);
        if let Ok(mut st) = state.lock() {
            st.clients.push(tx);
        }
        let mut quit = quit;
        loop {
            tokio::select! {
                _ = quit.changed() => break,
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    if write_frame(&mut w, &frame).await.is_err() || flush(&mut w).await.is_err() {
                        return;
                    }
                }
            }
        }
        finish(w).await;
    });
}

async fn accept_unix(
    ln: tokio::net::UnixListener,
    path: String,
    state: Arc<Mutex<ListenerState>>,
    mut quit: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = quit.changed() => break,
            conn = ln.accept() => match conn {
                Ok((s, _)) => add_client(Box::new(s), state.clone(), quit.clone()),
                Err(e) => {
                    tracing::warn!(target: TARGET, "Error accepting dnstap connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    // Go's unix listener removes its socket file when closed.
    let _ = std::fs::remove_file(&path);
}

async fn accept_tcp(
    ln: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<Mutex<ListenerState>>,
    mut quit: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = quit.changed() => break,
            conn = ln.accept() => match conn {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(false);
                    match &acceptor {
                        None => add_client(Box::new(s), state.clone(), quit.clone()),
                        Some(acc) => {
                            let acc = acc.clone();
                            let state = state.clone();
                            let quit = quit.clone();
                            tokio::spawn(async move {
                                match tokio::time::timeout(TCP_TIMEOUT, acc.accept(s)).await {
                                    Ok(Ok(t)) => add_client(Box::new(t), state, quit),
                                    Ok(Err(e)) => tracing::warn!(target: TARGET, "Error creating encoder for dnstap client: {e}"),
                                    Err(_) => {}
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(target: TARGET, "Error accepting dnstap connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Transport {
    /// The scheme name (`unix`, `tcp`, `tls`).
    pub fn name(&self) -> &'static str {
        self.as_str()
    }
}
