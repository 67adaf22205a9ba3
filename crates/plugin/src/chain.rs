//! The request handler trait and the chain that runs handlers in `plugin.cfg` order.

use std::sync::Arc;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};

use crate::fast::{FastHook, FastObserver};
use crate::{Reply, Request};

/// A request handler in a server block's chain.
///
/// `serve` either answers (returns a [`Reply`]) or hands the request to the rest of the chain
/// with `next.serve(req).await`, possibly looking at or changing what comes back.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The directive name, as in `plugin.cfg` (used in logs and error texts).
    fn name(&self) -> &'static str;

    /// Serve one request.
    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError>;

    /// The optional synchronous wire-level hook used before the async chain (see [`FastHook`]).
    /// Plugins without one return `None`; the server then never takes the fast path past them.
    fn fast_hook(&self) -> Option<&dyn FastHook> {
        None
    }

    /// Whether this plugin may be skipped on the fast path because it neither answers, changes
    /// nor observes individual requests (for example a plugin whose work is all in setup).
    /// Plugins that log, rewrite or filter requests must leave this `false`.
    fn fast_transparent(&self) -> bool {
        false
    }

    /// A plugin ahead of a fast hook that must see each fast answer without taking part in it
    /// (`prometheus` counts it) returns its observer; the server then still takes the fast
    /// path past it and calls the observer after the hook answered.
    fn fast_observer(&self) -> Option<&dyn FastObserver> {
        None
    }

    /// CoreDNS's `metadata.Provider`: add this plugin's labels to a request before the chain
    /// runs (with [`Request::set_metadata`] or, for a costly value, the lazily evaluated
    /// [`Request::set_metadata_fn`]). The `metadata` plugin calls it for every handler after it
    /// when the request's name is in its zones. Must be quick; the default adds nothing.
    fn provide_metadata(&self, _req: &mut Request) {}

    /// Hand-off (a new process taking over this one's sockets in a restart or an upgrade): the
    /// state this plugin passes to the same plugin of its successor, in a format of its own
    /// that starts with a version of its own. `cache` passes its entries. Called once, while
    /// this instance still serves; `None` (the default) passes nothing.
    fn handoff_export(&self) -> Option<Vec<u8>> {
        None
    }

    /// Hand-off: take what the predecessor's plugin of the same directive, in the block with the
    /// same keys, at the same position among that block's plugins of this directive, exported.
    /// Called before this instance serves. It may come from another version: what does not
    /// parse is ignored, and nothing in it may make the plugin exceed its configured bounds.
    fn handoff_import(&self, _state: &[u8]) {}
}

/// An error from a handler: the rcode the server answers with (when it is SERVFAIL, REFUSED,
/// FORMERR or NOTIMP) and the text the `errors` plugin logs. A handler that already produced a
/// reply and still reports an error (as CoreDNS's rewrite does when it rewrites an error reply)
/// attaches the reply: the server sends it, and the error is logged all the same.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// The rcode the chain returns with this error (usually SERVFAIL).
    pub rcode: ResponseCode,
    /// The error text, conventionally prefixed `plugin/<name>: `.
    pub message: String,
    /// A reply that was written despite the error.
    pub reply: Option<Box<Message>>,
}

impl PluginError {
    /// A SERVFAIL error with the given text.
    pub fn servfail(message: impl Into<String>) -> Self {
        PluginError {
            rcode: ResponseCode::ServFail,
            message: message.into(),
            reply: None,
        }
    }

    /// An error with an explicit rcode.
    pub fn with_rcode(rcode: ResponseCode, message: impl Into<String>) -> Self {
        PluginError {
            rcode,
            message: message.into(),
            reply: None,
        }
    }

    /// Attach the reply that was written despite the error.
    pub fn with_reply(mut self, reply: Message) -> Self {
        self.reply = Some(Box::new(reply));
        self
    }
}

/// A server block's ordered list of handlers.
#[derive(Clone, Default)]
pub struct Chain {
    plugins: Arc<[Arc<dyn Plugin>]>,
}

impl Chain {
    /// A chain from handlers already in `plugin.cfg` order.
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Chain {
            plugins: plugins.into(),
        }
    }

    /// True when the block has no handler (the server answers REFUSED).
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The handlers in order.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// The whole chain as a [`Next`], as the server hands it a request.
    pub fn start(&self) -> Next {
        Next {
            caller: "",
            plugins: self.plugins.clone(),
            at: 0,
        }
    }

    /// Run the whole chain on a request.
    pub async fn serve(&self, req: &mut Request) -> Result<Reply, PluginError> {
        self.start().serve(req).await
    }
}

/// The rest of the chain after the current handler.
///
/// It owns its share of the chain (`'static`, cheap to clone), so a handler may keep it and call
/// the rest of its chain later, from a task of its own: `cache` refreshes entries this way
/// (prefetch, serve_stale) without the query passing through the handlers before it again.
#[derive(Clone)]
pub struct Next {
    caller: &'static str,
    plugins: Arc<[Arc<dyn Plugin>]>,
    at: usize,
}

impl Next {
    /// A `Next` over the given handlers; `caller` names the plugin that calls it, for the "no
    /// next plugin found" error. For tests and for plugins that run a sub-chain.
    pub fn new(caller: &'static str, rest: impl Into<Arc<[Arc<dyn Plugin>]>>) -> Self {
        Next {
            caller,
            plugins: rest.into(),
            at: 0,
        }
    }

    /// The handlers still to run.
    fn rest(&self) -> &[Arc<dyn Plugin>] {
        self.plugins.get(self.at..).unwrap_or_default()
    }

    /// True when there is no handler after the current one.
    pub fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }

    /// The handlers still to run, in order (the `metadata` plugin asks each for its labels).
    pub fn remaining(&self) -> &[Arc<dyn Plugin>] {
        self.rest()
    }

    /// The name of the next handler, if any (`forward`'s `next` only hands a query on to
    /// another `forward`).
    pub fn peek(&self) -> Option<&'static str> {
        self.rest().first().map(|p| p.name())
    }

    /// Hand the request to the next handler. With no handler left this is SERVFAIL with
    /// `plugin/<caller>: no next plugin found`, as in CoreDNS.
    pub async fn serve(self, req: &mut Request) -> Result<Reply, PluginError> {
        let Some(first) = self.rest().first().cloned() else {
            return Err(PluginError::servfail(format!(
                "plugin/{}: no next plugin found",
                self.caller
            )));
        };
        let next = Next {
            caller: first.name(),
            plugins: self.plugins,
            at: self.at + 1,
        };
        // A traced request gets a child span per plugin (CoreDNS's NextOrFailure).
        if let Some(parent) = req.trace_span() {
            let child = parent.child(first.name());
            let parent = req.set_trace_span(Some(child.clone()));
            let out = first.serve(req, next).await;
            child.finish();
            req.set_trace_span(parent);
            return out;
        }
        first.serve(req, next).await
    }
}

#[cfg(test)]
mod trace_hook_tests {
    use std::sync::{Arc, Mutex};

    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::{Protocol, TraceSpan};

    /// Records "open <name> under <parent>" and "finish <name>" events.
    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl TraceSpan for Recorder {
        fn child(&self, name: &'static str) -> Arc<dyn TraceSpan> {
            if let Ok(mut l) = self.log.lock() {
                l.push(format!("open {name} under {}", self.name));
            }
            Arc::new(Recorder {
                name,
                log: self.log.clone(),
            })
        }
        fn finish(&self) {
            if let Ok(mut l) = self.log.lock() {
                l.push(format!("finish {}", self.name));
            }
        }
    }

    struct Pass(&'static str);

    #[async_trait]
    impl Plugin for Pass {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
            if next.is_empty() {
                return Ok(Reply::Rcode(ResponseCode::NoError));
            }
            next.serve(req).await
        }
    }

    fn request() -> Request {
        let mut msg = Message::new(1, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::root(), RecordType::A));
        let addr = "127.0.0.1:53".parse().unwrap_or_else(|_| unreachable!());
        Request::new(
            msg,
            bytes::Bytes::new(),
            addr,
            addr,
            Protocol::Udp,
            "dns://:53".into(),
            ".".into(),
        )
    }

    #[tokio::test]
    async fn a_child_span_per_plugin_only_when_traced() {
        let chain = Chain::new(vec![Arc::new(Pass("a")), Arc::new(Pass("b"))]);
        let mut req = request();
        assert!(chain.serve(&mut req).await.is_ok());
        assert!(req.trace_span().is_none());

        let log = Arc::new(Mutex::new(Vec::new()));
        let root: Arc<dyn TraceSpan> = Arc::new(Recorder {
            name: "root",
            log: log.clone(),
        });
        req.set_trace_span(Some(root));
        assert!(chain.serve(&mut req).await.is_ok());
        let got = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            got,
            [
                "open a under root",
                "open b under a",
                "finish b",
                "finish a"
            ]
        );
        // The request carries its own span again once the chain returned.
        assert!(req.trace_span().is_some_and(|s| {
            s.finish();
            true
        }));
        assert_eq!(log.lock().map(|l| l.len()).unwrap_or_default(), 5);
    }
}
