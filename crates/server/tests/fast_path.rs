//! The fast path: a plugin's synchronous hook answers UDP queries before any decoding, only
//! when every plugin ahead of it in the chain is fast-transparent; TCP and ineligible queries
//! go the async way. The test plugin answers NXDOMAIN from its hook and NOERROR from `serve`,
//! so each reply shows which path produced it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ferrodns_plugin::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, FastObserver, FastSeen, Metrics, Next, Plugin, PluginError, Registry, Reply,
    Request, Setup, SetupError, WireQuery, async_trait,
};
use ferrodns_plugin_test::{FastNxdomain, tcp_exchange, udp_exchange};
use ferrodns_server::{Server, Source, load};

/// Calls next; transparent, an observer, or neither, depending on its argument.
struct Ahead {
    transparent: bool,
    observe: bool,
}

/// What observers saw: `server name next rcode`.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[async_trait]
impl Plugin for Ahead {
    fn name(&self) -> &'static str {
        "ahead"
    }
    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        next.serve(req).await
    }
    fn fast_transparent(&self) -> bool {
        self.transparent
    }
    fn fast_observer(&self) -> Option<&dyn FastObserver> {
        self.observe.then_some(self as &dyn FastObserver)
    }
}

impl FastObserver for Ahead {
    fn observe(&self, q: &WireQuery<'_>, reply: &[u8], seen: &FastSeen<'_>) {
        SEEN.lock().unwrap().push(format!(
            "{} {} {} {}",
            q.server,
            seen.name,
            seen.next,
            reply[3] & 0x0f
        ));
    }
}

fn fast_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(FastNxdomain));
    Ok(())
}

fn ahead_setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let (mut transparent, mut observe) = (false, false);
    while c.next() {
        let arg = if c.next_arg() {
            c.val().to_string()
        } else {
            String::new()
        };
        transparent = arg == "transparent";
        observe = arg == "observe";
    }
    c.add_plugin(Arc::new(Ahead {
        transparent,
        observe,
    }));
    Ok(())
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Descriptor::new("ahead", ahead_setup));
    r.add(Descriptor::new("fast", fast_setup));
    r
}

fn msg(name: &str, qtype: RecordType, id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

async fn start(corefile: &str) -> (Server, SocketAddr) {
    let source = Source {
        filename: "Corefile".into(),
        text: corefile.as_bytes().to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None).unwrap();
    let server = Server::start(instance).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_hook_answers_eligible_udp_queries_only() {
    let (server, addr) = start(".:0 {\n    ahead transparent\n    fast\n}\n").await;
    let rcodes = tokio::task::spawn_blocking(move || {
        let mut with_edns = msg("Fast.Example.", RecordType::A, 4);
        with_edns.set_edns(Edns::new());
        [
            udp_exchange(addr, &msg("Fast.Example.", RecordType::A, 1))
                .metadata
                .response_code,
            tcp_exchange(addr, &msg("fast.example.", RecordType::A, 2))
                .metadata
                .response_code,
            udp_exchange(addr, &msg("fast.example.", RecordType::DS, 3))
                .metadata
                .response_code,
            udp_exchange(addr, &with_edns).metadata.response_code,
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        rcodes,
        [
            ResponseCode::NXDomain, // UDP: the hook
            ResponseCode::NoError,  // TCP: never the fast path
            ResponseCode::NoError,  // DS: zone choice differs, slow path
            ResponseCode::NXDomain, // EDNS version 0: the hook
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_ahead_that_is_not_transparent_keeps_the_slow_path() {
    let (server, addr) = start(".:0 {\n    ahead\n    fast\n}\n").await;
    let rcode = tokio::task::spawn_blocking(move || {
        udp_exchange(addr, &msg("fast.example.", RecordType::A, 1))
            .metadata
            .response_code
    })
    .await
    .unwrap();
    assert_eq!(rcode, ResponseCode::NoError);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_ahead_keeps_the_fast_path_and_sees_each_fast_answer() {
    let (server, addr) = start(".:0 {\n    ahead observe\n    fast\n}\n").await;
    let label = server.listeners()[0].label.clone();
    let rcodes = tokio::task::spawn_blocking(move || {
        [
            udp_exchange(addr, &msg("One.Example.", RecordType::A, 1))
                .metadata
                .response_code,
            tcp_exchange(addr, &msg("two.example.", RecordType::A, 2))
                .metadata
                .response_code,
        ]
    })
    .await
    .unwrap();
    // UDP went through the hook, TCP through serve; only the fast answer was observed.
    assert_eq!(rcodes, [ResponseCode::NXDomain, ResponseCode::NoError]);
    assert_eq!(
        SEEN.lock().unwrap().clone(),
        vec![format!("{label} one.example. fast 3")]
    );
    server.stop().await;
}
