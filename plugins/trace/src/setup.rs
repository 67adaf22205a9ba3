//! Reading the `trace` directive from the Corefile, with CoreDNS v1.14.7's options, defaults and
//! error texts.

use std::sync::Arc;
use std::time::Duration;

use ferrodns_go::strconv::{NumError, NumErrorReason, atoi, parse_uint};
use ferrodns_go::time::SignedDuration;
use ferrodns_plugin::{Setup, SetupError};

use crate::{NAME, Trace};

/// Where spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointType {
    /// A Zipkin collector, v2 JSON over HTTP.
    Zipkin,
    /// A Datadog agent's trace API (`/v0.4/traces`, msgpack).
    Datadog,
}

impl EndpointType {
    /// The Corefile spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Zipkin => "zipkin",
            EndpointType::Datadog => "datadog",
        }
    }
}

/// A parsed `trace` directive.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The destination kind.
    pub endpoint_type: EndpointType,
    /// The destination: a URL for Zipkin, `host:port` of the agent for Datadog.
    pub endpoint: String,
    /// `host:port` of the block's first listen address when `bind` set one, else empty (the
    /// Zipkin local endpoint).
    pub service_endpoint: String,
    /// The service name reported (`service`, default `coredns`).
    pub service_name: String,
    /// `client_server`: Zipkin's shared client/server spans.
    pub client_server: bool,
    /// Trace one query in this many (`every`, default 1; 0 traces none).
    pub every: u64,
    /// `datadog_analytics_rate`, 0 to 1 (NaN is let through, as upstream does).
    pub datadog_analytics_rate: f64,
    /// `zipkin_max_backlog_size`; 0 means the reporter's default (1000).
    pub zipkin_max_backlog_size: i64,
    /// `zipkin_max_batch_size`; 0 means the reporter's default (100).
    pub zipkin_max_batch_size: i64,
    /// `zipkin_max_batch_interval`; zero means the reporter's default (1s).
    pub zipkin_max_batch_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint_type: EndpointType::Zipkin,
            endpoint: String::new(),
            service_endpoint: String::new(),
            service_name: "coredns".into(),
            client_server: false,
            every: 1,
            datadog_analytics_rate: 0.0,
            zipkin_max_backlog_size: 0,
            zipkin_max_batch_size: 0,
            zipkin_max_batch_interval: Duration::ZERO,
        }
    }
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    let trace = Arc::new(Trace::new(cfg));
    c.add_lifecycle(trace.lifecycle());
    c.add_plugin(trace);
    Ok(())
}

/// Parse every `trace` line of the block (the last one's endpoint wins, options accumulate), as
/// upstream's `traceParse`; errors carry the `plugin/trace: ` prefix.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    parse_inner(c).map_err(|e| SetupError::plugin(NAME, e))
}

fn parse_inner(c: &mut Setup<'_>) -> Result<Config, String> {
    let mut cfg = Config::default();
    if let (Some(host), Some(zone)) = (c.listen_hosts().first(), c.zones().first())
        && !host.is_empty()
    {
        cfg.service_endpoint = ferrodns_go::net::join_host_port(host, &zone.port);
    }
    while c.next() {
        let args = c.remaining_args();
        let (ty, ep) = match args.as_slice() {
            [] => normalize_endpoint("zipkin", "")?,
            [ep] => normalize_endpoint("zipkin", ep)?,
            [ty, ep] => normalize_endpoint(&ty.to_lowercase(), ep)?,
            _ => return Err(c.arg_err().0),
        };
        cfg.endpoint_type = ty;
        cfg.endpoint = ep;
        while c.next_block() {
            let prop = c.val().to_string();
            match prop.as_str() {
                "every" => {
                    let arg = exactly_one(c)?;
                    cfg.every = parse_uint(&arg, 10, 64).map_err(|e| e.to_string())?;
                }
                "service" => cfg.service_name = exactly_one(c)?,
                "client_server" => {
                    let args = c.remaining_args();
                    cfg.client_server = match args.as_slice() {
                        [] => true,
                        [v] => parse_bool(v).map_err(|e| e.to_string())?,
                        _ => return Err(c.arg_err().0),
                    };
                }
                "datadog_analytics_rate" => {
                    let args = c.remaining_args();
                    let rate = match args.as_slice() {
                        [] => 0.0,
                        [v] => parse_float(v).map_err(|e| e.to_string())?,
                        _ => return Err(c.arg_err().0),
                    };
                    // Not a range check: NaN passes, as upstream's comparison lets it through.
                    #[allow(clippy::manual_range_contains)]
                    let out_of_range = rate > 1.0 || rate < 0.0;
                    if out_of_range {
                        return Err(format!(
                            "datadog analytics rate must be between 0 and 1, '{}' is not supported",
                            go_f(rate)
                        ));
                    }
                    cfg.datadog_analytics_rate = rate;
                }
                "zipkin_max_backlog_size" => {
                    let arg = exactly_one(c)?;
                    cfg.zipkin_max_backlog_size = atoi(&arg).map_err(|e| e.to_string())?;
                }
                "zipkin_max_batch_size" => {
                    let arg = exactly_one(c)?;
                    cfg.zipkin_max_batch_size = atoi(&arg).map_err(|e| e.to_string())?;
                }
                "zipkin_max_batch_interval" => {
                    let arg = exactly_one(c)?;
                    // A negative interval would stop upstream's reporter from starting at all;
                    // here it means the default.
                    cfg.zipkin_max_batch_interval = SignedDuration::parse(&arg)
                        .map_err(|e| e.to_string())?
                        .or_zero();
                }
                other => return Err(c.err(format!("unknown property '{other}'")).0),
            }
        }
    }
    Ok(cfg)
}

fn exactly_one(c: &mut Setup<'_>) -> Result<String, String> {
    let mut args = c.remaining_args();
    if args.len() != 1 {
        return Err(c.arg_err().0);
    }
    Ok(args.remove(0))
}

/// Upstream's `normalizeEndpoint`: a known type, its default address, and for Zipkin a URL
/// (`http://ADDR/api/v2/spans` unless the text already contains `http`).
fn normalize_endpoint(ty: &str, ep: &str) -> Result<(EndpointType, String), String> {
    let (ty, default) = match ty {
        "zipkin" => (EndpointType::Zipkin, "localhost:9411"),
        "datadog" => (EndpointType::Datadog, "localhost:8126"),
        _ => return Err(format!("tracing endpoint type '{ty}' is not supported")),
    };
    let ep = if ep.is_empty() { default } else { ep };
    let ep = if ty == EndpointType::Zipkin && !ep.contains("http") {
        format!("http://{ep}/api/v2/spans")
    } else {
        ep.to_string()
    };
    Ok((ty, ep))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, NumError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(NumError {
            func: "ParseBool",
            input: s.to_string(),
            reason: NumErrorReason::Syntax,
        }),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal forms, `inf`/`infinity`/`nan` and their signs;
/// a finite text too large for an f64 is a range error, as in Go.
pub fn parse_float(s: &str) -> Result<f64, NumError> {
    let err = |reason| NumError {
        func: "ParseFloat",
        input: s.to_string(),
        reason,
    };
    let ok_chars = s
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '+' | '-'));
    if !ok_chars {
        return Err(err(NumErrorReason::Syntax));
    }
    let v: f64 = s.parse().map_err(|_| err(NumErrorReason::Syntax))?;
    let unsigned = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if v.is_infinite() && !unsigned.starts_with("inf") {
        return Err(err(NumErrorReason::Range));
    }
    Ok(v)
}

/// Go's `%f` of a float64.
fn go_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}
