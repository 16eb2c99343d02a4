//! Property tests of the IDX reader: random and mutated inputs, raw and
//! gzip, never panic; whatever is accepted is self-consistent and no larger
//! than the input can justify.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use flate2::{bufread::MultiGzDecoder, write::GzEncoder, Compression};
use mnist_mlp::data::idx::{encode_idx, parse_idx, MAX_GZIP_RATIO};
use proptest::prelude::*;

/// Counts the bytes this thread has allocated and not freed, and their peak,
/// while `TRACK` is on (per thread, so tests running beside it do not count).
struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as isize - l.size() as isize);
        System.realloc(p, l, new)
    }
}

fn note(d: isize) {
    let _ = TRACK.try_with(|t| {
        if t.get() {
            LIVE.with(|l| {
                let v = (l.get() as isize + d).max(0) as usize;
                l.set(v);
                PEAK.with(|p| p.set(p.get().max(v)));
            });
        }
    });
}

#[global_allocator]
static A: Counting = Counting;

/// Peak bytes allocated on this thread while running `f`.
fn peak_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACK.with(|t| t.set(true));
    let r = f();
    TRACK.with(|t| t.set(false));
    (r, PEAK.with(|p| p.get()))
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn parse_raw(b: &[u8]) -> Result<mnist_mlp::data::idx::IdxArray, String> {
    parse_idx(b, b.len() as u64, false, None).map_err(|e| e.to_string())
}

fn parse_gz(b: &[u8]) -> Result<mnist_mlp::data::idx::IdxArray, String> {
    parse_idx(MultiGzDecoder::new(b), b.len() as u64, true, None).map_err(|e| e.to_string())
}

/// A valid image file of `n` images of `r` x `c`.
fn valid(n: u32, r: u32, c: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..n * r * c).map(|i| (i * 7 % 256) as u8).collect();
    encode_idx(&[n, r, c], &data)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_raw(&bytes);
        let _ = parse_gz(&bytes);
    }

    #[test]
    fn random_headers_never_panic_nor_overallocate(
        ndim in 0u8..8, ty in prop_oneof![Just(8u8), any::<u8>()],
        dims in prop::collection::vec(prop_oneof![0u32..64, any::<u32>(), Just(u32::MAX)], 0..8),
        body in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut b = vec![0, 0, ty, ndim];
        for d in &dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(&body);
        // Raw: at most the input's size plus a little (header, error text).
        let (_, peak) = peak_alloc(|| parse_raw(&b));
        prop_assert!(peak <= b.len() + 8192, "raw: {} bytes in, {} allocated", b.len(), peak);
        // Gzip: in proportion to what actually inflates (the buffer doubles
        // as it grows), whatever the header claims, plus the decoder's state.
        let g = gz(&b);
        let (_, peak) = peak_alloc(|| parse_gz(&g));
        let bound = 2 * b.len() + 8 * g.len() + 128 * 1024;
        prop_assert!(peak <= bound, "gzip: {} bytes in ({} inflated), {} allocated", g.len(), b.len(), peak);
    }

    #[test]
    fn mutated_valid_files_are_consistent_when_accepted(
        n in 1u32..6, r in 1u32..5, c in 1u32..5,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(), do_cut in any::<bool>(),
        extra in prop::collection::vec(any::<u8>(), 0..3),
        compress in any::<bool>(),
    ) {
        let mut b = valid(n, r, c);
        for (i, v) in &flips {
            let k = i.index(b.len());
            b[k] = *v;
        }
        if do_cut {
            b.truncate(cut.index(b.len() + 1));
        }
        b.extend_from_slice(&extra);
        let (res, input_len) = if compress {
            let g = gz(&b);
            (parse_gz(&g), g.len())
        } else {
            (parse_raw(&b), b.len())
        };
        if let Ok(a) = res {
            let declared: usize = a.dims.iter().product();
            prop_assert_eq!(a.data.len(), declared);
            // What was accepted is exactly the decoded input, header aside.
            prop_assert_eq!(4 + 4 * a.dims.len() + declared, b.len());
            let bound = if compress { input_len as u64 * MAX_GZIP_RATIO + 65536 } else { input_len as u64 };
            prop_assert!(declared as u64 <= bound);
        }
    }
}
