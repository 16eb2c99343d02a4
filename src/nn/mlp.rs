//! The multilayer perceptron and its training step.
//!
//! Layer `i` maps `[B, n_i]` to `[B, n_{i+1}]`; `A_0` is the input batch,
//! `A_{i+1} = f_i(A_i W_i + b_i)`, and `D_{i+1} = dL/dZ_{i+1}`.
//!
//! A step runs in *parallel regions*, each split into one block per thread
//! (see [`crate::parallel`]); inside a block the work is single-threaded
//! GEMMs on slices, each followed by its fused elementwise pass, on buffers
//! of the [`Workspace`] allocated once:
//!
//! 1. the *stages* of the pass: gather the rows; for each hidden layer
//!    `A_{i+1} = f(A_i W_i + b)`; at the output the fused loss, accuracy and
//!    `D_L = (p - onehot) / B` in place of the logits; then back through the
//!    layers `D_i = (D_{i+1} W_i^T) * f'(A_i)` (not for the input). Each
//!    stage is split by rows of the batch or by columns of its output
//!    ([`SplitPolicy`]). Consecutive row-split stages share one region: a
//!    row block needs only its own rows and the weights, which nobody
//!    writes here. By default a batch with at least [`COL_SPLIT_ROWS`] rows
//!    per block is one region of row blocks; smaller batches split every
//!    product by columns (each thread reads only its share of the weights),
//!    one region per stage.
//! 2. blocks of every layer's weights (rows or columns, along the longer
//!    side): `dW = A_i^T D_{i+1}` on the block, `db = sum_rows D_{i+1}` on a
//!    column block, then the optimizer on that block while it is hot in
//!    cache. Plain SGD folds the update into the GEMM:
//!    `W = (1 - lr l2) W - lr A_i^T D_{i+1}`.
//!
//! So a step with the default policy costs two synchronizations whatever
//! the depth, and the result depends only on the number of blocks, not on
//! timing.
//!
//! Each GEMM is one BLAS call, or several on sub-blocks of its output where
//! that is faster: skinny products in column chunks ([`gemm_chunk`]), and
//! big f32 products of batches up to [`TILE_MAX_BATCH`] rows per thread in
//! tiles ([`gemm_tile`]) that OpenBLAS computes without packing.

use std::ops::Range;
use std::sync::Mutex;

use ndarray::{Array2, ArrayView2, ShapeBuilder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::blas::gemm;
use crate::nn::dense::Dense;
use crate::nn::init::Init;
use crate::nn::layout;
use crate::nn::loss::{loss_row, Loss};
use crate::nn::spec::{NetSpec, MAX_LAYERS};
use crate::optim::Optimizer;
use crate::parallel::{block, par_for, RawMat};
use crate::real::Real;

/// Column blocks are aligned to this many elements (a cache line of f32).
const COL_ALIGN: usize = 16;

/// Below this many rows per thread, a step splits products by columns (each
/// thread reads only its share of the weights, one synchronization per
/// layer) instead of by rows (two synchronizations per step, each thread
/// reading all weights). Chosen by measurement: see BENCHMARKS.md.
pub const COL_SPLIT_ROWS: usize = 16;

/// `MLP_GW_SPLIT=rows|cols` from the environment forces how weight
/// gradients are split (for measuring the policy; see [`Mlp::update_block`]).
fn gw_split() -> Option<bool> {
    static V: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *V.get_or_init(|| match std::env::var("MLP_GW_SPLIT").as_deref() {
        Ok("rows") => Some(true),
        Ok("cols") => Some(false),
        _ => None,
    })
}

/// How the forward and back-propagation products of a training step are
/// split between threads (see BENCHMARKS.md, "Threading policy").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPolicy {
    /// Below this many batch rows per block, every product is split by
    /// columns ([`COL_SPLIT_ROWS`]).
    pub col_split_rows: usize,
    /// Products with at least this many weights and more output columns
    /// than batch rows are split by columns (`usize::MAX`: none; measured
    /// no faster on T5, see BENCHMARKS.md) ...
    pub big_weights: usize,
    /// ... in the forward pass ...
    pub big_fwd: bool,
    /// ... and in back-propagation.
    pub big_bwd: bool,
}

impl SplitPolicy {
    /// The default, or from the environment for measuring the policy:
    /// `MLP_COL_SPLIT_ROWS=N` sets `col_split_rows`, `MLP_BIG_COLS=MIN[:f|b|fb]`
    /// sets `big_weights` and which passes it applies to (both by default).
    pub fn from_env() -> Self {
        static V: std::sync::OnceLock<SplitPolicy> = std::sync::OnceLock::new();
        *V.get_or_init(|| {
            let col_split_rows = std::env::var("MLP_COL_SPLIT_ROWS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(COL_SPLIT_ROWS);
            let big = std::env::var("MLP_BIG_COLS").unwrap_or_default();
            let (min, which) = big.split_once(':').unwrap_or((&big, "fb"));
            SplitPolicy {
                col_split_rows,
                big_weights: min.parse().unwrap_or(usize::MAX),
                big_fwd: which.contains('f'),
                big_bwd: which.contains('b'),
            }
        })
    }

    /// Whether a product `[n, k] x [k, cols]` on `nb` blocks (`fwd`: of the
    /// forward pass, else of back-propagation) is split by columns.
    pub fn split_cols(&self, n: usize, nb: usize, k: usize, cols: usize, fwd: bool) -> bool {
        if nb <= 1 {
            return false;
        }
        if n < self.col_split_rows * nb {
            return true;
        }
        k * cols >= self.big_weights && cols > n && if fwd { self.big_fwd } else { self.big_bwd }
    }
}

/// A step of a pass: the forward product of hidden layer `i`, the output
/// layer with its loss, or the back-propagation through layer `i`.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Fwd(usize),
    Out,
    Bwd(usize),
}

/// A multilayer perceptron.
#[derive(Debug, Clone)]
pub struct Mlp<T: Real> {
    pub spec: NetSpec,
    pub loss: Loss,
    pub layers: Vec<Dense<T>>,
}

/// Which rows of a dataset form the batch.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// The rows at these indices (gathered into the workspace).
    Indices(&'a [u32]),
    /// A contiguous range (used in place when the element type is f32).
    Range(usize, usize),
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        match self {
            Rows::Indices(i) => i.len(),
            Rows::Range(a, b) => b - a,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    fn get(&self, r: usize) -> usize {
        match self {
            Rows::Indices(i) => i[r] as usize,
            Rows::Range(a, _) => a + r,
        }
    }
}

/// How many rows ahead [`Mlp::gather_rows`] prefetches (2, 4 and 8 measured
/// the same; see BENCHMARKS.md).
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

/// A batch: rows of a `[n, features]` f32 matrix and their labels.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub data: ArrayView2<'a, f32>,
    /// The same rows as pixel bytes (`data = pixels / 255`), when known:
    /// gathered batches are read from these (4x less memory traffic).
    pub pixels: Option<ArrayView2<'a, u8>>,
    pub labels: &'a [u8],
    pub rows: Rows<'a>,
}

/// Loss sum and correct predictions over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub loss_sum: f64,
    pub correct: usize,
    pub samples: usize,
}

impl Stats {
    pub fn add(&mut self, o: Stats) {
        self.loss_sum += o.loss_sum;
        self.correct += o.correct;
        self.samples += o.samples;
    }
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }
}

/// Buffers for batches of up to `cap` rows, allocated once, with rows
/// [`layout::padded_cols`] apart.
#[derive(Debug)]
pub struct Workspace<T: Real> {
    cap: usize,
    blocks: usize,
    split: SplitPolicy,
    /// Gathered input rows `[cap, n_0]` (allocated on first use).
    x: Array2<T>,
    /// `A_{i+1}`: outputs of layer `i`, `[cap, n_{i+1}]`; the last holds the
    /// logits, then `D_L`.
    acts: Vec<Array2<T>>,
    /// `D_{i+1}` for hidden layers `i < L-1`, `[cap, n_{i+1}]`.
    deltas: Vec<Array2<T>>,
    stats: Vec<Mutex<Stats>>,
}

impl<T: Real> Workspace<T> {
    /// Buffers for `spec` and batches of up to `cap` rows, split into
    /// `blocks` per parallel region.
    pub fn new(spec: &NetSpec, cap: usize, blocks: usize) -> Self {
        let l = spec.layers();
        Self {
            cap,
            blocks: blocks.max(1),
            split: SplitPolicy::from_env(),
            x: Array2::zeros((0, spec.input())),
            acts: (0..l)
                .map(|i| layout::zeros(cap, spec.widths[i + 1]))
                .collect(),
            deltas: (0..l - 1)
                .map(|i| layout::zeros(cap, spec.widths[i + 1]))
                .collect(),
            stats: (0..blocks.max(1))
                .map(|_| Mutex::new(Stats::default()))
                .collect(),
        }
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn blocks(&self) -> usize {
        self.blocks
    }
    /// How training steps split their products ([`SplitPolicy::from_env`]
    /// unless set).
    pub fn split(&self) -> SplitPolicy {
        self.split
    }
    pub fn set_split(&mut self, split: SplitPolicy) {
        self.split = split;
    }
    /// Bytes held (padding included).
    pub fn bytes(&self) -> usize {
        let n = layout::storage_len(&self.x)
            + self.acts.iter().map(layout::storage_len).sum::<usize>()
            + self.deltas.iter().map(layout::storage_len).sum::<usize>();
        n * std::mem::size_of::<T>()
    }
    /// The output rows of the last forward pass (probabilities after
    /// [`Mlp::evaluate_into`]).
    pub fn output(&self, rows: usize) -> ArrayView2<'_, T> {
        self.acts
            .last()
            .expect("at least one layer")
            .slice(ndarray::s![..rows, ..])
    }
}

/// Raw handles of the first `n` rows of each buffer.
fn tops<T>(bufs: &mut [Array2<T>], n: usize) -> [RawMat<T>; MAX_LAYERS] {
    let mut r = [RawMat::empty(); MAX_LAYERS];
    for (a, b) in r.iter_mut().zip(bufs.iter_mut()) {
        *a = RawMat::of(b).top(n);
    }
    r
}

impl<T: Real> Workspace<T> {
    /// The sum of the per-block statistics of the last pass.
    fn total(&self) -> Stats {
        let mut total = Stats::default();
        for s in &self.stats[..self.blocks] {
            total.add(*s.lock().expect("no panics while held"));
        }
        total
    }
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

/// Raw handles of one layer's tensors.
#[derive(Clone, Copy)]
struct LayerPtrs<T> {
    w: RawMat<T>,
    b: RawMat<T>,
    gw: RawMat<T>,
    gb: RawMat<T>,
}

/// How parameters change after the gradient is known.
#[derive(Clone, Copy)]
pub enum Update<'a, T: Real> {
    /// Only compute `gw`, `gb` (gradient checks).
    GradOnly,
    /// Apply an optimizer ([`Optimizer::begin_step`] already called).
    Apply(&'a Optimizer<T>),
}

impl<T: Real> Mlp<T> {
    /// A fresh network: weights drawn by `init` from a ChaCha8 stream seeded
    /// with `seed`, biases zero.
    pub fn new(spec: NetSpec, loss: Loss, init: Init, seed: u64) -> Result<Self, String> {
        spec.check_loss(loss)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let l = spec.layers();
        let layers = (0..l)
            .map(|i| {
                let act = if i + 1 < l {
                    Some(spec.hidden[i])
                } else {
                    spec.hidden.last().copied()
                };
                Dense::new(init.weights(spec.widths[i], spec.widths[i + 1], act, &mut rng))
            })
            .collect();
        Ok(Self { spec, loss, layers })
    }

    /// Shapes of the parameter tensors, in optimizer order (W, b per layer).
    pub fn param_shapes(&self) -> Vec<(usize, usize)> {
        self.layers
            .iter()
            .flat_map(|l| [l.w.dim(), (1, l.fan_out())])
            .collect()
    }

    /// Converts to another element type.
    pub fn cast<U: Real>(&self) -> Mlp<U> {
        Mlp {
            spec: self.spec.clone(),
            loss: self.loss,
            layers: self.layers.iter().map(|l| l.cast()).collect(),
        }
    }

    /// Are all parameters finite?
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.w.iter().chain(l.b.iter()).all(|v| v.is_finite()))
    }

    fn ptrs(&mut self) -> [LayerPtrs<T>; MAX_LAYERS] {
        let mut p = [LayerPtrs {
            w: RawMat::empty(),
            b: RawMat::empty(),
            gw: RawMat::empty(),
            gb: RawMat::empty(),
        }; MAX_LAYERS];
        for (p, l) in p.iter_mut().zip(self.layers.iter_mut()) {
            *p = LayerPtrs {
                w: RawMat::of(&mut l.w),
                b: RawMat::of_slice(l.b.as_slice_mut().expect("contiguous")),
                gw: RawMat::of(&mut l.gw),
                gb: RawMat::of_slice(l.gb.as_slice_mut().expect("contiguous")),
            };
        }
        p
    }

    fn check_batch(&self, ws: &Workspace<T>, batch: &Batch) -> usize {
        let n = batch.rows.len();
        assert!(
            n <= ws.cap,
            "batch of {n} rows exceeds the workspace capacity {}",
            ws.cap
        );
        assert_eq!(batch.data.ncols(), self.spec.input(), "input width");
        assert!(
            batch.data.strides()[1] == 1 || batch.data.ncols() <= 1,
            "data rows must be contiguous"
        );
        assert!(ws.blocks <= ws.stats.len());
        n
    }

    /// The input matrix of the batch: the data itself (f32, contiguous
    /// range) or the gather buffer.
    /// (The gather buffer is allocated on first use, outside any step that
    /// reads the data in place.)
    fn input_ptr(ws: &mut Workspace<T>, batch: &Batch) -> (RawMat<T>, bool) {
        if let (Rows::Range(a, b), Some(v)) = (batch.rows, as_t::<T>(batch.data)) {
            if v.strides()[1] == 1 {
                return (RawMat::of_view(&v.slice(ndarray::s![a..b, ..])), false);
            }
        }
        if ws.x.nrows() < ws.cap {
            ws.x = layout::zeros(ws.cap, batch.data.ncols());
        }
        (RawMat::of(&mut ws.x).top(batch.rows.len()), true)
    }

    /// Forward pass over the row block `rows` of the batch. With `scale`,
    /// the output rows become `scale * dL/dZ` (training); otherwise they hold
    /// the output activation.
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint.
    #[allow(clippy::too_many_arguments)]
    unsafe fn forward_block(
        &self,
        p: &[LayerPtrs<T>],
        x: RawMat<T>,
        gather: bool,
        acts: &[RawMat<T>],
        batch: &Batch,
        rows: Range<usize>,
        scale: Option<T>,
    ) -> Stats {
        if rows.is_empty() {
            return Stats::default();
        }
        if gather {
            Self::gather_rows(x, batch, rows.clone());
        }
        for i in 0..self.spec.layers() - 1 {
            self.stage_rows(Stage::Fwd(i), p, x, acts, &[], batch, rows.clone(), None);
        }
        self.stage_rows(Stage::Out, p, x, acts, &[], batch, rows, scale)
            .expect("the output stage returns statistics")
    }

    /// Copies the batch's rows `rows` into the gather buffer `x`, from the
    /// pixel bytes when the batch has them, else from the f32 data.
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint.
    unsafe fn gather_rows(x: RawMat<T>, batch: &Batch, rows: Range<usize>) {
        match &batch.pixels {
            Some(px) => Self::gather_from(x, batch, px, rows, T::copy_from_u8),
            None => Self::gather_from(x, batch, &batch.data, rows, T::copy_from_f32),
        }
    }

    /// [`Self::gather_rows`] from the source matrix `src` (one row per
    /// sample), converting each row with `copy`.
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint.
    #[inline(always)]
    unsafe fn gather_from<S>(
        x: RawMat<T>,
        batch: &Batch,
        src: &ArrayView2<S>,
        rows: Range<usize>,
        copy: impl Fn(&mut [T], &[S]),
    ) {
        let end = rows.end;
        for r in rows {
            // The rows are scattered over the whole training set (47 MiB of
            // bytes for MNIST), so each one starts with cache misses: ask
            // for a row a few places ahead while this one is converted.
            if r + PREFETCH_ROWS < end {
                let ahead = src.row(batch.rows.get(r + PREFETCH_ROWS));
                prefetch(
                    ahead.as_ptr() as *const u8,
                    std::mem::size_of::<S>() * ahead.len(),
                );
            }
            let row = src.row(batch.rows.get(r));
            copy(
                x.row_mut(r),
                row.to_slice()
                    .expect("rows of the batch's source are contiguous"),
            );
        }
    }

    /// The output layer on rows `rows`: logits, then the fused loss (and,
    /// with `scale`, `scale * dL/dZ` in place of the logits).
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint.
    unsafe fn output_rows(
        &self,
        p: &[LayerPtrs<T>],
        input: RawMat<T>,
        acts: &[RawMat<T>],
        batch: &Batch,
        rows: Range<usize>,
        scale: Option<T>,
    ) -> Stats {
        let mut st = Stats {
            samples: rows.len(),
            ..Stats::default()
        };
        if rows.is_empty() {
            return st;
        }
        let l = self.spec.layers();
        let out = acts[l - 1].row_block(rows.clone());
        gemm(
            T::one(),
            input.row_block(rows.clone()).view(),
            p[l - 1].w.view(),
            T::zero(),
            out,
        );
        let bias = p[l - 1].b.row(0);
        for r in 0..out.rows {
            let z = out.row_mut(r);
            for (z, &b) in z.iter_mut().zip(bias) {
                *z += b;
            }
            let label = batch.labels[batch.rows.get(rows.start + r)] as usize;
            let (loss, ok) = loss_row(self.spec.output, self.loss, z, label, scale);
            st.loss_sum += loss;
            st.correct += ok as usize;
        }
        st
    }

    /// One training step (or, with [`Update::GradOnly`], one gradient
    /// evaluation) on a batch; returns the batch's loss and accuracy.
    /// Must run inside [`crate::parallel::Threads::install`] to use its pool.
    pub fn train_step(&mut self, ws: &mut Workspace<T>, batch: &Batch, update: Update<T>) -> Stats {
        let n = self.check_batch(ws, batch);
        if n == 0 {
            return Stats::default();
        }
        let p = self.ptrs();
        let p = &p[..self.spec.layers()];
        let (x, gather) = Self::input_ptr(ws, batch);
        let acts = tops(&mut ws.acts, n);
        let mut deltas = tops(&mut ws.deltas, n);
        let l = self.spec.layers();
        deltas[l - 1] = acts[l - 1];
        let (acts, deltas) = (&acts[..l], &deltas[..l]);
        let nb = ws.blocks;
        let scale = T::one() / T::of(n as f64);
        let stats = &ws.stats;
        let split = ws.split;
        let this = &*self;

        // 1. Forward, loss and back-propagation as a sequence of stages,
        //    each split by rows of the batch or by columns of its product
        //    ([`SplitPolicy::split_cols`]). Consecutive row-split stages run in one
        //    parallel region: a row block needs only its own rows and the
        //    (not yet updated) weights.
        let mut stages = [Stage::Out; 2 * MAX_LAYERS];
        let mut ns = 0;
        for i in 0..l - 1 {
            stages[ns] = Stage::Fwd(i);
            ns += 1;
        }
        stages[ns] = Stage::Out;
        ns += 1;
        for i in (1..l).rev() {
            stages[ns] = Stage::Bwd(i);
            ns += 1;
        }
        let stages = &stages[..ns];
        let cols_of = |s: Stage| match s {
            Stage::Fwd(i) => {
                split.split_cols(n, nb, this.spec.widths[i], this.spec.widths[i + 1], true)
            }
            Stage::Bwd(i) => {
                split.split_cols(n, nb, this.spec.widths[i + 1], this.spec.widths[i], false)
            }
            Stage::Out => false,
        };
        let mut gathered = !gather;
        let mut s = 0;
        while s < stages.len() {
            if cols_of(stages[s]) {
                if !gathered {
                    par_for(nb, &|t| {
                        // SAFETY: row blocks are disjoint.
                        unsafe { Self::gather_rows(x, batch, block(t, nb, n, 1)) };
                    });
                    gathered = true;
                }
                let stage = stages[s];
                par_for(nb, &|t| {
                    // SAFETY: column blocks of the stage's output are disjoint;
                    // everything else is only read.
                    unsafe { this.stage_cols(stage, p, x, acts, deltas, n, t, nb) };
                });
                s += 1;
            } else {
                let mut e = s + 1;
                while e < stages.len() && !cols_of(stages[e]) {
                    e += 1;
                }
                let group = &stages[s..e];
                let gather_here = !gathered;
                par_for(nb, &|t| {
                    let rows = block(t, nb, n, 1);
                    // SAFETY: row blocks are disjoint; weights are only read.
                    unsafe {
                        if gather_here {
                            Self::gather_rows(x, batch, rows.clone());
                        }
                        for &stage in group {
                            if let Some(st) = this.stage_rows(
                                stage,
                                p,
                                x,
                                acts,
                                deltas,
                                batch,
                                rows.clone(),
                                Some(scale),
                            ) {
                                *stats[t].lock().expect("no panics while held") = st;
                            }
                        }
                    }
                });
                gathered = true;
                s = e;
            }
        }

        // 2. Column blocks: weight gradients and updates of every layer.
        par_for(nb, &|t| {
            for i in 0..l {
                // SAFETY: column blocks are disjoint between threads, and no
                // one reads the weights in this region.
                unsafe { this.update_block(i, p, x, acts, deltas, t, nb, update) };
            }
        });

        ws.total()
    }

    /// One stage on the row block `rows`; the output stage returns its
    /// statistics.
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint; nobody writes weights.
    #[allow(clippy::too_many_arguments)]
    unsafe fn stage_rows(
        &self,
        stage: Stage,
        p: &[LayerPtrs<T>],
        x: RawMat<T>,
        acts: &[RawMat<T>],
        deltas: &[RawMat<T>],
        batch: &Batch,
        rows: Range<usize>,
        scale: Option<T>,
    ) -> Option<Stats> {
        let l = self.spec.layers();
        match stage {
            Stage::Fwd(i) => {
                self.forward_product(i, p, x, acts, rows, 0..self.spec.widths[i + 1]);
                None
            }
            Stage::Out => Some(self.output_rows(
                p,
                if l == 1 { x } else { acts[l - 2] },
                acts,
                batch,
                rows,
                scale,
            )),
            Stage::Bwd(i) => {
                self.backward_product(i, p, acts, deltas, rows, 0..self.spec.widths[i]);
                None
            }
        }
    }

    /// A forward or back-propagation stage on column block `t` of `nb` of
    /// its output (all `n` rows).
    ///
    /// # Safety
    /// Column blocks of concurrent calls must be disjoint; nobody writes weights.
    #[allow(clippy::too_many_arguments)]
    unsafe fn stage_cols(
        &self,
        stage: Stage,
        p: &[LayerPtrs<T>],
        x: RawMat<T>,
        acts: &[RawMat<T>],
        deltas: &[RawMat<T>],
        n: usize,
        t: usize,
        nb: usize,
    ) {
        match stage {
            Stage::Fwd(i) => {
                let cols = block(t, nb, self.spec.widths[i + 1], COL_ALIGN);
                self.forward_product(i, p, x, acts, 0..n, cols);
            }
            Stage::Bwd(i) => {
                let cols = block(t, nb, self.spec.widths[i], COL_ALIGN);
                self.backward_product(i, p, acts, deltas, 0..n, cols);
            }
            Stage::Out => unreachable!("the output stage is split by rows"),
        }
    }

    /// `A_{i+1}[rows, cols] = f(A_i[rows] W_i[:, cols] + b_i[cols])`: a row
    /// block (all columns) or a column block (all rows) of hidden layer `i`.
    ///
    /// # Safety
    /// Blocks of concurrent calls must be disjoint; nobody writes weights.
    unsafe fn forward_product(
        &self,
        i: usize,
        p: &[LayerPtrs<T>],
        x: RawMat<T>,
        acts: &[RawMat<T>],
        rows: Range<usize>,
        cols: Range<usize>,
    ) {
        if cols.is_empty() {
            return;
        }
        let input = if i == 0 { x } else { acts[i - 1] };
        let out = acts[i].block(rows.clone(), cols.clone());
        gemm(
            T::one(),
            input.row_block(rows).view(),
            p[i].w.col_block(cols.clone()).view(),
            T::zero(),
            out,
        );
        let bias = p[i].b.col_block(cols).row(0);
        for r in 0..out.rows {
            self.spec.hidden[i].forward_row(out.row_mut(r), bias);
        }
    }

    /// `D_i[rows, cols] = (D_{i+1}[rows] W_i[cols, :]^T) * f'(A_i[rows, cols])`:
    /// a row block (all columns) or a column block (all rows).
    ///
    /// # Safety
    /// Blocks of concurrent calls must be disjoint; nobody writes weights.
    unsafe fn backward_product(
        &self,
        i: usize,
        p: &[LayerPtrs<T>],
        acts: &[RawMat<T>],
        deltas: &[RawMat<T>],
        rows: Range<usize>,
        cols: Range<usize>,
    ) {
        if cols.is_empty() {
            return;
        }
        let d_in = deltas[i - 1].block(rows.clone(), cols.clone());
        gemm(
            T::one(),
            deltas[i].row_block(rows.clone()).view(),
            p[i].w.row_block(cols.clone()).view().t(),
            T::zero(),
            d_in,
        );
        let a = acts[i - 1].block(rows, cols);
        for r in 0..d_in.rows {
            self.spec.hidden[i - 1].backward_row(d_in.row_mut(r), a.row(r));
        }
    }

    /// Gradient and update of layer `i`'s block `t` of `nb`.
    ///
    /// The weight gradient `A^T D` (`fan_in x fan_out`) is split by rows
    /// (input features) when `fan_in >= fan_out`, else by columns: each
    /// thread packs its share of one operand and all of the other, so the
    /// split runs along the larger side (half of the larger operand packed
    /// per thread instead of all of it). Row blocks are also contiguous in
    /// memory, so the optimizer streams each of its arrays in one run. The
    /// bias (column sums of `D`) is always split by columns.
    ///
    /// # Safety
    /// Blocks of concurrent calls are disjoint; nobody reads W_i now.
    #[allow(clippy::too_many_arguments)]
    unsafe fn update_block(
        &self,
        i: usize,
        p: &[LayerPtrs<T>],
        x: RawMat<T>,
        acts: &[RawMat<T>],
        deltas: &[RawMat<T>],
        t: usize,
        nb: usize,
        update: Update<T>,
    ) {
        let (n_in, n_out) = (self.spec.widths[i], self.spec.widths[i + 1]);
        let a_in = if i == 0 { x } else { acts[i - 1] };
        let by_rows = match gw_split() {
            Some(r) => r,
            None => n_in >= n_out,
        };
        let (rows, cols) = if by_rows {
            (block(t, nb, n_in, 1), 0..n_out)
        } else {
            (0..n_in, block(t, nb, n_out, COL_ALIGN))
        };
        let bias_cols = block(t, nb, n_out, COL_ALIGN);
        // db[c] = column sums of D[:, c].
        let gb = p[i].gb.col_block(bias_cols.clone());
        let sums = gb.row_mut(0);
        sums.iter_mut().for_each(|v| *v = T::zero());
        let db = deltas[i].col_block(bias_cols.clone());
        for r in 0..db.rows {
            for (g, &v) in sums.iter_mut().zip(db.row(r)) {
                *g += v;
            }
        }
        let a = a_in.col_block(rows.clone());
        let d = deltas[i].col_block(cols.clone());
        let w = p[i].w.block(rows.clone(), cols.clone());
        let gw = p[i].gw.block(rows.clone(), cols.clone());
        let b = p[i].b.col_block(bias_cols.clone());
        let nonempty = !rows.is_empty() && !cols.is_empty();
        match update {
            Update::Apply(opt) => {
                if let Some((lr, l2)) = opt.folded_sgd() {
                    if nonempty {
                        gemm(-lr, a.view().t(), d.view(), T::one() - lr * l2, w);
                    }
                    for (b, &g) in b.row_mut(0).iter_mut().zip(sums.iter()) {
                        *b -= lr * g;
                    }
                } else {
                    if nonempty {
                        gemm(T::one(), a.view().t(), d.view(), T::zero(), gw);
                        opt.update_block(2 * i, true, rows, cols, w, gw);
                    }
                    opt.update_block(2 * i + 1, false, 0..1, bias_cols, b, gb);
                }
            }
            Update::GradOnly => {
                if nonempty {
                    gemm(T::one(), a.view().t(), d.view(), T::zero(), gw);
                }
            }
        }
    }

    /// Loss and accuracy over a batch, without changing anything; the
    /// workspace's output rows hold the output activation afterwards.
    pub fn forward(&mut self, ws: &mut Workspace<T>, batch: &Batch) -> Stats {
        let n = self.check_batch(ws, batch);
        if n == 0 {
            return Stats::default();
        }
        let p = self.ptrs();
        let p = &p[..self.spec.layers()];
        let (x, gather) = Self::input_ptr(ws, batch);
        let acts = tops(&mut ws.acts, n);
        let acts = &acts[..self.spec.layers()];
        let nb = ws.blocks;
        let stats = &ws.stats;
        let this = &*self;
        par_for(nb, &|t| {
            // SAFETY: row blocks are disjoint.
            let s =
                unsafe { this.forward_block(p, x, gather, acts, batch, block(t, nb, n, 1), None) };
            *stats[t].lock().expect("no panics while held") = s;
        });
        ws.total()
    }

    /// Loss and accuracy over all of `data`, in chunks of the workspace's capacity.
    pub fn evaluate(
        &mut self,
        ws: &mut Workspace<T>,
        data: ArrayView2<f32>,
        labels: &[u8],
    ) -> Stats {
        self.forward_chunks(ws, data, labels, None)
    }

    /// [`Mlp::evaluate`], also writing the output activations (class
    /// probabilities for softmax) into `out` (`[n, classes]`).
    pub fn evaluate_into(
        &mut self,
        ws: &mut Workspace<T>,
        data: ArrayView2<f32>,
        labels: &[u8],
        out: &mut Array2<T>,
    ) -> Stats {
        self.forward_chunks(ws, data, labels, Some(out))
    }

    /// Output activations for unlabeled `data` (the loss is meaningless here).
    pub fn predict_into(
        &mut self,
        ws: &mut Workspace<T>,
        data: ArrayView2<f32>,
        out: &mut Array2<T>,
    ) {
        let labels = vec![0u8; data.nrows()];
        self.forward_chunks(ws, data, &labels, Some(out));
    }

    fn forward_chunks(
        &mut self,
        ws: &mut Workspace<T>,
        data: ArrayView2<f32>,
        labels: &[u8],
        mut out: Option<&mut Array2<T>>,
    ) -> Stats {
        let mut total = Stats::default();
        let n = data.nrows();
        let mut s = 0;
        while s < n {
            let e = (s + ws.cap).min(n);
            total.add(self.forward(
                ws,
                &Batch {
                    data,
                    pixels: None,
                    labels,
                    rows: Rows::Range(s, e),
                },
            ));
            if let Some(out) = out.as_deref_mut() {
                out.slice_mut(ndarray::s![s..e, ..])
                    .assign(&ws.output(e - s));
            }
            s = e;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// One Adam step on the batch `rows` of `data`, from the bytes when
    /// `bytes`; returns the new weights of every layer.
    fn step_on<T: Real>(data: &crate::data::Dataset, rows: Rows, bytes: bool) -> Vec<Array2<T>> {
        use crate::optim::{OptConfig, OptKind, Optimizer};
        let spec = NetSpec::parse("20,relu,16,softmax,10").unwrap();
        let mut net = Mlp::<T>::new(spec.clone(), Loss::CrossEntropy, Init::He, 7).unwrap();
        let mut opt = Optimizer::new(OptConfig::new(OptKind::Adam, 0.01), &net.param_shapes());
        let mut ws = Workspace::new(&spec, rows.len(), 2);
        let batch = Batch {
            data: data.images.view(),
            pixels: if bytes {
                Some(data.pixels.as_ref().unwrap().view())
            } else {
                None
            },
            labels: &data.labels,
            rows,
        };
        opt.begin_step();
        net.train_step(&mut ws, &batch, Update::Apply(&opt));
        net.layers.iter().map(|l| l.w.clone()).collect()
    }

    /// A batch gathered from the pixel bytes, gathered from the f32 images,
    /// or (f32) read in place trains to the same bits.
    fn gathered_batches_agree<T: Real>() {
        let n = 40;
        let px: Vec<u8> = (0..n * 20).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        let data = crate::data::Dataset::from_u8(n, 4, 5, &px, labels);
        let identity: Vec<u32> = (3..35).collect();
        let in_place = step_on::<T>(&data, Rows::Range(3, 35), false);
        assert_eq!(
            step_on::<T>(&data, Rows::Indices(&identity), true),
            in_place
        );
        assert_eq!(
            step_on::<T>(&data, Rows::Indices(&identity), false),
            in_place
        );
        let shuffled: Vec<u32> = (0..32).map(|i| (i * 7 + 5) % n as u32).collect();
        let from_bytes = step_on::<T>(&data, Rows::Indices(&shuffled), true);
        assert_eq!(
            step_on::<T>(&data, Rows::Indices(&shuffled), false),
            from_bytes
        );
        assert_ne!(
            from_bytes, in_place,
            "a different batch must change the step"
        );
    }

    #[test]
    fn gathered_batches_agree_f32() {
        gathered_batches_agree::<f32>();
    }

    #[test]
    fn gathered_batches_agree_f64() {
        gathered_batches_agree::<f64>();
    }
}
