//! Memory: what this process holds (for reports and the soak test), and
//! what it may still take ([`available_bytes`]), against which a run, an
//! IDX file and a picture are checked before they allocate.

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
    // ru_maxrss is in KiB on Linux (bytes on macOS).
    let scale = if cfg!(target_os = "macos") { 1 } else { 1024 };
    own_usage().map(|u| u.ru_maxrss as u64 * scale)
}

/// This process's resource usage so far (`getrusage(RUSAGE_SELF)`: every
/// thread's CPU time, the peak resident set), or `None` where the call
/// fails.
pub(crate) fn own_usage() -> Option<libc::rusage> {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0).then_some(u)
    }
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

/// Environment variable that caps [`available_bytes`] (bytes, or with a
/// `K`/`M`/`G` suffix): to keep a run within a budget, or to try the
/// refusals on a machine with plenty.
pub const MEMORY_ENV: &str = "MNIST_MLP_MEMORY";

/// Memory this process may still allocate, in bytes: the kernel's
/// `MemAvailable`, lowered to what the cgroup's limit leaves (v2
/// `memory.max - memory.current`, v1 `limit_in_bytes - usage_in_bytes`)
/// and to `$MNIST_MLP_MEMORY`; `None` where none can be read.
pub fn available_bytes() -> Option<u64> {
    let cap = std::env::var(MEMORY_ENV).ok().and_then(|v| parse_size(&v));
    system_available().into_iter().chain(cap).min()
}

/// `123`, `512M`, `2G`, `64K` (binary units) as bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 10),
        (i, 'M' | 'm') => (&s[..i], 20),
        (i, 'G' | 'g') => (&s[..i], 30),
        _ => (s, 0),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

fn system_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let cgroup = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ]
    .iter()
    .find_map(|(max, cur)| Some(read(max)?.saturating_sub(read(cur)?)));
    meminfo.into_iter().chain(cgroup).min()
}

/// `n` bytes for a message: `1.5 GiB`, `300 MiB`.
pub fn human(n: u64) -> String {
    let g = n as f64 / (1u64 << 30) as f64;
    if g >= 1.0 {
        format!("{g:.1} GiB")
    } else {
        format!("{:.0} MiB", mib(n))
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_and_the_cap() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(300 << 20), "300 MiB");
    }
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
