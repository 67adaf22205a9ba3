//! A running instance: lifecycle hooks, sockets, serving tasks, and an orderly stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, Instance};
use crate::dispatch::Dispatcher;
use crate::{http, tcp, udp};

/// A listener as it is actually bound.
pub struct Bound {
    /// Its label (`dns://:53`).
    pub label: String,
    /// The UDP address (same port as TCP, also when the Corefile asked for port 0).
    pub addr: SocketAddr,
    /// Banner lines.
    pub banner: Vec<String>,
    dispatch: Arc<ArcSwap<Dispatcher>>,
}

impl Bound {
    /// Serve a new dispatcher from now on (used by reload).
    pub fn swap(&self, d: Arc<Dispatcher>) {
        self.dispatch.store(d);
    }
}

/// A started instance.
pub struct Server {
    instance: Instance,
    bound: Vec<Bound>,
    http_addrs: Vec<(String, SocketAddr)>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How many UDP sockets (and so receive loops) each listener gets.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Server {
    /// Run the startup hooks, open every listener and start serving. Must run inside a tokio
    /// runtime.
    pub async fn start(instance: Instance) -> Result<Server, ConfigError> {
        for hook in instance.shared.lifecycles() {
            hook.on_startup()
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut bound = Vec::new();
        for spec in &instance.listeners {
            let want = spec.bind_addr()?;
            let dispatch = Arc::new(ArcSwap::new(spec.dispatcher.clone()));
            let first = udp::bind(want).map_err(|e| listen_err("udp", want, e))?;
            let addr = first.local_addr().map_err(|e| listen_err("udp", want, e))?;
            let mut udp_sockets = vec![first];
            for _ in 1..workers() {
                udp_sockets.push(udp::bind(addr).map_err(|e| listen_err("udp", addr, e))?);
            }
            let tcp_listener = tcp::bind(addr).map_err(|e| listen_err("tcp", addr, e))?;
            for s in udp_sockets {
                let s =
                    tokio::net::UdpSocket::from_std(s).map_err(|e| listen_err("udp", addr, e))?;
                tasks.push(tokio::spawn(udp::serve(
                    s,
                    dispatch.clone(),
                    stop_rx.clone(),
                )));
            }
            let l = tokio::net::TcpListener::from_std(tcp_listener)
                .map_err(|e| listen_err("tcp", addr, e))?;
            tasks.push(tokio::spawn(tcp::serve(
                l,
                dispatch.clone(),
                stop_rx.clone(),
            )));
            // With port 0 the banner shows the port actually bound.
            let banner = spec.banner(addr.port());
            bound.push(Bound {
                label: spec.label.clone(),
                addr,
                banner,
                dispatch,
            });
        }
        let mut http_addrs = Vec::new();
        for (addr, paths) in instance.shared.http.routes() {
            let l = http::bind(&addr)?;
            let local = l.local_addr().map_err(|e| ConfigError(e.to_string()))?;
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| ConfigError(e.to_string()))?;
            tasks.push(tokio::spawn(http::serve(l, paths, stop_rx.clone())));
            http_addrs.push((addr, local));
        }
        Ok(Server {
            instance,
            bound,
            http_addrs,
            stop,
            tasks,
        })
    }

    /// The bound listeners, sorted by label.
    pub fn listeners(&self) -> &[Bound] {
        &self.bound
    }

    /// The HTTP listeners (configured address, bound address).
    pub fn http_listeners(&self) -> &[(String, SocketAddr)] {
        &self.http_addrs
    }

    /// The loaded instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The startup banner's zone lines, as CoreDNS prints them.
    pub fn banner(&self) -> String {
        let mut out = String::new();
        for b in &self.bound {
            for line in &b.banner {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Stop: shutdown hooks, final-shutdown hooks, then close every listener and wait (briefly)
    /// for the serving loops to end.
    pub async fn stop(self) {
        let hooks = self.instance.shared.lifecycles();
        for h in &hooks {
            h.on_shutdown().await;
        }
        for h in &hooks {
            h.on_final_shutdown().await;
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

fn listen_err(proto: &str, addr: SocketAddr, e: std::io::Error) -> ConfigError {
    ConfigError(format!("listen {proto} {addr}: {e}"))
}
