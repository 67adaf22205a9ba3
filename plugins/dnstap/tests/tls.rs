//! dnstap over TLS: to a `tls://` receiver (verified, or not with `skipverify`), and a `listen
//! tls://` listener with a certificate that receivers connect to.

use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin::{Plugin, Shared};
use ferrodns_plugin_dnstap::io::{Endpoint, Outgoing, Transport};
use ferrodns_plugin_dnstap::proto::{Dnstap, MessageType};
use ferrodns_plugin_dnstap::{DESCRIPTOR, fstrm};
use ferrodns_plugin_test as testkit;
use ferrodns_plugin_whoami::Whoami;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Cert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn cert() -> Cert {
    let k = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    Cert {
        der: CertificateDer::from(k.cert.der().to_vec()),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.key_pair.serialize_der())),
        cert_pem: k.cert.pem(),
        key_pem: k.key_pair.serialize_pem(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn start(directives: &str) -> (Shared, Arc<dyn Plugin>) {
    let shared = Shared::default();
    let block = testkit::setup_with(&DESCRIPTOR, directives, &shared).expect("setup");
    for l in shared.lifecycles() {
        l.on_startup().await.expect("startup");
    }
    (shared, block.plugins[0].clone())
}

/// Query until a frame arrives (a receiver joins once its handshake is done).
async fn first_frame(
    chain: &[Arc<dyn Plugin>],
    rx: &mut mpsc::UnboundedReceiver<Dnstap>,
) -> Dnstap {
    for _ in 0..100 {
        let mut req = testkit::request("example.org.", RecordType::A);
        testkit::run(chain, &mut req).await.expect("served");
        if let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            return f;
        }
    }
    panic!("no frame");
}

async fn tls_receiver(c: &Cert) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Dnstap>) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![c.der.clone()], c.key.clone_key())
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let ln = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = ln.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = ln.accept().await {
            let Ok(mut s) = acceptor.accept(s).await else {
                continue;
            };
            if fstrm::open_reader(&mut s).await.is_err() {
                continue;
            }
            while let Ok(Some(d)) = fstrm::next_data(&mut s).await {
                let _ = tx.send(Dnstap::decode(&d[..]).expect("protobuf"));
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn tls_receiver_with_skipverify() {
    let c = cert();
    let (addr, mut rx) = tls_receiver(&c).await;
    let (shared, tap) = start(&format!("dnstap tls://{addr} full {{\n skipverify\n}}")).await;
    let chain: Vec<Arc<dyn Plugin>> = vec![tap, Arc::new(Whoami)];
    let f = first_frame(&chain, &mut rx).await;
    assert_eq!(
        f.message.expect("message").r#type,
        MessageType::ClientQuery as i32
    );
    for l in shared.lifecycles() {
        l.on_final_shutdown().await;
    }
}

#[tokio::test]
async fn tls_receiver_with_an_unknown_certificate_is_refused() {
    let c = cert();
    let (addr, _rx) = tls_receiver(&c).await;
    let out = Outgoing::new(
        Endpoint {
            transport: Transport::Tls,
            address: addr.to_string(),
        },
        10,
        1 << 20,
        false,
    );
    let err = out.connect().await.expect_err("self-signed is not trusted");
    assert!(err.contains("certificate"), "{err}");
    out.close();
}

#[tokio::test]
async fn tls_listener() {
    let c = cert();
    let dir = testkit::TempDir::new("dnstap-tls");
    let cert_file = dir.write("cert.pem", &c.cert_pem);
    let key_file = dir.write("key.pem", &c.key_pem);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (shared, tap) = start(&format!(
        "dnstap listen tls://127.0.0.1:{port} full {{\n tls {cert_file} {key_file}\n}}"
    ))
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.der.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, s)
        .await
        .expect("tls");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        fstrm::open_reader(&mut s).await.expect("handshake");
        while let Ok(Some(d)) = fstrm::next_data(&mut s).await {
            let _ = tx.send(Dnstap::decode(&d[..]).expect("protobuf"));
        }
    });
    let chain: Vec<Arc<dyn Plugin>> = vec![tap, Arc::new(Whoami)];
    let f = first_frame(&chain, &mut rx).await;
    assert!(f.message.expect("message").query_message.is_some());
    for l in shared.lifecycles() {
        l.on_final_shutdown().await;
    }
}

/// Connect to a TLS listener trusting `c`, with or without presenting `c` as the client's
/// certificate; `true` when the Frame Streams handshake completes.
async fn client_handshake(port: u16, c: &Cert, present: bool) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.der.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if present {
        builder
            .with_client_auth_cert(vec![c.der.clone()], c.key.clone_key())
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let Ok(mut s) = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, s)
        .await
    else {
        return false;
    };
    // TLS 1.3 reports a refused client certificate on the first read.
    tokio::time::timeout(Duration::from_secs(5), fstrm::open_reader(&mut s))
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false)
}

#[tokio::test]
async fn tls_listener_with_a_ca_requires_client_certificates() {
    let c = cert();
    let dir = testkit::TempDir::new("dnstap-mtls");
    let cert_file = dir.write("cert.pem", &c.cert_pem);
    let key_file = dir.write("key.pem", &c.key_pem);
    let port = |()| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    };
    let strict = port(());
    let (s1, _) = start(&format!(
        "dnstap listen tls://127.0.0.1:{strict} {{\n tls {cert_file} {key_file} {cert_file}\n}}"
    ))
    .await;
    assert!(!client_handshake(strict, &c, false).await);
    assert!(client_handshake(strict, &c, true).await);

    // skipverify: a client certificate is checked if given, not required.
    let lax = port(());
    let (s2, _) = start(&format!(
        "dnstap listen tls://127.0.0.1:{lax} {{\n tls {cert_file} {key_file} {cert_file}\n skipverify\n}}"
    ))
    .await;
    assert!(client_handshake(lax, &c, false).await);
    for s in [s1, s2] {
        for l in s.lifecycles() {
            l.on_final_shutdown().await;
        }
    }
}
