//! The pprof listener against real sockets: routing and status codes as CoreDNS's mux answers,
//! the listener's startup and shutdown, and profiles that `go tool pprof` reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrodns_plugin::{Lifecycle, Shared};
use ferrodns_plugin_pprof::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

// The binaries' allocator, with the profiling the workspace's jemalloc is built with: the heap
// profile comes from it.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A port free on 127.0.0.1 now (the pprof listener binds it next).
fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Set up `pprof ADDR` in a block and run its startup hook.
async fn start(directive: &str) -> Result<Vec<Arc<dyn Lifecycle>>, String> {
    let shared = Shared::default();
    testkit::setup_with(&DESCRIPTOR, directive, &shared).map_err(|e| e.to_string())?;
    let hooks = shared.lifecycles();
    for h in &hooks {
        h.on_startup().await.map_err(|e| e.to_string())?;
    }
    Ok(hooks)
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// One request over a fresh connection, on a blocking thread.
async fn get(addr: SocketAddr, method: &str, target: &str, body: &str) -> Answer {
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&out[..split]).into_owned();
        let status = head[9..12].parse().unwrap();
        Answer {
            status,
            head,
            body: out[split..].to_vec(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_as_coredns_mux_does() {
    let addr = free_addr();
    let _hooks = start(&format!("pprof {addr}")).await.unwrap();

    let a = get(addr, "GET", "/debug/pprof", "").await;
    assert_eq!(a.status, 302);
    assert!(a.head.contains("Location: /debug/pprof/\r\n"), "{}", a.head);
    assert_eq!(a.body, b"<a href=\"/debug/pprof/\">Found</a>.\n\n");

    let a = get(addr, "GET", "/debug/pprof/", "").await;
    assert_eq!(a.status, 200);
    assert!(a.head.contains("Content-Type: text/html; charset=utf-8"));
    let page = String::from_utf8_lossy(&a.body).into_owned();
    for name in [
        "allocs",
        "block",
        "cmdline",
        "goroutine",
        "heap",
        "mutex",
        "profile",
    ] {
        assert!(
            page.contains(&format!("<a href='{name}?debug=1'>")),
            "{page}"
        );
    }

    for path in ["/", "/debug", "/metrics", "/debug/pprofx"] {
        let a = get(addr, "GET", path, "").await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.body, b"404 page not found\n", "{path}");
    }
    let a = get(addr, "GET", "/debug/pprof/nothing", "").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body, b"Unknown profile\n");
    assert!(a.head.contains("X-Go-Pprof: 1"));

    let a = get(addr, "GET", "//debug/pprof/heap?debug=1", "").await;
    assert_eq!(a.status, 307);
    assert!(a.head.contains("Location: /debug/pprof/heap?debug=1\r\n"));

    let a = get(addr, "GET", "/debug/pprof/cmdline", "").await;
    assert_eq!(a.status, 200);
    let want: Vec<String> = std::env::args().collect();
    assert_eq!(String::from_utf8_lossy(&a.body), want.join("\0"));

    let a = get(addr, "GET", "/debug/pprof/symbol", "").await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (200, &b"num_symbols: 1\n"[..])
    );
    let pc = ferrodns_plugin_pprof::parse as *const () as usize;
    let a = get(addr, "POST", "/debug/pprof/symbol", &format!("{pc:#x}+0")).await;
    let text = String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        text.starts_with(&format!("num_symbols: 1\n{pc:#x} ")),
        "{text}"
    );
    assert!(text.contains("ferrodns_plugin_pprof"), "{text}");

    let a = get(addr, "GET", "/debug/pprof/trace", "").await;
    assert_eq!(a.status, 500);
    assert!(a.body.starts_with(b"Could not enable tracing: "));

    let a = get(addr, "GET", "/debug/pprof/heap?seconds=0", "").await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        b"invalid value for \"seconds\" - must be a positive integer\n"
    );
    let a = get(addr, "GET", "/debug/pprof/goroutine?seconds=1&debug=1", "").await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body, b"seconds and debug params are incompatible\n");

    let a = get(addr, "GET", "/debug/pprof/goroutine?debug=1", "").await;
    assert_eq!(a.status, 200);
    assert!(a.body.starts_with(b"goroutine profile: total "));
    let a = get(addr, "GET", "/debug/pprof/mutex?debug=1", "").await;
    assert!(a.body.starts_with(b"--- mutex:\n"));
    for name in [
        "goroutine",
        "threadcreate",
        "block",
        "mutex",
        "heap",
        "allocs",
    ] {
        let a = get(addr, "GET", &format!("/debug/pprof/{name}"), "").await;
        assert_eq!(
            a.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(a.head.contains(&format!("filename=\"{name}\"")), "{name}");
        assert!(a.body.starts_with(&[0x1f, 0x8b]), "{name}: gzipped");
    }
    let a = get(addr, "GET", "/debug/pprof/block?seconds=1", "").await;
    assert_eq!(a.status, 200);
    assert!(a.head.contains("filename=\"block-delta\""));

    let a = get(addr, "HEAD", "/debug/pprof/cmdline", "").await;
    assert_eq!(a.status, 200);
    assert!(a.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_starts_beside_another_pprof_and_stops_on_shutdown() {
    let addr = free_addr();
    let first = start(&format!("pprof {addr}")).await.unwrap();
    // A reload's new instance starts before the old one stops: same address, both listen.
    let second = start(&format!("pprof {addr}")).await.unwrap();
    for h in &first {
        h.on_shutdown().await;
    }
    assert_eq!(
        get(addr, "GET", "/debug/pprof/cmdline", "").await.status,
        200
    );
    for h in &second {
        h.on_shutdown().await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still listening after shutdown");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_fails_startup_with_go_text() {
    let (captured, _guard) = testkit::capture::capture();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = start(&format!("pprof {addr}")).await.err().unwrap();
    assert_eq!(
        err,
        format!("listen tcp {addr}: bind: address already in use")
    );
    assert_eq!(
        captured.messages("plugin/pprof"),
        vec![format!(
            "Failed to start pprof handler: listen tcp {addr}: bind: address already in use"
        )]
    );
}

/// Busy work in this crate's code and the plugin's, for the CPU profile to catch.
fn burn(stop: &AtomicBool) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1000 {
            n = n.wrapping_add(ferrodns_plugin_pprof::gzip(&n.to_le_bytes()).len() as u64);
        }
    }
    n
}

/// `go tool pprof -traces` on a profile: its text, after asserting Go parsed it.
fn go_pprof(bytes: &[u8], name: &str) -> String {
    let dir = testkit::TempDir::new("pprof-go");
    let path = dir.file(name);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("go")
        .args(["tool", "pprof", "-symbolize=none", "-traces", &path])
        .output()
        .expect("running `go tool pprof` (Go must be installed for this test)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof failed on {name}: {stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_tool_pprof_reads_the_cpu_and_heap_profiles() {
    let addr = free_addr();
    let _hooks = start(&format!("pprof {addr}")).await.unwrap();

    // Memory kept live while heap sampling runs (it started with the listener), allocated
    // by the plugin's own code: at 512 KiB between samples, 64 MiB is sampled for sure.
    let kept: Vec<Vec<u8>> = (0..64)
        .map(|i| ferrodns_plugin_pprof::gzip(&vec![i as u8; 1 << 20]))
        .chain((0..64).map(|_| Vec::with_capacity(1 << 20)))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        std::thread::spawn(move || burn(&stop))
    };
    let cpu = get(addr, "GET", "/debug/pprof/profile?seconds=2", "").await;
    stop.store(true, Ordering::Relaxed);
    burner.join().unwrap();
    assert_eq!(cpu.status, 200, "{}", String::from_utf8_lossy(&cpu.body));
    assert!(cpu.head.contains("filename=\"profile\""));
    let text = go_pprof(&cpu.body, "profile.pb.gz");
    assert!(text.contains("Type: cpu"), "{text}");
    assert!(text.contains("ferrodns_plugin_pprof"), "{text}");

    let heap = get(addr, "GET", "/debug/pprof/heap", "").await;
    assert_eq!(heap.status, 200, "{}", String::from_utf8_lossy(&heap.body));
    let text = go_pprof(&heap.body, "heap.pb.gz");
    assert!(text.contains("Type: inuse_space"), "{text}");
    assert!(text.contains("ferrodns_plugin_pprof"), "{text}");
    drop(kept);
}
