//! CPU time and memory of processes, read from `/proc` (the numbers
//! `getrusage` reports, without `unsafe`).

use std::{fs, io};

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`: 100 on Linux,
/// fixed by the kernel ABI).
pub const TICKS_PER_SEC: f64 = 100.0;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// User + system CPU time of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces: fields are counted after ')'.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| invalid("/proc/pid/stat"))?
        .1;
    // After ')': state(3) ppid(4) ... utime(14) stime(15).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| invalid("/proc/pid/stat field"))
    };
    Ok((field(11)? + field(12)?) as f64 / TICKS_PER_SEC)
}

/// Busy CPU time of the whole machine (all cores: everything but idle and
/// iowait), in seconds.
pub fn machine_busy_seconds() -> io::Result<f64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| invalid("/proc/stat"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: u64 = values
        .iter()
        .enumerate()
        .filter(|&(i, _)| i < 8 && i != 3 && i != 4)
        .map(|(_, v)| v)
        .sum();
    Ok(busy as f64 / TICKS_PER_SEC)
}

/// Resident memory of process `pid` (`VmRSS`), in KiB.
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| invalid("VmRSS"))
}
