//! HTTP routes on shared listeners: several plugins (and several blocks) naming one address get
//! one listener, each serving its own path (`/health`, `/metrics`, `/ready`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::{Dispenser, SetupError};

/// A response to an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code, e.g. 200 or 503.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Split `host:port` as Go's `net.SplitHostPort` does, with its error texts (`address x:
/// missing port in address`): the check `health`, `ready` and `prometheus` make on their
/// ADDRESS. The port is not checked here (Go only finds a bad one when it listens).
pub fn split_host_port(addr: &str) -> Result<(&str, &str), String> {
    split_host_port_reason(addr).map_err(|why| {
        if addr.is_empty() {
            why.to_string()
        } else {
            format!("address {addr}: {why}")
        }
    })
}

/// [`split_host_port`] with the bare reason as the error (`missing port in address`), for
/// callers that word the message themselves.
pub fn split_host_port_reason(addr: &str) -> Result<(&str, &str), &'static str> {
    let Some(colon) = addr.rfind(':') else {
        return Err("missing port in address");
    };
    let (host, j, k) = if addr.starts_with('[') {
        let Some(end) = addr.find(']') else {
            return Err("missing ']' in address");
        };
        if end + 1 != colon {
            return if end + 1 < addr.len() && addr.as_bytes()[end + 1] == b':' {
                Err("too many colons in address")
            } else {
                Err("missing port in address")
            };
        }
        (&addr[1..end], 1, end + 1)
    } else {
        let host = &addr[..colon];
        if host.contains(':') {
            return Err("too many colons in address");
        }
        (host, 0, 0)
    };
    if addr[j..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if addr[k..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok((host, &addr[colon + 1..]))
}

/// The optional `ADDRESS` argument of an HTTP plugin's line (`health`, `ready`,
/// `prometheus`): none, or one `host:port` checked as Go's `net.SplitHostPort` checks it; more is
/// CoreDNS's argument error. Errors carry the `plugin/<name>: ` prefix.
pub fn address_arg(c: &mut Dispenser, plugin: &str) -> Result<Option<String>, SetupError> {
    let args = c.remaining_args();
    match args.as_slice() {
        [] => Ok(None),
        [addr] => {
            split_host_port(addr).map_err(|e| SetupError::plugin(plugin, e))?;
            Ok(Some(addr.clone()))
        }
        _ => Err(SetupError::plugin(plugin, c.arg_err())),
    }
}

/// Serves one path.
pub trait HttpHandler: Send + Sync {
    /// Answer a request for the registered path (any method, as Go's `http.ServeMux` routes).
    fn handle(&self) -> HttpResponse;
}

type Routes = BTreeMap<String, BTreeMap<String, Arc<dyn HttpHandler>>>;

/// The routes of one configuration instance, by listen address then path.
#[derive(Clone, Default)]
pub struct HttpRegistry {
    routes: Arc<Mutex<Routes>>,
}

impl std::fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routes();
        let view: BTreeMap<&String, Vec<&String>> = routes
            .iter()
            .map(|(a, p)| (a, p.keys().collect()))
            .collect();
        f.debug_struct("HttpRegistry")
            .field("routes", &view)
            .finish()
    }
}

impl HttpRegistry {
    /// Serve `path` on `addr` (`host:port`, host may be empty for all addresses). Returns false,
    /// leaving the first handler in place, when the path is already served on that address (as
    /// when two blocks name the same health address).
    pub fn route(&self, addr: &str, path: &str, handler: Arc<dyn HttpHandler>) -> bool {
        let mut routes = match self.routes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let paths = routes.entry(addr.to_string()).or_default();
        if paths.contains_key(path) {
            return false;
        }
        paths.insert(path.to_string(), handler);
        true
    }

    /// Whether `addr` already has a listener in this instance.
    pub fn has_address(&self, addr: &str) -> bool {
        self.routes().contains_key(addr)
    }

    /// A snapshot of every route.
    pub fn routes(&self) -> Routes {
        match self.routes.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
