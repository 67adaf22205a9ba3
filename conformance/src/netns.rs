//! Network namespaces for cases whose Corefile binds fixed addresses and ports (node-local-dns's
//! binds 169.254.20.10 and 10.96.0.10 on port 53): each server gets a namespace of its own, with
//! loopback up and the case's addresses on it, so the two servers under test never collide and
//! nothing outside the namespaces is touched.
//!
//! The server runs under `ip netns exec`; the harness's own sockets for that side (its fake
//! upstreams, its queries) are opened by a thread that has joined the namespace, and a socket
//! stays in the namespace it was created in.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A namespace, deleted on drop.
pub struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    /// A fresh namespace with loopback up and `addresses` on it.
    pub fn create(side: &str, addresses: &[String]) -> Result<Netns> {
        let name = format!(
            "fdns-conf-{}-{}-{side}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]).context("creating a network namespace (needs root)")?;
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        for a in addresses {
            let prefix = if a.contains(':') { "128" } else { "32" };
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{a}/{prefix}"),
                "dev",
                "lo",
            ])?;
        }
        Ok(ns)
    }

    /// Its name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `f` on a thread inside the namespace; sockets it opens live there.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        let join_err = format!("joining {path}");
        std::thread::scope(|s| {
            s.spawn(move || -> Result<T> {
                setns(&file, CloneFlags::CLONE_NEWNET).context(join_err)?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in {path} panicked"))?
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn sockets_opened_inside_reach_each_other_and_not_the_host() {
        let ns = Netns::create("test", &["169.254.20.10".to_string()]).unwrap();
        let server = ns
            .run(|| UdpSocket::bind("169.254.20.10:53").unwrap())
            .unwrap();
        let reply = ns
            .run(|| {
                let c = UdpSocket::bind("127.0.0.1:0").unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .unwrap();
                c.send_to(b"ping", "169.254.20.10:53").unwrap();
                let mut buf = [0u8; 16];
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
                let (n, _) = c.recv_from(&mut buf).unwrap();
                buf[..n].to_vec()
            })
            .unwrap();
        assert_eq!(reply, b"ping");
        // The host has no such address.
        assert!(UdpSocket::bind("169.254.20.10:53").is_err());
    }
}
