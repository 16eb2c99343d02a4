//! OpenBLAS: its controls (thread count, kernel set) and `gemm`, the one
//! entry of every product of the trainer, with its orientation, column
//! chunks and tiles.
//!
//! A product `C = alpha A B + beta C` on raw blocks goes to OpenBLAS's
//! sgemm/dgemm through `ndarray::linalg::general_mat_mul` as one call, or as
//! several on sub-blocks of `C` where that is faster:
//! - skinny products (few rows, or a short inner dimension as in the weight
//!   gradients of small batches) in column chunks ([`gemm_chunk`]) small
//!   enough for OpenBLAS's unpacked small-matrix kernels, and f32
//!   back-propagation products of at most 32 rows in the smaller chunks
//!   that those kernels take for that orientation ([`gemm_chunk_bwd`]);
//! - big f32 products of batches up to [`TILE_MAX_BATCH`] rows per thread in
//!   tiles ([`gemm_tile`]) that those kernels compute without packing.
//!
//! Whether tiles and the back-propagation chunks are used are choices of
//! the [`crate::plan::Plan`] (`tiles`, `small_bwd`); the shapes here are
//! fixed by measurement (BENCHMARKS.md, "Tiles" and session 28).

use ndarray::linalg::general_mat_mul;
use ndarray::ArrayView2;

use crate::parallel::RawMat;
use crate::real::Real;

extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn openblas_get_num_threads() -> std::os::raw::c_int;
    fn openblas_get_corename() -> *const std::os::raw::c_char;
    fn openblas_get_config() -> *const std::os::raw::c_char;
}

/// The name of the kernel set OpenBLAS chose for this processor
/// (`"Cooperlake"`, `"Haswell"`, ...), lower-case.
pub fn corename() -> String {
    // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
    unsafe {
        let p = openblas_get_corename();
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().to_lowercase()
    }
}

/// A note to print where `OPENBLAS_CORETYPE` in the environment chose
/// OpenBLAS's kernel set instead of OpenBLAS's own detection: speed
/// figures then describe that set, not what this CPU gets by default
/// (on one Zen 5 machine, an environment's `Haswell` ran sgemm at half
/// the rate of the `Cooperlake` set OpenBLAS picks itself; BENCHMARKS.md,
/// session 24).
pub fn coretype_note() -> Option<String> {
    let v = std::env::var("OPENBLAS_CORETYPE").ok()?;
    Some(format!(
        "note: OPENBLAS_CORETYPE={v} in the environment chose OpenBLAS's kernel set ({}); without it OpenBLAS picks one for this CPU, which may be faster",
        corename()
    ))
}

/// Sets the number of threads OpenBLAS uses for one call.
pub fn set_threads(n: usize) {
    // SAFETY: plain setter of the OpenBLAS library; no memory is passed.
    unsafe { openblas_set_num_threads(n.max(1) as std::os::raw::c_int) }
}

/// The number of threads OpenBLAS uses for one call.
pub fn threads() -> usize {
    // SAFETY: plain getter.
    unsafe { openblas_get_num_threads() as usize }
}

/// The right to call OpenBLAS at one thread count, held while the calls
/// run ([`lease`]); returned when dropped.
///
/// OpenBLAS's thread count is one setting of the whole process, read by
/// every call. Two users that need different counts at the same time (a
/// step of single-threaded blocks beside a product that OpenBLAS threads:
/// two trainers in one process, the planner timing both kinds, tests run
/// side by side) would each run under the other's count: other bits than a
/// run alone, and a threaded OpenBLAS called from several threads at once.
/// So every step holds a lease for its count: leases of one count run
/// together, one of another count waits until they are all returned, and
/// leases are granted in the order they were asked for, so a waiting count
/// is not starved by a stream of the other. Leases do not nest: a thread
/// that holds one must not ask for another.
#[must_use = "the lease ends when dropped"]
pub struct Lease(());

/// The leases out: the count they hold, how many, and the queue (tickets
/// handed out and the one served next) with its sleepers.
struct Leases {
    count: usize,
    holders: usize,
    next: u64,
    serving: u64,
    sleepers: usize,
}

static LEASES: std::sync::Mutex<Leases> = std::sync::Mutex::new(Leases {
    count: 0,
    holders: 0,
    next: 0,
    serving: 0,
    sleepers: 0,
});
static TURN: std::sync::Condvar = std::sync::Condvar::new();

fn leases() -> std::sync::MutexGuard<'static, Leases> {
    // The state stays consistent across a panic (no step runs under the lock).
    LEASES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A lease of OpenBLAS at `n` threads (setting it when no lease is out), or
/// with `None` at whatever count is in force (for a single caller, to
/// which the count makes no difference). Waits while leases of another count
/// are out, or leases asked for earlier wait. No allocation.
pub fn lease(n: Option<usize>) -> Lease {
    let n = n.map(|n| n.max(1));
    let mut s = leases();
    let ticket = s.next;
    s.next += 1;
    while !(s.serving == ticket && (s.holders == 0 || n.is_none_or(|n| n == s.count))) {
        s.sleepers += 1;
        s = TURN
            .wait(s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.sleepers -= 1;
    }
    if s.holders == 0 {
        s.count = match n {
            Some(n) => {
                if threads() != n {
                    set_threads(n);
                }
                n
            }
            None => threads(),
        };
    }
    s.holders += 1;
    s.serving += 1;
    if s.sleepers > 0 {
        TURN.notify_all();
    }
    Lease(())
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = leases();
        s.holders -= 1;
        if s.holders == 0 && s.sleepers > 0 {
            TURN.notify_all();
        }
    }
}

/// The OpenBLAS build and the kernel set it chose, as OpenBLAS describes
/// itself (`OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64`).
///
/// Read once per process: `openblas_get_config` rebuilds the string in one
/// static buffer on every call (`strcpy`, then `strcat` of the core name and
/// thread count), so two threads calling it at once can read each other's
/// half-built string. Under qemu, where that window is wide, tests run in
/// parallel saw a plan cache miss its own entry (a key built from such a
/// string).
pub fn config() -> String {
    static CONFIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated
            // string; the OnceLock lets one thread at a time read it here.
            unsafe {
                let p = openblas_get_config();
                if p.is_null() {
                    return String::new();
                }
                std::ffi::CStr::from_ptr(p)
                    .to_string_lossy()
                    .trim()
                    .to_string()
            }
        })
        .clone()
}

/// The peak sgemm rate of this OpenBLAS on `threads` threads, in GFLOP/s:
/// the best of `reps` timings of `C = A B` with `n x n` operands (after one
/// untimed call), as `../shared/reference/bench_limit.py` times NumPy's,
/// under a [`lease`] of that count (steps of another count wait, and wait
/// for it). Call it outside a step.
pub fn sgemm_peak(threads: usize, n: usize, reps: usize) -> f64 {
    let _lease = lease(Some(threads));
    let a = ndarray::Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 17) as f32);
    let b = ndarray::Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 5 + j) % 13) as f32);
    let mut c = ndarray::Array2::<f32>::zeros((n, n));
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = std::time::Instant::now();
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// Products with `m * n * k` at most this reach OpenBLAS's unpacked "small
/// matrix" kernels (OpenBLAS >= 0.3.16 on AVX-512 cores).
pub const SMALL_GEMM_MNK: usize = 1_000_000;

/// Whether a product `[m, k] x [k, n]` is skinny: few rows, or a short
/// inner dimension (small-batch weight gradients). [`gemm_chunk`] cuts
/// those; [`gemm_tile`] leaves them to it.
fn skinny(m: usize, k: usize) -> bool {
    m <= 32 || k <= 32
}

/// Columns per call for a product `[m, k] x [k, n]`: skinny products (few
/// rows, or a short inner dimension as in small-batch weight gradients) are
/// cut into column chunks small enough for OpenBLAS's small-matrix kernels,
/// which skip packing the large operand (measured 2-3x faster for 4-8 rows,
/// see BENCHMARKS.md). Everything else is one call.
pub fn gemm_chunk(m: usize, n: usize, k: usize) -> usize {
    if m * n * k > SMALL_GEMM_MNK && skinny(m, k) && m * k > 0 {
        (SMALL_GEMM_MNK / (m * k)).max(16) / 16 * 16
    } else {
        n.max(1)
    }
}

/// How the operands of a product `A B` are laid out (row-major terms):
/// `NN` is a forward product `A W`, `NT` back-propagation `D W^T`, `TN` a
/// weight gradient `A^T D`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orient {
    /// `C = A B`: a forward product.
    NN,
    /// `C = A B^T`: back-propagation through a layer.
    NT,
    /// `C = A^T B`: a weight gradient.
    TN,
}

/// The most batch rows per thread for which [`gemm_tile`] cuts products:
/// with more, OpenBLAS's packing is spread over enough rows to pay, and one
/// packed call is faster (measured: `examples/tile_probe.rs`).
pub const TILE_MAX_BATCH: usize = 512;

/// Rows and columns of the output per call for a big f32 product
/// `[m, k] x [k, n]` in orientation `o`, or `None` to keep it whole (or in
/// [`gemm_chunk`] columns).
///
/// Tiles have `m * n * k` at most [`SMALL_GEMM_MNK`], so OpenBLAS runs them
/// through its small-matrix kernels, which read the operands in place
/// instead of packing them; the shapes are the fastest of a sweep on one
/// core (`examples/tile_probe.rs`, BENCHMARKS.md): 12 x 64 for `A W`,
/// 4 x 192 for `D W^T`, 6 x 512 for `A^T D`. Only products whose batch
/// dimension (`m`, or `k` for `A^T D`) is at most [`TILE_MAX_BATCH`] are
/// cut, and neither skinny products (those are [`gemm_chunk`]'s) nor
/// narrow outputs.
pub fn gemm_tile(o: Orient, m: usize, n: usize, k: usize) -> Option<(usize, usize)> {
    let batch = if o == Orient::TN { k } else { m };
    if m * n * k <= SMALL_GEMM_MNK || skinny(m, k) || n < 64 || batch > TILE_MAX_BATCH {
        return None;
    }
    let (rows, max_cols) = match o {
        Orient::NN => (12, 64),
        Orient::NT => (4, 192),
        Orient::TN => (6, 512),
    };
    let cols = (SMALL_GEMM_MNK / (rows * k)).min(max_cols) / 16 * 16;
    (cols >= 16).then_some((rows.min(m), cols.min(n)))
}

/// Output elements at most of a back-propagation product `D W^T` that
/// OpenBLAS's small-matrix kernels take. In OpenBLAS's column-major terms
/// that product is `C^T = W D^T` with the first operand transposed ("TN"),
/// which its AVX-512 kernels (`SkylakeX`, `Cooperlake`) run unpacked only
/// for `M * N <= 1200` and `K >= 32` (`sgemm_small_kernel_permit`), on top
/// of the `M * N * K` limit of every orientation ([`SMALL_GEMM_MNK`]).
pub const SMALL_BWD_OUT: usize = 1200;

/// Columns per call for a back-propagation product `[m, k] x [k, n]` (`D
/// W^T`) under [`crate::plan::Plan::small_bwd`]: a product of at most 32
/// rows (and an inner dimension of at least 32) in chunks of at most
/// [`SMALL_BWD_OUT`] output elements, so that each chunk reaches
/// OpenBLAS's small-matrix kernels; anything else as [`gemm_chunk`]. On
/// one Zen 5 core with OpenBLAS 0.3.21's `Cooperlake` kernels, 8 rows of
/// `D` against a 512 x 512 layer ran at 189 GFLOP/s in chunks of 144
/// columns against 54 in [`gemm_chunk`]'s chunks of 240 (4 rows: 171
/// against 32; 32 rows: 171 against 99); its AVX2 kernels (`Haswell`,
/// `Zen`) have no such path, and ran the chunks at 0.9-1.0x (BENCHMARKS.md,
/// session 28).
pub fn gemm_chunk_bwd(m: usize, n: usize, k: usize) -> usize {
    let c = gemm_chunk(m, n, k);
    if (1..=32).contains(&m) && k >= 32 && m * n > SMALL_BWD_OUT {
        c.min((SMALL_BWD_OUT / m).max(16) / 16 * 16)
    } else {
        c
    }
}

/// How many BLAS calls an f32 product `[m, k] x [k, n]` in orientation `o`
/// takes under `g` (tiles per [`gemm_tile`], back-propagation chunks per
/// [`gemm_chunk_bwd`]).
pub fn gemm_calls(g: Gemm, o: Orient, m: usize, n: usize, k: usize) -> usize {
    match gemm_tile(o, m, n, k).filter(|_| g.tiles) {
        Some((tr, tc)) => m.div_ceil(tr) * n.div_ceil(tc),
        None => n.div_ceil(g.chunk(Some(o), m, n, k)),
    }
}

/// The orientation of `A B` from the operands' strides, `None` for
/// `A^T B^T` (which the trainer never computes).
fn orient<T>(a: &ArrayView2<T>, b: &ArrayView2<T>) -> Option<Orient> {
    let transposed = |v: &ArrayView2<T>| v.strides()[0] == 1 && v.nrows() > 1;
    match (transposed(a), transposed(b)) {
        (false, false) => Some(Orient::NN),
        (false, true) => Some(Orient::NT),
        (true, false) => Some(Orient::TN),
        (true, true) => None,
    }
}

/// How a step calls `gemm`: with tiles or without, back-propagation in
/// small chunks or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gemm {
    /// Whether f32 products are cut into tiles per [`gemm_tile`].
    pub tiles: bool,
    /// Whether f32 back-propagation products are chunked per
    /// [`gemm_chunk_bwd`] (else per [`gemm_chunk`]).
    pub small_bwd: bool,
}

impl Gemm {
    /// The products of a step on `T` under a plan that asks for tiles and
    /// small back-propagation chunks or not: tiles are single-threaded f32
    /// calls, so never under `--threading blas` (OpenBLAS multi-threaded)
    /// nor in f64; the chunks are for f32 (sgemm's small-matrix kernels).
    pub fn new<T>(plan_tiles: bool, plan_small_bwd: bool) -> Self {
        let f32 = std::mem::size_of::<T>() == 4;
        Self {
            tiles: plan_tiles && f32 && threads() == 1,
            small_bwd: plan_small_bwd && f32,
        }
    }

    /// Columns per call of an untiled product `[m, k] x [k, n]` in
    /// orientation `o`.
    fn chunk(self, o: Option<Orient>, m: usize, n: usize, k: usize) -> usize {
        if self.small_bwd && o == Some(Orient::NT) {
            gemm_chunk_bwd(m, n, k)
        } else {
            gemm_chunk(m, n, k)
        }
    }

    /// `C = alpha * A * B + beta * C` on raw blocks, through
    /// `general_mat_mul` (BLAS sgemm/dgemm): in tiles per [`gemm_tile`]
    /// where that applies and `self.tiles`, else in column chunks per
    /// [`gemm_chunk`] (back-propagation per [`gemm_chunk_bwd`] under
    /// `self.small_bwd`).
    ///
    /// # Safety
    /// The blocks must be valid, `c` written by no one else, `a`, `b` by no one.
    #[inline]
    pub unsafe fn run<T: Real>(
        self,
        alpha: T,
        a: ArrayView2<T>,
        b: ArrayView2<T>,
        beta: T,
        c: RawMat<T>,
    ) {
        if c.rows == 0 || c.cols == 0 {
            return;
        }
        if a.ncols() == 0 {
            c.view_mut().map_inplace(|v| *v *= beta);
            return;
        }
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        let o = orient(&a, &b);
        let tile = match o {
            Some(o) if self.tiles => gemm_tile(o, m, n, k),
            _ => None,
        };
        if let Some((tr, tc)) = tile {
            let call = |i: usize, j: usize| {
                let (ie, je) = ((i + tr).min(m), (j + tc).min(n));
                let mut cv = c.block(i..ie, j..je).view_mut();
                let (ai, bj) = (
                    a.slice(ndarray::s![i..ie, ..]),
                    b.slice(ndarray::s![.., j..je]),
                );
                general_mat_mul(alpha, &ai, &bj, beta, &mut cv);
            };
            if o == Some(Orient::NN) {
                // A column strip of W stays in L2 while every row tile of A
                // passes over it: T5's 10th-percentile step 1.053x faster than
                // untiled against 1.020x with rows first (6 interleaved
                // rounds); the other orientations showed no difference.
                for j in (0..n).step_by(tc) {
                    for i in (0..m).step_by(tr) {
                        call(i, j);
                    }
                }
            } else {
                for i in (0..m).step_by(tr) {
                    for j in (0..n).step_by(tc) {
                        call(i, j);
                    }
                }
            }
            return;
        }
        let nc = self.chunk(o, m, n, k);
        let mut j = 0;
        while j < n {
            let e = (j + nc).min(n);
            let mut cv = c.col_block(j..e).view_mut();
            general_mat_mul(alpha, &a, &b.slice(ndarray::s![.., j..e]), beta, &mut cv);
            j = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn config_is_one_string_from_many_threads_at_once() {
        let first = config();
        assert!(first.contains("OpenBLAS"), "{first}");
        let seen: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..200).map(|_| config()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert!(seen.iter().all(|c| *c == first), "{first}");
    }

    #[test]
    fn the_sgemm_peak_is_a_rate() {
        let g = sgemm_peak(2, 96, 2);
        assert!(g.is_finite() && g > 0.0, "{g}");
    }

    /// A lease of another count waits for the one out, then finds OpenBLAS
    /// at its count; a lease of the same count runs beside it.
    #[test]
    fn leases_of_another_count_wait_and_of_the_same_count_share() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::time::Duration;
        let first = lease(Some(1));
        assert_eq!(threads(), 1);
        let returned = AtomicBool::new(false);
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                let _l = lease(Some(3));
                // Granted only once `first` is back, and at its own count.
                assert!(returned.load(SeqCst), "granted while a lease of 1 was out");
                threads()
            });
            let same = s.spawn(|| {
                // Asked for after `other`'s ticket may be, so it may queue
                // behind it; either way it gets one thread.
                let _l = lease(Some(1));
                threads()
            });
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(threads(), 1, "changed under a lease");
            returned.store(true, SeqCst);
            drop(first);
            assert_eq!(other.join().unwrap(), 3);
            assert_eq!(same.join().unwrap(), 1);
        });
        // A lease of any count joins whatever is in force.
        let any = lease(None);
        assert_eq!(
            leases().count,
            threads(),
            "the count in force is the one recorded"
        );
        drop(any);
    }

    /// Every orientation cut into tiles gives the exact product (fast only
    /// where OpenBLAS has the small-matrix kernels, exact everywhere):
    /// integer-valued operands, so any order of summation is exact.
    #[test]
    fn tiled_products_equal_plain_ones() {
        let (m, k, n) = (100, 300, 200);
        let int = |r: usize, c: usize, s: usize| {
            Array2::<f32>::from_shape_fn((r, c), |(i, j)| ((i * 13 + j * s) % 11) as f32 - 5.0)
        };
        let (a, b) = (int(m, k, 7), int(k, n, 5));
        let (at, bt) = (
            a.t().as_standard_layout().to_owned(),
            b.t().as_standard_layout().to_owned(),
        );
        let want = a.dot(&b) * 2.0 + 0.5;
        for (o, av, bv) in [
            (Orient::NN, a.view(), b.view()),
            (Orient::NT, a.view(), bt.t()),
            (Orient::TN, at.t(), b.view()),
        ] {
            assert_eq!(orient(&av, &bv), Some(o));
            assert!(
                gemm_tile(o, m, n, k).is_some(),
                "{o:?} must be tiled at this size"
            );
            let mut c = Array2::<f32>::from_elem((m, n), 1.0);
            let g = Gemm {
                tiles: true,
                small_bwd: false,
            };
            unsafe { g.run(2.0, av, bv, 0.5, RawMat::of(&mut c)) };
            assert_eq!(c, want, "{o:?}");
        }
    }

    #[test]
    fn chunked_products_equal_plain_ones() {
        for (m, k, n) in [(4, 784, 512), (8, 512, 300), (784, 8, 512), (40, 40, 40)] {
            let a =
                Array2::<f32>::from_shape_fn((m, k), |(i, j)| ((i * 13 + j * 7) % 11) as f32 - 5.0);
            let b =
                Array2::<f32>::from_shape_fn((k, n), |(i, j)| ((i * 3 + j * 5) % 7) as f32 - 3.0);
            // B as the transpose of a stored matrix: a back-propagation
            // product, which `small_bwd` cuts otherwise.
            let bt = b.t().as_standard_layout().to_owned();
            let want = a.dot(&b) * 2.0 + 0.5;
            for small_bwd in [false, true] {
                let g = Gemm {
                    tiles: false,
                    small_bwd,
                };
                for bv in [b.view(), bt.t()] {
                    let mut c = Array2::<f32>::from_elem((m, n), 1.0);
                    unsafe { g.run(2.0, a.view(), bv, 0.5, RawMat::of(&mut c)) };
                    assert_eq!(c, want, "{m}x{k}x{n} small_bwd={small_bwd}");
                }
            }
        }
        // Back-propagation chunks of at most 1200 outputs (rounded down to
        // 16 columns), only for at most 32 rows and an inner dimension of
        // at least 32, never larger than the plain chunks.
        assert_eq!(gemm_chunk_bwd(8, 512, 512), 144);
        assert_eq!(gemm_chunk_bwd(4, 512, 512), 288);
        assert_eq!(gemm_chunk_bwd(32, 512, 784), 32);
        assert_eq!(gemm_chunk_bwd(1, 2000, 64), 1200);
        assert_eq!(gemm_chunk_bwd(64, 512, 512), gemm_chunk(64, 512, 512));
        assert_eq!(gemm_chunk_bwd(8, 512, 16), gemm_chunk(8, 512, 16));
        assert_eq!(gemm_chunk_bwd(8, 150, 512), 150, "1200 outputs: whole");
        let (off, on) = (
            Gemm {
                tiles: false,
                small_bwd: false,
            },
            Gemm {
                tiles: false,
                small_bwd: true,
            },
        );
        assert_eq!(gemm_calls(off, Orient::NT, 8, 512, 512), 3);
        assert_eq!(gemm_calls(on, Orient::NT, 8, 512, 512), 4);
        assert_eq!(gemm_calls(on, Orient::NN, 8, 512, 512), 3, "only D W^T");
        assert_eq!(gemm_chunk(8, 512, 784), 144);
        assert_eq!(gemm_tile(Orient::NN, 128, 1024, 1024), Some((12, 64)));
        assert_eq!(gemm_tile(Orient::NT, 128, 1024, 1024), Some((4, 192)));
        assert_eq!(gemm_tile(Orient::TN, 512, 1024, 256), Some((6, 512)));
        assert_eq!(
            gemm_tile(Orient::NN, 30000, 200, 784),
            None,
            "big batches stay packed"
        );
        assert_eq!(gemm_tile(Orient::TN, 784, 200, 30000), None);
        assert_eq!(
            gemm_tile(Orient::NN, 100, 50, 784),
            None,
            "narrow outputs stay whole"
        );
        assert_eq!(gemm_chunk(64, 512, 784), 512);
        assert_eq!(gemm_chunk(784, 512, 8), 144);
    }
}
