//! Threads: one rayon pool for everything, OpenBLAS kept from oversubscribing.
//!
//! Two policies (see `BENCHMARKS.md` for the measurements behind the default):
//! - [`GemmThreading::Split`]: OpenBLAS runs single-threaded and every
//!   parallel region splits its work (rows of the batch, columns of a weight
//!   matrix) into one block per rayon thread, each block one single-threaded
//!   GEMM followed by its fused elementwise work. Deterministic: the blocks
//!   depend only on the thread count.
//! - [`GemmThreading::Blas`]: one GEMM call per product, threaded inside
//!   OpenBLAS; the elementwise work runs on the calling thread.
//!
//! OpenBLAS is never called from several threads at once unless it is
//! single-threaded, which is the only concurrent use it supports: its
//! thread count is one setting of the process, and every step holds a
//! [`crate::blas::lease`] of the count it needs, so that steps of another
//! count (another trainer, the planner, a test beside it) wait.

use std::ops::Range;

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

/// How products are parallelized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmThreading {
    /// Rayon splits each product into per-thread blocks; OpenBLAS single-threaded.
    Split,
    /// OpenBLAS threads each product; rayon idle during products.
    Blas,
}

crate::error::message_error!(
    /// A thread count or threading policy that cannot be used, or a pool
    /// that could not start.
    ThreadsError
);

impl std::str::FromStr for GemmThreading {
    type Err = ThreadsError;
    fn from_str(s: &str) -> Result<Self, ThreadsError> {
        match s {
            "split" => Ok(Self::Split),
            "blas" => Ok(Self::Blas),
            _ => Err(ThreadsError(format!(
                "unknown threading policy `{s}` (expected `split` or `blas`)"
            ))),
        }
    }
}

/// A thread pool and the policy that goes with it.
pub struct Threads {
    pool: rayon::ThreadPool,
    n: usize,
    policy: GemmThreading,
}

impl Threads {
    /// `n` threads (0: all cores) under `policy`.
    pub fn new(n: usize, policy: GemmThreading) -> Result<Self, ThreadsError> {
        let n = if n == 0 { num_cores() } else { n };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("mlp-worker-{i}"))
            .build()
            .map_err(|e| format!("cannot start {n} threads: {e}"))?;
        Ok(Self { pool, n, policy })
    }
    /// The pool for a `--threads` setting (`None`: all cores), checked:
    /// with a warning to show when it asks for more threads than cores.
    pub fn for_flag(
        n: Option<usize>,
        policy: GemmThreading,
    ) -> Result<(Self, Option<String>), ThreadsError> {
        match n {
            Some(n) if n == 0 || n > 4096 => Err(ThreadsError(format!(
                "--threads {n} is out of range (1..=4096; leave it out to use all cores)"
            ))),
            Some(n) => {
                let cores = num_cores();
                let warning = (n > cores).then(|| format!(
                    "warning: --threads {n} is more than this machine's {cores} cores: the extra threads share cores and slow every step down"
                ));
                Ok((Self::new(n, policy)?, warning))
            }
            None => Ok((Self::new(0, policy)?, None)),
        }
    }
    /// Number of threads.
    pub fn n(&self) -> usize {
        self.n
    }
    /// How matrix products use the threads.
    pub fn policy(&self) -> GemmThreading {
        self.policy
    }
    /// Number of blocks a parallel region is split into.
    pub fn blocks(&self) -> usize {
        match self.policy {
            GemmThreading::Split => self.n,
            GemmThreading::Blas => 1,
        }
    }
    /// Runs `f` once on each of the pool's threads (to set up per-thread
    /// state before the steps that use it).
    pub fn on_each(&self, f: impl Fn() + Sync) {
        self.pool.broadcast(|_| f());
    }
    /// Runs `f` in the pool, where steps call OpenBLAS at this policy's
    /// thread count (one for `Split`, the pool's for `Blas`: each step
    /// takes a [`crate::blas::lease`] of it). Training steps split into
    /// several blocks must run inside (they check).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let blas = match self.policy {
            GemmThreading::Split => 1,
            GemmThreading::Blas => self.n,
        };
        self.pool.install(|| {
            /// Restores the setting however `f` ends (a panic included).
            struct Restore(usize);
            impl Drop for Restore {
                fn drop(&mut self) {
                    INSTALLED.set(self.0);
                }
            }
            let _restore = Restore(INSTALLED.replace(blas));
            f()
        })
    }
}

thread_local! {
    /// Inside [`Threads::install`]: the OpenBLAS thread count of its
    /// policy; 0 outside.
    static INSTALLED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether the calling thread runs inside [`Threads::install`] (so that
/// parallel regions use its pool, with OpenBLAS at its policy's count).
pub fn installed() -> bool {
    installed_blas_threads().is_some()
}

/// Inside [`Threads::install`], the OpenBLAS thread count its policy
/// wants; `None` outside.
pub fn installed_blas_threads() -> Option<usize> {
    Some(INSTALLED.get()).filter(|&n| n > 0)
}

/// Available cores.
pub fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `f(0..n)` in parallel through nested `rayon::join` (no allocation).
pub fn par_for<F: Fn(usize) + Sync>(n: usize, f: &F) {
    fn go<F: Fn(usize) + Sync>(lo: usize, hi: usize, f: &F) {
        if hi - lo == 1 {
            f(lo);
        } else {
            let mid = lo + (hi - lo) / 2;
            rayon::join(|| go(lo, mid, f), || go(mid, hi, f));
        }
    }
    if n > 0 {
        go(0, n, f);
    }
}

/// Block `t` of `n` of `0..len`, boundaries rounded to multiples of `align`
/// when blocks are long enough (at least 8 alignments) for the rounding to
/// cost little balance.
pub fn block(t: usize, n: usize, len: usize, align: usize) -> Range<usize> {
    let cut = |i: usize| -> usize {
        let raw = len * i / n;
        if align > 1 && len >= 8 * n * align && i != n {
            (raw + align / 2) / align * align
        } else {
            raw
        }
    };
    cut(t)..cut(t + 1)
}

/// A row-major matrix (or a block of one) addressed by raw pointer, so that
/// parallel regions can hand disjoint blocks of one buffer to their threads.
#[derive(Debug)]
pub struct RawMat<T> {
    ptr: *mut T,
    /// Rows of the block.
    pub rows: usize,
    /// Columns of the block.
    pub cols: usize,
    /// Elements from one row to the next.
    pub stride: usize,
}

impl<T> Clone for RawMat<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for RawMat<T> {}
// SAFETY: a RawMat is only an address; the code that dereferences it makes
// sure that concurrent blocks are disjoint or read-only.
unsafe impl<T: Send> Send for RawMat<T> {}
unsafe impl<T: Sync> Sync for RawMat<T> {}

impl<T> RawMat<T> {
    /// A 0 x 0 matrix (a placeholder).
    pub fn empty() -> Self {
        Self {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            rows: 0,
            cols: 0,
            stride: 0,
        }
    }
    /// A matrix with unit column stride (rows possibly padded).
    pub fn of(a: &mut ndarray::Array2<T>) -> Self {
        Self {
            ptr: a.as_mut_ptr(),
            ..Self::of_view(&a.view())
        }
    }
    /// A read-only matrix (never written through), with unit column stride
    /// (rows possibly padded).
    pub fn of_view(a: &ArrayView2<T>) -> Self {
        let (rows, cols) = a.dim();
        let (s0, s1) = (a.strides()[0], a.strides()[1]);
        assert!(s1 == 1 || cols <= 1, "columns must be contiguous");
        assert!(s0 >= cols as isize || rows <= 1, "rows must not overlap");
        Self {
            ptr: a.as_ptr() as *mut T,
            rows,
            cols,
            stride: if rows <= 1 { cols } else { s0 as usize },
        }
    }
    /// A contiguous `[1, len]` matrix over a slice.
    pub fn of_slice(s: &mut [T]) -> Self {
        Self {
            ptr: s.as_mut_ptr(),
            rows: 1,
            cols: s.len(),
            stride: s.len(),
        }
    }
    /// The first `rows` rows.
    pub fn top(self, rows: usize) -> Self {
        assert!(rows <= self.rows);
        Self { rows, ..self }
    }
    /// The rows `r` of this block.
    pub fn row_block(self, r: Range<usize>) -> Self {
        assert!(r.end <= self.rows && r.start <= r.end);
        Self {
            // SAFETY: in bounds (checked above).
            ptr: unsafe { self.ptr.add(r.start * self.stride) },
            rows: r.len(),
            ..self
        }
    }
    /// The columns `c` of this block.
    pub fn col_block(self, c: Range<usize>) -> Self {
        assert!(c.end <= self.cols && c.start <= c.end);
        Self {
            // SAFETY: in bounds (checked above).
            ptr: unsafe { self.ptr.add(c.start) },
            cols: c.len(),
            ..self
        }
    }
    /// The block `rows x cols` of this matrix.
    pub fn block(self, rows: Range<usize>, cols: Range<usize>) -> Self {
        self.row_block(rows).col_block(cols)
    }
    /// Whether the rows follow each other in memory (no gaps).
    pub fn is_contiguous(&self) -> bool {
        self.stride == self.cols || self.rows <= 1
    }
    /// A contiguous matrix as one row (elementwise loops then run over one
    /// long slice); any other matrix as it is.
    pub fn flat(self) -> Self {
        if self.is_contiguous() {
            Self {
                rows: 1.min(self.rows * self.cols),
                cols: self.rows * self.cols,
                stride: self.rows * self.cols,
                ..self
            }
        } else {
            self
        }
    }
    /// # Safety
    /// No one may write the block while the view lives.
    pub unsafe fn view<'a>(self) -> ArrayView2<'a, T> {
        ArrayView2::from_shape_ptr((self.rows, self.cols).strides((self.stride, 1)), self.ptr)
    }
    /// # Safety
    /// No one else may touch the block while the view lives.
    pub unsafe fn view_mut<'a>(self) -> ArrayViewMut2<'a, T> {
        ArrayViewMut2::from_shape_ptr((self.rows, self.cols).strides((self.stride, 1)), self.ptr)
    }
    /// Row `r` as a slice.
    /// # Safety
    /// As [`RawMat::view`].
    pub unsafe fn row<'a>(self, r: usize) -> &'a [T] {
        debug_assert!(r < self.rows);
        std::slice::from_raw_parts(self.ptr.add(r * self.stride), self.cols)
    }
    /// Row `r` as a mutable slice.
    /// # Safety
    /// As [`RawMat::view_mut`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn row_mut<'a>(self, r: usize) -> &'a mut [T] {
        debug_assert!(r < self.rows);
        std::slice::from_raw_parts_mut(self.ptr.add(r * self.stride), self.cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_partition_the_range() {
        for len in [0, 1, 5, 8, 10, 128, 200, 784, 1000] {
            for n in 1..=5 {
                for align in [1, 16] {
                    let mut next = 0;
                    for t in 0..n {
                        let b = block(t, n, len, align);
                        assert_eq!(b.start, next);
                        next = b.end;
                    }
                    assert_eq!(next, len);
                }
            }
        }
        assert_eq!(block(0, 2, 512, 16), 0..256);
        assert_eq!(block(0, 2, 300, 16), 0..144);
        assert_eq!(block(0, 2, 200, 16), 0..100);
        assert_eq!(block(0, 2, 10, 16), 0..5);
    }

    #[test]
    fn par_for_visits_each_index_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits: Vec<AtomicUsize> = (0..7).map(|_| AtomicUsize::new(0)).collect();
        par_for(7, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}
