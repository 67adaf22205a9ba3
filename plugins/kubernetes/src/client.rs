//! The Kubernetes client: from the directive's `kubeconfig`, `endpoint`/`tls`, or the pod's
//! service account (CoreDNS's `getClientConfig`).

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config as KubeConfig};

use crate::setup::ApiSource;

/// Why no client could be made; the text is CoreDNS's where it has one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// What is read at setup (files, environment), so that a bad kubeconfig stops the server at
/// startup as in CoreDNS; the client itself is made at startup, on the runtime.
pub enum Prepared {
    /// A parsed kubeconfig and its context.
    Kubeconfig(Box<Kubeconfig>, Option<String>),
    /// A ready configuration.
    Config(Box<KubeConfig>),
}

/// Read what the source needs.
pub fn prepare(source: &ApiSource) -> Result<Prepared, ClientError> {
    match source {
        ApiSource::Kubeconfig { path, context } => {
            // clientcmd stats the explicit path first; its error is what CoreDNS prints.
            if let Err(e) = std::fs::metadata(path) {
                return Err(ClientError(ferrodns_go::os::io_error("stat", path, &e)));
            }
            let kc = Kubeconfig::read_from(path).map_err(|e| ClientError(e.to_string()))?;
            if let Some(ctx) = context
                && !kc.contexts.iter().any(|c| &c.name == ctx)
            {
                return Err(ClientError(format!(
                    "context was not found for specified context: {ctx}"
                )));
            }
            Ok(Prepared::Kubeconfig(Box::new(kc), context.clone()))
        }
        ApiSource::Endpoint { url, tls } => {
            let uri = url
                .parse()
                .map_err(|e| ClientError(format!("invalid endpoint {url}: {e}")))?;
            let mut cfg = KubeConfig::new(uri);
            if let Some((cert, key, ca)) = tls {
                let ca_pem = std::fs::read(ca).map_err(|e| {
                    ClientError(format!(
                        "unable to read certificate-authority {ca} for  due to open {ca}: {e}"
                    ))
                })?;
                cfg.root_cert = Some(pem_certs(&ca_pem));
                cfg.auth_info = AuthInfo {
                    client_certificate: Some(cert.clone()),
                    client_key: Some(key.clone()),
                    ..AuthInfo::default()
                };
            }
            Ok(Prepared::Config(Box::new(cfg)))
        }
        ApiSource::InCluster => {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none()
                || std::env::var_os("KUBERNETES_SERVICE_PORT").is_none()
            {
                return Err(ClientError(
                    "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
                        .into(),
                ));
            }
            KubeConfig::incluster()
                .map(|c| Prepared::Config(Box::new(c)))
                .map_err(|e| ClientError(e.to_string()))
        }
    }
}

/// The DER certificates of a PEM bundle.
fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            cur = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE") {
            if let Some(b64) = cur.take()
                && let Some(der) = base64_decode(&b64)
            {
                out.push(der);
            }
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= val(*b)? << (18 - 6 * i);
        }
        out.push((acc >> 16) as u8);
        if chunk.len() > 2 {
            out.push((acc >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(acc as u8);
        }
    }
    Some(out)
}

/// Make the client (on the runtime), with the request stack of [`crate::rest`].
pub async fn connect(
    p: &Prepared,
    mut rest: crate::rest::RestLayer,
) -> Result<Client, ClientError> {
    let cfg = match p {
        Prepared::Kubeconfig(kc, context) => {
            let opts = KubeConfigOptions {
                context: context.clone(),
                ..KubeConfigOptions::default()
            };
            KubeConfig::from_custom_kubeconfig((**kc).clone(), &opts)
                .await
                .map_err(|e| ClientError(e.to_string()))?
        }
        Prepared::Config(c) => (**c).clone(),
    };
    rest.host = cfg
        .cluster_url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let builder = kube::client::ClientBuilder::try_from(cfg).map_err(|e| {
        ClientError(format!(
            "failed to create kubernetes notification controller: {}",
            ferrodns_go::strconv::quote(&e.to_string())
        ))
    })?;
    Ok(builder.with_layer(&rest).build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_round() {
        assert_eq!(super::base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(super::base64_decode("aGk="), Some(b"hi".to_vec()));
    }
}
