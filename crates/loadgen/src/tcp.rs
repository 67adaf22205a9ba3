//! TCP: one task per connection sends pipelined queries at its own rate, reads answers, and
//! when the server closes the connection (or a write fails) connects again at once and sends
//! again every query still unanswered, keeping its original send time (RFC 7766, 6.2.1.1 asks
//! clients to retry queries on a new connection when the server closes one).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::Shared;
use crate::stats::Stats;

/// Retry interval while the server refuses connections.
const RETRY: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Lost IDs are remembered this long to recognise late answers.
const LOST_MEMORY_US: u64 = 30_000_000;

struct Conn {
    shared: Arc<Shared>,
    stats: Arc<Mutex<Stats>>,
    /// Outstanding: ID → (send time, name).
    out: HashMap<u16, (u64, u32)>,
    /// Outstanding IDs in send order (entries whose query was answered are skipped).
    order: VecDeque<(u16, u64)>,
    /// Lost: ID → (name, when it was declared lost).
    lost: HashMap<u16, (u32, u64)>,
    next_id: u16,
}

impl Conn {
    fn frame(&self, buf: &mut Vec<u8>, id: u16, name: u32) {
        let wire = &self.shared.templates[name as usize].wire;
        buf.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        let at = buf.len();
        buf.extend_from_slice(wire);
        buf[at..at + 2].copy_from_slice(&id.to_be_bytes());
    }

    fn allocate(&mut self, name: u32, now_us: u64) -> Option<u16> {
        for _ in 0..65536 {
            let id = self.next_id;
            self.next_id = id.wrapping_add(1);
            if !self.out.contains_key(&id) {
                self.lost.remove(&id);
                self.out.insert(id, (now_us, name));
                self.order.push_back((id, now_us));
                return Some(id);
            }
        }
        None
    }

    /// Counts one answer frame; returns whether it answered a query in time.
    fn reply(&mut self, reply: &[u8], now_us: u64) -> bool {
        let mut stats = self.stats.lock().unwrap();
        if reply.len() < 12 {
            stats.mismatched += 1;
            return false;
        }
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        let templates = &self.shared.templates;
        if let Some(&(sent, name)) = self.out.get(&id) {
            if templates[name as usize].matches(reply) {
                self.out.remove(&id);
                return stats.answer(
                    reply,
                    sent,
                    now_us,
                    self.shared.slow_us,
                    self.shared.timeout_us,
                );
            }
        } else if let Some(&(name, _)) = self.lost.get(&id)
            && templates[name as usize].matches(reply)
        {
            self.lost.remove(&id);
            stats.late += 1;
            return false;
        }
        stats.mismatched += 1;
        false
    }

    /// Marks as lost every query older than the timeout, or all outstanding ones if `all`.
    fn expire(&mut self, now_us: u64, all: bool) {
        let timeout = self.shared.timeout_us;
        let mut lost = 0;
        while let Some(&(id, t)) = self.order.front() {
            if let Some(&(sent, name)) = self.out.get(&id)
                && sent == t
            {
                if !all && now_us.saturating_sub(t) < timeout {
                    break;
                }
                self.out.remove(&id);
                self.lost.insert(id, (name, now_us));
                lost += 1;
            }
            self.order.pop_front();
        }
        if self.lost.len() > 4096 {
            self.lost
                .retain(|_, &mut (_, at)| at + LOST_MEMORY_US > now_us);
        }
        if lost > 0 {
            self.stats.lock().unwrap().lost += lost;
        }
    }

    /// Frames of every outstanding query, oldest first, for a new connection.
    fn resend(&self, buf: &mut Vec<u8>) -> u64 {
        let mut n = 0;
        for &(id, t) in &self.order {
            if let Some(&(sent, name)) = self.out.get(&id)
                && sent == t
            {
                self.frame(buf, id, name);
                n += 1;
            }
        }
        n
    }
}

async fn connect(shared: &Shared) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf)> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.target))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(stream.into_split())
}

pub(crate) async fn connection(
    shared: Arc<Shared>,
    index: usize,
    rate: f64,
    stats: Arc<Mutex<Stats>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut picker = shared.picker(index);
    let period = Duration::from_secs_f64(1.0 / rate);
    let phase = period.mul_f64(rand::rng().random::<f64>());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sweep = tokio::time::interval(Duration::from_millis(10));
    sweep.set_missed_tick_behavior(MissedTickBehavior::Skip);

    let mut c = Conn {
        shared: shared.clone(),
        stats: stats.clone(),
        out: HashMap::new(),
        order: VecDeque::new(),
        lost: HashMap::new(),
        next_id: rand::random(),
    };
    let mut conn: Option<(OwnedReadHalf, OwnedWriteHalf)> = None;
    let mut connected_before = false;
    let mut rbuf = vec![0u8; 2 * 65538];
    let mut rlen = 0;
    let mut wbuf = Vec::with_capacity(512);
    let mut deadline: Option<u64> = None;
    let mut last_send_us = 0;

    loop {
        let now = shared.now_us();
        if deadline.is_none() && *stop.borrow() {
            deadline = Some(last_send_us + shared.timeout_us);
        }
        if let Some(d) = deadline
            && (c.out.is_empty() || now >= d)
        {
            break;
        }

        let Some((rd, wr)) = conn.as_mut() else {
            match connect(&shared).await {
                Ok((rd, mut wr)) => {
                    rlen = 0;
                    wbuf.clear();
                    let n = c.resend(&mut wbuf);
                    {
                        let mut s = stats.lock().unwrap();
                        if connected_before {
                            s.reconnects += 1;
                        }
                        s.resends += n;
                    }
                    connected_before = true;
                    if wbuf.is_empty() || wr.write_all(&wbuf).await.is_ok() {
                        conn = Some((rd, wr));
                    }
                }
                Err(_) => {
                    stats.lock().unwrap().connect_failures += 1;
                    tokio::time::sleep(RETRY).await;
                    c.expire(shared.now_us(), false);
                }
            }
            continue;
        };

        let mut broken = false;
        tokio::select! {
            _ = tick.tick(), if deadline.is_none() => {
                let now = shared.now_us();
                let name = picker.next();
                if let Some(id) = c.allocate(name, now) {
                    stats.lock().unwrap().sent += 1;
                    last_send_us = now;
                    wbuf.clear();
                    c.frame(&mut wbuf, id, name);
                    broken = wr.write_all(&wbuf).await.is_err();
                }
            }
            r = rd.read(&mut rbuf[rlen..]) => match r {
                Ok(0) | Err(_) => broken = true,
                Ok(n) => {
                    rlen += n;
                    let now = shared.now_us();
                    let mut at = 0;
                    while rlen - at >= 2 {
                        let len = u16::from_be_bytes([rbuf[at], rbuf[at + 1]]) as usize;
                        if rlen - at < 2 + len {
                            break;
                        }
                        if c.reply(&rbuf[at + 2..at + 2 + len], now) {
                            shared.answered();
                        }
                        at += 2 + len;
                    }
                    rbuf.copy_within(at..rlen, 0);
                    rlen -= at;
                }
            },
            _ = sweep.tick() => c.expire(shared.now_us(), false),
            _ = stop.changed(), if deadline.is_none() => {}
        }
        if broken {
            conn = None;
        }
    }
    c.expire(shared.now_us(), true);
}
