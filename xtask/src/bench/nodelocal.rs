//! The node-local-dns shape: three network namespaces made here (a pod, the node, kube-dns)
//! joined by veth pairs; the node cache on the node as the DaemonSet runs it; lookups from the
//! pod like the `testdns` tool of node-local-dns articles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::procs::{Measure, Proc, cpu_seconds, json_num, stdout_of};
use super::{Kind, Opts, Tools, pinned, progress};

const LOCAL: &str = "169.254.20.10";
const KUBEDNS_IP: &str = "10.96.0.10";
/// kube-dns-upstream's service address (the node cache's `__PILLAR__CLUSTER__DNS__`).
const UPSTREAM_SVC: &str = "10.0.2.2";
const LAYOUTS: [&str; 2] = ["shared", "pinned"];
const RUNS: usize = 2;

/// One lookup run.
pub struct LookupRun {
    pub layout: &'static str,
    pub kind: Kind,
    pub run: usize,
    pub lookups: f64,
    pub per_second: f64,
    pub failed: f64,
    pub slow: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The node cache's CPU time during the run.
    pub cpu_s: f64,
}

/// A network namespace; deleted when dropped.
struct Ns(String);

impl Ns {
    fn new(name: String) -> Result<Ns> {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name])?;
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn sh(argv: &[&str]) -> Result<()> {
    stdout_of(Command::new(argv[0]).args(&argv[1..]), &format!("{argv:?}"))?;
    Ok(())
}

fn veth(a: &Ns, ifa: &str, addr_a: &str, b: &Ns, ifb: &str, addr_b: &str) -> Result<()> {
    sh(&[
        "ip", "link", "add", ifa, "netns", &a.0, "type", "veth", "peer", "name", ifb, "netns", &b.0,
    ])?;
    a.ip(&["addr", "add", addr_a, "dev", ifa])?;
    b.ip(&["addr", "add", addr_b, "dev", ifb])?;
    a.ip(&["link", "set", ifa, "up"])?;
    b.ip(&["link", "set", ifb, "up"])?;
    Ok(())
}

struct World {
    // Field order is drop order: processes stop before their namespaces go.
    kube_dns: Proc,
    pod: Ns,
    node: Ns,
    _kdns: Ns,
    dir: PathBuf,
    resolv: PathBuf,
}

fn world(tools: &Tools, dir: &Path) -> Result<World> {
    let tag = std::process::id();
    let pod = Ns::new(format!("fdb{tag}-pod"))?;
    let node = Ns::new(format!("fdb{tag}-node"))?;
    let kdns = Ns::new(format!("fdb{tag}-kdns"))?;
    veth(&node, "np0", "10.0.1.1/24", &pod, "pp0", "10.0.1.2/24")?;
    pod.ip(&["route", "add", "default", "via", "10.0.1.1"])?;
    veth(&node, "nk0", "10.0.2.1/24", &kdns, "kd0", "10.0.2.2/24")?;
    kdns.ip(&["addr", "add", "10.0.2.3/24", "dev", "kd0"])?;
    kdns.ip(&["addr", "add", &format!("{KUBEDNS_IP}/32"), "dev", "lo"])?;
    // The node's link for the local IPs, as node-cache finds it after a restart (a bridge:
    // not every kernel here has the dummy driver).
    node.ip(&["link", "add", "nodelocaldns", "type", "bridge"])?;

    let kd = dir.join("kdns");
    std::fs::create_dir_all(&kd)?;
    std::fs::write(
        kd.join("cluster.local.db"),
        "$ORIGIN cluster.local.\n\
         @ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n\
         @ 30 IN NS ns.dns.cluster.local.\n\
         ns.dns 30 IN A 10.0.2.2\n\
         kubernetes.default.svc 30 IN A 10.96.0.1\n\
         kube-dns.kube-system.svc 30 IN A 10.96.0.10\n",
    )?;
    let d = kd.display();
    // kube-dns as kubeadm's CoreDNS serves it (cache 30), with `file` for the kubernetes plugin;
    // 10.0.2.3 stands in for the node's own resolver.
    std::fs::write(
        kd.join("Corefile"),
        format!(
            "cluster.local:53 {{\n    bind 10.0.2.2 {KUBEDNS_IP}\n    errors\n    cache 30\n    file {d}/cluster.local.db\n}}\n\
             .:53 {{\n    bind 10.0.2.3\n    template IN A {{\n        answer \"{{{{ .Name }}}} 60 IN A 203.0.113.7\"\n    }}\n}}\n"
        ),
    )?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &kdns.0])
        .arg(&tools.coredns)
        .args(["-conf", &format!("{d}/Corefile")]);
    let mut kube_dns = Proc::spawn("kube-dns (CoreDNS)", cmd, &dir.join("kube-dns.log"))?;
    kube_dns.wait_log("CoreDNS-", Duration::from_secs(20))?;
    let resolv = dir.join("pod-resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver {LOCAL}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        ),
    )?;
    Ok(World {
        kube_dns,
        pod,
        node,
        _kdns: kdns,
        dir: dir.to_path_buf(),
        resolv,
    })
}

/// The node-local-dns manifest the project ships.
fn manifest() -> Result<String> {
    let path = crate::root().join("deploy/nodelocaldns.yaml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The DaemonSet's container `args` (the quoted strings of its `args: [...]` line), after the
/// installer's `sed` (iptables mode).
fn daemonset_args() -> Result<Vec<String>> {
    let yaml = manifest()?;
    let line = yaml
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("args: ["))
        .context("no args in the manifest's DaemonSet")?;
    Ok(line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|a| {
            a.replace("__PILLAR__LOCAL__DNS__", LOCAL)
                .replace("__PILLAR__DNS__SERVER__", KUBEDNS_IP)
        })
        .collect())
}

/// The manifest's ConfigMap Corefile, after the installer's `sed` (iptables mode).
fn configmap_corefile() -> Result<String> {
    const KEY: &str = "  Corefile: |\n";
    let yaml = manifest()?;
    let start = yaml.find(KEY).context("no Corefile in the manifest")? + KEY.len();
    let mut text = String::new();
    for line in yaml[start..].lines() {
        if line.trim().is_empty() {
            text.push('\n');
            continue;
        }
        let Some(l) = line.strip_prefix("    ") else {
            break;
        };
        text.push_str(l);
        text.push('\n');
    }
    Ok(text
        .replace("__PILLAR__LOCAL__DNS__", LOCAL)
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace("__PILLAR__DNS__SERVER__", KUBEDNS_IP))
}

impl World {
    /// The node's own /etc (resolv.conf, the ConfigMap as Corefile.base) under `root`, and the
    /// command that runs `program` on the node with it bound over /etc and `root/tmp` over
    /// /tmp, pinned to `cpus`. Each step execs the next, so the PID is the program's.
    fn node_command(&self, root: &Path, program: &Path, cpus: &str) -> Result<Command> {
        let etc = root.join("etc");
        std::fs::create_dir_all(etc.join("coredns"))?;
        std::fs::create_dir_all(etc.join("kube-dns"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
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
        // iptables is found through /etc/alternatives on Debian.
        if !etc.join("alternatives").exists() {
            sh(&[
                "cp",
                "-a",
                "/etc/alternatives",
                &etc.join("alternatives").display().to_string(),
            ])?;
        }
        std::fs::write(etc.join("resolv.conf"), "nameserver 10.0.2.3\n")?;
        std::fs::write(etc.join("coredns/Corefile.base"), configmap_corefile()?)?;
        let bindir = program.parent().context("program without a directory")?;
        let exe = program
            .file_name()
            .context("program without a name")?
            .to_string_lossy();
        let script = format!(
            "mount --bind {etc} /etc && mount --bind {bindir} /mnt && mount --bind {tmp} /tmp && exec /mnt/{exe} \"$@\"",
            etc = etc.display(),
            bindir = bindir.display(),
            tmp = root.join("tmp").display(),
        );
        let mut cmd = pinned(cpus, Path::new("ip"));
        cmd.args(["netns", "exec", &self.node.0, "sh", "-c", &script, "node"]);
        Ok(cmd)
    }

    /// Start the node cache of `kind` on CPUs `cpus`.
    fn start_cache(&self, tools: &Tools, kind: Kind, cpus: &str) -> Result<Proc> {
        let root = self.dir.join("node");
        let log = self.dir.join(format!(
            "node-{}-{}.log",
            kind.label(),
            cpus.replace(',', "")
        ));
        let mut p = match kind {
            Kind::Ferrodns => {
                let mut cmd = self.node_command(&root, &tools.node_cache, cpus)?;
                cmd.args(daemonset_args()?)
                    .env("KUBE_DNS_UPSTREAM_SERVICE_HOST", UPSTREAM_SVC);
                let mut p = Proc::spawn("node-cache (ferrodns)", cmd, &log)?;
                p.wait_log("ferrodns-", Duration::from_secs(30))?;
                p
            }
            _ => {
                // The Corefile node-cache rendered, with its interface and rules left in
                // place (it was killed, not stopped).
                if !root.join("etc/Corefile").exists() {
                    bail!("CoreDNS needs the Corefile node-cache renders: run ferrodns first");
                }
                let mut cmd = self.node_command(&root, &tools.coredns, cpus)?;
                cmd.args(["-conf", "/etc/Corefile"]);
                let mut p = Proc::spawn("node cache (CoreDNS)", cmd, &log)?;
                p.wait_log("CoreDNS-", Duration::from_secs(30))?;
                p
            }
        };
        // Ready when a lookup goes through from the pod.
        for _ in 0..20 {
            let out = self.testdns(tools, "0,1", 1, 1)?;
            if json_num(&out, "lookups")? > 0.0 {
                return Ok(p);
            }
            p.alive()?;
        }
        bail!(
            "no lookup from the pod went through {}:\n{}",
            p.name,
            p.log_tail()
        )
    }

    /// `ferrodns-testdns` in the pod on `cpus`; its JSON report.
    fn testdns(&self, tools: &Tools, cpus: &str, conc: usize, secs: u64) -> Result<String> {
        let mut cmd = pinned(cpus, Path::new("ip"));
        cmd.args(["netns", "exec", &self.pod.0])
            .arg(&tools.testdns)
            .args([
                "-resolv",
                &self.resolv.display().to_string(),
                "-host",
                "kube-dns.kube-system",
                "-c",
                &conc.to_string(),
                "-d",
                &format!("{secs}s"),
                "-l",
                "5000",
                "-json",
                "-quiet",
                // As many runtime threads as CPUs it may use, as a Go program's GOMAXPROCS.
                "-threads",
                &(cpus.split(',').count()).to_string(),
            ]);
        stdout_of(&mut cmd, "ferrodns-testdns")
    }
}

pub fn run(tools: &Tools, opts: &Opts, dir: &Path) -> Result<Vec<LookupRun>> {
    let uid = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!("the node-local-dns shape needs root (network namespaces, iptables, mounts)");
    }
    progress("node-local: namespaces pod, node and kube-dns");
    let w = world(tools, dir)?;
    let mut runs = Vec::new();
    for kind in [Kind::Ferrodns, Kind::CoreDns] {
        for layout in LAYOUTS {
            let (cache_cpus, rest_cpus) = match layout {
                "pinned" => ("0", "1"),
                _ => ("0,1", "0,1"),
            };
            w.kube_dns.pin(rest_cpus)?;
            progress(&format!("node-local: {layout}: {}: starting", kind.label()));
            let mut cache = w.start_cache(tools, kind, cache_cpus)?;
            // Warm: the first lookups fill the cache and open the TCP connections.
            w.testdns(tools, rest_cpus, 200, 2)?;
            for run in 1..=RUNS {
                progress(&format!(
                    "node-local: {layout}: {}: run {run}, {} s of -c 200",
                    kind.label(),
                    opts.lookup_secs
                ));
                let before = cpu_seconds(cache.pid())?;
                let out = w.testdns(tools, rest_cpus, 200, opts.lookup_secs)?;
                let cpu = cpu_seconds(cache.pid())? - before;
                cache.alive()?;
                let r = LookupRun {
                    layout,
                    kind,
                    run,
                    lookups: json_num(&out, "lookups")?,
                    per_second: json_num(&out, "per_second")?,
                    failed: json_num(&out, "failed")?,
                    slow: json_num(&out, "slow")? as u64,
                    p50_ms: json_num(&out, "p50_ms")?,
                    p99_ms: json_num(&out, "p99_ms")?,
                    max_ms: json_num(&out, "max_ms")?,
                    cpu_s: cpu,
                };
                progress(&format!(
                    "node-local: {layout}: {}: {:.0} lookups, p99 {:.2} ms, {} over 5 s, CPU {:.2} s",
                    kind.label(),
                    r.lookups,
                    r.p99_ms,
                    r.slow,
                    r.cpu_s
                ));
                runs.push(r);
            }
            // Killed, not stopped: the interface and rules stay for the next node cache.
            drop(cache);
        }
    }
    Ok(runs)
}
