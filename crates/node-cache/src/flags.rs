//! node-cache's command line: its own flags (1.26.8) and CoreDNS's, which it inherits, parsed
//! as Go's `flag` package does, then checked as upstream checks them.

use std::net::IpAddr;

use ferrodns::cli::{self, Flags};
use ferrodns_go::flag::{FlagError, FlagSet};

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `-localip` as given (comma-separated).
    pub local_ip_str: String,
    /// `-localip` parsed, in order.
    pub local_ips: Vec<IpAddr>,
    /// `-setupinterface`.
    pub setup_interface: bool,
    /// `-interfacename`.
    pub interface_name: String,
    /// `-syncinterval` as given (a Go duration whose nanoseconds count seconds).
    pub sync_interval: String,
    /// `-metrics-listen-address`.
    pub metrics_listen_address: String,
    /// `-setupiptables`.
    pub setup_iptables: bool,
    /// `-nftables` (ours): the rules as an nftables table of node-cache's own instead of
    /// iptables rules.
    pub nftables: bool,
    /// `-basecorefile`.
    pub base_corefile: String,
    /// The Corefile written and served: `-conf` (upstream copies it over `-corefile`).
    pub corefile: String,
    /// `-kubednscm`.
    pub kubedns_cm: String,
    /// `-upstreamsvc`.
    pub upstream_svc: String,
    /// `-health-port`.
    pub health_port: String,
    /// `-skipteardown`.
    pub skip_teardown: bool,
    /// `-reloadwithsignal`.
    pub reload_with_signal: bool,
    /// `-prometheus-listen-address` (kubernetes-sigs/node-local-dns master): fills the
    /// `__PILLAR__PROMETHEUS__ENDPOINT__` placeholder when a template has it.
    pub prometheus_listen_address: String,
    /// The CoreDNS flags (`-conf`, `-pidfile`, `-dns.port`, ...).
    pub coredns: Flags,
}

fn flag_set() -> FlagSet {
    let mut set = FlagSet::new();
    cli::define_coredns(&mut set);
    set.value(
        "localip",
        "string",
        "",
        "comma-separated IP addresses to listen on and to route to this cache",
    )
    .bool(
        "setupinterface",
        true,
        "create the interface carrying the local IPs and keep it in place",
    )
    .value(
        "interfacename",
        "string",
        "nodelocaldns",
        "name of the interface carrying the local IPs",
    )
    .value(
        "syncinterval",
        "duration",
        "60ns",
        "period of the interface and iptables checks, in seconds counted as nanoseconds (60ns = 60s)",
    )
    .value(
        "metrics-listen-address",
        "string",
        "0.0.0.0:9353",
        "address of node-cache's own /metrics",
    )
    .bool(
        "setupiptables",
        true,
        "install the iptables rules for the local IPs and keep them in place",
    )
    .bool(
        "nftables",
        false,
        "keep the rules as an nftables table of node-cache's own (inet nodelocaldns) instead of iptables rules",
    )
    .value(
        "basecorefile",
        "string",
        "/etc/coredns/Corefile.base",
        "template Corefile (node-local-dns ConfigMap); its directory is watched",
    )
    .value(
        "corefile",
        "string",
        "/etc/Corefile",
        "Corefile to write (replaced by -conf, as upstream)",
    )
    .value(
        "kubednscm",
        "string",
        "",
        "directory of the kube-dns ConfigMap (default /etc/kube-dns when it exists)",
    )
    .value(
        "upstreamsvc",
        "string",
        "kube-dns",
        "Service whose ClusterIP (from <NAME>_SERVICE_HOST) replaces __PILLAR__CLUSTER__DNS__",
    )
    .value(
        "health-port",
        "string",
        "8080",
        "port of the health listener, for the conntrack-skipping rules",
    )
    .bool(
        "skipteardown",
        false,
        "leave the iptables rules and the interface in place on exit",
    )
    .bool(
        "reloadwithsignal",
        false,
        "reload the Corefile at once after each rewrite (SIGUSR1 to ourselves)",
    )
    .value(
        "prometheus-listen-address",
        "string",
        ":9253",
        "replaces __PILLAR__PROMETHEUS__ENDPOINT__ in the template, when present",
    );
    cli::define_handoff(&mut set, DEFAULT_HANDOFF, DEFAULT_HANDOFF_WAIT);
    cli::define_memory(&mut set);
    set
}

/// node-cache's default rendezvous: an abstract unix socket, so that the old and the new pod of
/// a rolling update (both hostNetwork) find each other with no volume.
pub const DEFAULT_HANDOFF: &str = "@node-cache-handoff";
/// After SIGTERM, how long node-cache serves on while the DaemonSet starts its successor (the
/// controller creates the new pod as soon as the old one is terminating; the image may still
/// have to be pulled). Within the pod's default 30 s grace period.
pub const DEFAULT_HANDOFF_WAIT: &str = "20s";

/// The usage text, as Go prints it.
pub fn usage(program: &str) -> String {
    format!(
        "Usage of {program}:\nRuns ferrodns as a node-local DNS cache listening on the specified ip:port\n\n{}",
        flag_set().defaults()
    )
}

/// Why the command line is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// A Go flag error (usage and exit status 2), or `-h`.
    Flag(FlagError),
    /// A check of node-cache's (`Error parsing flags - <this>, Exiting`, exit status 1).
    Invalid(String),
}

/// Parse and check the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Params, ParamsError> {
    let v = flag_set().parse(args).map_err(ParamsError::Flag)?;
    let mut coredns = Flags::from_values(&v, args);
    (coredns.handoff, coredns.handoff_wait) =
        cli::handoff_from_values(&v).map_err(ParamsError::Flag)?;
    coredns.memory = cli::memory_from_values(&v).map_err(ParamsError::Flag)?;
    let local_ip_str = v.get("localip").to_string();
    let mut local_ips = Vec::new();
    for piece in local_ip_str.split(',') {
        match piece.parse::<IpAddr>() {
            Ok(ip) => local_ips.push(ip),
            Err(_) => {
                return Err(ParamsError::Invalid(format!(
                    "invalid localip specified - {piece:?}"
                )));
            }
        }
    }
    // Upstream stops here when the addresses are of both families (one process per family);
    // this node-cache serves both: rules for each family, both in the listeners.
    if coredns.port.parse::<i64>().is_err() {
        return Err(ParamsError::Invalid(format!(
            "invalid port specified - {:?}",
            coredns.port
        )));
    }
    let health_port = v.get("health-port").to_string();
    if health_port.parse::<i64>().is_err() {
        return Err(ParamsError::Invalid(format!(
            "invalid healthcheck port specified - {health_port:?}"
        )));
    }
    let nftables = v.on("nftables");
    // The table's matches take 16-bit ports; iptables would refuse any other value too.
    if nftables {
        if coredns.port.parse::<u16>().is_err() {
            return Err(ParamsError::Invalid(format!(
                "invalid port specified - {:?}",
                coredns.port
            )));
        }
        if health_port.parse::<u16>().is_err() {
            return Err(ParamsError::Invalid(format!(
                "invalid healthcheck port specified - {health_port:?}"
            )));
        }
    }
    Ok(Params {
        local_ip_str,
        local_ips,
        setup_interface: v.on("setupinterface"),
        interface_name: v.get("interfacename").to_string(),
        sync_interval: v.get("syncinterval").to_string(),
        metrics_listen_address: v.get("metrics-listen-address").to_string(),
        setup_iptables: v.on("setupiptables"),
        nftables,
        base_corefile: v.get("basecorefile").to_string(),
        // Upstream overwrites -corefile with -conf's value, given or not.
        corefile: coredns.conf.clone().unwrap_or_default(),
        kubedns_cm: v.get("kubednscm").to_string(),
        upstream_svc: v.get("upstreamsvc").to_string(),
        health_port,
        skip_teardown: v.on("skipteardown"),
        reload_with_signal: v.on("reloadwithsignal"),
        prometheus_listen_address: v.get("prometheus-listen-address").to_string(),
        coredns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Params, ParamsError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_daemonsets_arguments() {
        let v = p(&[
            "-localip",
            "169.254.20.10,10.96.0.10",
            "-conf",
            "/etc/Corefile",
            "-upstreamsvc",
            "kube-dns-upstream",
            "-pidfile",
            "/tmp/node-cache.pid",
        ])
        .unwrap();
        assert_eq!(v.local_ips.len(), 2);
        assert_eq!(v.corefile, "/etc/Corefile");
        assert_eq!(v.upstream_svc, "kube-dns-upstream");
        assert_eq!(v.coredns.pidfile.as_deref(), Some("/tmp/node-cache.pid"));
        assert_eq!(v.coredns.port, "53");
        assert!(v.setup_interface && v.setup_iptables && !v.skip_teardown);
        assert!(!v.nftables, "iptables unless asked");
        assert_eq!(v.interface_name, "nodelocaldns");
        assert_eq!(v.metrics_listen_address, "0.0.0.0:9353");
        assert_eq!(v.base_corefile, "/etc/coredns/Corefile.base");
        assert_eq!(v.sync_interval, "60ns");
        assert_eq!(v.health_port, "8080");
    }

    #[test]
    fn upstreams_checks() {
        let e = |a: &[&str]| match p(a) {
            Err(ParamsError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(e(&[]), "invalid localip specified - \"\"");
        assert_eq!(
            e(&["-localip", "169.254.20.10,x"]),
            "invalid localip specified - \"x\""
        );
        assert_eq!(
            e(&["-localip", "169.254.20.10", "-dns.port", "x"]),
            "invalid port specified - \"x\""
        );
        assert_eq!(
            e(&["-localip", "169.254.20.10", "-health-port", "http"]),
            "invalid healthcheck port specified - \"http\""
        );
        assert!(matches!(
            p(&["-nope"]),
            Err(ParamsError::Flag(FlagError::Bad(_)))
        ));
        assert_eq!(
            e(&[
                "-localip",
                "169.254.20.10",
                "-nftables",
                "-dns.port",
                "70000"
            ]),
            "invalid port specified - \"70000\""
        );
        assert!(
            p(&["-localip", "169.254.20.10", "-nftables"])
                .unwrap()
                .nftables
        );
        // Both families in one process (upstream refuses the mix).
        let both = p(&["-localip", "169.254.20.10,fd00::10"]).unwrap();
        assert_eq!(both.local_ips.len(), 2);
        assert!(both.local_ips[1].is_ipv6());
        // Without -conf the output path is empty, as upstream.
        assert_eq!(p(&["-localip", "169.254.20.10"]).unwrap().corefile, "");
    }
}
