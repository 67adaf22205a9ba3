//! HTTP routes on shared listeners: several plugins (and several blocks) naming one address get
//! one listener, each serving its own path (`/health`, `/metrics`, `/ready`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferrodns_go::net::split_host_port;

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

/// The optional `ADDRESS` argument of an HTTP plugin's line (`health`, `ready`,
/// `prometheus`): none, or one `host:port` checked as Go's `net.SplitHostPort` checks it (the
/// port is not checked: Go only finds a bad one when it listens); more is
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
