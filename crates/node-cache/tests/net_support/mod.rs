//! Test support for the network side: throw-away network namespaces (needs root and iproute2),
//! iptables inside them, and a log capture in CoreDNS's format. Nothing here touches the
//! host's own namespace: commands run under `ip netns exec` / `ip -n`, and in-process netlink
//! runs on a thread that has joined the namespace.

#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::sched::{CloneFlags, setns};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted (with its links and rules) on drop.
pub struct Ns {
    name: String,
}

fn run(program: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("running {program} {args:?}: {e}"),
    }
}

fn ok(program: &str, args: &[&str]) -> String {
    let o = run(program, args);
    assert!(
        o.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Ns {
    /// A fresh namespace with loopback up.
    pub fn new(tag: &str) -> Ns {
        let name = format!(
            "nctest-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        ok("ip", &["netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`, which must succeed; its standard output.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ok("ip", &a)
    }

    /// `ip -n <ns> <args>`, whatever its outcome.
    pub fn ip_try(&self, args: &[&str]) -> Output {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// `ip netns exec <ns> <argv>`, whatever its outcome.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut a = vec!["netns", "exec", self.name.as_str()];
        a.extend_from_slice(argv);
        run("ip", &a)
    }

    /// The argv prefix that runs iptables (or ip6tables) in this namespace.
    pub fn iptables_command(&self, ipv6: bool) -> Vec<String> {
        let tool = if ipv6 { "ip6tables" } else { "iptables" };
        ["ip", "netns", "exec", &self.name, tool]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The rule lines (`-A ...`) of `iptables-save` (or `ip6tables-save`) in this namespace,
    /// each prefixed with its table: `raw -A PREROUTING ...`.
    pub fn saved_rules(&self, ipv6: bool) -> Vec<String> {
        let tool = if ipv6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        };
        let o = self.exec(&[tool]);
        assert!(
            o.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut table = String::new();
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
            } else if line.starts_with("-A ") {
                out.push(format!("{table} {line}"));
            }
        }
        out
    }

    /// The one-line `ip -o addr show dev <link>` output, or `None` if the link is missing.
    pub fn addrs(&self, link: &str) -> Option<String> {
        let o = self.ip_try(&["-o", "addr", "show", "dev", link]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The `ip -d link show <link>` output, or `None` if the link is missing.
    pub fn link(&self, link: &str) -> Option<String> {
        let o = self.ip_try(&["-d", "link", "show", link]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Whether this kernel can create dummy links (probed inside the namespace).
    pub fn has_dummy_driver(&self) -> bool {
        let ok = self
            .ip_try(&["link", "add", "ncprobe0", "type", "dummy"])
            .status
            .success();
        if ok {
            self.ip(&["link", "del", "ncprobe0"]);
        }
        ok
    }

    /// Run `make()`'s future to completion on a fresh thread that has joined this namespace,
    /// on a current-thread runtime of its own (so every task, netlink socket and child
    /// process of it lives in the namespace), with node-cache's log lines captured in
    /// CoreDNS's format. Returns the output and the captured log.
    pub fn block_on<F, Fut>(&self, make: F) -> (Fut::Output, String)
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        self.block_on_logged(|_| make())
    }

    /// [`Ns::block_on`], with the log capture handed to `make` so that the future can wait for
    /// a line to be logged.
    pub fn block_on_logged<F, Fut>(&self, make: F) -> (Fut::Output, String)
    where
        F: FnOnce(LogBuf) -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => panic!("opening {path}: {e}"),
        };
        std::thread::scope(|s| {
            let joined = s.spawn(move || {
                if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
                    panic!("joining {path}: {e}");
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => panic!("runtime: {e}"),
                };
                let log = LogBuf::default();
                let out = capture(&log, || rt.block_on(make(log.clone())));
                (out, log.text())
            });
            match joined.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
pub struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl LogBuf {
    /// What was logged so far.
    pub fn text(&self) -> String {
        let g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        String::from_utf8_lossy(&g).into_owned()
    }
}

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut g) => g.extend_from_slice(b),
            Err(p) => p.into_inner().extend_from_slice(b),
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Send this thread's log events (DEBUG and up) to `log` until the guard drops.
pub fn capture_here(log: &LogBuf) -> tracing::subscriber::DefaultGuard {
    tracing::subscriber::set_default(subscriber(log))
}

fn subscriber(log: &LogBuf) -> impl tracing::Subscriber + Send + Sync + 'static {
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .event_format(ferrodns_server::logging::CoreDnsFormat)
        .with_writer(move || writer.clone())
        .finish()
}

/// Run `f` with this thread's log events (DEBUG and up) written to `log`, as the binary
/// prints them.
pub fn capture<T>(log: &LogBuf, f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(subscriber(log), f)
}

/// A rule as `iptables-save` prints it (with its table in front, as [`Ns::saved_rules`]).
pub fn saved_form(rule: &ferrodns_node_cache::iptables::Rule) -> String {
    let a = &rule.args;
    // args: -p P -d|-s IP --dport|--sport PORT -j TARGET -m comment --comment TEXT
    let (proto, addr_flag, ip, port_flag, port, target, comment) =
        (&a[1], &a[2], &a[3], &a[4], &a[5], &a[7], &a[11]);
    let prefix = if ip.contains(':') { 128 } else { 32 };
    format!(
        "{} -A {} {addr_flag} {ip}/{prefix} -p {proto} -m {proto} {port_flag} {port} -m comment \
         --comment \"{comment}\" -j {target}",
        rule.table, rule.chain
    )
}
