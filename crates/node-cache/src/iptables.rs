//! The iptables rules node-cache keeps in place: twelve per listen address, in the `raw` table
//! (skip conntrack, so kube-proxy's NAT never sees DNS to or from the local addresses) and the
//! `filter` table (accept that untracked traffic), run through the `iptables` or `ip6tables`
//! binary as Kubernetes' iptables helper does: `-w 5 -C` to check, `-w 5 -I` to insert at the
//! top of the chain, `-w 5 -D` to delete. Reference: `node-cache.md` sections 4.2 and 4.3.

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The comment of the `NOTRACK` rules.
pub const COMMENT_SKIP_CONNTRACK: &str = "NodeLocal DNS Cache: skip conntrack";
/// The comment of the `ACCEPT` rules.
pub const COMMENT_ALLOW_TRAFFIC: &str = "NodeLocal DNS Cache: allow DNS traffic";

/// The text by which iptables says another process holds its lock; such failures are counted
/// as `iptables_lock` rather than `iptables`.
pub const LOCK_TEXT: &str = "holding the xtables lock";

/// How long one `-C` may run before it counts as failed (Kubernetes' helper allows 5 minutes).
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// One rule: table, chain and match/target arguments, each argument one argv element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `raw` or `filter`.
    pub table: &'static str,
    /// `PREROUTING`, `INPUT` or `OUTPUT`.
    pub chain: &'static str,
    /// The arguments after `-t <table>`, in order.
    pub args: Vec<String>,
    /// An IPv6 rule (`ip6tables`); IPv4 otherwise (`iptables`).
    pub ipv6: bool,
}

impl fmt::Display for Rule {
    /// As Go prints upstream's rule struct with `%v`: `{raw PREROUTING [-p tcp -d ...]}`
    /// (arguments space-joined, the comment unquoted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{{} {} [{}]}}",
            self.table,
            self.chain,
            self.args.join(" ")
        )
    }
}

/// The rules for `-localip` (the raw flag value: each comma-separated piece is used as
/// written), `-dns.port` and `-health-port`: twelve per address, in upstream's order. Each
/// rule is of its address's family (a piece with a colon is IPv6), so that one list holds the
/// rules of both tools on a dual-stack node.
pub fn rules(local_ip_str: &str, local_port: &str, health_port: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    for ip in local_ip_str.split(',') {
        let ipv6 = ip.contains(':');
        let rule = |table, chain, proto: &str, dir: &str, port: &str, target: &str| {
            let (addr_flag, port_flag) = if dir == "dst" {
                ("-d", "--dport")
            } else {
                ("-s", "--sport")
            };
            let comment = if target == "NOTRACK" {
                COMMENT_SKIP_CONNTRACK
            } else {
                COMMENT_ALLOW_TRAFFIC
            };
            Rule {
                table,
                chain,
                args: [
                    "-p",
                    proto,
                    addr_flag,
                    ip,
                    port_flag,
                    port,
                    "-j",
                    target,
                    "-m",
                    "comment",
                    "--comment",
                    comment,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                ipv6,
            }
        };
        let p = local_port;
        let h = health_port;
        out.extend([
            // Queries arriving for the local address skip conntrack...
            rule("raw", "PREROUTING", "tcp", "dst", p, "NOTRACK"),
            rule("raw", "PREROUTING", "udp", "dst", p, "NOTRACK"),
            // ...so they need an explicit accept (no ESTABLISHED state to match).
            rule("filter", "INPUT", "tcp", "dst", p, "ACCEPT"),
            rule("filter", "INPUT", "udp", "dst", p, "ACCEPT"),
            // Answers leaving from it, likewise.
            rule("raw", "OUTPUT", "tcp", "src", p, "NOTRACK"),
            rule("raw", "OUTPUT", "udp", "src", p, "NOTRACK"),
            rule("filter", "OUTPUT", "tcp", "src", p, "ACCEPT"),
            rule("filter", "OUTPUT", "udp", "src", p, "ACCEPT"),
            // Queries generated on the node itself (host-network pods).
            rule("raw", "OUTPUT", "tcp", "dst", p, "NOTRACK"),
            rule("raw", "OUTPUT", "udp", "dst", p, "NOTRACK"),
            // The kubelet's liveness probe to the health port, and its answers.
            rule("raw", "OUTPUT", "tcp", "dst", h, "NOTRACK"),
            rule("raw", "OUTPUT", "tcp", "src", h, "NOTRACK"),
        ]);
    }
    out
}

/// The metric label of an iptables failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another process held the xtables lock longer than `-w 5` waited.
    Lock,
    /// Anything else.
    Other,
}

/// A failed iptables operation. The text follows Kubernetes' helper (`error checking rule:
/// exit status 2: <output>`), with the exit status printed as Go prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IptablesError {
    /// The whole message.
    pub message: String,
}

impl IptablesError {
    /// `Lock` when the text says the xtables lock was held, else `Other`.
    pub fn kind(&self) -> ErrorKind {
        classify(&self.message)
    }
}

/// `Lock` when `text` contains [`LOCK_TEXT`], else `Other`.
pub fn classify(text: &str) -> ErrorKind {
    if text.contains(LOCK_TEXT) {
        ErrorKind::Lock
    } else {
        ErrorKind::Other
    }
}

/// What [`Iptables::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The rule was there.
    Present,
    /// It was not, and has been inserted at the top of its chain.
    Inserted,
}

/// Runs the iptables binary of one address family.
#[derive(Debug, Clone)]
pub struct Iptables {
    /// Program and leading arguments, e.g. `["iptables"]` or
    /// `["ip", "netns", "exec", "ns1", "iptables"]`.
    command: Vec<String>,
}

/// How a finished command ended.
struct Outcome {
    /// The exit code; `None` when a signal ended it.
    code: Option<i32>,
    /// Go's text for a failed run (`exit status 2`, `signal: killed`).
    status: String,
    /// Standard output then standard error.
    output: String,
}

impl Iptables {
    /// `iptables` for IPv4, `ip6tables` for IPv6, found through `PATH`.
    pub fn new(ipv6: bool) -> Self {
        let program = if ipv6 { "ip6tables" } else { "iptables" };
        Iptables {
            command: vec![program.to_string()],
        }
    }

    /// A given program with leading arguments (a wrapper, a path, or `ip netns exec <ns>
    /// iptables` for tests). Must not be empty.
    pub fn with_command(command: Vec<String>) -> Self {
        Iptables { command }
    }

    /// The program and leading arguments.
    pub fn command(&self) -> &[String] {
        &self.command
    }

    async fn run(
        &self,
        op: &str,
        rule: &Rule,
        timeout: Option<Duration>,
    ) -> Result<Outcome, IptablesError> {
        let Some((program, lead)) = self.command.split_first() else {
            return Err(IptablesError {
                message: "no iptables command configured".to_string(),
            });
        };
        let mut cmd = Command::new(program);
        cmd.args(lead)
            .args(["-w", "5", op, rule.chain, "-t", rule.table])
            .args(&rule.args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tracing::trace!(target: "node-cache", "running {:?}", cmd.as_std());
        let run = cmd.output();
        let out = match timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(IptablesError {
                        message: "timed out while checking rules".to_string(),
                    });
                }
            },
            None => run.await,
        };
        let out = out.map_err(|e| IptablesError {
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!("exec: \"{program}\": executable file not found in $PATH")
            } else {
                format!("exec: \"{program}\": {}", crate::netif::go_error_text(&e))
            },
        })?;
        let code = out.status.code();
        let status = match code {
            Some(c) => format!("exit status {c}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                match out.status.signal() {
                    Some(9) => "signal: killed".to_string(),
                    Some(s) => format!("signal: {s}"),
                    None => "exit status unknown".to_string(),
                }
            }
        };
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(Outcome {
            code,
            status,
            output,
        })
    }

    /// Whether the rule is in its chain: `-C` exits 0 (present) or 1 (absent); anything else
    /// is an error.
    pub async fn check(&self, rule: &Rule) -> Result<bool, IptablesError> {
        let o = self.run("-C", rule, Some(CHECK_TIMEOUT)).await?;
        match o.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(IptablesError {
                message: format!("error checking rule: {}: {}", o.status, o.output),
            }),
        }
    }

    /// Make sure the rule exists: check, and insert it at the top of its chain if absent.
    pub async fn ensure(&self, rule: &Rule) -> Result<Ensured, IptablesError> {
        if self.check(rule).await? {
            return Ok(Ensured::Present);
        }
        let o = self.run("-I", rule, None).await?;
        if o.code == Some(0) {
            Ok(Ensured::Inserted)
        } else {
            // Kubernetes' helper says "appending" whatever the position.
            Err(IptablesError {
                message: format!("error appending rule: {}: {}", o.status, o.output),
            })
        }
    }

    /// Delete one copy of the rule if there is one; true if one was deleted.
    pub async fn delete(&self, rule: &Rule) -> Result<bool, IptablesError> {
        if !self.check(rule).await? {
            return Ok(false);
        }
        let o = self.run("-D", rule, None).await?;
        if o.code == Some(0) {
            Ok(true)
        } else {
            Err(IptablesError {
                message: format!("error deleting rule: {}: {}", o.status, o.output),
            })
        }
    }

    /// Delete every copy of the rule (duplicates included) until `-C` says it is absent;
    /// returns how many were deleted. Stops at the first error.
    pub async fn delete_all(&self, rule: &Rule) -> Result<usize, IptablesError> {
        let mut n = 0;
        while self.delete(rule).await? {
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_rules_per_address_in_upstream_order() {
        let r = rules("169.254.20.10,10.96.0.10", "53", "8080");
        assert_eq!(r.len(), 24);
        assert_eq!(
            r[0].to_string(),
            "{raw PREROUTING [-p tcp -d 169.254.20.10 --dport 53 -j NOTRACK -m comment \
             --comment NodeLocal DNS Cache: skip conntrack]}"
        );
        assert_eq!(r[0].args.len(), 12);
        assert_eq!(r[0].args[11], COMMENT_SKIP_CONNTRACK);
        assert_eq!(
            r[3].to_string(),
            "{filter INPUT [-p udp -d 169.254.20.10 --dport 53 -j ACCEPT -m comment \
             --comment NodeLocal DNS Cache: allow DNS traffic]}"
        );
        assert_eq!(
            r[6].to_string(),
            "{filter OUTPUT [-p tcp -s 169.254.20.10 --sport 53 -j ACCEPT -m comment \
             --comment NodeLocal DNS Cache: allow DNS traffic]}"
        );
        assert_eq!(
            r[11].to_string(),
            "{raw OUTPUT [-p tcp -s 169.254.20.10 --sport 8080 -j NOTRACK -m comment \
             --comment NodeLocal DNS Cache: skip conntrack]}"
        );
        assert_eq!(r[12].args[3], "10.96.0.10");
        let tables: Vec<_> = r[..12].iter().map(|r| (r.table, r.chain)).collect();
        assert_eq!(
            tables,
            [
                ("raw", "PREROUTING"),
                ("raw", "PREROUTING"),
                ("filter", "INPUT"),
                ("filter", "INPUT"),
                ("raw", "OUTPUT"),
                ("raw", "OUTPUT"),
                ("filter", "OUTPUT"),
                ("filter", "OUTPUT"),
                ("raw", "OUTPUT"),
                ("raw", "OUTPUT"),
                ("raw", "OUTPUT"),
                ("raw", "OUTPUT"),
            ]
        );
    }

    #[test]
    fn each_rule_is_of_its_addresss_family() {
        let r = rules("169.254.20.10,fd00::10", "53", "8080");
        assert_eq!(r.len(), 24);
        assert!(r[..12].iter().all(|r| !r.ipv6));
        assert!(r[12..].iter().all(|r| r.ipv6));
        assert_eq!(r[12].args[3], "fd00::10");
    }

    #[test]
    fn lock_errors_are_told_apart() {
        assert_eq!(
            classify(
                "error checking rule: exit status 4: Another app is currently holding the \
                 xtables lock. Stopped waiting after 5s."
            ),
            ErrorKind::Lock
        );
        assert_eq!(
            classify("error checking rule: exit status 2: Chain 'X' does not exist"),
            ErrorKind::Other
        );
    }
}
