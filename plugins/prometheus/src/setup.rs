//! Reading the `prometheus` directive from the Corefile.

use std::sync::Arc;

use ferrodns_pkg::vars::{DnsMetrics, Labels};
use ferrodns_plugin::{Setup, SetupError};

use crate::{Config, DEFAULT_ADDR, Exporter, NAME, Prometheus};

/// Read the directive (once per block): `prometheus [ADDRESS] { runtime_metrics }`.
pub fn parse(c: &mut Setup<'_>) -> Result<Config, SetupError> {
    let mut cfg = Config {
        addr: DEFAULT_ADDR.to_string(),
    };
    while c.next_once(NAME)? {
        if let Some(addr) = ferrodns_plugin::address_arg(c, NAME)? {
            cfg.addr = addr;
        }
        while c.next_block() {
            match c.val() {
                "runtime_metrics" => {
                    if !c.remaining_args().is_empty() {
                        return Err(SetupError::plugin(NAME, c.arg_err()));
                    }
                }
                "tls" => {
                    return Err(SetupError::plugin(
                        NAME,
                        c.err("tls for the metrics endpoint is not supported by ferrodns yet"),
                    ));
                }
                other => {
                    return Err(SetupError::plugin(
                        NAME,
                        c.err(format_args!("unknown option: {other}")),
                    ));
                }
            }
        }
    }
    Ok(cfg)
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg = parse(c)?;
    let metrics = c.metrics().clone();
    // Go's process collector, which CoreDNS's registry carries.
    metrics.register_process_collector();
    let dns = DnsMetrics::new(&metrics);
    let build: Labels = vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("revision", String::new()),
        ("goversion", "rust".to_string()),
    ];
    dns.build_info.get_or_create(&build).set(1);
    c.http()
        .route(&cfg.addr, "/metrics", Arc::new(Exporter(metrics)));
    let zones = c.zone_names();
    c.add_plugin(Arc::new(Prometheus { zones, dns }));
    Ok(())
}
