//! Shared by the perf binaries: the bench protocol, and reading a server process's CPU
//! time and memory from `/proc`.
//!
//! The bench protocol, spoken by every bench server: echo each text or binary message to
//! its sender, except a message whose first byte is `B`, which goes to every connected
//! client (the sender included) through the server's broadcast.

use std::io;

#[cfg(feature = "census")]
pub mod census;

/// First byte of a message the server must broadcast.
pub const BROADCAST_TAG: u8 = b'B';
/// First byte of a message the server must send to every member of the sender's room
/// (bench-server `--rooms`: the room named by the upgrade path `/room/NAME`).
pub const ROOM_TAG: u8 = b'R';
/// First byte of a message the server must echo.
pub const ECHO_TAG: u8 = b'E';

/// CPU time a process has used: split into user space and kernel, in microseconds but
/// counted by the kernel in clock ticks (10 ms), and exactly, in nanoseconds.
///
/// The split tells where a scenario's cost lies: on loopback the kernel charges the
/// sender for the receiver's TCP processing and wake-up, a floor no user-space work moves.
/// The exact total is what per-operation figures use: in ticks, a 5 s window at 2 000
/// messages/s could only tell 1 µs per message steps apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user_us: u64,
    pub system_us: u64,
    /// Sum of the live threads' run time (`/proc/PID/task/*/schedstat`).
    pub exact_ns: u64,
}

impl CpuTime {
    /// The exact total, unless the tick counts exceed it by more than their rounding
    /// (two ticks): then threads that ran have exited, taking their run time with them,
    /// and the tick total is the better figure.
    pub fn total_us(&self) -> u64 {
        let ticks = self.user_us + self.system_us;
        let exact = self.exact_ns / 1000;
        if ticks > exact + 2 * 1_000_000 / clock_ticks_per_second() {
            ticks
        } else {
            exact
        }
    }

    /// The time used between `earlier` and `self`.
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            system_us: self.system_us.saturating_sub(earlier.system_us),
            exact_ns: self.exact_ns.saturating_sub(earlier.exact_ns),
        }
    }
}

/// CPU time a process has used so far: user and kernel from `/proc/PID/stat`, the exact
/// total from its threads' `schedstat`.
pub fn cpu_time(pid: u32) -> io::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let parse = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|ticks| ticks * 1_000_000 / clock_ticks_per_second())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))
    };
    Ok(CpuTime {
        user_us: parse(11)?,
        system_us: parse(12)?,
        exact_ns: threads_run_ns(pid)?,
    })
}

/// Nanoseconds the live threads of `pid` have run, from the first field of each
/// `/proc/PID/task/TID/schedstat`.
fn threads_run_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may exit between the listing and the read; it no longer counts.
        let Ok(schedstat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        total += schedstat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed schedstat"))?;
    }
    Ok(total)
}

/// The machine's CPU time so far, from the first line of `/proc/stat`, in ticks: all of it
/// and the part the hypervisor gave to other guests (steal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    pub total: u64,
    pub steal: u64,
}

impl MachineTicks {
    /// Percent of the machine's time stolen between `earlier` and `self`: on a shared VM
    /// the figure that says whether a run's timings can be trusted at all.
    pub fn steal_percent_since(&self, earlier: MachineTicks) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * self.steal.saturating_sub(earlier.steal) as f64 / total as f64
    }
}

/// Reads [`MachineTicks`] (`cpu user nice system idle iowait irq softirq steal ...`).
pub fn machine_ticks() -> io::Result<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/stat"))?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    Ok(MachineTicks {
        total: fields.iter().take(8).sum(),
        steal: fields.get(7).copied().unwrap_or(0),
    })
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS"))
}

/// `sysconf(_SC_CLK_TCK)`; 100 on every Linux this runs on.
fn clock_ticks_per_second() -> u64 {
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_memory() {
        let pid = std::process::id();
        let before = cpu_time(pid).unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let used = cpu_time(pid).unwrap().since(before);
        assert!(used.user_us > 0, "a busy loop shows as user time: {used:?}");
        let ticks = used.user_us + used.system_us;
        assert!(
            used.exact_ns / 1000 + 20_000 >= ticks && ticks + 20_000 >= used.exact_ns / 1000,
            "the exact total agrees with the ticks within their rounding: {used:?}"
        );
        assert_eq!(used.total_us(), used.exact_ns / 1000);
        assert!(rss_bytes(pid).unwrap() > 1 << 20);
    }
}
