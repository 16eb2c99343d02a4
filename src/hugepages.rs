//! A global allocator that backs large allocations with transparent huge
//! pages (2 MiB), for the binary and the benches:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;
//! ```
//!
//! A training step streams the weights, their gradients and the optimizer's
//! moments (T5: 30 MB) and gathers rows from anywhere in the training set.
//! With 4 KiB pages that is thousands of pages per step, far more than the
//! TLB holds; with 2 MiB pages it is a few dozen (see BENCHMARKS.md, "Huge
//! pages"). Linux's default policy (`madvise` in
//! `/sys/kernel/mm/transparent_hugepage/enabled`) gives huge pages only to
//! memory that asks for them, so this allocator maps every allocation of at
//! least [`DEFAULT_MIN_BYTES`] itself: a 2 MiB-aligned anonymous mapping of
//! whole huge pages, marked `MADV_HUGEPAGE`. Everything smaller goes to the
//! system allocator. Where the kernel has no transparent huge pages the
//! advice has no effect and the mapping is an ordinary one.
//!
//! `MLP_HUGE_PAGES=N` in the environment sets the threshold to `N` bytes
//! (`0`: off, every allocation to the system allocator), for measurement;
//! a value that is not a decimal number leaves the default. It is read
//! once, at the first allocation, without allocating (an allocator cannot
//! report errors).
//!
//! On targets other than Linux this is the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Size and alignment of a transparent huge page on x86-64 and aarch64
/// (4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Allocations of at least this many bytes get huge pages by default.
pub const DEFAULT_MIN_BYTES: usize = 1 << 20;

/// The allocator; see the module's documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAlloc;

/// Threshold not yet read from the environment.
#[cfg(target_os = "linux")]
const UNREAD: usize = usize::MAX;

#[cfg(target_os = "linux")]
static MIN_BYTES: AtomicUsize = AtomicUsize::new(UNREAD);

/// The threshold in force (`usize::MAX`: off). Reads `MLP_HUGE_PAGES` with
/// `getenv`, which does not allocate (this runs inside the allocator).
#[cfg(target_os = "linux")]
fn min_bytes() -> usize {
    let m = MIN_BYTES.load(Relaxed);
    if m != UNREAD {
        return m;
    }
    // SAFETY: the name is a NUL-terminated string; getenv's result is
    // either null or a NUL-terminated string that we only read.
    let v = unsafe { libc::getenv(c"MLP_HUGE_PAGES".as_ptr()) };
    let m = if v.is_null() {
        DEFAULT_MIN_BYTES
    } else {
        // SAFETY: as above.
        let s = unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes();
        parse_bytes(s).unwrap_or(DEFAULT_MIN_BYTES)
    };
    // 0 means off; UNREAD - 1 is as good as infinite.
    let m = if m == 0 {
        UNREAD - 1
    } else {
        m.min(UNREAD - 1)
    };
    MIN_BYTES.store(m, Relaxed);
    m
}

/// A decimal number of bytes (no allocation).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_bytes(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0usize, |n, &c| {
        c.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add((c - b'0') as usize))?
    })
}

/// Bytes mapped for an allocation of `size` bytes: whole huge pages.
fn mapped_len(size: usize) -> Option<usize> {
    Some(size.checked_add(HUGE_PAGE - 1)? & !(HUGE_PAGE - 1))
}

impl HugePageAlloc {
    /// Whether `l` is served by a huge-page mapping. A function of the
    /// layout alone (the threshold never changes once read), so `dealloc`
    /// and `realloc` agree with `alloc`.
    #[cfg(target_os = "linux")]
    fn huge(l: &Layout) -> bool {
        l.size() >= min_bytes() && l.align() <= HUGE_PAGE
    }
    #[cfg(not(target_os = "linux"))]
    fn huge(_: &Layout) -> bool {
        false
    }

    /// A 2 MiB-aligned, zero-filled mapping of `mapped_len(size)` bytes with
    /// `MADV_HUGEPAGE`, or null.
    #[cfg(target_os = "linux")]
    unsafe fn map(size: usize) -> *mut u8 {
        let Some(len) = mapped_len(size) else {
            return std::ptr::null_mut();
        };
        let Some(over) = len.checked_add(HUGE_PAGE) else {
            return std::ptr::null_mut();
        };
        // Map one huge page more than needed and trim to an aligned start:
        // the kernel aligns large anonymous mappings itself only in some
        // versions and for some lengths.
        let p = libc::mmap(
            std::ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = p as usize;
        let start = (base + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
        let head = start - base;
        if head > 0 {
            libc::munmap(p, head);
        }
        let tail = over - head - len;
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        // Advice only: without transparent huge pages this fails and the
        // mapping keeps 4 KiB pages.
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        start as *mut u8
    }
    #[cfg(not(target_os = "linux"))]
    unsafe fn map(_: usize) -> *mut u8 {
        std::ptr::null_mut()
    }

    #[cfg(target_os = "linux")]
    unsafe fn unmap(p: *mut u8, size: usize) {
        if let Some(len) = mapped_len(size) {
            libc::munmap(p as *mut libc::c_void, len);
        }
    }
    #[cfg(not(target_os = "linux"))]
    unsafe fn unmap(_: *mut u8, _: usize) {}
}

// SAFETY: huge layouts get fresh, zero-filled mappings at least as large as
// requested and aligned to 2 MiB (>= every alignment they may ask for), freed
// with the same length; the choice between the two allocators depends on the
// layout's size and alignment only, so every block goes back to the
// allocator that made it.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if Self::huge(&l) {
            Self::map(l.size())
        } else {
            System.alloc(l)
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if Self::huge(&l) {
            // Fresh anonymous pages are zero.
            Self::map(l.size())
        } else {
            System.alloc_zeroed(l)
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if Self::huge(&l) {
            Self::unmap(p, l.size())
        } else {
            System.dealloc(p, l)
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `new_size`, rounded up to the
        // alignment, does not overflow isize.
        let new = Layout::from_size_align_unchecked(new_size, l.align());
        match (Self::huge(&l), Self::huge(&new)) {
            (false, false) => System.realloc(p, l, new_size),
            (true, true) if mapped_len(l.size()) == mapped_len(new_size) => p,
            _ => {
                let q = self.alloc(new);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                    self.dealloc(p, l);
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_byte_counts_without_allocating() {
        assert_eq!(parse_bytes(b"0"), Some(0));
        assert_eq!(parse_bytes(b"1048576"), Some(1 << 20));
        assert_eq!(parse_bytes(b""), None);
        assert_eq!(parse_bytes(b"1M"), None);
        assert_eq!(parse_bytes(b"99999999999999999999999"), None);
    }

    #[test]
    fn mapped_lengths_are_whole_huge_pages() {
        assert_eq!(mapped_len(1), Some(HUGE_PAGE));
        assert_eq!(mapped_len(HUGE_PAGE), Some(HUGE_PAGE));
        assert_eq!(mapped_len(HUGE_PAGE + 1), Some(2 * HUGE_PAGE));
        assert_eq!(mapped_len(usize::MAX), None);
    }

    /// The address range and the `smaps` fields of the mapping that holds `p`.
    #[cfg(target_os = "linux")]
    fn smaps_of(p: usize) -> Option<(std::ops::Range<usize>, String)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut out: Option<(std::ops::Range<usize>, String)> = None;
        for line in smaps.lines() {
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            // A mapping's first line starts with its range, `start-end` in hex.
            if let Some((a, b)) = range {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    if out.is_some() {
                        break;
                    }
                    if (a..b).contains(&p) {
                        out = Some((a..b, String::new()));
                    }
                    continue;
                }
            }
            if let Some((_, o)) = out.as_mut() {
                o.push_str(line);
                o.push('\n');
            }
        }
        out
    }

    /// A large block is a mapping of its own that the kernel may back with
    /// huge pages (`THPeligible: 1`), wherever transparent huge pages are
    /// not switched off.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_blocks_are_eligible_for_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        let on = thp.is_ok_and(|s| !s.contains("[never]"));
        let l = Layout::from_size_align(5 << 20, 8).unwrap();
        if !HugePageAlloc::huge(&l) || !on {
            eprintln!("skipped: huge pages off here (MLP_HUGE_PAGES or the kernel)");
            return;
        }
        unsafe {
            let p = HugePageAlloc.alloc(l);
            assert!(!p.is_null());
            p.write_bytes(1, l.size());
            let (range, fields) =
                smaps_of(p as usize).expect("the block's mapping in /proc/self/smaps");
            let field = |name: &str| {
                fields
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            // 5 MiB in whole huge pages (6 MiB from a 2 MiB boundary), inside
            // one advised (`hg`), eligible mapping. The kernel may merge it
            // with a neighbouring mapping of the same kind (other tests
            // allocate concurrently), so its range is checked, not its size.
            assert_eq!(p as usize % HUGE_PAGE, 0);
            assert!(
                range.start <= p as usize && p as usize + (6 << 20) <= range.end,
                "{range:x?}\n{fields}"
            );
            assert_eq!(field("THPeligible:").as_deref(), Some("1"), "{fields}");
            let flags = field("VmFlags:").unwrap_or_default();
            assert!(flags.split_whitespace().any(|f| f == "hg"), "{fields}");
            HugePageAlloc.dealloc(p, l);
        }
    }

    /// Blocks keep their contents through every kind of `realloc`: within
    /// the system allocator, within one mapping, between mappings, and across
    /// the threshold both ways; large blocks are aligned to 2 MiB.
    #[test]
    fn blocks_survive_reallocation_across_the_threshold() {
        let a = HugePageAlloc;
        let big = HugePageAlloc::huge(&Layout::from_size_align(3 << 20, 4).unwrap());
        assert_eq!(
            big,
            cfg!(target_os = "linux") && std::env::var_os("MLP_HUGE_PAGES").is_none()
        );
        let fill = |p: *mut u8, n: usize| {
            for i in (0..n).step_by(4093) {
                unsafe { *p.add(i) = (i % 251) as u8 };
            }
        };
        let check = |p: *mut u8, n: usize| {
            for i in (0..n).step_by(4093) {
                assert_eq!(unsafe { *p.add(i) }, (i % 251) as u8, "byte {i} of {n}");
            }
        };
        unsafe {
            let mut size = 1000;
            let p = a.alloc(Layout::from_size_align(size, 8).unwrap());
            assert!(!p.is_null());
            fill(p, size);
            let mut p = p;
            for new in [
                5000,
                3 << 20,
                (3 << 20) + 100,
                5 << 20,
                4 << 20,
                700_000,
                64,
            ] {
                p = a.realloc(p, Layout::from_size_align(size, 8).unwrap(), new);
                assert!(!p.is_null());
                check(p, size.min(new));
                if big && new >= DEFAULT_MIN_BYTES {
                    assert_eq!(p as usize % HUGE_PAGE, 0, "{new} bytes at {p:p}");
                }
                size = new;
                fill(p, size);
            }
            a.dealloc(p, Layout::from_size_align(size, 8).unwrap());
            // Zeroed blocks are zero, whichever allocator serves them.
            for n in [100, 3 << 20] {
                let l = Layout::from_size_align(n, 64).unwrap();
                let z = a.alloc_zeroed(l);
                assert!(!z.is_null());
                assert!((0..n).step_by(997).all(|i| *z.add(i) == 0));
                a.dealloc(z, l);
            }
        }
    }
}
