//! What a step reads and writes besides the parameters: the batch (which
//! rows of a dataset), its statistics, and the [`Workspace`] of buffers
//! allocated once, with the gather that copies a batch's rows into it.
//!
//! Buffers for layers `i = 0..L` of a network with widths `n_0..n_L` and
//! batches of up to `cap` rows (rows [`layout::padded_cols`] apart):
//! - `x` `[cap, n_0]`: the gathered input rows (allocated on first use: an
//!   f32 batch of consecutive rows is read in place);
//! - `chunk_x` `[blocks * chunk_room, n_0]`: where a batch read in place
//!   is long enough for row chunks ([`crate::plan::Plan::row_chunk`]) and
//!   has pixel bytes, each block's current chunk of input rows, converted
//!   from the bytes (allocated on first use);
//! - `acts[i]` `[cap, n_{i+1}]`: `A_{i+1}`, the outputs of layer `i`; the
//!   last holds the logits, then `D_L = dL/dZ_L` (training) or the output
//!   activation (evaluation);
//! - `deltas[i]` `[cap, n_{i+1}]` for hidden layers: `D_{i+1}`;
//! - one [`Stats`] per block of a parallel region.

use std::ops::Range;
use std::sync::Mutex;

use ndarray::{Array2, ArrayView2, ShapeBuilder};

use crate::nn::layout;
use crate::nn::spec::{NetSpec, MAX_LAYERS};
use crate::parallel::RawMat;
use crate::plan::Plan;
use crate::real::Real;

/// Which rows of a dataset form the batch.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// The rows at these indices (gathered into the workspace).
    Indices(&'a [u32]),
    /// A contiguous range (used in place when the element type is f32).
    Range(usize, usize),
}

impl Rows<'_> {
    /// Number of rows selected.
    pub fn len(&self) -> usize {
        match self {
            Rows::Indices(i) => i.len(),
            Rows::Range(a, b) => b - a,
        }
    }
    /// Whether no row is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The dataset row of batch row `r`.
    #[inline]
    pub fn get(&self, r: usize) -> usize {
        match self {
            Rows::Indices(i) => i[r] as usize,
            Rows::Range(a, _) => a + r,
        }
    }
}

/// A batch: rows of a `[n, features]` f32 matrix and their labels.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The images, `[samples, features]` in [0, 1].
    pub data: ArrayView2<'a, f32>,
    /// The same rows as pixel bytes (`data = pixels / 255`), when known:
    /// gathered batches are read from these (4x less memory traffic).
    pub pixels: Option<ArrayView2<'a, u8>>,
    /// The labels, one per sample.
    pub labels: &'a [u8],
    /// The rows of this batch.
    pub rows: Rows<'a>,
    /// The training step's random key ([`crate::nn::dropout::step_key`] of
    /// the run's seed and the step's number): dropout masks are a function
    /// of it and the unit's coordinates. Unused without dropout.
    pub key: u64,
    /// Augment each sample as it is gathered (training batches only), its
    /// transform a function of `key` and the sample's index.
    pub augment: Option<&'a crate::data::augment::Augmenter>,
}

/// Loss sum and correct predictions over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Sum of the samples' losses.
    pub loss_sum: f64,
    /// Samples whose argmax is their label.
    pub correct: usize,
    /// Samples counted.
    pub samples: usize,
}

impl Stats {
    /// Adds another batch's counts.
    pub fn add(&mut self, o: Stats) {
        self.loss_sum += o.loss_sum;
        self.correct += o.correct;
        self.samples += o.samples;
    }
    /// Mean loss per sample (0 for none).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }
    /// Share of samples classified right (0 for none).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }
}

/// Buffers for batches of up to `cap` rows, allocated once (see the module
/// documentation), and the plan that steps on them follow.
#[derive(Debug)]
pub struct Workspace<T: Real> {
    cap: usize,
    /// Blocks the pool offers, and blocks per region under the plan.
    pool_blocks: usize,
    blocks: usize,
    plan: Plan,
    x: Array2<T>,
    /// Each block's chunk of input rows, converted from pixel bytes, for
    /// batches read in place ([`Plan::row_chunk`]; allocated on first use).
    chunk_x: Array2<T>,
    acts: Vec<Array2<T>>,
    deltas: Vec<Array2<T>>,
    stats: Vec<Mutex<Stats>>,
}

impl<T: Real> Workspace<T> {
    /// Buffers for `spec` and batches of up to `cap` rows, split into
    /// `blocks` per parallel region, under [`Plan::from_env`].
    pub fn new(spec: &NetSpec, cap: usize, blocks: usize) -> Self {
        Self::with_plan(spec, cap, blocks, Plan::from_env())
    }

    /// [`Workspace::new`] under `plan`.
    pub fn with_plan(spec: &NetSpec, cap: usize, blocks: usize, plan: Plan) -> Self {
        let l = spec.layers();
        let pad = plan.pad_bytes;
        Self {
            cap,
            pool_blocks: blocks.max(1),
            blocks: plan.blocks_for(blocks.max(1)),
            plan,
            x: Array2::zeros((0, spec.input())),
            chunk_x: Array2::zeros((0, spec.input())),
            acts: (0..l)
                .map(|i| layout::zeros(cap, spec.widths[i + 1], pad))
                .collect(),
            deltas: (0..l - 1)
                .map(|i| layout::zeros(cap, spec.widths[i + 1], pad))
                .collect(),
            stats: (0..blocks.max(1))
                .map(|_| Mutex::new(Stats::default()))
                .collect(),
        }
    }
    /// Rows the buffers hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Blocks the rows are split into (one per thread).
    pub fn blocks(&self) -> usize {
        self.blocks
    }
    /// The plan steps on this workspace follow.
    pub fn plan(&self) -> Plan {
        self.plan
    }
    /// The OpenBLAS thread count its steps set ([`Plan::openblas_threads`]).
    pub fn openblas_threads(&self) -> Option<usize> {
        self.plan.openblas_threads(self.pool_blocks)
    }
    /// Follows `plan` from now on (reallocating the buffers when its row
    /// padding differs).
    pub fn set_plan(&mut self, plan: Plan) {
        if plan.pad_bytes != self.plan.pad_bytes {
            let pad = plan.pad_bytes;
            for a in self.acts.iter_mut().chain(self.deltas.iter_mut()) {
                *a = layout::zeros(a.nrows(), a.ncols(), pad);
            }
            self.x = Array2::zeros((0, self.x.ncols()));
            self.chunk_x = Array2::zeros((0, self.x.ncols()));
        }
        self.blocks = plan.blocks_for(self.pool_blocks);
        self.plan = plan;
    }
    /// Bytes held (padding included).
    pub fn bytes(&self) -> usize {
        let n = layout::storage_len(&self.x)
            + layout::storage_len(&self.chunk_x)
            + self.acts.iter().map(layout::storage_len).sum::<usize>()
            + self.deltas.iter().map(layout::storage_len).sum::<usize>();
        n * std::mem::size_of::<T>()
    }
    /// The output rows of the last forward pass (probabilities after
    /// [`crate::nn::Mlp::evaluate_into`]).
    pub fn output(&self, rows: usize) -> ArrayView2<'_, T> {
        self.acts
            .last()
            .expect("at least one layer")
            .slice(ndarray::s![..rows, ..])
    }

    /// Checks that `batch` fits this workspace and a network with `input`
    /// inputs; returns its rows.
    pub(crate) fn check(&self, batch: &Batch, input: usize) -> usize {
        let n = batch.rows.len();
        assert!(
            n <= self.cap,
            "batch of {n} rows exceeds the workspace capacity {}",
            self.cap
        );
        assert_eq!(batch.data.ncols(), input, "input width");
        assert!(
            batch.data.strides()[1] == 1 || batch.data.ncols() <= 1,
            "data rows must be contiguous"
        );
        n
    }

    /// Raw handles of a step on `batch`: the input matrix (the data itself
    /// for a contiguous f32 range unless `copy`, else the gather buffer,
    /// with `true`: to be gathered), the first `n` rows of each activation and delta buffer
    /// (the output layer's delta is its activation buffer), and the
    /// per-block statistics.
    pub(crate) fn frame_parts(&mut self, batch: &Batch, copy: bool) -> FrameParts<'_, T> {
        let n = batch.rows.len();
        let (x, gather) = self.input(batch, copy || batch.augment.is_some());
        // A batch read in place is read in chunks from its bytes, where it
        // has them and the blocks are chunked.
        let chunk = self.plan.row_chunk_for(n.div_ceil(self.blocks));
        let chunk_x = if chunk > 0 && !gather && batch.pixels.is_some() {
            let rows = self.blocks * chunk_room(chunk);
            if self.chunk_x.nrows() < rows {
                self.chunk_x = layout::zeros(rows, batch.data.ncols(), self.plan.pad_bytes);
            }
            RawMat::of(&mut self.chunk_x).top(rows)
        } else {
            RawMat::empty()
        };
        let acts = tops(&mut self.acts, n);
        let mut deltas = tops(&mut self.deltas, n);
        let l = self.acts.len();
        deltas[l - 1] = acts[l - 1];
        FrameParts {
            x,
            gather,
            chunk,
            chunk_x,
            acts,
            deltas,
            stats: &self.stats[..self.blocks],
        }
    }

    /// The input matrix of the batch (the gather buffer is allocated on
    /// first use, outside any step that reads the data in place).
    fn input(&mut self, batch: &Batch, copy: bool) -> (RawMat<T>, bool) {
        if let (Rows::Range(a, b), Some(v), false) = (batch.rows, as_t::<T>(batch.data), copy) {
            if v.strides()[1] == 1 {
                return (RawMat::of_view(&v.slice(ndarray::s![a..b, ..])), false);
            }
        }
        if self.x.nrows() < self.cap {
            self.x = layout::zeros(self.cap, batch.data.ncols(), self.plan.pad_bytes);
        }
        (RawMat::of(&mut self.x).top(batch.rows.len()), true)
    }

    /// The sum of the per-block statistics of the last pass.
    pub(crate) fn total(&self) -> Stats {
        let mut total = Stats::default();
        for s in &self.stats[..self.blocks] {
            total.add(*s.lock().expect("no panics while held"));
        }
        total
    }
}

/// See [`Workspace::frame_parts`].
pub(crate) struct FrameParts<'a, T> {
    pub x: RawMat<T>,
    pub gather: bool,
    /// Rows per chunk of a block's row stages (0: whole blocks).
    pub chunk: usize,
    /// Room for each block's chunk of input rows ([`chunk_room`] rows per
    /// block), where they are converted from bytes; empty otherwise.
    pub chunk_x: RawMat<T>,
    pub acts: [RawMat<T>; MAX_LAYERS],
    pub deltas: [RawMat<T>; MAX_LAYERS],
    pub stats: &'a [Mutex<Stats>],
}

/// Rows a block's chunk can have: a block of `rows >= 2 * chunk` rows is
/// cut into `rows / chunk` chunks of equal size, boundaries at multiples of
/// 16 rows ([`crate::parallel::block`]), so each is shorter than this.
pub(crate) fn chunk_room(chunk: usize) -> usize {
    2 * chunk + 16
}

/// Raw handles of the first `n` rows of each buffer.
fn tops<T>(bufs: &mut [Array2<T>], n: usize) -> [RawMat<T>; MAX_LAYERS] {
    let mut r = [RawMat::empty(); MAX_LAYERS];
    for (a, b) in r.iter_mut().zip(bufs.iter_mut()) {
        *a = RawMat::of(b).top(n);
    }
    r
}

/// Views `data` as `T` when `T` is f32 (no copy needed).
fn as_t<'a, T: Real>(data: ArrayView2<'a, f32>) -> Option<ArrayView2<'a, T>> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (checked above); same layout and lifetime.
        let (s0, s1) = (data.strides()[0], data.strides()[1]);
        if s0 < 0 || s1 < 0 {
            return None;
        }
        let shape = data.dim().strides((s0 as usize, s1 as usize));
        Some(unsafe { ArrayView2::from_shape_ptr(shape, data.as_ptr() as *const T) })
    } else {
        None
    }
}

/// How many rows ahead [`gather_rows`] prefetches (2, 4 and 8 measured the
/// same; see BENCHMARKS.md).
const PREFETCH_ROWS: usize = 4;

/// Asks the CPU to bring the `len` bytes at `p` into cache: a hint, with no
/// effect on results (and none at all off x86-64).
#[inline(always)]
fn prefetch(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for off in (0..len).step_by(64) {
            // SAFETY: a prefetch never faults; `p + off` stays inside the row.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// Copies the batch's rows `rows` into the gather buffer `x` (`[n, n_0]`),
/// from the pixel bytes when the batch has them, else from the f32 data.
///
/// # Safety
/// Row blocks of concurrent calls must be disjoint.
pub(crate) unsafe fn gather_rows<T: Real>(x: RawMat<T>, batch: &Batch, rows: Range<usize>) {
    gather_rows_at(x, 0, batch, rows)
}

/// [`gather_rows`] into `x` shifted up by `first` rows: batch row `r` goes
/// to row `r - first` of `x`.
///
/// # Safety
/// As [`gather_rows`]; `x` has at least `rows.end - first` rows.
pub(crate) unsafe fn gather_rows_at<T: Real>(
    x: RawMat<T>,
    first: usize,
    batch: &Batch,
    rows: Range<usize>,
) {
    if let Some(aug) = batch.augment {
        for r in rows {
            let i = batch.rows.get(r);
            let key = crate::data::augment::Augmenter::sample_key(batch.key, i);
            let src = |img: &mut [f32]| match &batch.pixels {
                Some(px) => f32::copy_from_u8(img, px.row(i).to_slice().expect("contiguous")),
                None => img.copy_from_slice(batch.data.row(i).to_slice().expect("contiguous")),
            };
            aug.apply(x.row_mut(r - first), src, key);
        }
        return;
    }
    match &batch.pixels {
        Some(px) => gather_from(x, first, batch, px, rows, T::copy_from_u8),
        None => gather_from(x, first, batch, &batch.data, rows, T::copy_from_f32),
    }
}

/// [`gather_rows`] from the source matrix `src` (one row per sample),
/// converting each row with `copy`.
///
/// # Safety
/// Row blocks of concurrent calls must be disjoint.
#[inline(always)]
unsafe fn gather_from<T, S>(
    x: RawMat<T>,
    first: usize,
    batch: &Batch,
    src: &ArrayView2<S>,
    rows: Range<usize>,
    copy: impl Fn(&mut [T], &[S]),
) {
    let end = rows.end;
    for r in rows {
        // The rows are scattered over the whole training set (47 MiB of
        // bytes for MNIST), so each one starts with cache misses: ask for a
        // row a few places ahead while this one is converted.
        if r + PREFETCH_ROWS < end {
            let ahead = src.row(batch.rows.get(r + PREFETCH_ROWS));
            prefetch(
                ahead.as_ptr() as *const u8,
                std::mem::size_of::<S>() * ahead.len(),
            );
        }
        let row = src.row(batch.rows.get(r));
        copy(
            x.row_mut(r - first),
            row.to_slice()
                .expect("rows of the batch's source are contiguous"),
        );
    }
}
