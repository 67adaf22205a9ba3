//! The world the end-to-end tests run node-cache in: pod, node and kube-dns network
//! namespaces joined by veth pairs, kube-dns (ferrodns) authoritative for cluster.local and the
//! reverse zones plus a fake node resolver and a stub-domain server, and node-cache started on
//! the node with a root of its own. Users declare `mod e2e_support; mod e2e_world; mod manifest;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::e2e_support::*;
use crate::manifest;

pub const LOCAL: &str = "169.254.20.10";
pub const KUBEDNS_IP: &str = "10.96.0.10";
/// kube-dns's (kube-dns-upstream's) address over IPv6, on the kube-dns namespace's link.
pub const UPSTREAM6: &str = "fd02::2";
/// fd00::1 reversed, under ip6.arpa.
pub const V6_PTR_LABELS: &str = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f";

/// The ConfigMap Corefile of deploy/nodelocaldns.yaml, after the installer's `sed`.
pub fn corefile_base(ipvs: bool) -> String {
    let text = manifest::configmap_corefile().replace("__PILLAR__LOCAL__DNS__", LOCAL);
    let text = text.replace("__PILLAR__DNS__DOMAIN__", "cluster.local");
    if ipvs {
        text.replace(",__PILLAR__DNS__SERVER__", "")
            .replace("__PILLAR__CLUSTER__DNS__", KUBEDNS_IP)
    } else {
        text.replace("__PILLAR__DNS__SERVER__", KUBEDNS_IP)
    }
}

/// The node-local-dns rules in `iptables-save` order, as `<table> <rule>` lines.
pub fn rules(node: &Ns) -> Vec<String> {
    rules_of(node, false)
}

/// The same from `ip6tables-save` when `ipv6`.
pub fn rules_of(node: &Ns, ipv6: bool) -> Vec<String> {
    let out = node.exec(&[if ipv6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    }]);
    assert!(out.status.success());
    let mut table = String::new();
    let mut lines = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
        } else if l.contains("NodeLocal DNS Cache") {
            lines.push(format!("{table} {l}"));
        }
    }
    lines
}

/// What upstream's rules look like in `iptables-save` (or `ip6tables-save`, for IPv6
/// addresses) after installation: each rule is inserted at the top in list order, so each
/// chain holds them last-first.
pub fn expected_rules(ips: &[&str]) -> Vec<String> {
    let skip = "-m comment --comment \"NodeLocal DNS Cache: skip conntrack\" -j NOTRACK";
    let allow = "-m comment --comment \"NodeLocal DNS Cache: allow DNS traffic\" -j ACCEPT";
    let mut list = Vec::new();
    for ip in ips {
        let prefix = if ip.contains(':') { 128 } else { 32 };
        let d = format!("-d {ip}/{prefix}");
        let s = format!("-s {ip}/{prefix}");
        for (table, chain, addr, port, target) in [
            ("raw", "PREROUTING", &d, "dport 53", skip),
            ("filter", "INPUT", &d, "dport 53", allow),
            ("raw", "OUTPUT", &s, "sport 53", skip),
            ("filter", "OUTPUT", &s, "sport 53", allow),
            ("raw", "OUTPUT", &d, "dport 53", skip),
        ] {
            for proto in ["tcp", "udp"] {
                list.push((
                    table,
                    chain,
                    format!("{addr} -p {proto} -m {proto} --{port} {target}"),
                ));
            }
        }
        list.push((
            "raw",
            "OUTPUT",
            format!("{d} -p tcp -m tcp --dport 8080 {skip}"),
        ));
        list.push((
            "raw",
            "OUTPUT",
            format!("{s} -p tcp -m tcp --sport 8080 {skip}"),
        ));
    }
    // iptables-save lists a table's rules chain by chain (built-in chains in their fixed
    // order); the order of the tables varies, so both sides put raw first.
    let mut out = Vec::new();
    for table in ["raw", "filter"] {
        for chain in ["PREROUTING", "INPUT", "OUTPUT"] {
            for (t, c, r) in list.iter().rev() {
                if *t == table && *c == chain {
                    out.push(format!("{t} -A {c} {r}"));
                }
            }
        }
    }
    out
}

/// Rule lines with the `raw` table's first (their order within a table kept).
pub fn sorted_by_table(mut v: Vec<String>) -> Vec<String> {
    // Compare within tables in order, tables themselves in a fixed order.
    v.sort_by_key(|l| if l.starts_with("raw ") { 0 } else { 1 });
    v
}

pub struct World {
    // Field order is drop order: kube-dns stops before the namespaces go.
    pub _kube_dns: Proc,
    pub pod: Ns,
    pub node: Ns,
    pub _kdns: Ns,
    pub dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn world() -> World {
    world_with("")
}

/// [`world`] with `extra` server blocks in kube-dns's Corefile (its stand-ins listen on
/// 10.0.2.2-4 in the `kdns` namespace; 10.0.2.3 is the node's resolver).
pub fn world_with(extra: &str) -> World {
    let pod = Ns::new("pod");
    let node = Ns::new("node");
    let kdns = Ns::new("kdns");
    veth(&node, "np0", "10.0.1.1/24", &pod, "pp0", "10.0.1.2/24");
    pod.ip(&["route", "add", "default", "via", "10.0.1.1"]);
    veth(&node, "nk0", "10.0.2.1/24", &kdns, "kd0", "10.0.2.2/24");
    // The second family on both links (no duplicate address detection: usable at once).
    for (ns, dev, addr) in [
        (&node, "np0", "fd01::1/64"),
        (&pod, "pp0", "fd01::2/64"),
        (&node, "nk0", "fd02::1/64"),
        (&kdns, "kd0", "fd02::2/64"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev, "nodad"]);
    }
    pod.ip(&["-6", "route", "add", "default", "via", "fd01::1"]);
    for a in ["10.0.2.3/24", "10.0.2.4/24"] {
        kdns.ip(&["addr", "add", a, "dev", "kd0"]);
    }
    kdns.ip(&["addr", "add", &format!("{KUBEDNS_IP}/32"), "dev", "lo"]);
    // No dummy driver here: the link exists as a DaemonSet restart would find it.
    node.ip(&["link", "add", "nodelocaldns", "type", "bridge"]);

    // Named after the node's namespace: one directory per world.
    let dir = std::env::temp_dir().join(format!("{}-files", node.0));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("kdns")).unwrap();
    std::fs::write(
        dir.join("kdns/cluster.local.db"),
        "$ORIGIN cluster.local.\n\
         @ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n\
         @ 30 IN NS ns.dns.cluster.local.\n\
         ns.dns 30 IN A 10.0.2.2\n\
         kubernetes.default.svc 30 IN A 10.96.0.1\n\
         kube-dns.kube-system.svc 30 IN A 10.96.0.10\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("kdns/10.in-addr.arpa.db"),
        "$ORIGIN 10.in-addr.arpa.\n\
         @ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n\
         @ 30 IN NS ns.dns.cluster.local.\n\
         1.0.96 30 IN PTR kubernetes.default.svc.cluster.local.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("kdns/ip6.arpa.db"),
        format!(
            "$ORIGIN ip6.arpa.\n\
             @ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n\
             @ 30 IN NS ns.dns.cluster.local.\n\
             {V6_PTR_LABELS} 30 IN PTR kubernetes.default.svc.cluster.local.\n"
        ),
    )
    .unwrap();
    let d = dir.join("kdns").display().to_string();
    std::fs::write(
        dir.join("kdns/Corefile"),
        format!(
            "cluster.local:53 {{\n    bind 10.0.2.2 {KUBEDNS_IP} {UPSTREAM6}\n    file {d}/cluster.local.db\n}}\n\
             10.in-addr.arpa:53 {{\n    bind 10.0.2.2 {KUBEDNS_IP} {UPSTREAM6}\n    file {d}/10.in-addr.arpa.db\n}}\n\
             ip6.arpa:53 {{\n    bind 10.0.2.2 {KUBEDNS_IP} {UPSTREAM6}\n    file {d}/ip6.arpa.db\n}}\n\
             .:53 {{\n    bind 10.0.2.3\n    template IN A {{\n        answer \"{{{{ .Name }}}} 60 IN A 203.0.113.7\"\n    }}\n}}\n\
             rollout.example.com:53 {{\n    bind 10.0.2.3\n    template IN A {{\n        match \"^q[0-9]*(?P<d>[0-9])[.]\"\n        answer \"{{{{ .Name }}}} 2{{{{ .Group.d }}}} IN A 203.0.113.8\"\n    }}\n}}\n\
             acme.local:53 {{\n    bind 10.0.2.4\n    template IN A {{\n        answer \"{{{{ .Name }}}} 60 IN A 198.51.100.4\"\n    }}\n}}\n{extra}"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &kdns.0])
        .arg(ferrodns_bin())
        .args(["-conf", &format!("{d}/Corefile"), "-memory", "none"]);
    let mut kube_dns = Proc::spawn(cmd);
    kube_dns.expect(READY, 1, WAIT);
    World {
        _kube_dns: kube_dns,
        pod,
        node,
        _kdns: kdns,
        dir,
    }
}

/// The node's own /etc and /tmp, and node-cache started with `args` under them.
/// The DaemonSet's `args` after the install substitution (`localip` differs between iptables
/// and IPVS mode), plus `extra`.
pub fn daemonset_args(localip: &str, extra: &[&str]) -> Vec<String> {
    let ds = format!(
        "-localip {localip} -conf /etc/Corefile -upstreamsvc kube-dns-upstream -pidfile /tmp/node-cache.pid"
    );
    ds.split(' ')
        .chain(extra.iter().copied())
        .map(String::from)
        .collect()
}

pub fn start_node_cache(w: &World, tag: &str, base: &str, args: &[String]) -> (Proc, PathBuf) {
    let exe = Path::new(env!("CARGO_BIN_EXE_node-cache"));
    start_node_cache_exe(w, tag, base, args, exe)
}

/// [`start_node_cache`] with the binary at `nc` (another build, for an upgrade).
pub fn start_node_cache_exe(
    w: &World,
    tag: &str,
    base: &str,
    args: &[String],
    nc: &Path,
) -> (Proc, PathBuf) {
    start_node_cache_at(w, tag, base, args, nc, "10.0.2.2")
}

/// [`start_node_cache_exe`] with kube-dns-upstream's ClusterIP (the Service host variable)
/// at `upstream`.
pub fn start_node_cache_at(
    w: &World,
    tag: &str,
    base: &str,
    args: &[String],
    nc: &Path,
    upstream: &str,
) -> (Proc, PathBuf) {
    let (argv, etc) = node_command(w, tag, base, nc, "");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .args(args)
        .env("KUBE_DNS_UPSTREAM_SERVICE_HOST", upstream);
    (Proc::spawn(cmd), etc)
}

/// The command line (before node-cache's own arguments) that runs the binary `nc` on the node
/// with a root of its own under `tag` (`/etc`, with `base` as `/etc/coredns/Corefile.base`,
/// and `/tmp`), after the shell commands `prelude` (each ending in `&&`); and that `/etc`.
/// Each step execs the next, so the process's PID is node-cache's.
pub fn node_command(
    w: &World,
    tag: &str,
    base: &str,
    nc: &Path,
    prelude: &str,
) -> (Vec<String>, PathBuf) {
    let root = w.dir.join(tag);
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("coredns")).unwrap();
    std::fs::create_dir_all(etc.join("kube-dns")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    for f in [
        "protocols",
        "services",
        "nsswitch.conf",
        "passwd",
        "group",
        "hosts",
    ] {
        let _ = std::fs::copy(Path::new("/etc").join(f), etc.join(f));
    }
    // Debian's iptables is /usr/sbin/iptables -> /etc/alternatives/iptables -> the backend.
    let alternatives = etc.join("alternatives");
    run(&[
        "cp",
        "-a",
        "/etc/alternatives",
        alternatives.to_str().unwrap(),
    ]);
    // The node's resolvers: the fake one in the kube-dns namespace.
    std::fs::write(etc.join("resolv.conf"), "nameserver 10.0.2.3\n").unwrap();
    std::fs::write(etc.join("coredns/Corefile.base"), base).unwrap();
    // The binary's directory is bound at /etc/bin first: where it lives (target/, which may be
    // under /tmp, as in a CI clone) is hidden once /tmp is replaced.
    std::fs::create_dir_all(etc.join("bin")).unwrap();
    let script = format!(
        "{prelude} mount --bind {etc} /etc && mount --bind {bindir} /etc/bin \
         && mount --bind {tmp} /tmp && exec /etc/bin/{exe} \"$@\"",
        etc = etc.display(),
        bindir = nc.parent().unwrap().display(),
        tmp = root.join("tmp").display(),
        exe = nc.file_name().unwrap().to_string_lossy()
    );
    let argv = [
        "ip",
        "netns",
        "exec",
        &w.node.0,
        "sh",
        "-c",
        &script,
        "node-cache",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    (argv, etc)
}

/// The stubDomains edit of the end-to-end tests: `acme.local` to the stub server on 10.0.2.4,
/// written into node-cache's kube-dns ConfigMap directory under `etc`; returns once node-cache
/// has rendered it (within its 10 s poll) and the reload plugin has loaded it.
pub fn add_acme_stub_domain(nc: &mut Proc, etc: &Path) {
    std::fs::write(
        etc.join("kube-dns/stubDomains"),
        "{\"acme.local\": [\"10.0.2.4\"]}\n",
    )
    .unwrap();
    nc.expect(
        "Updated Corefile with 1 custom stubdomains",
        1,
        Duration::from_secs(30),
    );
    nc.expect("Reloading complete", 1, Duration::from_secs(60));
}

/// Whether the node has the `nodelocaldns` link.
pub fn has_link(node: &Ns) -> bool {
    node.exec(&["ip", "link", "show", "nodelocaldns"])
        .status
        .success()
}
