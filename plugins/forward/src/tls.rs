//! DNS over TLS to `tls://` upstreams: the `tls [CERT KEY] [CA]` option turned into a rustls
//! client configuration (ring provider, TLS 1.2 and 1.3), as CoreDNS's `NewTLSConfigFromArgs`
//! reads it: no argument = system roots; one = a CA file; two = a client certificate and key
//! with system roots; three = certificate, key and CA.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// The `tls [CERT KEY] [CA]` option's files, by how many arguments were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFiles {
    /// No argument: the system's roots, no client certificate.
    SystemRoots,
    /// One: a CA file, no client certificate.
    Ca(String),
    /// Two: a client certificate and its key, with the system's roots.
    Client {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// Three: a client certificate, its key and a CA file.
    ClientCa {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// The CA file.
        ca: String,
    },
}

impl TlsFiles {
    /// The files of the option's arguments; `None` for more than three.
    pub fn from_args(args: &[String]) -> Option<Self> {
        Some(match args {
            [] => TlsFiles::SystemRoots,
            [ca] => TlsFiles::Ca(ca.clone()),
            [cert, key] => TlsFiles::Client {
                cert: cert.clone(),
                key: key.clone(),
            },
            [cert, key, ca] => TlsFiles::ClientCa {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            },
            _ => return None,
        })
    }

    /// The client certificate and key files, if any.
    pub fn client(&self) -> Option<(&str, &str)> {
        match self {
            TlsFiles::SystemRoots | TlsFiles::Ca(_) => None,
            TlsFiles::Client { cert, key } | TlsFiles::ClientCa { cert, key, .. } => {
                Some((cert, key))
            }
        }
    }

    /// The CA file, if any (the system's roots otherwise).
    pub fn ca(&self) -> Option<&str> {
        match self {
            TlsFiles::SystemRoots | TlsFiles::Client { .. } => None,
            TlsFiles::Ca(ca) | TlsFiles::ClientCa { ca, .. } => Some(ca),
        }
    }
}

/// A TLS client setup for one upstream: the shared config and the name to verify.
#[derive(Clone)]
pub struct TlsClient {
    /// The rustls configuration (shared by the upstreams of a stanza).
    pub config: Arc<ClientConfig>,
    /// The server name sent in SNI and verified (the upstream's IP when none is configured).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Check the option's files when parsing: CoreDNS loads them right then, so missing or
/// unreadable files are setup errors.
pub fn check_args(files: &TlsFiles) -> Result<(), String> {
    build_config(files).map(|_| ())
}

fn read_err(path: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("open {path}: no such file or directory"),
        std::io::ErrorKind::PermissionDenied => format!("open {path}: permission denied"),
        _ => format!("read {path}: {e}"),
    }
}

fn load_roots(ca: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("error reading {path}: {}", read_err(path, &e)))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                return Err("could not read root certs: %!s(<nil>)".to_string());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

fn load_client_cert(
    cert: &str,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| format!("could not load TLS cert: {}", read_err(cert, &e)))?;
    let key_pem = std::fs::read(key)
        .map_err(|e| format!("could not load TLS cert: {}", read_err(key, &e)))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .flatten()
        .collect();
    if certs.is_empty() {
        return Err(
            "could not load TLS cert: tls: failed to find any PEM data in certificate input"
                .to_string(),
        );
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        "could not load TLS cert: tls: failed to find any PEM data in key input".to_string()
    })?;
    Ok((certs, key))
}

/// The client configuration for the `tls` option's files ([`TlsFiles::SystemRoots`] when the
/// option is absent).
pub fn build_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let client = files
        .client()
        .map(|(c, k)| load_client_cert(c, k))
        .transpose()?;
    let roots = load_roots(files.ca())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("could not load TLS cert: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name to verify: the configured server name, else the upstream's IP.
pub fn server_name(
    configured: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<ServerName<'static>, String> {
    match configured {
        Some(n) if !n.is_empty() => {
            ServerName::try_from(n.to_string()).map_err(|_| format!("invalid TLS server name {n}"))
        }
        _ => match ip {
            Some(ip) => Ok(ServerName::IpAddress(ip.into())),
            None => Err("no TLS server name".to_string()),
        },
    }
}
