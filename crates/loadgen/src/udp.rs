//! UDP: one pacing task sends over all sockets in turn; one task per socket receives.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::stats::Stats;
use crate::{LoadError, Shared};

const FREE: u8 = 0;
const OUT: u8 = 1;
const LOST: u8 = 2;

#[derive(Clone, Copy)]
struct Slot {
    sent_us: u64,
    name: u32,
    state: u8,
}

/// One socket's ID space: a slot per ID, the outstanding IDs in send order, and its counts.
pub(crate) struct Shard {
    slots: Vec<Slot>,
    order: VecDeque<(u16, u64)>,
    next_id: u16,
    outstanding: usize,
    pub stats: Stats,
}

impl Shard {
    fn new(first_id: u16) -> Self {
        Shard {
            slots: vec![
                Slot {
                    sent_us: 0,
                    name: 0,
                    state: FREE
                };
                65536
            ],
            order: VecDeque::new(),
            next_id: first_id,
            outstanding: 0,
            stats: Stats::new(),
        }
    }

    /// Takes the next ID not outstanding for a query of `name` sent now.
    fn allocate(&mut self, name: u32, now_us: u64) -> Option<u16> {
        for _ in 0..65536 {
            let id = self.next_id;
            self.next_id = id.wrapping_add(1);
            let slot = &mut self.slots[id as usize];
            if slot.state != OUT {
                *slot = Slot {
                    sent_us: now_us,
                    name,
                    state: OUT,
                };
                self.order.push_back((id, now_us));
                self.outstanding += 1;
                self.stats.sent += 1;
                return Some(id);
            }
        }
        None
    }

    fn send_failed(&mut self, id: u16) {
        let slot = &mut self.slots[id as usize];
        if slot.state == OUT {
            slot.state = FREE;
            self.outstanding -= 1;
            self.stats.lost += 1;
            self.stats.send_errors += 1;
        }
    }

    /// Counts a reply; returns whether it answered a query in time.
    fn reply(&mut self, shared: &Shared, reply: &[u8], now_us: u64) -> bool {
        if reply.len() < 12 {
            self.stats.mismatched += 1;
            return false;
        }
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        let slot = &mut self.slots[id as usize];
        let matches = slot.state != FREE && shared.templates[slot.name as usize].matches(reply);
        if !matches {
            self.stats.mismatched += 1;
            return false;
        }
        if slot.state == LOST {
            slot.state = FREE;
            self.stats.late += 1;
            return false;
        }
        slot.state = FREE;
        self.outstanding -= 1;
        self.stats.answer(
            reply,
            slot.sent_us,
            now_us,
            shared.slow_us,
            shared.timeout_us,
        )
    }

    /// Marks as lost every query older than the timeout, or all outstanding ones if `all`.
    fn expire(&mut self, now_us: u64, timeout_us: u64, all: bool) {
        while let Some(&(id, t)) = self.order.front() {
            let slot = &mut self.slots[id as usize];
            if slot.state == OUT && slot.sent_us == t {
                if !all && now_us.saturating_sub(t) < timeout_us {
                    break;
                }
                slot.state = LOST;
                self.outstanding -= 1;
                self.stats.lost += 1;
            }
            self.order.pop_front();
        }
    }
}

pub(crate) struct Udp {
    pub shards: Vec<Arc<Mutex<Shard>>>,
    driver: JoinHandle<()>,
    receivers: Vec<JoinHandle<()>>,
    ports: Vec<u16>,
    ipv6: bool,
}

impl Udp {
    /// Waits for the driver to finish draining, stops the receivers, and sums the counts, with
    /// the kernel's count of answers our own sockets dropped (while they are still open).
    pub(crate) async fn finish(self) -> (Stats, Option<u64>) {
        let _ = self.driver.await;
        let drops = local_drops(&self.ports, self.ipv6);
        for r in &self.receivers {
            r.abort();
        }
        let mut s = Stats::new();
        for sh in &self.shards {
            s.merge(&sh.lock().unwrap().stats);
        }
        (s, drops)
    }
}

pub(crate) fn start(
    shared: Arc<Shared>,
    sockets: usize,
    rate: f64,
    stop: watch::Receiver<bool>,
) -> Result<Udp, LoadError> {
    let local: SocketAddr = if shared.target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut socks = Vec::with_capacity(sockets);
    let mut shards = Vec::with_capacity(sockets);
    let mut receivers = Vec::with_capacity(sockets);
    let mut ports = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let sock = Arc::new(bind(local).map_err(LoadError::Bind)?);
        ports.push(sock.local_addr().map_err(LoadError::Bind)?.port());
        let shard = Arc::new(Mutex::new(Shard::new(rand::random())));
        receivers.push(tokio::spawn(receive(
            shared.clone(),
            sock.clone(),
            shard.clone(),
        )));
        socks.push(sock);
        shards.push(shard);
    }
    let ipv6 = shared.target.is_ipv6();
    let driver = tokio::spawn(drive(shared, socks, shards.clone(), rate, stop));
    Ok(Udp {
        shards,
        driver,
        receivers,
        ports,
        ipv6,
    })
}

/// A UDP socket with a receive buffer of up to 4 MiB (as far as `net.core.rmem_max` allows),
/// so that a load generator starved of CPU for a moment does not drop answers itself.
fn bind(local: SocketAddr) -> std::io::Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::DGRAM,
        None,
    )?;
    let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    sock.bind(&local.into())?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

const RECV_BUFFER: usize = 4 << 20;

/// Datagrams the kernel dropped on our sockets (full receive buffer), from the `drops` column
/// of `/proc/net/udp` or `udp6`; None if it cannot be read.
fn local_drops(ports: &[u16], ipv6: bool) -> Option<u64> {
    let table = std::fs::read_to_string(if ipv6 {
        "/proc/net/udp6"
    } else {
        "/proc/net/udp"
    })
    .ok()?;
    let mut total = 0;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = f.get(1)?.rsplit(':').next()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        if ports.contains(&port) {
            total += f.get(12)?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

async fn receive(shared: Arc<Shared>, sock: Arc<UdpSocket>, shard: Arc<Mutex<Shard>>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors and the like: the queries concerned show up as lost.
            Err(_) => continue,
        };
        let now = shared.now_us();
        let answered = {
            let mut sh = shard.lock().unwrap();
            if from != shared.target {
                sh.stats.mismatched += 1;
                false
            } else {
                sh.reply(&shared, &buf[..n], now)
            }
        };
        if answered {
            shared.answered();
        }
    }
}

/// Paces the sends: every millisecond it sends the queries whose time has come, at most 4 ms
/// worth at once; more than 100 ms behind, it skips the backlog (counted as `skipped`).
/// After the stop it keeps expiring queries until none is outstanding or the timeout has
/// passed since the last send.
async fn drive(
    shared: Arc<Shared>,
    socks: Vec<Arc<UdpSocket>>,
    shards: Vec<Arc<Mutex<Shard>>>,
    rate: f64,
    stop: watch::Receiver<bool>,
) {
    let burst = ((rate * 0.004).ceil() as u64).max(1);
    let backlog_limit = ((rate * 0.1).ceil() as u64).max(burst);
    let mut picker = shared.picker(0);
    let mut scheduled: u64 = 0;
    let mut skipped: u64 = 0;
    let mut next_sock = 0;
    let mut buf = Vec::with_capacity(512);
    let mut deadline: Option<u64> = None;
    let mut last_send_us = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = shared.now_us();
        if deadline.is_none() && *stop.borrow() {
            deadline = Some(last_send_us + shared.timeout_us);
        }
        if deadline.is_none() {
            let due = (now as f64 * rate / 1e6) as u64;
            let mut n = due.saturating_sub(scheduled);
            if n > backlog_limit {
                skipped += n - burst;
                scheduled += n - burst;
                n = burst;
            }
            for _ in 0..n.min(burst) {
                scheduled += 1;
                let s = next_sock;
                next_sock = (next_sock + 1) % socks.len();
                let name = picker.next();
                let now = shared.now_us();
                let Some(id) = shards[s].lock().unwrap().allocate(name, now) else {
                    skipped += 1;
                    continue;
                };
                last_send_us = now;
                buf.clear();
                buf.extend_from_slice(&shared.templates[name as usize].wire);
                buf[..2].copy_from_slice(&id.to_be_bytes());
                if socks[s].send_to(&buf, shared.target).await.is_err() {
                    shards[s].lock().unwrap().send_failed(id);
                }
            }
        }
        let now = shared.now_us();
        let mut outstanding = 0;
        for sh in &shards {
            let mut sh = sh.lock().unwrap();
            sh.expire(now, shared.timeout_us, false);
            outstanding += sh.outstanding;
        }
        if let Some(d) = deadline
            && (outstanding == 0 || now >= d)
        {
            for sh in &shards {
                sh.lock().unwrap().expire(now, shared.timeout_us, true);
            }
            break;
        }
    }
    shards[0].lock().unwrap().stats.skipped += skipped;
}
