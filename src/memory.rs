//! Resident memory of this process (for reports and the soak test).

/// Current resident set size in bytes (Linux: `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

/// Peak resident set size of the process so far, in bytes (Linux:
/// `VmHWM` of `/proc/self/status`, elsewhere `getrusage`).
pub fn peak_rss_bytes() -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        if let Some(kib) = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            return Some(kib * 1024);
        }
    }
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    // ru_maxrss is in KiB on Linux (bytes on macOS).
    let scale = if cfg!(target_os = "macos") { 1 } else { 1024 };
    (r == 0).then(|| u.ru_maxrss as u64 * scale)
}

/// Makes glibc's malloc serve every allocation of 1 MiB or more by `mmap`
/// and give it back on `free`. The training loop allocates nothing, but
/// checkpoints, plots and data loading allocate large transient buffers
/// whose sizes creep as a run's history grows; with glibc's default
/// (a threshold that rises to 32 MiB after the first such free) they stay
/// in the heap and fragment it, and resident memory grows in small steps
/// over a long run. A no-op on other allocators.
pub fn return_large_frees_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// [`rss_bytes`] in MiB.
pub fn rss_mib() -> Option<f64> {
    rss_bytes().map(mib)
}

/// [`peak_rss_bytes`] in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    peak_rss_bytes().map(mib)
}

/// Bytes to MiB.
pub fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_grows_with_touched_memory() {
        let before = super::rss_bytes().unwrap();
        let v = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = super::rss_bytes().unwrap();
        assert!(after >= before + (48 << 20), "{before} -> {after}");
        // Other tests run in this process at the same time: allow some slack.
        assert!(super::peak_rss_bytes().unwrap() + (16 << 20) >= after);
        drop(v);
    }
}
