//! `ferrodns-load`: runs [`ferrodns_loadgen::run`] and prints its report as one JSON object.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrodns_loadgen::{LoadSpec, NameOrder};

const USAGE: &str = "\
usage: ferrodns-load --target ADDR:PORT [options]

Offers a steady DNS query load and prints one JSON report on stdout when it stops:
at EOF on stdin, on SIGTERM or SIGINT, or after --duration.

  --target ADDR:PORT   server to query (required)
  --udp-rate Q         UDP queries per second, 0 for none (1000)
  --udp-sockets N      UDP sockets the rate is spread over (16)
  --tcp-conns N        TCP connections, 0 for none (0)
  --tcp-rate Q         queries per second on each TCP connection (5)
  --names N            query q0.ZONE .. q<N-1>.ZONE (100)
  --zone ZONE          zone of the generated names (example.org.)
  --name NAME          query NAME (repeatable; replaces --names/--zone)
  --names-file FILE    query the names in FILE, one per line, each optionally followed
                       by its type (`name AAAA`, dnsperf's format)
  --order ORDER        random | round-robin (random)
  --qtype TYPE         query type (A)
  --edns SIZE          add an OPT record with this UDP payload size
  --duration DUR       stop after DUR (10s, 500ms, 2m; plain number = seconds)
  --timeout DUR        unanswered this long = lost (2s)
  --slow DUR           answered slower than this = slow (1s)
  --ignore-stdin       do not stop at EOF on stdin
  --threads N          runtime worker threads; 1 = current-thread runtime (1)
  --quiet              no progress lines on stderr (the readiness line stays)
";

fn duration(s: &str) -> Result<Duration> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => bail!("bad duration unit in {s:?}"),
    };
    Duration::try_from_secs_f64(secs).with_context(|| format!("bad duration {s:?}"))
}

struct Cli {
    spec: LoadSpec,
    ignore_stdin: bool,
    threads: usize,
}

fn parse(args: Vec<String>) -> Result<Cli> {
    let mut target: Option<SocketAddr> = None;
    let mut spec = LoadSpec::new(([127, 0, 0, 1], 53).into());
    spec.progress = true;
    spec.announce = true;
    let mut count = 100;
    let mut zone = "example.org.".to_string();
    let mut list: Vec<String> = Vec::new();
    let mut ignore_stdin = false;
    let mut threads = 1;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let flag = flag.trim_start_matches('-').to_string();
        if matches!(flag.as_str(), "h" | "help") {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "ignore-stdin" {
            ignore_stdin = true;
            continue;
        }
        if flag == "quiet" {
            spec.progress = false;
            continue;
        }
        let v = it
            .next()
            .with_context(|| format!("--{flag} needs a value"))?;
        let bad = || format!("bad value for --{flag}: {v:?}");
        match flag.as_str() {
            "target" => target = Some(v.parse().with_context(bad)?),
            "udp-rate" => spec.udp_rate = v.parse().with_context(bad)?,
            "udp-sockets" => spec.udp_sockets = v.parse().with_context(bad)?,
            "tcp-conns" => spec.tcp_connections = v.parse().with_context(bad)?,
            "tcp-rate" => spec.tcp_rate = v.parse().with_context(bad)?,
            "names" => count = v.parse().with_context(bad)?,
            "zone" => zone = v,
            "name" => list.push(v),
            "names-file" => {
                let text = std::fs::read_to_string(&v).with_context(|| format!("reading {v}"))?;
                list.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from),
                );
            }
            "order" => {
                spec.order = match v.as_str() {
                    "random" => NameOrder::Random,
                    "round-robin" | "roundrobin" => NameOrder::RoundRobin,
                    _ => bail!(bad()),
                }
            }
            "qtype" => {
                spec.qtype = v
                    .to_ascii_uppercase()
                    .parse()
                    .map_err(|_| anyhow::anyhow!(bad()))?
            }
            "edns" => spec.edns = Some(v.parse().with_context(bad)?),
            "duration" => spec.duration = Some(duration(&v)?),
            "timeout" => spec.timeout = duration(&v)?,
            "slow" => spec.slow = duration(&v)?,
            "threads" => threads = v.parse().with_context(bad)?,
            _ => bail!("unknown flag --{flag}\n{USAGE}"),
        }
    }
    spec.target = target.context("--target is required")?;
    spec.names = if list.is_empty() {
        LoadSpec::pattern(count, &zone)
    } else {
        list
    };
    Ok(Cli {
        spec,
        ignore_stdin,
        threads,
    })
}

/// Completes at EOF on stdin (unless ignored), on SIGTERM or on SIGINT.
async fn stop_signal(ignore_stdin: bool) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, eof) = tokio::sync::oneshot::channel::<()>();
    if !ignore_stdin {
        // A plain thread: a blocking read must not keep the runtime from shutting down.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
    } else {
        std::mem::forget(tx);
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = eof => {}
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = parse(std::env::args().skip(1).collect())?;
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    let report = rt.block_on(async {
        let ignore = cli.ignore_stdin;
        let stop = async move {
            if let Err(e) = stop_signal(ignore).await {
                eprintln!("[ERROR] load: signals: {e}");
                std::future::pending::<()>().await;
            }
        };
        ferrodns_loadgen::run(cli.spec, stop).await
    })?;
    println!("{report}");
    eprintln!(
        "[INFO] load: done sent={} answered={} lost={} slow={} late={}",
        report.total.sent,
        report.total.answered,
        report.total.lost,
        report.total.slow,
        report.total.late
    );
    Ok(())
}
