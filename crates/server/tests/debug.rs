//! `debug` end to end: a block with it does not recover from a panic in its chain; the process
//! ends as an unrecovered Go panic does (message and stack on stderr, exit status 2). The test
//! runs the server in a child process (this test binary, re-run with an environment flag).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Registry, Reply, Request, Setup, SetupError,
    async_trait,
};
use ferrodns_server::{Server, Source, load};

const CHILD: &str = "FERRODNS_TEST_DEBUG_CHILD";

struct Boom;

#[async_trait]
impl Plugin for Boom {
    fn name(&self) -> &'static str {
        "boom"
    }
    async fn serve(&self, req: &mut Request, _next: Next) -> Result<Reply, PluginError> {
        panic!("boom on {}", req.name_lower());
    }
}

fn boom(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.add_plugin(Arc::new(Boom));
    Ok(())
}

fn debug(c: &mut Setup<'_>) -> Result<(), SetupError> {
    while c.next() {}
    c.set_debug(true);
    Ok(())
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Descriptor::new("debug", debug));
    r.add(Descriptor::new("boom", boom));
    r
}

/// The child: serve `.:0 { debug boom }`, send one query; the process must end while the
/// query is served. Exits 0 if it did not.
async fn child() {
    let source = Source {
        filename: "Corefile".into(),
        text: b".:0 {\n    debug\n    boom\n}\n".to_vec(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None).expect("load");
    let server = Server::start(instance).await.expect("start");
    let addr = SocketAddr::from(([127, 0, 0, 1], server.listeners()[0].addr.port()));
    tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("panic.example.").unwrap(),
            RecordType::A,
        ));
        s.send_to(&m.to_vec().unwrap(), addr).unwrap();
        let mut buf = [0u8; 512];
        let _ = s.recv_from(&mut buf);
    })
    .await
    .unwrap();
    std::process::exit(0);
}

#[test]
fn a_panic_under_debug_ends_the_process() {
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(child());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "a_panic_under_debug_ends_the_process",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("panic: boom on panic.example."),
        "stderr: {stderr}"
    );
}

#[test]
fn debug_lines_follow_the_corefile_loaded_last() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let load_text = |text: &str| {
        let source = Source {
            filename: "Corefile".into(),
            text: text.as_bytes().to_vec(),
            default_port: "53".into(),
        };
        load(source, &registry(), &Metrics::new(), None).expect("load");
    };
    load_text(".:0 {\n    debug\n    boom\n}\n");
    assert!(ferrodns_server::logging::debug_enabled());
    // A reload to a Corefile without debug turns the lines off again, as CoreDNS's Clear.
    load_text(".:0 {\n    boom\n}\n");
    assert!(!ferrodns_server::logging::debug_enabled());
    // debug in any block of any listener turns them on.
    load_text("a.example:0 {\n    boom\n}\nb.example:1 {\n    debug\n    boom\n}\n");
    assert!(ferrodns_server::logging::debug_enabled());
}
