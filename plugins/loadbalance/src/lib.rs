//! # loadbalance
//!
//! Reorders the records of NOERROR replies as CoreDNS's *loadbalance* plugin does.
//!
//! * `round_robin` (the default): in the answer, authority and additional sections, CNAME
//!   records come first, then records of other types, then the A and AAAA records shuffled, then
//!   the MX records shuffled.
//! * `weighted WEIGHTFILE`: for A, AAAA and SRV questions, one address record of the answer and
//!   additional sections, picked at random with the weights of the weight file, is moved to the
//!   top of the addresses (CNAME, others, addresses, MX).
//! * `prefer CIDR...`: after the policy, the addresses of the answer and additional sections
//!   that lie in the listed subnets are put first, subnet by subnet (CNAME, addresses, MX,
//!   others).
//!
//! Replies with another rcode and AXFR/IXFR replies are left alone.
//!
//! ```text
//! loadbalance [round_robin | weighted WEIGHTFILE [{ reload DURATION }]] [{ prefer CIDR... }]
//! ```

mod weighted;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, ResponseCode};
use ferrodns_plugin::proto::rr::{RData, Record, RecordType};
use ferrodns_plugin::{
    Descriptor, Next, Plugin, PluginError, Reply, Request, Setup, SetupError, async_trait,
};

pub use weighted::{Weighted, WeightedLifecycle, parse_weights};

/// The directive name.
pub const NAME: &str = "loadbalance";

/// The tracing target of the lines this plugin logs.
pub const TARGET: &str = "plugin/loadbalance";

/// How often the weight file is checked by default.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(30);

/// The plugin's descriptor for the registry.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup);

/// A subnet of `prefer`, as Go's `net.ParseCIDR` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// The prefix length.
    pub bits: u8,
}

impl Subnet {
    /// Parse `ADDR/BITS` as Go's `net.ParseCIDR`; the Go error text on failure.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let err = || format!("invalid CIDR address: {s}");
        let (addr, mask) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if mask.is_empty() || !mask.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let bits: u32 = mask.parse().map_err(|_| err())?;
        if bits > max {
            return Err(err());
        }
        let bits = bits as u8;
        let addr = match addr {
            IpAddr::V4(v4) => {
                let m = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(bits))
                };
                IpAddr::V4((u32::from(v4) & m).into())
            }
            IpAddr::V6(v6) => {
                let m = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(bits))
                };
                IpAddr::V6((u128::from(v6) & m).into())
            }
        };
        Ok(Subnet { addr, bits })
    }

    /// Whether `ip` lies in the subnet (an IPv4-mapped IPv6 address counts as IPv4, as in Go).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.bits))
                };
                u32::from(ip) & m == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.bits))
                };
                u128::from(ip) & m == u128::from(net)
            }
            _ => false,
        }
    }
}

/// The shuffling policy.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Uniform shuffle of addresses and MX records.
    RoundRobin,
    /// Weighted choice of the top address.
    Weighted(Arc<Weighted>),
}

/// What the `loadbalance` lines of a block configure.
#[derive(Debug, Clone)]
pub struct Config {
    /// The policy.
    pub policy: Policy,
    /// The `prefer` subnets, in order.
    pub prefer: Vec<Subnet>,
}

/// Read the block's `loadbalance` lines. Errors are returned without the `plugin/loadbalance: `
/// prefix.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        policy: Policy::RoundRobin,
        prefer: Vec::new(),
    };
    while c.next() {
        let args = c.remaining_args();
        match args.first().map(String::as_str) {
            None => cfg.policy = Policy::RoundRobin,
            Some("round_robin") => {
                if args.len() > 1 {
                    return Err(c.err("unknown property for round_robin"));
                }
                cfg.policy = Policy::RoundRobin;
            }
            Some("weighted") => {
                if args.len() < 2 {
                    return Err(c.err("missing weight file argument"));
                }
                if args.len() > 2 {
                    return Err(c.err("unexpected argument(s)"));
                }
                let mut reload = DEFAULT_RELOAD;
                while c.next_block() {
                    match c.val() {
                        "reload" => {
                            let t = c.remaining_args();
                            if t.is_empty() {
                                return Err(c.err("reload duration value is missing"));
                            }
                            if t.len() > 1 {
                                return Err(c.err("unexpected argument"));
                            }
                            reload = go_duration(&t[0]).ok_or_else(|| {
                                c.err(format_args!("invalid reload duration '{}'", t[0]))
                            })?;
                        }
                        other => {
                            let msg = format!("unknown property '{other}'");
                            return Err(c.err(msg));
                        }
                    }
                }
                // As upstream, choosing `weighted` starts the configuration over (earlier
                // `prefer` subnets are forgotten).
                cfg = Config {
                    policy: Policy::Weighted(Arc::new(Weighted::new(args[1].clone(), reload))),
                    prefer: Vec::new(),
                };
            }
            Some(other) => {
                return Err(SetupError::new(format!("unknown policy: {other}")));
            }
        }
        while c.next_block() {
            match c.val() {
                "prefer" => {
                    for cidr in c.remaining_args() {
                        match Subnet::parse(&cidr) {
                            Ok(s) => cfg.prefer.push(s),
                            Err(e) => {
                                let msg = format!("invalid CIDR \"{cidr}\": {e}");
                                return Err(c.err(msg));
                            }
                        }
                    }
                }
                other => {
                    let msg = format!("unknown property '{other}'");
                    return Err(c.err(msg));
                }
            }
        }
    }
    Ok(cfg)
}

/// A Go duration; negative ones are taken as zero (no reload), as a Go ticker would refuse them.
fn go_duration(s: &str) -> Option<Duration> {
    let (body, negative) = match s.strip_prefix('-') {
        Some(rest) => (rest, true),
        None => (s.strip_prefix('+').unwrap_or(s), false),
    };
    let d = ferrodns_go::time::parse_duration(body).ok()?;
    Some(if negative { Duration::ZERO } else { d })
}

fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c).map_err(|e| SetupError::plugin(NAME, e))?;
    if let Policy::Weighted(w) = &cfg.policy {
        c.add_lifecycle(Arc::new(WeightedLifecycle::new(w.clone())));
    }
    c.add_plugin(Arc::new(LoadBalance { cfg }));
    Ok(())
}

/// The handler.
#[derive(Debug, Clone)]
pub struct LoadBalance {
    cfg: Config,
}

impl LoadBalance {
    /// A handler with this configuration.
    pub fn new(cfg: Config) -> Self {
        LoadBalance { cfg }
    }

    /// Reorder a reply in place as the plugin does before it is written.
    pub fn apply(&self, msg: &mut Message, qtype: RecordType) {
        if msg.metadata.response_code != ResponseCode::NoError {
            return;
        }
        let qtype = msg.queries.first().map(|q| q.query_type()).unwrap_or(qtype);
        if qtype == RecordType::AXFR || qtype == RecordType::IXFR {
            return;
        }
        match &self.cfg.policy {
            Policy::RoundRobin => {
                round_robin(&mut msg.answers);
                round_robin(&mut msg.authorities);
                round_robin(&mut msg.additionals);
            }
            Policy::Weighted(w) => {
                if matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::SRV) {
                    w.apply(&mut msg.answers);
                    w.apply(&mut msg.additionals);
                }
            }
        }
        if !self.cfg.prefer.is_empty() {
            prefer(&mut msg.answers, &self.cfg.prefer);
            prefer(&mut msg.additionals, &self.cfg.prefer);
        }
    }
}

/// The address in an A or AAAA record.
pub fn record_ip(r: &Record) -> Option<IpAddr> {
    match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// Records split as upstream groups them.
pub(crate) struct Groups {
    pub cname: Vec<Record>,
    pub address: Vec<Record>,
    pub mx: Vec<Record>,
    pub rest: Vec<Record>,
}

pub(crate) fn split(records: Vec<Record>) -> Groups {
    let mut g = Groups {
        cname: Vec::new(),
        address: Vec::new(),
        mx: Vec::new(),
        rest: Vec::new(),
    };
    for r in records {
        match r.record_type() {
            RecordType::CNAME => g.cname.push(r),
            RecordType::A | RecordType::AAAA => g.address.push(r),
            RecordType::MX => g.mx.push(r),
            _ => g.rest.push(r),
        }
    }
    g
}

/// Shuffle as upstream: a coin flip for two records, a Fisher-Yates pass for more.
fn shuffle(records: &mut [Record]) {
    let l = records.len();
    match l {
        0 | 1 => {}
        2 => {
            if rand::random_bool(0.5) {
                records.swap(0, 1);
            }
        }
        _ => {
            for j in 0..l {
                let p = j + rand::random_range(0..l - j);
                records.swap(j, p);
            }
        }
    }
}

/// The `round_robin` order of one section: CNAME, others, shuffled addresses, shuffled MX.
pub fn round_robin(section: &mut Vec<Record>) {
    let mut g = split(std::mem::take(section));
    shuffle(&mut g.address);
    shuffle(&mut g.mx);
    section.extend(g.cname);
    section.extend(g.rest);
    section.extend(g.address);
    section.extend(g.mx);
}

/// The `prefer` order of one section: CNAME, addresses in the subnets (subnet by subnet, in
/// their order), the other addresses, MX, others.
pub fn prefer(section: &mut Vec<Record>, subnets: &[Subnet]) {
    let g = split(std::mem::take(section));
    let mut seen = vec![false; g.address.len()];
    let mut matched = Vec::with_capacity(g.address.len());
    for s in subnets {
        for (i, r) in g.address.iter().enumerate() {
            if seen[i] {
                continue;
            }
            if record_ip(r).is_some_and(|ip| s.contains(ip)) {
                matched.push(r.clone());
                seen[i] = true;
            }
        }
    }
    section.extend(g.cname);
    section.extend(matched);
    for (i, r) in g.address.into_iter().enumerate() {
        if !seen[i] {
            section.push(r);
        }
    }
    section.extend(g.mx);
    section.extend(g.rest);
}

#[async_trait]
impl Plugin for LoadBalance {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next<'_>) -> Result<Reply, PluginError> {
        let qtype = req.qtype();
        let mut reply = next.serve(req).await?;
        if reply.rcode() != Some(ResponseCode::NoError) {
            return Ok(reply);
        }
        if let Some(msg) = reply.decoded() {
            self.apply(msg, qtype);
        }
        Ok(reply)
    }
}
