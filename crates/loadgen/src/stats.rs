//! Counters and the latency histogram each sender keeps, and their merge into a [`Counts`].

use crate::report::{Counts, Latency, Rcodes};

/// Values below this are kept exactly; above it each power of two is split in 64 buckets, so a
/// percentile is off by less than 1.6 %.
const EXACT: u64 = 128;
const SUB: usize = 64;
/// Enough buckets for any `u64`.
const BUCKETS: usize = 58 * SUB + SUB * 2;

/// A log-linear histogram of latencies in microseconds (an HDR histogram's idea, fixed size).
#[derive(Clone)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros() as usize;
        let e = msb - 6;
        e * SUB + (v >> e) as usize
    }

    /// The largest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < EXACT as usize {
            return i as u64;
        }
        let e = i / SUB - 1;
        let m = (i % SUB + SUB) as u64;
        ((((m + 1) as u128) << e) - 1).min(u64::MAX as u128) as u64
    }

    pub(crate) fn record(&mut self, us: u64) {
        self.buckets[Self::index(us)] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1): the upper edge of its bucket, never above the maximum.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }

    pub(crate) fn latency(&self) -> Latency {
        Latency {
            p50_us: self.quantile(0.5),
            p99_us: self.quantile(0.99),
            p999_us: self.quantile(0.999),
            max_us: self.max,
        }
    }
}

/// What one sender (a UDP socket, or all TCP connections) counted.
#[derive(Clone)]
pub(crate) struct Stats {
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    pub slow: u64,
    pub late: u64,
    pub mismatched: u64,
    /// NOERROR, NXDOMAIN, SERVFAIL, REFUSED, other.
    pub rcodes: [u64; 5],
    pub tc: u64,
    pub hist: Histogram,
    pub skipped: u64,
    pub send_errors: u64,
    pub reconnects: u64,
    pub resends: u64,
    pub connect_failures: u64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            sent: 0,
            answered: 0,
            lost: 0,
            slow: 0,
            late: 0,
            mismatched: 0,
            rcodes: [0; 5],
            tc: 0,
            hist: Histogram::new(),
            skipped: 0,
            send_errors: 0,
            reconnects: 0,
            resends: 0,
            connect_failures: 0,
        }
    }

    pub(crate) fn merge(&mut self, o: &Stats) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.lost += o.lost;
        self.slow += o.slow;
        self.late += o.late;
        self.mismatched += o.mismatched;
        for (a, b) in self.rcodes.iter_mut().zip(o.rcodes) {
            *a += b;
        }
        self.tc += o.tc;
        self.hist.merge(&o.hist);
        self.skipped += o.skipped;
        self.send_errors += o.send_errors;
        self.reconnects += o.reconnects;
        self.resends += o.resends;
        self.connect_failures += o.connect_failures;
    }

    /// Counts an answer to a query sent at `sent_us` that arrived at `now_us`: answered (and
    /// maybe slow) inside the timeout, else lost and late. Returns whether it was in time.
    pub(crate) fn answer(
        &mut self,
        reply: &[u8],
        sent_us: u64,
        now_us: u64,
        slow_us: u64,
        timeout_us: u64,
    ) -> bool {
        let lat = now_us.saturating_sub(sent_us);
        if lat >= timeout_us {
            self.lost += 1;
            self.late += 1;
            return false;
        }
        self.answered += 1;
        self.hist.record(lat);
        if lat > slow_us {
            self.slow += 1;
        }
        let rcode = match reply[3] & 0x0f {
            0 => 0,
            3 => 1,
            2 => 2,
            5 => 3,
            _ => 4,
        };
        self.rcodes[rcode] += 1;
        if reply[2] & 0x02 != 0 {
            self.tc += 1;
        }
        true
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            sent: self.sent,
            answered: self.answered,
            lost: self.lost,
            slow: self.slow,
            late: self.late,
            mismatched: self.mismatched,
            rcodes: Rcodes {
                noerror: self.rcodes[0],
                nxdomain: self.rcodes[1],
                servfail: self.rcodes[2],
                refused: self.rcodes[3],
                other: self.rcodes[4],
            },
            tc: self.tc,
            latency: self.hist.latency(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut last = 0;
        for v in [0u64, 1, 127, 128, 129, 255, 256, 1000, 1_000_000, u64::MAX] {
            let i = Histogram::index(v);
            assert!(i >= last, "{v}");
            last = i;
            assert!(Histogram::upper(i) >= v, "{v}");
            assert!(Histogram::upper(i) - v <= v / 64 + 1, "{v}");
        }
        assert_eq!(Histogram::index(128), 128);
        assert_eq!(Histogram::index(256), 192);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        assert!(
            (495..=508).contains(&h.quantile(0.5)),
            "{}",
            h.quantile(0.5)
        );
        assert!((990..=1000).contains(&h.quantile(0.99)));
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(h.latency().max_us, 1000);
    }
}
