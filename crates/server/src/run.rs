//! A running instance: lifecycle hooks, sockets, serving tasks, reload, and an orderly stop.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use ferrodns_plugin::ListenAddr;

use crate::config::{ConfigError, Instance, ListenerSpec};
use crate::dispatch::Dispatcher;
use crate::handoff::{self, Inherited, Offer, OfferedSocket, SockKind};
use crate::{http, tcp, udp};

/// Serving tasks that stop together.
struct Tasks {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    fn new() -> (Tasks, watch::Receiver<bool>) {
        let (stop, rx) = watch::channel(false);
        (
            Tasks {
                stop,
                handles: Vec::new(),
            },
            rx,
        )
    }

    /// Tell the tasks to stop and wait (briefly) for them.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.handles {
            let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), t).await;
        }
    }
}

/// How long a stopping listener waits for the queries it is answering (CoreDNS's graceful
/// shutdown timeout).
const GRACE: Duration = Duration::from_secs(5);

/// Wait until every one of `total` permits is back (the work holding them is done), or
/// [`GRACE`] passed.
pub(crate) async fn drain(permits: &tokio::sync::Semaphore, total: usize) {
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(GRACE, permits.acquire_many(total)).await;
}

/// Wait until `queue` (work that still hands out `permits`) has finished and then every one of
/// `total` permits is back, or [`GRACE`] passed; past it the queue is given up.
pub(crate) async fn drain_after(
    queue: tokio::task::JoinHandle<()>,
    permits: &tokio::sync::Semaphore,
    total: usize,
) {
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    let abort = queue.abort_handle();
    let both = async {
        let _ = queue.await;
        let _ = permits.acquire_many(total).await;
    };
    if tokio::time::timeout(GRACE, both).await.is_err() {
        abort.abort();
    }
}

/// A listener as it is actually bound.
pub struct Bound {
    /// Its label (`dns://:53`).
    pub label: String,
    /// The UDP address (same port as TCP, also when the Corefile asked for port 0).
    pub addr: SocketAddr,
    /// Banner lines.
    pub banner: Vec<String>,
    /// The address asked for (what a successor matches its listeners against).
    want: SocketAddr,
    /// Duplicates of its sockets, to offer a successor.
    fds: Vec<(SockKind, OwnedFd)>,
    dispatch: Arc<ArcSwap<Dispatcher>>,
    tasks: Tasks,
}

/// The HTTP listeners of an instance.
struct HttpListeners {
    addrs: Vec<(String, SocketAddr)>,
    /// Duplicates of the listeners, by configured address, to offer a successor.
    fds: Vec<(String, OwnedFd)>,
    tasks: Tasks,
}

/// A started instance.
pub struct Server {
    instance: Instance,
    bound: Vec<Bound>,
    http: HttpListeners,
}

/// How often [`keep_timers_armed`] ticks: well under the shortest per-query deadline the
/// plugins register (forward's 2 s read timeout).
const TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// Run for the life of the runtime, waking every [`TIMER_TICK`]. Tokio interrupts its I/O
/// driver (an `eventfd` write, then a wake-up that does no work) whenever a timer is registered
/// while no earlier timer exists, which on a fast miss path is every query's read timeout. With
/// this tick always pending, a query's deadline is never the earliest, so registering it is
/// only a wheel insert: one syscall fewer per forwarded query.
pub async fn keep_timers_armed() {
    let mut tick = tokio::time::interval(TIMER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// How many UDP sockets (and so receive loops) each listener gets.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn listen_err(proto: &str, addr: SocketAddr, e: std::io::Error) -> ConfigError {
    ConfigError(format!("listen {proto} {addr}: {e}"))
}

/// Bind one listener's sockets (one UDP socket per worker and a TCP listener, all on one port),
/// or take them from a predecessor's offer, and start serving them.
fn bind_listener(
    spec: &ListenerSpec,
    inherit: Option<&mut Inherited>,
) -> Result<Bound, ConfigError> {
    let want = spec.bind_addr()?;
    let (udp_sockets, tcp_listener, addr) = match inherit {
        Some(i) if want.port() != 0 => match inherited_sockets(i, want)? {
            Some(s) => s,
            None => bind_sockets(want)?,
        },
        _ => bind_sockets(want)?,
    };
    let dup = |s: &dyn std::os::fd::AsFd, proto: &str| -> Result<OwnedFd, ConfigError> {
        s.as_fd()
            .try_clone_to_owned()
            .map_err(|e| listen_err(proto, addr, e))
    };
    let mut fds = Vec::new();
    for s in &udp_sockets {
        fds.push((SockKind::Udp, dup(s, "udp")?));
    }
    fds.push((SockKind::Tcp, dup(&tcp_listener, "tcp")?));
    let dispatch = Arc::new(ArcSwap::new(spec.dispatcher.clone()));
    let (mut tasks, stop) = Tasks::new();
    for s in udp_sockets {
        let s = ferrodns_pkg::udp::QuietUdpSocket::from_std(s)
            .map_err(|e| listen_err("udp", addr, e))?;
        tasks
            .handles
            .push(tokio::spawn(udp::serve(s, dispatch.clone(), stop.clone())));
    }
    let l =
        tokio::net::TcpListener::from_std(tcp_listener).map_err(|e| listen_err("tcp", addr, e))?;
    tasks
        .handles
        .push(tokio::spawn(tcp::serve(l, dispatch.clone(), stop)));
    Ok(Bound {
        label: spec.label.clone(),
        addr,
        // With port 0 the banner shows the port actually bound.
        banner: spec.banner(addr.port()),
        want,
        fds,
        dispatch,
        tasks,
    })
}

type Sockets = (Vec<std::net::UdpSocket>, std::net::TcpListener, SocketAddr);

/// A predecessor's sockets for `want`: all of its UDP sockets (closing one would drop what sits
/// in its queue), topped up to one per worker, and its TCP listener (or a new one beside it).
/// `None` when it offered none for this address.
fn inherited_sockets(i: &mut Inherited, want: SocketAddr) -> Result<Option<Sockets>, ConfigError> {
    let mut udp_sockets = i.take_udp(want);
    let tcp = i.take_tcp(want);
    let Some(first) = udp_sockets.first() else {
        return Ok(None);
    };
    let addr = first.local_addr().map_err(|e| listen_err("udp", want, e))?;
    for s in &udp_sockets {
        s.set_nonblocking(true)
            .map_err(|e| listen_err("udp", addr, e))?;
    }
    while udp_sockets.len() < workers() {
        udp_sockets.push(udp::bind(addr).map_err(|e| listen_err("udp", addr, e))?);
    }
    let tcp = match tcp {
        Some(l) => {
            l.set_nonblocking(true)
                .map_err(|e| listen_err("tcp", addr, e))?;
            l
        }
        None => tcp::bind(addr).map_err(|e| listen_err("tcp", addr, e))?,
    };
    Ok(Some((udp_sockets, tcp, addr)))
}

/// How often port 0 is tried again when the port the kernel picked for UDP is taken for TCP.
const EPHEMERAL_TRIES: usize = 16;

/// One UDP socket per worker and a TCP listener on one port. With port 0 the kernel picks the
/// port for the first UDP socket; if another process already holds that port for TCP (or
/// without `SO_REUSEPORT`), another is picked.
fn bind_sockets(
    want: SocketAddr,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener, SocketAddr), ConfigError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let first = udp::bind(want).map_err(|e| listen_err("udp", want, e))?;
        let addr = first.local_addr().map_err(|e| listen_err("udp", want, e))?;
        let rest = || -> Result<_, (&'static str, std::io::Error)> {
            let mut udp_sockets = vec![first];
            for _ in 1..workers() {
                udp_sockets.push(udp::bind(addr).map_err(|e| ("udp", e))?);
            }
            let tcp_listener = tcp::bind(addr).map_err(|e| ("tcp", e))?;
            Ok((udp_sockets, tcp_listener))
        };
        match rest() {
            Ok((udp_sockets, tcp_listener)) => return Ok((udp_sockets, tcp_listener, addr)),
            Err((_, e))
                if want.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && tries < EPHEMERAL_TRIES => {}
            Err((proto, e)) => return Err(listen_err(proto, addr, e)),
        }
    }
}

/// Bind (or take from a predecessor) and serve every HTTP address the instance's plugins
/// registered.
fn start_http(
    instance: &Instance,
    mut inherit: Option<&mut Inherited>,
) -> Result<HttpListeners, ConfigError> {
    let (mut tasks, stop) = Tasks::new();
    let mut addrs = Vec::new();
    let mut fds = Vec::new();
    for (addr, paths) in instance.shared.http.routes() {
        let l = match inherit.as_deref_mut().and_then(|i| i.take_http(&addr)) {
            Some(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| ConfigError(format!("listen tcp {addr}: {e}")))?;
                l
            }
            None => http::bind(&addr)?,
        };
        let local = l.local_addr().map_err(|e| ConfigError(e.to_string()))?;
        let dup = std::os::fd::AsFd::as_fd(&l)
            .try_clone_to_owned()
            .map_err(|e| ConfigError(format!("listen tcp {addr}: {e}")))?;
        fds.push((addr.clone(), dup));
        let l = tokio::net::TcpListener::from_std(l).map_err(|e| ConfigError(e.to_string()))?;
        tasks
            .handles
            .push(tokio::spawn(http::serve(l, paths, stop.clone())));
        addrs.push((addr, local));
    }
    Ok(HttpListeners { addrs, fds, tasks })
}

/// Make the instance's `budget` directive (or its absence) the Corefile's limit of the
/// process's memory budget.
fn apply_budget(instance: &Instance) {
    let limit = instance
        .shared
        .state::<ferrodns_plugin::budget::CorefileLimit>()
        .get();
    ferrodns_plugin::budget::global().set_corefile_limit(limit);
}

/// Tell the instance's plugins where its listeners are bound.
fn publish(instance: &Instance, bound: &[Bound]) {
    let addrs = instance
        .listeners
        .iter()
        .filter_map(|spec| {
            let b = bound.iter().find(|b| b.label == spec.label)?;
            Some(ListenAddr {
                host: spec.host.clone(),
                port: spec.port,
                bound: b.addr,
            })
        })
        .collect();
    instance.shared.listening.set(addrs);
}

impl Server {
    /// Run the startup hooks, open every listener and start serving. Must run inside a tokio
    /// runtime.
    pub async fn start(instance: Instance) -> Result<Server, ConfigError> {
        Server::start_with(instance, None).await
    }

    /// [`Server::start`], serving the sockets a predecessor offered wherever it served the same
    /// address (see [`crate::handoff`]) and binding the others.
    pub async fn start_with(
        instance: Instance,
        mut inherit: Option<&mut Inherited>,
    ) -> Result<Server, ConfigError> {
        for hook in instance.shared.lifecycles() {
            hook.on_startup()
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        apply_budget(&instance);
        let mut bound = Vec::new();
        for spec in &instance.listeners {
            match bind_listener(spec, inherit.as_deref_mut()) {
                Ok(b) => bound.push(b),
                Err(e) => {
                    for b in bound {
                        b.tasks.stop().await;
                    }
                    return Err(e);
                }
            }
        }
        let http = start_http(&instance, inherit)?;
        publish(&instance, &bound);
        instance.enable_plugin_metrics();
        Ok(Server {
            instance,
            bound,
            http,
        })
    }

    /// Replace the running instance with `next`, as CoreDNS's restart does, without dropping
    /// a query: the old instance's restart hooks run, then the new one's startup hooks; new
    /// addresses are bound before anything changes; listeners whose address stays keep their
    /// sockets and are handed the new dispatcher; HTTP listeners are opened anew beside the old
    /// ones (SO_REUSEPORT) before those close; removed addresses stop; the old instance's
    /// shutdown hooks run last. On any failure the old instance keeps serving as it was and its
    /// restart-failed hooks run.
    pub async fn reload(&mut self, next: Instance) -> Result<(), ConfigError> {
        let old_hooks = self.instance.shared.lifecycles();
        for h in &old_hooks {
            h.on_restart().await;
        }
        let fail = |e: ConfigError| async {
            for h in &old_hooks {
                h.on_restart_failed().await;
            }
            Err(e)
        };
        for hook in next.shared.lifecycles() {
            if let Err(e) = hook.on_startup().await {
                return fail(ConfigError(e.to_string())).await;
            }
        }
        let mut fresh = Vec::new();
        for spec in &next.listeners {
            if self.bound.iter().any(|b| b.label == spec.label) {
                continue;
            }
            match bind_listener(spec, None) {
                Ok(b) => fresh.push(b),
                Err(e) => {
                    for b in fresh {
                        b.tasks.stop().await;
                    }
                    return fail(e).await;
                }
            }
        }
        let http = match start_http(&next, None) {
            Ok(h) => h,
            Err(e) => {
                for b in fresh {
                    b.tasks.stop().await;
                }
                return fail(e).await;
            }
        };
        // Commit.
        let old_http = std::mem::replace(&mut self.http, http);
        old_http.tasks.stop().await;
        let mut kept = Vec::new();
        for mut b in self.bound.drain(..) {
            match next.listeners.iter().find(|s| s.label == b.label) {
                Some(spec) => {
                    b.dispatch.store(spec.dispatcher.clone());
                    b.banner = spec.banner(b.addr.port());
                    kept.push(b);
                }
                None => b.tasks.stop().await,
            }
        }
        kept.extend(fresh);
        kept.sort_by(|a, b| a.label.cmp(&b.label));
        self.bound = kept;
        publish(&next, &self.bound);
        let old = std::mem::replace(&mut self.instance, next);
        apply_budget(&self.instance);
        self.instance.enable_plugin_metrics();
        for h in old.shared.lifecycles() {
            h.on_shutdown().await;
        }
        self.started().await;
        Ok(())
    }

    /// Run the instance's started hooks (after [`Server::start`], once the banner's zone lines
    /// are out; [`Server::reload`] runs them itself).
    pub async fn started(&self) {
        for h in self.instance.shared.lifecycles() {
            h.on_started().await;
        }
    }

    /// The bound listeners, sorted by label.
    pub fn listeners(&self) -> &[Bound] {
        &self.bound
    }

    /// The HTTP listeners (configured address, bound address).
    pub fn http_listeners(&self) -> &[(String, SocketAddr)] {
        &self.http.addrs
    }

    /// Whether this process serves one of `addresses` (a successor's DNS addresses), so
    /// that a hand-off to it makes sense. A port the kernel picked never matches.
    pub fn shares_any(&self, addresses: &[String]) -> bool {
        self.bound
            .iter()
            .any(|b| b.want.port() != 0 && addresses.contains(&b.want.to_string()))
    }

    /// What this process offers a successor: duplicates of every DNS and HTTP socket, and the
    /// plugins' exported state.
    pub fn handoff_offer(&self) -> std::io::Result<Offer> {
        let mut sockets = Vec::new();
        for b in &self.bound {
            for (kind, fd) in &b.fds {
                sockets.push(OfferedSocket {
                    kind: *kind,
                    key: b.want.to_string(),
                    fd: fd.try_clone()?,
                });
            }
        }
        for (addr, fd) in &self.http.fds {
            sockets.push(OfferedSocket {
                kind: SockKind::Http,
                key: addr.clone(),
                fd: fd.try_clone()?,
            });
        }
        Ok(Offer {
            sockets,
            states: handoff::export_states(&self.instance),
        })
    }

    /// Stop for a successor that took the sockets over: stop reading and accepting (the
    /// successor goes on with the same sockets and their queues), answer every query in hand,
    /// close TCP connections after their answers, then run the shutdown hooks. No lameduck:
    /// the successor already serves.
    pub async fn hand_over(self) {
        let hooks = self.instance.shared.lifecycles();
        self.close().await;
        for h in &hooks {
            h.on_shutdown().await;
        }
    }

    /// The running instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The startup banner's zone lines, as CoreDNS prints them.
    pub fn banner(&self) -> String {
        let mut out = String::new();
        for b in &self.bound {
            for line in &b.banner {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Stop: shutdown hooks, final-shutdown hooks (DNS is still served meanwhile, as during
    /// health's lameduck), then close every listener and wait (briefly) for the serving loops.
    pub async fn stop(self) {
        self.shutdown_hooks().await;
        self.close().await;
    }

    /// The shutdown, then final-shutdown hooks (CoreDNS's shutdown callbacks; health's
    /// lameduck), while everything still serves.
    pub async fn shutdown_hooks(&self) {
        let hooks = self.instance.shared.lifecycles();
        for h in &hooks {
            h.on_shutdown().await;
        }
        for h in &hooks {
            h.on_final_shutdown().await;
        }
    }

    /// Close every listener, after the queries in flight are answered (bounded), and wait
    /// (briefly) for the serving loops.
    pub async fn close(self) {
        self.http.tasks.stop().await;
        for b in self.bound {
            b.tasks.stop().await;
        }
    }
}
