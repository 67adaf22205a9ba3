//! Reading `cache [TTL] [ZONES...] { ... }` into a [`Config`], one parser per option of the
//! block, with CoreDNS's defaults and error texts (setup.go of the cache plugin).

use std::time::Duration;

use ferrodns_go::time::SignedDuration;
use ferrodns_plugin::corefile::{normalize_exact, normalize_name};
use ferrodns_plugin::{Dispenser, SetupError};

/// Default capacity of each of the two caches.
pub const DEFAULT_CAP: usize = 10000;
/// Default maximum TTL of positive answers.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// Default minimum TTL (both caches) and the TTL of empty replies.
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// Default maximum TTL of negative answers.
pub const MAX_NTTL: Duration = Duration::from_secs(1800);

/// Everything the Corefile says about one cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Zones the cache serves (lowercased, fully qualified).
    pub zones: Vec<String>,
    /// Success capacity, maximum TTL, minimum TTL.
    pub pcap: usize,
    /// Maximum TTL of the success cache.
    pub pttl: Duration,
    /// Minimum TTL of the success cache.
    pub minpttl: Duration,
    /// Denial capacity.
    pub ncap: usize,
    /// Maximum TTL of the denial cache.
    pub nttl: Duration,
    /// Minimum TTL of the denial cache.
    pub minnttl: Duration,
    /// How long SERVFAIL replies are cached (0: not at all).
    pub failttl: Duration,
    /// Prefetch: hits needed (0: off).
    pub prefetch: u64,
    /// Prefetch: the window in which hits count.
    pub duration: Duration,
    /// Prefetch: the share of the original TTL left when a prefetch starts.
    pub percentage: u64,
    /// Serve stale entries up to this long after expiry (0: off).
    pub stale_up_to: Duration,
    /// Verify stale entries with the upstream before serving them.
    pub verify_stale: bool,
    /// How long to wait for that verification (0: the upstream's own timeout).
    pub verify_stale_timeout: Duration,
    /// Prefer a stale positive answer over a fresher negative one.
    pub prefer_positive: bool,
    /// TTL of stale replies (0: CoreDNS's default of 0).
    pub stale_ttl: Duration,
    /// After a failed refresh of a stale entry, wait this long before trying again.
    pub stale_recheck: Duration,
    /// Zones whose positive answers are not cached.
    pub pexcept: Vec<String>,
    /// Zones whose negative answers are not cached.
    pub nexcept: Vec<String>,
    /// Serve the original TTL on hits.
    pub keepttl: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            zones: vec![".".to_string()],
            pcap: DEFAULT_CAP,
            pttl: MAX_TTL,
            minpttl: MIN_TTL,
            ncap: DEFAULT_CAP,
            nttl: MAX_NTTL,
            minnttl: MIN_TTL,
            failttl: MIN_TTL,
            prefetch: 0,
            duration: Duration::from_secs(60),
            percentage: 10,
            stale_up_to: Duration::ZERO,
            verify_stale: false,
            verify_stale_timeout: Duration::ZERO,
            prefer_positive: false,
            stale_ttl: Duration::ZERO,
            stale_recheck: Duration::ZERO,
            pexcept: Vec::new(),
            nexcept: Vec::new(),
            keepttl: false,
        }
    }
}

/// An error of the parse, before the `plugin/cache: ` prefix.
type Err = SetupError;

fn plain(msg: impl Into<String>) -> Err {
    SetupError::new(msg.into())
}

/// Go's `strconv.Atoi`, with its error text.
pub fn atoi(s: &str) -> Result<i64, Err> {
    ferrodns_go::strconv::atoi(s).map_err(plain)
}

/// A Go duration that may be negative: `(negative, magnitude)`, with Go's error text.
pub fn go_duration(s: &str) -> Result<(bool, Duration), Err> {
    SignedDuration::parse(s)
        .map(|d| (d.negative, d.abs))
        .map_err(|e| plain(e.to_string()))
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.max(0) as u64)
}

/// Parse every `cache` directive of a block (only one is allowed). `block_zones` are the
/// block's zone names, the default zones.
pub fn parse(c: &mut Dispenser, block_zones: &[String]) -> Result<Config, Err> {
    let mut ca = Config::default();
    let mut seen = 0;
    while c.next() {
        if seen > 0 {
            return Err(plain("this plugin can only be used once per Server Block"));
        }
        seen += 1;
        let origins = parse_head(c, block_zones, &mut ca)?;
        let mut stale_configured = false;
        let mut policy_configured = false;
        while c.next_block() {
            match c.val() {
                "success" => parse_success(c, &mut ca)?,
                "denial" => parse_denial(c, &mut ca)?,
                "prefetch" => parse_prefetch(c, &mut ca)?,
                "serve_stale" => {
                    stale_configured = true;
                    parse_serve_stale(c, &mut ca)?;
                }
                "serve_stale_policy" => {
                    parse_serve_stale_policy(c, &mut ca, &mut policy_configured)?;
                }
                "servfail" => parse_servfail(c, &mut ca)?,
                "disable" => parse_disable(c, &mut ca)?,
                "keepttl" => parse_keepttl(c, &mut ca)?,
                _ => return Err(c.arg_err()),
            }
        }
        if policy_configured && !stale_configured {
            return Err(plain("serve_stale_policy requires serve_stale"));
        }
        ca.zones = origins;
    }
    Ok(ca)
}

/// `cache [TTL] [ZONES...]`: the TTL (both caches' maximum) into `cfg`; the zones are returned
/// (the block's when none are given).
fn parse_head(
    c: &mut Dispenser,
    block_zones: &[String],
    cfg: &mut Config,
) -> Result<Vec<String>, Err> {
    let mut args = c.remaining_args();
    if let Some(first) = args.first()
        && let Ok(ttl) = atoi(first)
    {
        if ttl <= 0 {
            return Err(plain(format!(
                "cache TTL can not be zero or negative: {ttl}"
            )));
        }
        cfg.pttl = secs(ttl);
        cfg.nttl = secs(ttl);
        args.remove(0);
    }
    Ok(if args.is_empty() {
        block_zones.to_vec()
    } else {
        args.iter().flat_map(|a| normalize_exact(a)).collect()
    })
}

/// The arguments of `success` and `denial`: `CAPACITY [TTL [MINTTL]]`.
struct CacheSize {
    cap: usize,
    ttl: Option<Duration>,
    min: Option<Duration>,
}

fn parse_cache_size(c: &mut Dispenser) -> Result<CacheSize, Err> {
    let args = c.remaining_args();
    if args.is_empty() {
        return Err(c.arg_err());
    }
    let cap = atoi(&args[0])?;
    let (mut ttl, mut min) = (None, None);
    if args.len() > 1 {
        let t = atoi(&args[1])?;
        if t <= 0 {
            return Err(plain(format!("cache TTL can not be zero or negative: {t}")));
        }
        ttl = Some(secs(t));
        if args.len() > 2 {
            let m = atoi(&args[2])?;
            if m < 0 {
                return Err(plain(format!("cache min TTL can not be negative: {m}")));
            }
            min = Some(secs(m));
        }
    }
    // A negative capacity behaves as Go's: every shard still holds 4.
    let cap = cap.max(0) as usize;
    Ok(CacheSize { cap, ttl, min })
}

/// `success CAPACITY [TTL [MINTTL]]`.
fn parse_success(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    let size = parse_cache_size(c)?;
    cfg.pcap = size.cap;
    cfg.pttl = size.ttl.unwrap_or(cfg.pttl);
    cfg.minpttl = size.min.unwrap_or(cfg.minpttl);
    Ok(())
}

/// `denial CAPACITY [TTL [MINTTL]]`.
fn parse_denial(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    let size = parse_cache_size(c)?;
    cfg.ncap = size.cap;
    cfg.nttl = size.ttl.unwrap_or(cfg.nttl);
    cfg.minnttl = size.min.unwrap_or(cfg.minnttl);
    Ok(())
}

/// `prefetch AMOUNT [DURATION [PERCENTAGE%]]`.
fn parse_prefetch(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    let args = c.remaining_args();
    if args.is_empty() || args.len() > 3 {
        return Err(c.arg_err());
    }
    let amount = atoi(&args[0])?;
    if amount < 0 {
        return Err(plain(format!(
            "prefetch amount should be positive: {amount}"
        )));
    }
    cfg.prefetch = amount as u64;
    if args.len() > 1 {
        let (neg, d) = go_duration(&args[1])?;
        // A negative window makes every hit count as a fresh start.
        cfg.duration = if neg { Duration::ZERO } else { d };
    }
    if let Some(pct) = args.get(2) {
        cfg.percentage = prefetch_percentage(pct)?;
    }
    Ok(())
}

/// The `PERCENTAGE%` of `prefetch`.
fn prefetch_percentage(pct: &str) -> Result<u64, Err> {
    let Some(num) = pct.strip_suffix('%') else {
        let last = pct.bytes().last().unwrap_or(b'?');
        return Err(plain(format!(
            "last character of percentage should be `%`, but is: '{}'",
            char::from(last)
        )));
    };
    let n = atoi(num)?;
    if !(10..=90).contains(&n) {
        return Err(plain(format!(
            "percentage should fall in range [10, 90]: {n}"
        )));
    }
    Ok(n as u64)
}

/// `serve_stale [DURATION [REFRESH_MODE [TIMEOUT] [TTL [RECHECK]]]]`: TIMEOUT only with the
/// `verify` mode.
fn parse_serve_stale(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    let args = c.remaining_args();
    if args.len() > 5 {
        return Err(c.arg_err());
    }
    cfg.stale_up_to = Duration::from_secs(3600);
    cfg.stale_ttl = Duration::ZERO;
    cfg.stale_recheck = Duration::ZERO;
    if let Some(a) = args.first() {
        let (neg, d) = go_duration(a)?;
        if neg {
            return Err(plain("invalid negative duration for serve_stale"));
        }
        cfg.stale_up_to = d;
    }
    cfg.verify_stale = false;
    cfg.verify_stale_timeout = Duration::ZERO;
    if let Some(a) = args.get(1) {
        let mode = a.to_lowercase();
        if mode != "immediate" && mode != "verify" {
            return Err(plain(format!(
                "invalid value for serve_stale refresh mode: {mode}"
            )));
        }
        cfg.verify_stale = mode == "verify";
    }
    if args.len() > 2 {
        if cfg.verify_stale {
            let (neg, t) = go_duration(&args[2])
                .map_err(|e| plain(format!("invalid serve_stale verify timeout: {e}")))?;
            if neg {
                return Err(plain("invalid negative timeout for serve_stale verify"));
            }
            cfg.verify_stale_timeout = t;
            if let Some(a) = args.get(3) {
                cfg.stale_ttl = stale_ttl(a)?;
            }
            if let Some(a) = args.get(4) {
                cfg.stale_recheck = stale_recheck(a)?;
            }
        } else {
            if args.len() > 4 {
                return Err(c.arg_err());
            }
            cfg.stale_ttl = stale_ttl(&args[2])?;
            if let Some(a) = args.get(3) {
                cfg.stale_recheck = stale_recheck(a)?;
            }
        }
    }
    Ok(())
}

/// `serve_stale_policy prefer_positive`, at most once per block (`configured` says whether it
/// was already seen).
fn parse_serve_stale_policy(
    c: &mut Dispenser,
    cfg: &mut Config,
    configured: &mut bool,
) -> Result<(), Err> {
    if *configured {
        return Err(plain("serve_stale_policy can only be specified once"));
    }
    *configured = true;
    let args = c.remaining_args();
    if args.len() != 1 {
        return Err(c.arg_err());
    }
    if args[0].to_lowercase() == "prefer_positive" {
        cfg.prefer_positive = true;
        Ok(())
    } else {
        Err(plain(format!("invalid serve_stale_policy: {}", args[0])))
    }
}

/// `servfail DURATION` (at most 5 minutes).
fn parse_servfail(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    let args = c.remaining_args();
    if args.len() != 1 {
        return Err(c.arg_err());
    }
    let (neg, d) = go_duration(&args[0])?;
    if neg {
        return Err(plain("invalid negative ttl for servfail"));
    }
    if d > Duration::from_secs(300) {
        return Err(plain(
            "caching SERVFAIL responses over 5 minutes is not permitted",
        ));
    }
    cfg.failttl = d;
    Ok(())
}

/// `disable success|denial [ZONES...]` (all zones when none are given).
fn parse_disable(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    let args = c.remaining_args();
    if args.is_empty() {
        return Err(c.arg_err());
    }
    let zones: Vec<String> = if args.len() > 1 {
        args[1..].iter().map(|z| normalize_name(z)).collect()
    } else {
        vec![".".to_string()]
    };
    match args[0].as_str() {
        "denial" => cfg.nexcept = zones,
        "success" => cfg.pexcept = zones,
        _ => {
            return Err(plain(
                "cache type for disable must be \"success\" or \"denial\"",
            ));
        }
    }
    Ok(())
}

/// `keepttl`, without arguments.
fn parse_keepttl(c: &mut Dispenser, cfg: &mut Config) -> Result<(), Err> {
    if !c.remaining_args().is_empty() {
        return Err(c.arg_err());
    }
    cfg.keepttl = true;
    Ok(())
}

fn stale_ttl(value: &str) -> Result<Duration, Err> {
    let (neg, ttl) =
        go_duration(value).map_err(|e| plain(format!("invalid serve_stale response TTL: {e}")))?;
    if neg {
        return Err(plain("invalid negative response TTL for serve_stale"));
    }
    if ttl.subsec_nanos() != 0 {
        return Err(plain(
            "serve_stale response TTL must be a whole number of seconds",
        ));
    }
    if ttl.as_secs() > u64::from(u32::MAX) {
        return Err(plain("serve_stale response TTL exceeds the DNS TTL range"));
    }
    Ok(ttl)
}

fn stale_recheck(value: &str) -> Result<Duration, Err> {
    let (neg, d) = go_duration(value)
        .map_err(|e| plain(format!("invalid serve_stale failure recheck: {e}")))?;
    if neg {
        return Err(plain("invalid negative failure recheck for serve_stale"));
    }
    if d > Duration::from_secs(300) {
        return Err(plain("serve_stale failure recheck cannot exceed 5 minutes"));
    }
    Ok(d)
}
