//! DNS over TLS against an in-process TLS upstream with a self-signed certificate.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{decoded, forwarder, ok, query};
use ferrodns_plugin::{Plugin, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

struct TlsFake {
    addr: std::net::SocketAddr,
    ca_path: std::path::PathBuf,
    queries: Arc<AtomicUsize>,
    probes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFake {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.ca_path);
    }
}

async fn tls_fake(tag: &str) -> TlsFake {
    let key = rcgen::generate_simple_self_signed(vec![
        "dns.example".to_string(),
        "127.0.0.1".to_string(),
    ])
    .expect("cert");
    let cert_der = CertificateDer::from(key.cert.der().to_vec());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key_pair.serialize_der()));
    let ca_path =
        std::env::temp_dir().join(format!("ferrodns-forward-{}-{tag}.pem", std::process::id()));
    std::fs::write(&ca_path, key.cert.pem()).expect("write ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let queries = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let (q2, p2) = (queries.clone(), probes.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let (q2, p2) = (q2.clone(), p2.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                loop {
                    let Ok(len) = s.read_u16().await else { return };
                    let mut q = vec![0u8; usize::from(len)];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    // qtype NS marks a health probe.
                    if q[q.len() - 3] == 2 {
                        p2.fetch_add(1, Ordering::SeqCst);
                    } else {
                        q2.fetch_add(1, Ordering::SeqCst);
                    }
                    let r = ok(&q);
                    let mut f = (r.len() as u16).to_be_bytes().to_vec();
                    f.extend_from_slice(&r);
                    if s.write_all(&f).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    TlsFake {
        addr,
        ca_path,
        queries,
        probes,
        task,
    }
}

#[tokio::test]
async fn forwards_over_tls_with_a_server_name() {
    let up = tls_fake("sn").await;
    let (f, metrics) = forwarder(&format!(
        ". tls://{} {{\ntls {}\ntls_servername dns.example\n}}",
        up.addr,
        up.ca_path.display()
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    for proto in [Protocol::Udp, Protocol::Tcp, Protocol::Udp] {
        let m = decoded(&query(&plugins, "example.org.", proto).await.1);
        assert_eq!(m.answers.len(), 1);
    }
    assert_eq!(up.queries.load(Ordering::SeqCst), 3);
    let text = metrics.encode();
    assert!(text.contains("proto=\"tcp-tls\"} 1"), "{text}");
    assert!(
        text.contains("coredns_proxy_conn_cache_hits_total{proxy_name=\"forward\",to=\""),
        "{text}"
    );
}

#[tokio::test]
async fn per_upstream_server_name_and_ip_verification() {
    let up = tls_fake("pct").await;
    let ip = up.addr.ip();
    let port = up.addr.port();
    let (f, _) = forwarder(&format!(
        ". tls://{ip}%dns.example:{port} {{\ntls {}\n}}",
        up.ca_path.display()
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    assert_eq!(
        decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1)
            .answers
            .len(),
        1
    );
    // Without a name the IP itself is verified (it is in the certificate).
    let (f, _) = forwarder(&format!(
        ". tls://{} {{\ntls {}\n}}",
        up.addr,
        up.ca_path.display()
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    assert_eq!(
        decoded(&query(&plugins, "example.org.", Protocol::Udp).await.1)
            .answers
            .len(),
        1
    );
}

#[tokio::test]
async fn wrong_name_or_untrusted_certificate_fails() {
    let up = tls_fake("bad").await;
    let (f, _) = forwarder(&format!(
        ". tls://{} {{\ntls {}\ntls_servername other.example\nmax_fails 0\n}}",
        up.addr,
        up.ca_path.display()
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    match query(&plugins, "example.org.", Protocol::Udp).await.1 {
        Err(e) => assert!(e.message.starts_with("tls: "), "{}", e.message),
        other => panic!("{other:?}"),
    }
    // System roots do not trust the self-signed certificate.
    let (f, _) = forwarder(&format!(
        ". tls://{} {{\ntls_servername dns.example\nmax_fails 0\n}}",
        up.addr
    ));
    let plugins: Vec<Arc<dyn Plugin>> = vec![f.clone()];
    assert!(
        query(&plugins, "example.org.", Protocol::Udp)
            .await
            .1
            .is_err()
    );
    assert_eq!(up.queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn health_probes_go_over_tls() {
    let up = tls_fake("hc").await;
    let (f, _) = forwarder(&format!(
        ". tls://{} {{\ntls {}\ntls_servername dns.example\n}}",
        up.addr,
        up.ca_path.display()
    ));
    assert!(f.upstreams()[0].check().await);
    assert_eq!(up.probes.load(Ordering::SeqCst), 1);
}
