//! `ferrodns-testdns`: host lookups from concurrent loops, made the way Go's pure-Go resolver
//! makes them, with the count and latency of those that completed; see
//! [`ferrodns_loadgen::lookup`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrodns_loadgen::lookup::{self, ResolvConf, TestDnsSpec};

const USAGE: &str = "\
usage: ferrodns-testdns [options]

Looks a host name up over and over from concurrent loops, the way Go's pure-Go resolver does
(resolv.conf's search list under ndots, A and AAAA at once, each query from a new UDP port,
timeout and attempts per nameserver, TCP after a truncated reply), and reports how many
lookups completed and how long they took.

  -host NAME     name to look up (kube-dns.kube-system)
  -c N           concurrent lookup loops (100)
  -d DUR         how long to run: 15s, 500ms, 2m, 1m30s; plain number = seconds (15s)
  -l MS          a lookup slower than MS milliseconds is slow (5000)
  -resolv FILE   resolver configuration: nameserver, search, domain, options ndots:N
                 timeout:N attempts:N rotate single-request use-vc (/etc/resolv.conf)
  -server ADDR   query ADDR (IP:PORT, or IP for port 53) instead of the file's nameservers;
                 repeatable
  -threads N     tokio worker threads (1)
  -json          print the report as one JSON object on stdout
  -quiet         no progress lines on stderr (the readiness line stays)

Flags take one dash or two, and `-flag=value` too. On stderr: `[INFO] testdns: running` once
the first lookup succeeded, then `[INFO] testdns: 3s, 24000 lookups, 0 failed` every second.
On stdout at the end:
  lookups N (R/s), failed F, slow(>MSms) S, latency p50 Xms p90 Xms p99 Xms max Xms
or with -json:
  {\"lookups\":N,\"failed\":F,\"total\":T,\"per_second\":R,\"slow\":S,\"limit_ms\":MS,
   \"p50_ms\":X,\"p90_ms\":X,\"p99_ms\":X,\"max_ms\":X,\"duration_s\":D}
Lookups still in flight when the duration ends are dropped and not counted.
";

struct Cli {
    spec: TestDnsSpec,
    resolv: String,
    servers: Vec<SocketAddr>,
    threads: usize,
    json: bool,
}

fn server_addr(v: &str) -> Result<SocketAddr> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = v
        .parse()
        .with_context(|| format!("bad value for -server: {v:?} (want IP:PORT or IP)"))?;
    Ok(SocketAddr::new(ip, 53))
}

fn parse(args: Vec<String>) -> Result<Option<Cli>> {
    let mut spec = TestDnsSpec::new(ResolvConf::default());
    spec.progress = true;
    spec.announce = true;
    let mut resolv = "/etc/resolv.conf".to_string();
    let mut servers = Vec::new();
    let mut threads = 1usize;
    let mut json = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix('-') else {
            bail!("unexpected argument {arg:?}\n{USAGE}");
        };
        let flag = flag.strip_prefix('-').unwrap_or(flag);
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (flag, None),
        };
        match flag {
            "h" | "help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "json" | "quiet" if inline.is_none() => {
                if flag == "json" {
                    json = true;
                } else {
                    spec.progress = false;
                }
                continue;
            }
            _ => {}
        }
        let v = match inline {
            Some(v) => v,
            None => it
                .next()
                .with_context(|| format!("-{flag} needs a value"))?,
        };
        let bad = || format!("bad value for -{flag}: {v:?}");
        match flag {
            "host" => spec.host = v,
            "c" => spec.concurrency = v.parse().with_context(bad)?,
            "d" => spec.duration = lookup::parse_duration(&v)?,
            "l" => spec.slow_limit = Duration::from_millis(v.parse().with_context(bad)?),
            "resolv" => resolv = v,
            "server" => servers.push(server_addr(&v)?),
            "threads" => threads = v.parse().with_context(bad)?,
            _ => bail!("unknown flag -{flag}\n{USAGE}"),
        }
    }
    if spec.concurrency == 0 {
        bail!("-c must be at least 1");
    }
    if threads == 0 {
        bail!("-threads must be at least 1");
    }
    if spec.duration.is_zero() {
        bail!("-d must be more than zero");
    }
    Ok(Some(Cli {
        spec,
        resolv,
        servers,
        threads,
        json,
    }))
}

fn main() -> Result<()> {
    let Some(mut cli) = parse(std::env::args().skip(1).collect())? else {
        return Ok(());
    };
    let mut conf = ResolvConf::load(&cli.resolv)?;
    if !cli.servers.is_empty() {
        conf.nameservers = std::mem::take(&mut cli.servers);
    } else if conf.nameservers.is_empty() {
        bail!(
            "{}: no usable nameserver line (and no -server given)",
            cli.resolv
        );
    }
    cli.spec.conf = conf;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_all()
        .build()
        .context("building the runtime")?;
    let report = rt.block_on(lookup::run(cli.spec))?;
    if cli.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    Ok(())
}
