//! The `process_*` families Go's Prometheus client exports on Linux (its process collector,
//! which CoreDNS registers), read from `/proc/self` at every scrape, with Go's names, help texts
//! and types. A value that cannot be read leaves its family out, as Go's collector does.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux; Go's procfs
/// assumes the same).
const USER_HZ: f64 = 100.0;

/// What one scrape reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sample {
    /// User plus system CPU seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// The soft limit on open files.
    pub max_fds: Option<f64>,
    /// Virtual memory size in bytes.
    pub virtual_memory: Option<f64>,
    /// The soft limit on the address space (2^64-1 when unlimited, as Go reports it).
    pub virtual_memory_max: Option<f64>,
    /// Resident memory in bytes.
    pub resident_memory: Option<f64>,
    /// Start time, seconds since the epoch.
    pub start_time: Option<f64>,
    /// `IpExt: InOctets` of the process's network namespace.
    pub network_receive: Option<f64>,
    /// `IpExt: OutOctets`.
    pub network_transmit: Option<f64>,
}

impl Sample {
    /// Read `/proc/self` now.
    pub fn read() -> Sample {
        let mut s = Sample::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name, which may hold spaces.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // rest[0] is field 3 (state): utime is field 14, stime 15, starttime 22,
                // vsize 23.
                let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
                if let (Some(u), Some(k)) = (num(14), num(15)) {
                    s.cpu_seconds = Some((u + k) / USER_HZ);
                }
                s.virtual_memory = num(23);
                if let (Some(start), Some(boot)) = (num(22), boot_time()) {
                    s.start_time = Some(boot + start / USER_HZ);
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            s.resident_memory = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map(|kb| kb * 1024.0);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            s.open_fds = Some(dir.count() as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            let soft = |name: &str| {
                let rest = limits.lines().find_map(|l| l.strip_prefix(name))?;
                match rest.split_whitespace().next()? {
                    "unlimited" => Some(u64::MAX as f64),
                    v => v.parse::<f64>().ok(),
                }
            };
            s.max_fds = soft("Max open files");
            s.virtual_memory_max = soft("Max address space");
        }
        if let Ok(netstat) = std::fs::read_to_string("/proc/self/net/netstat") {
            let ip: Vec<&str> = netstat
                .lines()
                .filter(|l| l.starts_with("IpExt:"))
                .collect();
            if let [names, values] = ip.as_slice() {
                let field = |want: &str| {
                    let i = names.split_whitespace().position(|n| n == want)?;
                    values.split_whitespace().nth(i)?.parse::<f64>().ok()
                };
                s.network_receive = field("InOctets");
                s.network_transmit = field("OutOctets");
            }
        }
        s
    }
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The collector registered with the registry.
#[derive(Debug)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = Sample::read();
        // Counters are named without `_total` here: the encoder adds it to their samples.
        let counters = [
            (
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                s.cpu_seconds,
            ),
            (
                "process_network_receive_bytes",
                "Number of bytes received by the process over the network.",
                s.network_receive,
            ),
            (
                "process_network_transmit_bytes",
                "Number of bytes sent by the process over the network.",
                s.network_transmit,
            ),
        ];
        for (name, help, v) in counters {
            if let Some(v) = v {
                let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(v).encode(m)?;
            }
        }
        let gauges = [
            (
                "process_open_fds",
                "Number of open file descriptors.",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                s.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                s.virtual_memory,
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                s.virtual_memory_max,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                s.resident_memory,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                s.start_time,
            ),
        ];
        for (name, help, v) in gauges {
            if let Some(v) = v {
                let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_self_reads_plausible_values() {
        let s = Sample::read();
        assert!(s.cpu_seconds.is_some_and(|v| v >= 0.0), "{s:?}");
        assert!(s.open_fds.is_some_and(|v| v >= 3.0), "{s:?}");
        assert!(
            s.max_fds.is_some_and(|v| v >= s.open_fds.unwrap_or(0.0)),
            "{s:?}"
        );
        assert!(s.resident_memory.is_some_and(|v| v > 1e5), "{s:?}");
        assert!(
            s.virtual_memory
                .is_some_and(|v| v >= s.resident_memory.unwrap_or(0.0)),
            "{s:?}"
        );
        assert!(s.virtual_memory_max.is_some_and(|v| v > 0.0), "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        assert!(
            s.start_time.is_some_and(|v| v > 1e9 && v <= now + 1.0),
            "{s:?}"
        );
    }
}
