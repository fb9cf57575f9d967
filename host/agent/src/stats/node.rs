//! The node's own figures, from the kernel: CPU time (`/proc/stat`), memory
//! (`/proc/meminfo`, working set as the kubelet's eviction reads it: usage
//! less inactive file pages) and a filesystem's size (`statvfs`). Blocking:
//! callers run them off the async runtime's threads.

use std::io;
use std::path::Path;

/// A filesystem's size and free space, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilesystemSize {
    pub capacity: u64,
    pub available: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// The filesystem holding `path`.
pub fn filesystem(path: &Path) -> io::Result<FilesystemSize> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(FilesystemSize {
        capacity: stat.f_blocks.saturating_mul(stat.f_frsize),
        available: stat.f_bavail.saturating_mul(stat.f_frsize),
        inodes: stat.f_files,
        inodes_free: stat.f_ffree,
    })
}

/// Nanoseconds of CPU time all cores spent busy since boot: the first line
/// of `/proc/stat`, less idle and iowait, in the kernel's clock ticks
/// (USER_HZ, 100 a second on Linux).
pub fn cpu_busy_nanos(proc_stat: &str) -> Option<u64> {
    const NANOS_PER_TICK: u64 = 10_000_000;
    let fields: Vec<u64> = proc_stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| *v)
        .sum();
    Some(busy.saturating_mul(NANOS_PER_TICK))
}

/// The node's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMemory {
    pub total: u64,
    /// In use: total less free.
    pub usage: u64,
    /// In use less inactive file pages (what the kernel reclaims first).
    pub working_set: u64,
}

pub fn memory(meminfo: &str) -> Option<NodeMemory> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    let total = field("MemTotal")?;
    let usage = total.saturating_sub(field("MemFree")?);
    let working_set = usage.saturating_sub(field("Inactive(file)").unwrap_or(0));
    Some(NodeMemory {
        total,
        usage,
        working_set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_are_read_from_the_kernel_s_text() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        // (100 + 5 + 50 + 3 + 2 + 1) ticks of 10 ms.
        assert_eq!(cpu_busy_nanos(stat), Some(161 * 10_000_000));
        assert_eq!(cpu_busy_nanos("intr 1 2 3\n"), None);
        let meminfo = "MemTotal:       4000 kB\nMemFree:        1000 kB\nMemAvailable:   2500 kB\nInactive(file):  500 kB\n";
        assert_eq!(
            memory(meminfo),
            Some(NodeMemory {
                total: 4000 * 1024,
                usage: 3000 * 1024,
                working_set: 2500 * 1024,
            })
        );
    }

    #[test]
    fn a_filesystem_has_a_size() {
        let size = filesystem(Path::new("/")).expect("statvfs /");
        assert!(size.capacity > 0 && size.available <= size.capacity);
    }
}
