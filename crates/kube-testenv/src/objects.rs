//! Objects given as JSON (`apiVersion`, `kind`, `metadata`, ...): where they live in the REST
//! API, and creating, patching and deleting them. A `status` is written through the status
//! subresource after the object itself, because the API server ignores it on create (no
//! kubelet or controller runs to set a Pod's IPs or a LoadBalancer's ingress).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Client;

/// What to do with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// POST it (then its status, if it has one).
    Create,
    /// A JSON merge patch of the object (then of its status, if given): lists are replaced
    /// whole, `null` removes a field.
    Patch,
    /// DELETE it (at once: grace period 0).
    Delete,
}

impl std::str::FromStr for Action {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Action> {
        Ok(match s {
            "create" => Action::Create,
            "patch" => Action::Patch,
            "delete" => Action::Delete,
            other => bail!("unknown action {other:?} (create, patch or delete)"),
        })
    }
}

/// Kinds without a namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ServiceCIDR",
    "IPAddress",
];

/// The resource name of a kind: its plural, lower case.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("endpoints") {
        lower
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// The collection an object belongs to and its name: (`/api/v1/namespaces/ns/services`,
/// `web`). A namespaced object without `metadata.namespace` is in `default`.
pub fn resource_path(obj: &Value) -> Result<(String, String)> {
    let field = |k: &str| obj.get(k).and_then(Value::as_str);
    let api = field("apiVersion").context("an object without apiVersion")?;
    let kind = field("kind").context("an object without kind")?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .with_context(|| format!("a {kind} without metadata.name"))?;
    let group = if api.contains('/') {
        format!("/apis/{api}")
    } else {
        format!("/api/{api}")
    };
    let collection = if CLUSTER_SCOPED.contains(&kind) {
        format!("{group}/{}", plural(kind))
    } else {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        format!("{group}/namespaces/{ns}/{}", plural(kind))
    };
    Ok((collection, name.to_string()))
}

/// What an object is called in messages: `Service watch/web`.
fn describe(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// How long a request may keep failing with 404 or 409 for a reason that passes by itself: the
/// resources of a just-created CustomResourceDefinition are served a moment later, and a
/// deleted Namespace is gone only once its contents are.
const SETTLE: Duration = Duration::from_secs(20);

impl Client {
    /// Do `action` with `obj`; when the last request it took was sent (the change happened
    /// between then and the return: a watcher may see it before this returns).
    pub fn apply(&self, action: Action, obj: &Value) -> Result<Instant> {
        let (collection, name) = resource_path(obj)?;
        let item = format!("{collection}/{name}");
        let what = describe(obj);
        let status = obj.get("status").filter(|s| !s.is_null());
        let sent = match action {
            Action::Create => {
                let mut body = obj.clone();
                if let Some(map) = body.as_object_mut() {
                    map.remove("status");
                }
                self.expect_ok("POST", &collection, Some(&body), &what)
            }
            Action::Patch => self.expect_ok("PATCH", &item, Some(obj), &what),
            Action::Delete => {
                let path = format!("{item}?gracePeriodSeconds=0");
                return self.expect_ok("DELETE", &path, None, &what);
            }
        }?;
        match status {
            Some(s) => {
                let patch = json!({ "status": s });
                self.expect_ok("PATCH", &format!("{item}/status"), Some(&patch), &what)
            }
            None => Ok(sent),
        }
    }

    /// Send the request until it answers 2xx; 404 (a resource not served yet) and 409 (a
    /// namespace still terminating) are retried for a while. When the request that succeeded
    /// was sent.
    fn expect_ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Instant> {
        let bytes = body.map(serde_json::to_vec).transpose()?;
        let started = Instant::now();
        loop {
            let sent = Instant::now();
            let (status, text) = self
                .request(method, path, bytes.as_deref())
                .with_context(|| format!("{method} {path} ({what})"))?;
            if (200..300).contains(&status) {
                return Ok(sent);
            }
            let transient = status == 404 && method != "DELETE"
                || status == 409 && text.contains("being terminated");
            if !transient || started.elapsed() > SETTLE {
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
                    .unwrap_or(text);
                bail!("{method} {path} ({what}): {status}: {message}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_objects() {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "test"}});
        assert_eq!(
            resource_path(&svc).unwrap(),
            ("/api/v1/namespaces/test/services".into(), "web".into())
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test"}});
        assert_eq!(resource_path(&ns).unwrap().0, "/api/v1/namespaces");
        let es = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1"}});
        assert_eq!(
            resource_path(&es).unwrap().0,
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        );
        assert_eq!(plural("Endpoints"), "endpoints");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("ServiceImport"), "serviceimports");
        assert!(resource_path(&json!({"kind": "Pod"})).is_err());
    }
}
