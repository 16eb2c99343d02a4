//! One training step (or forward pass) of an [`Mlp`]: which work runs in
//! which parallel region, on which block.
//!
//! Layer `i` maps `[B, n_i]` to `[B, n_{i+1}]`; `A_0` is the input batch,
//! `A_{i+1} = f_i(A_i W_i + b_i)`, and `D_{i+1} = dL/dZ_{i+1}`. The math of
//! each piece is in [`crate::nn::dense`]; the buffers in
//! [`crate::nn::workspace`]; the choices that decide the blocks in
//! [`crate::plan::Plan`].
//!
//! A step runs in *parallel regions*, each split into one block per thread
//! ([`crate::parallel::par_for`]); inside a block the work is
//! single-threaded GEMMs on slices, each followed by its fused elementwise
//! pass:
//!
//! 1. the *stages* of the pass: gather the rows; for each hidden layer
//!    `A_{i+1} = f(A_i W_i + b)` (`Stage::Fwd`); at the output the fused
//!    loss, accuracy and `D_L = (p - onehot) / B` in place of the logits
//!    (`Stage::Out`); then back through the layers
//!    `D_i = (D_{i+1} W_i^T) * f'(A_i)` (`Stage::Bwd`, not for the input).
//!    Each stage is split by rows of the batch or by columns of its output
//!    ([`Plan::split_cols`]). Consecutive row-split stages share one region:
//!    a row block needs only its own rows and the weights, which nobody
//!    writes here. By default a batch with at least
//!    [`crate::plan::COL_SPLIT_ROWS`] rows per block is one region of row
//!    blocks; smaller batches split every product by columns (each thread
//!    reads only its share of the weights), one region per stage. A row
//!    block of at least twice [`Plan::row_chunk`] rows (T4's full batch)
//!    runs its stages a chunk of rows at a time, depth first: each chunk's
//!    activations are still in cache for the next layer's product and the
//!    elementwise passes, where a whole block's (T4: 48 MB for the first
//!    layer) would go out to memory and back; and a batch read in place
//!    has each chunk of its input converted from the pixel bytes into a
//!    buffer that stays in cache (a quarter of the memory traffic of the
//!    f32 rows, which OpenBLAS would otherwise pack from memory). Each
//!    output row comes from the same operands either way; OpenBLAS's
//!    AVX-512 kernels (`Cooperlake`, `SkylakeX`) gave the same bits chunked
//!    or not, its AVX2 ones (`Haswell`, `Zen`) differ in the last bits
//!    (BENCHMARKS.md, session 27), so the chunk is part of the plan.
//! 2. blocks of every layer's weights (rows or columns,
//!    [`Plan::weight_grad_by_rows`]): `dW = A_i^T D_{i+1}` on the block,
//!    `db = sum_rows D_{i+1}` on a column block, then the optimizer on that
//!    block while it is hot in cache. Plain SGD folds the update into the
//!    GEMM: `W = (1 - lr l2) W - lr A_i^T D_{i+1}`. Every other optimizer
//!    leaves zeros in `dW` as it reads it, and the next step's product adds
//!    onto them (`beta = 1`; the network tracks whether `dW` holds zeros):
//!    the same bits, whereas OpenBLAS, given `beta = 0`, zeroes its output
//!    in a pass of its own first (`sgemm_beta`: 3.5% of T5's cycles on one
//!    Zen 3 core, 18% of T6's, where Adam at batch 8 is memory-bound).
//!
//! So a step with the default plan costs two synchronizations whatever the
//! depth, and the result depends only on the number of blocks and the plan,
//! not on timing.

use std::ops::Range;
use std::sync::Mutex;

use crate::blas::Gemm;
use crate::nn::dense::{self, DensePtrs};
use crate::nn::dropout::Dropout;
use crate::nn::loss::loss_row_smoothed;
use crate::nn::mlp::{Mlp, Update};
use crate::nn::spec::MAX_LAYERS;
use crate::nn::workspace::{chunk_room, gather_rows, gather_rows_at, Batch, Stats, Workspace};
use crate::parallel::{block, RawMat};
use crate::plan::{Plan, COL_ALIGN};
use crate::profile::{region, span, Work};
use crate::real::Real;

/// A piece of a pass: the forward product of hidden layer `i`, the output
/// layer with its loss, or the back-propagation through layer `i`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Fwd(usize),
    Out,
    Bwd(usize),
}

/// Everything the blocks of one step read and write, as raw handles: the
/// parameters of each layer, the input `[n, n_0]` (to be gathered or read
/// in place), `A_{i+1}` and `D_{i+1}` `[n, n_{i+1}]` for each layer `i`
/// (`D_L` shares `A_L`'s buffer), the batch, and one statistics slot per
/// block.
pub(crate) struct Frame<'a, 'b, T: Real> {
    /// OpenBLAS's thread count for this step, held until it ends.
    _lease: crate::blas::Lease,
    net: &'a Mlp<T>,
    layers: [DensePtrs<T>; MAX_LAYERS],
    x: RawMat<T>,
    gather: bool,
    /// Rows per chunk of a block's row stages (0: whole blocks).
    chunk: usize,
    /// Each block's room for its chunk of input rows converted from bytes
    /// (empty: the input is read from `x`).
    chunk_x: RawMat<T>,
    acts: [RawMat<T>; MAX_LAYERS],
    deltas: [RawMat<T>; MAX_LAYERS],
    batch: &'a Batch<'b>,
    stats: &'a [Mutex<Stats>],
    /// Batch rows.
    n: usize,
    /// Blocks per region.
    nb: usize,
    plan: Plan,
    gemm: Gemm,
    /// Training: the dropout on `A_i` (`[0]`: the input) in this step.
    drops: [Option<Dropout>; MAX_LAYERS],
    /// Training: the label smoothing of the loss.
    smoothing: T,
}

impl<'a, 'b, T: Real> Frame<'a, 'b, T> {
    /// The frame of a step of `net` on `batch` in `ws`, with `layers` the
    /// handles of `net`'s parameters; `training` applies the network's
    /// regularizers (dropout with the batch's key, label smoothing).
    ///
    /// # Panics
    /// If the batch does not fit, or the step would call a multi-threaded
    /// OpenBLAS from several threads at once (it must run inside
    /// [`crate::parallel::Threads::install`], which sets OpenBLAS for its
    /// policy).
    pub fn new(
        net: &'a Mlp<T>,
        layers: [DensePtrs<T>; MAX_LAYERS],
        ws: &'a mut Workspace<T>,
        batch: &'a Batch<'b>,
        training: bool,
    ) -> Self {
        let n = ws.check(batch, net.spec.input());
        let mut drops = [None; MAX_LAYERS];
        if training {
            for (i, d) in drops.iter_mut().enumerate().take(net.spec.layers()) {
                *d = Dropout::new(net.spec.dropout(i), batch.key, i);
            }
        }
        let (nb, plan) = (ws.blocks(), ws.plan());
        // OpenBLAS at the plan's thread count on a split pool (the last
        // step may have run under another plan), else at the pool's, for
        // as long as the step runs.
        let lease = crate::blas::lease(
            ws.openblas_threads()
                .or_else(crate::parallel::installed_blas_threads),
        );
        assert!(
            nb == 1 || crate::blas::threads() == 1,
            "a step in {nb} blocks needs a single-threaded OpenBLAS: run it inside Threads::install"
        );
        debug_assert!(
            nb == 1 || crate::parallel::installed(),
            "a step in {nb} blocks must run inside Threads::install"
        );
        // Input dropout writes into the input: it needs a copy of the data.
        let p = ws.frame_parts(batch, drops[0].is_some());
        Self {
            _lease: lease,
            net,
            layers,
            x: p.x,
            gather: p.gather,
            chunk: p.chunk,
            chunk_x: p.chunk_x,
            acts: p.acts,
            deltas: p.deltas,
            batch,
            stats: p.stats,
            n,
            nb,
            plan,
            gemm: Gemm::new::<T>(plan.tiles, plan.small_bwd),
            drops,
            smoothing: T::of(if training {
                net.reg.label_smoothing
            } else {
                0.0
            }),
        }
    }

    fn widths(&self) -> &[usize] {
        &self.net.spec.widths
    }

    /// The input of layer `i` (`A_i`).
    fn input_of(&self, i: usize) -> RawMat<T> {
        if i == 0 {
            self.x
        } else {
            self.acts[i - 1]
        }
    }

    /// Layer `i`'s input rows `rows`: `x0` (those rows already) for the
    /// first layer where given.
    fn input_rows(&self, i: usize, rows: Range<usize>, x0: Option<RawMat<T>>) -> RawMat<T> {
        match x0 {
            Some(x0) if i == 0 => x0,
            _ => self.input_of(i).row_block(rows),
        }
    }

    fn set_stats(&self, t: usize, st: Stats) {
        *self.stats[t].lock().expect("no panics while held") = st;
    }

    /// Forward pass only: one region of row blocks; the output rows hold
    /// the output activation afterwards.
    pub fn forward(&self) {
        let (n, nb) = (self.n, self.nb);
        let (stages, _) = self.stages();
        // The hidden layers, then the output.
        let group = &stages[..self.net.spec.layers()];
        region(nb, &|t| {
            // SAFETY: row blocks are disjoint; nobody writes weights.
            unsafe { self.row_stages(t, block(t, nb, n, 1), group, self.gather, None) };
        });
    }

    /// The stages of a training pass in order.
    fn stages(&self) -> ([Stage; 2 * MAX_LAYERS], usize) {
        let l = self.net.spec.layers();
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
        (stages, ns)
    }

    /// Whether `stage` is split by columns of its output.
    fn split_cols(&self, stage: Stage) -> bool {
        let (w, n, nb) = (self.widths(), self.n, self.nb);
        match stage {
            Stage::Fwd(i) => self.plan.split_cols(n, nb, w[i], w[i + 1], true),
            Stage::Bwd(i) => self.plan.split_cols(n, nb, w[i + 1], w[i], false),
            Stage::Out => false,
        }
    }

    /// A training step (or gradient evaluation): the stages in their
    /// regions, then the weight-block region.
    pub fn train(&self, update: Update<T>) {
        let (stages, ns) = self.stages();
        let stages = &stages[..ns];
        let (n, nb) = (self.n, self.nb);
        let scale = T::one() / T::of(n as f64);

        // 1. Forward, loss and back-propagation: a column-split stage is a
        //    region of its own; consecutive row-split stages share one.
        let mut gathered = !self.gather;
        let mut s = 0;
        while s < stages.len() {
            if self.split_cols(stages[s]) {
                if !gathered {
                    region(nb, &|t| {
                        // SAFETY: row blocks are disjoint.
                        unsafe { self.gather(block(t, nb, n, 1)) };
                    });
                    gathered = true;
                }
                let stage = stages[s];
                region(nb, &|t| {
                    // SAFETY: column blocks of the stage's output are
                    // disjoint; everything else is only read.
                    unsafe { self.stage_cols(stage, t) };
                });
                s += 1;
            } else {
                let mut e = s + 1;
                while e < stages.len() && !self.split_cols(stages[e]) {
                    e += 1;
                }
                let group = &stages[s..e];
                let gather_here = !gathered;
                region(nb, &|t| {
                    let rows = block(t, nb, n, 1);
                    // SAFETY: row blocks are disjoint; weights are only read.
                    unsafe { self.row_stages(t, rows, group, gather_here, Some(scale)) };
                });
                gathered = true;
                s = e;
            }
        }

        // 2. Weight blocks: gradients and updates of every layer.
        region(nb, &|t| {
            for i in 0..self.net.spec.layers() {
                // SAFETY: blocks are disjoint between threads, and no one
                // reads the weights in this region.
                unsafe { self.update_block(i, t, update) };
            }
        });

        // 3. Max-norm on the layers whose update blocks were rows (a
        //    column's norm spans every row block); the others had it fused
        //    into their update.
        if let (Update::Apply(_), Some(c)) = (update, self.net.reg.max_norm) {
            let by_rows = |i: usize| {
                let w = self.widths();
                self.plan.weight_grad_by_rows(w[i], w[i + 1])
            };
            if (0..self.net.spec.layers()).any(by_rows) {
                region(nb, &|t| {
                    let _s = span(Work::Optimizer);
                    for i in (0..self.net.spec.layers()).filter(|&i| by_rows(i)) {
                        let w = self.layers[i].w;
                        // SAFETY: column blocks are disjoint; nobody reads W now.
                        unsafe {
                            crate::optim::max_norm::clip_columns(
                                w.col_block(block(t, nb, w.cols, COL_ALIGN)),
                                c,
                            )
                        };
                    }
                });
            }
        }
    }

    /// Copies the batch's rows `rows` into the input buffer, then drops
    /// input units (training with input dropout).
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint.
    unsafe fn gather(&self, rows: Range<usize>) {
        let _s = span(Work::Gather);
        gather_rows(self.x, self.batch, rows.clone());
        if let Some(d) = &self.drops[0] {
            for r in rows {
                d.forward_row(self.x.row_mut(r), r, 0);
            }
        }
    }

    /// The stages `group` on block `t`'s rows `rows` (all columns), one
    /// chunk of rows at a time through every stage ([`Plan::row_chunk`]),
    /// gathering each chunk first when `gather_here`; the output stage
    /// sets the block's statistics (the same sums in the same order, chunks
    /// or not).
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint; nobody writes weights.
    unsafe fn row_stages(
        &self,
        t: usize,
        rows: Range<usize>,
        group: &[Stage],
        gather_here: bool,
        scale: Option<T>,
    ) {
        let l = self.net.spec.layers();
        let reads_input = |s: &Stage| match *s {
            Stage::Fwd(i) => i == 0,
            Stage::Out => l == 1,
            Stage::Bwd(_) => false,
        };
        let from_bytes = self.chunk_x.rows > 0 && group.iter().any(reads_input);
        let parts = match self.chunk {
            0 => 1,
            c => (rows.len() / c).max(1),
        };
        let mut st = Stats::default();
        for j in 0..parts {
            let b = block(j, parts, rows.len(), 16);
            let part = rows.start + b.start..rows.start + b.end;
            if gather_here && !part.is_empty() {
                self.gather(part.clone());
            }
            // The chunk's input rows, converted from the batch's bytes into
            // a buffer that stays in cache, for a batch read in place.
            let x0 = from_bytes.then(|| {
                let _s = span(Work::Gather);
                let room = chunk_room(self.chunk);
                let x0 = self.chunk_x.row_block(t * room..t * room + part.len());
                gather_rows_at(x0, part.start, self.batch, part.clone());
                x0
            });
            for &stage in group {
                match stage {
                    Stage::Fwd(i) => {
                        self.forward_product(i, part.clone(), 0..self.widths()[i + 1], x0)
                    }
                    Stage::Out => self.output_rows(part.clone(), scale, x0, &mut st),
                    Stage::Bwd(i) => self.backward_product(i, part.clone(), 0..self.widths()[i]),
                }
            }
        }
        if group.iter().any(|s| matches!(s, Stage::Out)) {
            self.set_stats(t, st);
        }
    }

    /// `stage` on column block `t` of `nb` of its output (all rows).
    ///
    /// # Safety
    /// Column blocks of concurrent calls must be disjoint; nobody writes weights.
    unsafe fn stage_cols(&self, stage: Stage, t: usize) {
        let (n, nb) = (self.n, self.nb);
        match stage {
            Stage::Fwd(i) => {
                let cols = block(t, nb, self.widths()[i + 1], COL_ALIGN);
                self.forward_product(i, 0..n, cols, None);
            }
            Stage::Bwd(i) => {
                let cols = block(t, nb, self.widths()[i], COL_ALIGN);
                self.backward_product(i, 0..n, cols);
            }
            Stage::Out => unreachable!("the output stage is split by rows"),
        }
    }

    /// `A_{i+1}[rows, cols] = f(A_i[rows] W_i[:, cols] + b_i[cols])` for
    /// hidden layer `i`; `x0`: the input's rows `rows` where they are not
    /// read from `x`.
    ///
    /// # Safety
    /// Blocks of concurrent calls must be disjoint; nobody writes weights.
    unsafe fn forward_product(
        &self,
        i: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        x0: Option<RawMat<T>>,
    ) {
        if cols.is_empty() {
            return;
        }
        let _s = span(Work::Forward);
        let p = &self.layers[i];
        let out = self.acts[i].block(rows.clone(), cols.clone());
        dense::forward(
            self.gemm,
            self.input_rows(i, rows.clone(), x0),
            p.w.col_block(cols.clone()),
            p.b.col_block(cols.clone()),
            out,
            Some(self.net.spec.hidden[i]),
            self.drops[i + 1]
                .as_ref()
                .map(|d| (d, rows.start, cols.start)),
        );
    }

    /// `D_i[rows, cols] = (D_{i+1}[rows] W_i[cols, :]^T) * f'(A_i[rows, cols])`.
    ///
    /// # Safety
    /// Blocks of concurrent calls must be disjoint; nobody writes weights.
    unsafe fn backward_product(&self, i: usize, rows: Range<usize>, cols: Range<usize>) {
        if cols.is_empty() {
            return;
        }
        let _s = span(Work::Backprop);
        let act = self.net.spec.hidden[i - 1];
        let (a, d_in) = (
            self.acts[i - 1].block(rows.clone(), cols.clone()),
            self.deltas[i - 1].block(rows.clone(), cols.clone()),
        );
        let drop = self.drops[i];
        dense::backward_input(
            self.gemm,
            self.deltas[i].row_block(rows.clone()),
            self.layers[i].w.row_block(cols.clone()),
            a,
            d_in,
            // With dropout, f' comes with the mask below.
            if drop.is_some() {
                crate::nn::Activation::Identity
            } else {
                act
            },
        );
        if let Some(d) = drop {
            for r in 0..d_in.rows {
                d.backward_row(act, d_in.row_mut(r), a.row(r), rows.start + r, cols.start);
            }
        }
    }

    /// The output layer on rows `rows`: logits, then the fused loss (and,
    /// with `scale`, `scale * dL/dZ` in place of the logits; without, the
    /// output activation), its sums added to `st`. `x0` as for
    /// [`Frame::forward_product`].
    ///
    /// # Safety
    /// Row blocks of concurrent calls must be disjoint.
    unsafe fn output_rows(
        &self,
        rows: Range<usize>,
        scale: Option<T>,
        x0: Option<RawMat<T>>,
        st: &mut Stats,
    ) {
        st.samples += rows.len();
        if rows.is_empty() {
            return;
        }
        let _s = span(Work::Output);
        let l = self.net.spec.layers();
        let out = self.acts[l - 1].row_block(rows.clone());
        let p = &self.layers[l - 1];
        dense::forward(
            self.gemm,
            self.input_rows(l - 1, rows.clone(), x0),
            p.w,
            p.b,
            out,
            None,
            None,
        );
        let (spec, batch) = (&self.net.spec, self.batch);
        for r in 0..out.rows {
            let label = batch.labels[batch.rows.get(rows.start + r)] as usize;
            let (loss, ok) = loss_row_smoothed(
                spec.output,
                self.net.loss,
                out.row_mut(r),
                label,
                scale,
                self.smoothing,
            );
            st.loss_sum += loss;
            st.correct += ok as usize;
        }
    }

    /// Gradient and update of layer `i`'s block `t` of `nb`: the weight
    /// gradient on a block of rows or columns ([`Plan::weight_grad_by_rows`];
    /// row blocks are contiguous in memory, so the optimizer streams each
    /// of its arrays in one run), the bias on a column block.
    ///
    /// # Safety
    /// Blocks of concurrent calls are disjoint; nobody reads W_i now.
    unsafe fn update_block(&self, i: usize, t: usize, update: Update<T>) {
        let nb = self.nb;
        let (n_in, n_out) = (self.widths()[i], self.widths()[i + 1]);
        let by_rows = self.plan.weight_grad_by_rows(n_in, n_out);
        let (rows, cols) = if by_rows {
            (block(t, nb, n_in, 1), 0..n_out)
        } else {
            (0..n_in, block(t, nb, n_out, COL_ALIGN))
        };
        let bias_cols = block(t, nb, n_out, COL_ALIGN);
        let grad = span(Work::WeightGrad);
        let p = &self.layers[i];
        let (d_all, g) = (self.deltas[i], self.gemm);
        let gb = p.gb.col_block(bias_cols.clone());
        dense::bias_grad(d_all.col_block(bias_cols.clone()), gb);
        let a = self.input_of(i).col_block(rows.clone());
        let d = d_all.col_block(cols.clone());
        let w = p.w.block(rows.clone(), cols.clone());
        let gw = p.gw.block(rows.clone(), cols.clone());
        let b = p.b.col_block(bias_cols.clone());
        match update {
            Update::Apply(opt) => {
                if let Some((lr, l2)) = opt.folded_sgd() {
                    dense::weight_grad(g, -lr, a, d, T::one() - lr * l2, w);
                    for (b, &g) in b.row_mut(0).iter_mut().zip(gb.row(0)) {
                        *b -= lr * g;
                    }
                } else {
                    if !rows.is_empty() && !cols.is_empty() {
                        // Onto the zeros the last step's optimizer left.
                        let beta = if self.net.grads_zero {
                            T::one()
                        } else {
                            T::zero()
                        };
                        dense::weight_grad(g, T::one(), a, d, beta, gw);
                    }
                    drop(grad);
                    let _s = span(Work::Optimizer);
                    if !rows.is_empty() && !cols.is_empty() {
                        opt.update_block(2 * i, true, rows, cols, w, gw);
                    }
                    opt.update_block(2 * i + 1, false, 0..1, bias_cols, b, gb);
                }
                // Max-norm, fused while the block is hot when it holds whole
                // columns (row blocks get a region of their own: `train`).
                if let Some(c) = self.net.reg.max_norm.filter(|_| !by_rows) {
                    crate::optim::max_norm::clip_columns(w, c);
                }
            }
            Update::GradOnly => dense::weight_grad(g, T::one(), a, d, T::zero(), gw),
        }
    }
}
