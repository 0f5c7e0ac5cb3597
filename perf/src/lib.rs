//! Shared by the perf binaries: the bench protocol, and reading a server process's CPU
//! time and memory from `/proc`.
//!
//! The bench protocol, spoken by every bench server: echo each text or binary message to
//! its sender, except a message whose first byte is `B`, which goes to every connected
//! client (the sender included) through the server's broadcast.

use std::io;

/// First byte of a message the server must broadcast.
pub const BROADCAST_TAG: u8 = b'B';
/// First byte of a message the server must echo.
pub const ECHO_TAG: u8 = b'E';

/// CPU time (user + system) a process has used, in microseconds.
pub fn cpu_time_us(pid: u32) -> io::Result<u64> {
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
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))
    };
    let ticks = parse(11)? + parse(12)?;
    Ok(ticks * 1_000_000 / clock_ticks_per_second())
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
        let before = cpu_time_us(pid).unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time_us(pid).unwrap() >= before);
        assert!(rss_bytes(pid).unwrap() > 1 << 20);
    }
}
