//! A DNS load generator that accounts for every query.
//!
//! It offers a steady rate of UDP queries (paced every millisecond, spread over several sockets)
//! and of pipelined TCP queries (on many connections, each re-opened at once when the server
//! closes it, with its unanswered queries sent again), and counts for each query whether it was
//! answered within the timeout (and whether slowly), or lost (and whether its answer came late).
//! See the crate's README for the definitions and the `ferrodns-load` binary.
//!
//! ```no_run
//! # async fn f() -> Result<(), ferrodns_loadgen::LoadError> {
//! use std::time::Duration;
//! let mut spec = ferrodns_loadgen::LoadSpec::new("127.0.0.1:53".parse().unwrap());
//! spec.udp_rate = 20_000.0;
//! spec.duration = Some(Duration::from_secs(5));
//! let report = ferrodns_loadgen::run(spec, std::future::pending()).await?;
//! assert_eq!(report.total.sent, report.total.answered + report.total.lost);
//! println!("{report}");
//! # Ok(()) }
//! ```

pub mod background;
pub mod lookup;
mod names;
mod report;
mod stats;
mod tcp;
mod udp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, watch};

pub use report::{Counts, Latency, Rcodes, Report};

use names::Template;
use stats::Stats;

/// How each query picks its name from [`LoadSpec::names`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NameOrder {
    /// Uniformly at random.
    #[default]
    Random,
    /// In turn (each sender starts at its own offset).
    RoundRobin,
}

/// What to send, where, how fast and for how long. [`LoadSpec::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The server.
    pub target: SocketAddr,
    /// UDP queries per second, all sockets together; 0 sends no UDP. Default 1000.
    pub udp_rate: f64,
    /// UDP sockets the rate is spread over, each with its own 16-bit ID space; enough that an
    /// ID is not reused within the timeout (65536 IDs per socket). Default 16.
    pub udp_sockets: usize,
    /// TCP connections; 0 sends no TCP. Default 0.
    pub tcp_connections: usize,
    /// Queries per second on each TCP connection, pipelined. Default 5.
    pub tcp_rate: f64,
    /// Names to query (absolute or not; all are taken as absolute). Default
    /// [`LoadSpec::pattern`]`(100, "example.org.")`.
    pub names: Vec<String>,
    /// Order in which names are used. Default random.
    pub order: NameOrder,
    /// Query type. Default A.
    pub qtype: RecordType,
    /// Add an EDNS OPT record advertising this UDP payload size. Default none.
    pub edns: Option<u16>,
    /// Stop after this long, if the `stop` future has not completed first. Default none.
    pub duration: Option<Duration>,
    /// A query unanswered this long after it was sent is lost. Default 2 s.
    pub timeout: Duration,
    /// An answer that took longer than this is slow. Default 1 s.
    pub slow: Duration,
    /// Print `[INFO] load: running` to stderr once the first answer came back (a readiness
    /// signal for whoever started the load). Default false.
    pub announce: bool,
    /// Print a progress line to stderr every second. Default false.
    pub progress: bool,
}

impl LoadSpec {
    /// The defaults listed on each field, aimed at `target`.
    pub fn new(target: SocketAddr) -> Self {
        LoadSpec {
            target,
            udp_rate: 1000.0,
            udp_sockets: 16,
            tcp_connections: 0,
            tcp_rate: 5.0,
            names: Self::pattern(100, "example.org."),
            order: NameOrder::Random,
            qtype: RecordType::A,
            edns: None,
            duration: None,
            timeout: Duration::from_secs(2),
            slow: Duration::from_secs(1),
            announce: false,
            progress: false,
        }
    }

    /// `q<i>.<zone>` for i in 0..count.
    pub fn pattern(count: usize, zone: &str) -> Vec<String> {
        names::pattern(count, zone)
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A name in the spec is not a valid domain name.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec is inconsistent (no names, a negative rate, ...).
    #[error("invalid load spec: {0}")]
    InvalidSpec(String),
    /// A UDP socket could not be bound.
    #[error("binding a UDP socket: {0}")]
    Bind(#[source] std::io::Error),
    /// A [`background`] load could not set its thread up or build its runtime.
    #[error("starting the load's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// State every task shares.
pub(crate) struct Shared {
    templates: Vec<Template>,
    order: NameOrder,
    target: SocketAddr,
    start: Instant,
    timeout_us: u64,
    slow_us: u64,
    running: AtomicBool,
    running_notify: Notify,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Called for every answer in time; the first one makes the readiness line print.
    fn answered(&self) {
        if !self.running.load(Ordering::Relaxed) && !self.running.swap(true, Ordering::Relaxed) {
            self.running_notify.notify_one();
        }
    }

    fn picker(&self, offset: usize) -> Picker {
        let mut rng = SmallRng::from_os_rng();
        let n = self.templates.len();
        let next = if offset == 0 {
            0
        } else {
            rng.random_range(0..n)
        };
        Picker {
            n,
            next,
            order: self.order,
            rng,
        }
    }
}

/// Chooses the next name for one sender.
pub(crate) struct Picker {
    n: usize,
    next: usize,
    order: NameOrder,
    rng: SmallRng,
}

impl Picker {
    fn next(&mut self) -> u32 {
        match self.order {
            NameOrder::Random => self.rng.random_range(0..self.n) as u32,
            NameOrder::RoundRobin => {
                let i = self.next;
                self.next = (i + 1) % self.n;
                i as u32
            }
        }
    }
}

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (USER_HZ 100).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Runs the load described by `spec` until `stop` completes or `spec.duration` passes, then
/// waits for the outstanding queries (up to `spec.timeout` after the last one was sent) and
/// returns what happened to every query.
///
/// Needs a tokio runtime (any flavour; a current-thread one is enough for 20,000 q/s). Errors
/// only when the spec is invalid or a UDP socket cannot be bound; a server that does not answer
/// shows as lost queries, one that refuses TCP connections as `tcp_connect_failures`.
pub async fn run(spec: LoadSpec, stop: impl Future<Output = ()>) -> Result<Report, LoadError> {
    if spec.names.is_empty() {
        return Err(LoadError::InvalidSpec("no names to query".into()));
    }
    if spec.names.len() > u32::MAX as usize {
        return Err(LoadError::InvalidSpec("too many names".into()));
    }
    if !(spec.udp_rate >= 0.0 && spec.udp_rate.is_finite()) {
        return Err(LoadError::InvalidSpec(format!(
            "UDP rate {}",
            spec.udp_rate
        )));
    }
    if spec.tcp_connections > 0 && !(spec.tcp_rate > 0.0 && spec.tcp_rate.is_finite()) {
        return Err(LoadError::InvalidSpec(format!(
            "TCP rate {}",
            spec.tcp_rate
        )));
    }
    if spec.udp_rate > 0.0 && spec.udp_sockets == 0 {
        return Err(LoadError::InvalidSpec(
            "UDP rate without UDP sockets".into(),
        ));
    }
    if spec.timeout.is_zero() {
        return Err(LoadError::InvalidSpec("zero timeout".into()));
    }
    let templates = spec
        .names
        .iter()
        .map(|n| Template::build(n, spec.qtype, spec.edns))
        .collect::<Result<Vec<_>, _>>()?;

    let cpu0 = cpu_seconds();
    let shared = Arc::new(Shared {
        templates,
        order: spec.order,
        target: spec.target,
        start: Instant::now(),
        timeout_us: spec.timeout.as_micros() as u64,
        slow_us: spec.slow.as_micros() as u64,
        running: AtomicBool::new(false),
        running_notify: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let udp = if spec.udp_rate > 0.0 {
        Some(udp::start(
            shared.clone(),
            spec.udp_sockets,
            spec.udp_rate,
            stop_rx.clone(),
        )?)
    } else {
        None
    };
    let tcp_stats = Arc::new(Mutex::new(Stats::new()));
    let tcp_tasks: Vec<_> = (0..spec.tcp_connections)
        .map(|i| {
            tokio::spawn(tcp::connection(
                shared.clone(),
                i,
                spec.tcp_rate,
                tcp_stats.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let progress = (spec.progress || spec.announce).then(|| {
        let shards = udp.as_ref().map(|u| u.shards.clone()).unwrap_or_default();
        tokio::spawn(progress(
            shared.clone(),
            shards,
            tcp_stats.clone(),
            spec.announce,
            spec.progress,
        ))
    });

    match spec.duration {
        Some(d) => {
            tokio::select! {
                _ = stop => {}
                _ = tokio::time::sleep(d) => {}
            }
        }
        None => stop.await,
    }
    let elapsed = shared.start.elapsed();
    let _ = stop_tx.send(true);

    let (udp_stats, udp_local_drops) = match udp {
        Some(u) => u.finish().await,
        None => (Stats::new(), Some(0)),
    };
    for t in tcp_tasks {
        let _ = t.await;
    }
    if let Some(p) = progress {
        p.abort();
    }
    let drain = shared.start.elapsed() - elapsed;
    let tcp_stats = tcp_stats.lock().unwrap().clone();

    let mut total = udp_stats.clone();
    total.merge(&tcp_stats);
    let offered_rate = spec.udp_rate + spec.tcp_connections as f64 * spec.tcp_rate;
    Ok(Report {
        elapsed,
        drain,
        offered_rate,
        send_rate: total.sent as f64 / elapsed.as_secs_f64().max(1e-9),
        total: total.counts(),
        udp: udp_stats.counts(),
        tcp: tcp_stats.counts(),
        udp_skipped: udp_stats.skipped,
        send_errors: udp_stats.send_errors,
        udp_local_drops,
        tcp_reconnects: tcp_stats.reconnects,
        tcp_resends: tcp_stats.resends,
        tcp_connect_failures: tcp_stats.connect_failures,
        cpu_seconds: cpu0.zip(cpu_seconds()).map(|(a, b)| b - a),
    })
}

/// Prints the readiness line once the first answer came back, and a progress line every second.
async fn progress(
    shared: Arc<Shared>,
    shards: Vec<Arc<Mutex<udp::Shard>>>,
    tcp: Arc<Mutex<Stats>>,
    announce: bool,
    lines: bool,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(shared.start) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut announced = !announce;
    loop {
        tokio::select! {
            _ = shared.running_notify.notified(), if !announced => {
                announced = true;
                eprintln!("[INFO] load: running");
            }
            _ = tick.tick(), if lines => {
                let mut s = Stats::new();
                for sh in &shards {
                    s.merge(&sh.lock().unwrap().stats);
                }
                let t = tcp.lock().unwrap();
                s.merge(&t);
                let secs = shared.start.elapsed().as_secs_f64();
                eprintln!(
                    "[INFO] load: t={:.0}s sent={} answered={} lost={} slow={} late={} mismatched={} outstanding={} rate={:.0}/s tcp_reconnects={} tcp_resends={}",
                    secs,
                    s.sent,
                    s.answered,
                    s.lost,
                    s.slow,
                    s.late,
                    s.mismatched,
                    s.sent.saturating_sub(s.answered + s.lost),
                    s.sent as f64 / secs,
                    s.reconnects,
                    s.resends,
                );
            }
            else => return,
        }
    }
}
