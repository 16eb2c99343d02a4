//! The multilayer perceptron: its layers and its public API (a training
//! step, a forward pass, evaluation and prediction over whole datasets).
//!
//! Layer `i` maps `[B, n_i]` to `[B, n_{i+1}]`: `A_{i+1} = f_i(A_i W_i +
//! b_i)` with `A_0` the input batch; the output layer's activation and the
//! loss are fused ([`crate::nn::loss`]). How a step runs (its parallel
//! regions and blocks) is [`crate::nn::step`]'s; the dense layer's math
//! [`crate::nn::dense`]'s; the buffers [`crate::nn::workspace`]'s.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::nn::dense::{Dense, DensePtrs};
use crate::nn::init::Init;
use crate::nn::loss::Loss;
use crate::nn::spec::{NetSpec, SpecError, MAX_LAYERS};
use crate::nn::step::Frame;
use crate::nn::workspace::{Batch, Rows, Stats, Workspace};
use crate::optim::Optimizer;
use crate::real::Real;

/// A multilayer perceptron.
#[derive(Debug, Clone)]
pub struct Mlp<T: Real> {
    /// Its shape.
    pub spec: NetSpec,
    /// The training loss.
    pub loss: Loss,
    /// The dense layers, input first.
    pub layers: Vec<Dense<T>>,
    /// What training adds beyond the optimizer (dropout is in `spec`).
    pub reg: Regularizers,
    /// Whether every layer's `gw` is zero: true for a fresh network and
    /// after a step whose optimizer consumed the gradient
    /// ([`Optimizer::update_block`] leaves zeros), false after a
    /// [`Update::GradOnly`] step, which leaves the gradient there. When it
    /// holds, the next step's weight-gradient products accumulate onto `gw`
    /// (`beta = 1`), the same bits as `beta = 0` (`0 + x = x`) without
    /// OpenBLAS's pass that zeroes the output first.
    pub(crate) grads_zero: bool,
}

/// Regularizers that act in training steps only (evaluation, `eval` and
/// `predict` never use them): label smoothing of the cross-entropy target
/// ([`crate::nn::loss::loss_row_smoothed`]) and the max-norm constraint on
/// each unit's incoming weights ([`crate::optim::max_norm`]). Dropout is a
/// property of the layers ([`NetSpec::dropout`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Regularizers {
    /// `eps` of the smoothed target `(1 - eps) onehot + eps / K`; 0: none.
    pub label_smoothing: f64,
    /// The largest L2 norm of a unit's incoming weight vector; `None`: no limit.
    pub max_norm: Option<f64>,
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
    pub fn new(spec: NetSpec, loss: Loss, init: Init, seed: u64) -> Result<Self, SpecError> {
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
        Ok(Self {
            spec,
            loss,
            layers,
            reg: Regularizers::default(),
            grads_zero: true,
        })
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
            reg: self.reg,
            grads_zero: self.grads_zero,
        }
    }

    /// Are all parameters finite?
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.w.iter().chain(l.b.iter()).all(|v| v.is_finite()))
    }

    /// Raw handles of every layer's tensors.
    fn ptrs(&mut self) -> [DensePtrs<T>; MAX_LAYERS] {
        let mut p = [DensePtrs::empty(); MAX_LAYERS];
        for (p, l) in p.iter_mut().zip(self.layers.iter_mut()) {
            *p = DensePtrs::of(l);
        }
        p
    }

    /// One training step (or, with [`Update::GradOnly`], one gradient
    /// evaluation) on a batch; returns the batch's loss and accuracy.
    /// A step split into several blocks must run inside
    /// [`crate::parallel::Threads::install`] (it checks).
    pub fn train_step(&mut self, ws: &mut Workspace<T>, batch: &Batch, update: Update<T>) -> Stats {
        if batch.rows.is_empty() {
            ws.check(batch, self.spec.input());
            return Stats::default();
        }
        let layers = self.ptrs();
        Frame::new(self, layers, ws, batch, true).train(update);
        match update {
            Update::GradOnly => self.grads_zero = false,
            // Folded SGD never touches `gw`.
            Update::Apply(opt) if opt.folded_sgd().is_none() => self.grads_zero = true,
            Update::Apply(_) => {}
        }
        ws.total()
    }

    /// Loss and accuracy over a batch, without changing anything; the
    /// workspace's output rows hold the output activation afterwards.
    pub fn forward(&mut self, ws: &mut Workspace<T>, batch: &Batch) -> Stats {
        if batch.rows.is_empty() {
            ws.check(batch, self.spec.input());
            return Stats::default();
        }
        let layers = self.ptrs();
        Frame::new(self, layers, ws, batch, false).forward();
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
            let e = (s + ws.capacity()).min(n);
            total.add(self.forward(
                ws,
                &Batch {
                    data,
                    pixels: None,
                    labels,
                    rows: Rows::Range(s, e),
                    augment: None,
                    key: 0,
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

    /// `n` samples of 4 x 5 pixels (a pattern of bytes) and labels 0..9 in
    /// turn.
    fn tiny_set(n: usize) -> crate::data::Dataset {
        let px: Vec<u8> = (0..n * 20).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        crate::data::Dataset::from_u8(n, 4, 5, &px, labels)
    }

    /// `steps` Adam steps of the network `layers` on the batch `rows` of
    /// `data` (from the bytes when `bytes`) under `plan` on two blocks, then
    /// an evaluation of the same rows: the weights of every layer, and each
    /// pass's sums.
    fn steps_on<T: Real>(
        data: &crate::data::Dataset,
        layers: &str,
        rows: Rows,
        bytes: bool,
        plan: crate::plan::Plan,
        steps: usize,
    ) -> (Vec<Array2<T>>, Vec<Stats>) {
        use crate::optim::{OptConfig, OptKind, Optimizer};
        let spec = NetSpec::parse(layers).unwrap();
        let mut net = Mlp::<T>::new(spec.clone(), Loss::CrossEntropy, Init::He, 7).unwrap();
        let mut opt = Optimizer::new(OptConfig::new(OptKind::Adam, 0.01), &net.param_shapes());
        let mut ws = Workspace::with_plan(&spec, rows.len(), 2, plan);
        let threads =
            crate::parallel::Threads::new(2, crate::parallel::GemmThreading::Split).unwrap();
        let batch = Batch {
            data: data.images.view(),
            pixels: bytes.then(|| data.pixels.as_ref().unwrap().view()),
            labels: &data.labels,
            rows,
            augment: None,
            key: 0,
        };
        let mut stats = Vec::new();
        for _ in 0..steps {
            opt.begin_step();
            stats.push(threads.install(|| net.train_step(&mut ws, &batch, Update::Apply(&opt))));
        }
        stats.push(threads.install(|| net.forward(&mut ws, &batch)));
        (net.layers.iter().map(|l| l.w.clone()).collect(), stats)
    }

    /// One Adam step on the batch `rows` of `data`, from the bytes when
    /// `bytes`; returns the new weights of every layer.
    fn step_on<T: Real>(data: &crate::data::Dataset, rows: Rows, bytes: bool) -> Vec<Array2<T>> {
        let plan = crate::plan::Plan::from_env();
        steps_on(data, "20,relu,16,softmax,10", rows, bytes, plan, 1).0
    }

    /// A batch gathered from the pixel bytes, gathered from the f32 images,
    /// or (f32) read in place trains to the same bits.
    fn gathered_batches_agree<T: Real>() {
        let n = 40;
        let data = tiny_set(n);
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

    /// Two Adam steps on rows `3..203` of a synthetic set read in place
    /// (from the bytes when `bytes`) under `plan` on two blocks, then an
    /// evaluation of the same rows: the weights, and both passes' sums.
    fn chunked_steps(plan: crate::plan::Plan, bytes: bool) -> (Vec<Array2<f32>>, Vec<Stats>) {
        let data = tiny_set(220);
        let layers = "20,relu,16,tanh,12,softmax,10";
        steps_on(&data, layers, Rows::Range(3, 203), bytes, plan, 2)
    }

    /// Row stages in chunks: the input converted from bytes a chunk at a
    /// time trains to the bits of the f32 rows read in place, and to the
    /// values (within rounding: chunks are smaller products) of whole
    /// blocks, with the same counts.
    #[test]
    fn chunked_row_stages_agree() {
        let chunked = crate::plan::Plan {
            row_chunk: 32,
            ..Default::default()
        };
        // 100 rows per block: three chunks of 32 or so.
        assert_eq!(chunked.row_chunk_for(100), 32);
        let whole = crate::plan::Plan {
            row_chunk: 0,
            ..chunked
        };
        let (w_bytes, st_bytes) = chunked_steps(chunked, true);
        assert_eq!(
            chunked_steps(chunked, false),
            (w_bytes.clone(), st_bytes.clone())
        );
        let (w_whole, st_whole) = chunked_steps(whole, true);
        for (a, b) in w_bytes.iter().zip(&w_whole) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
        for (a, b) in st_bytes.iter().zip(&st_whole) {
            assert_eq!((a.samples, a.correct), (b.samples, b.correct));
            assert_eq!(a.samples, 200);
            assert!(
                (a.loss_sum - b.loss_sum).abs() <= 1e-4 * b.loss_sum.abs(),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn gathered_batches_agree_f32() {
        gathered_batches_agree::<f32>();
    }

    #[test]
    fn gathered_batches_agree_f64() {
        gathered_batches_agree::<f64>();
    }

    /// Three training steps of `kind` in `blocks` blocks on a synthetic set,
    /// after a gradient-only step when `grad_first`; with `zero_by_blas`,
    /// every product starts from OpenBLAS's own zeroing (`beta = 0`).
    /// Returns the weights, and whether every `gw` held only zeros after.
    fn three_steps(
        kind: crate::optim::OptKind,
        blocks: usize,
        grad_first: bool,
        zero_by_blas: bool,
    ) -> (Vec<Array2<f32>>, bool) {
        use crate::optim::{OptConfig, Optimizer};
        let n = 48;
        let data = tiny_set(n);
        let spec = NetSpec::parse("20,relu,24,relu,16,softmax,10").unwrap();
        let mut net = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 3).unwrap();
        let mut opt = Optimizer::new(OptConfig::new(kind, 0.01), &net.param_shapes());
        let mut ws = Workspace::new(&spec, 12, blocks);
        let threads =
            crate::parallel::Threads::new(blocks, crate::parallel::GemmThreading::Split).unwrap();
        let batch = |s: usize| Batch {
            data: data.images.view(),
            pixels: None,
            labels: &data.labels,
            rows: Rows::Range(12 * s, 12 * s + 12),
            augment: None,
            key: s as u64,
        };
        threads.install(|| {
            if grad_first {
                net.train_step(&mut ws, &batch(3), Update::GradOnly);
                assert!(net.layers.iter().all(|l| l.gw.iter().any(|&g| g != 0.0)));
            }
            for s in 0..3 {
                if zero_by_blas {
                    net.grads_zero = false;
                }
                opt.begin_step();
                net.train_step(&mut ws, &batch(s), Update::Apply(&opt));
            }
        });
        let zero = net.layers.iter().all(|l| l.gw.iter().all(|&g| g == 0.0));
        (net.layers.iter().map(|l| l.w.clone()).collect(), zero)
    }

    /// Every optimizer but folded SGD leaves `gw` zero, and the products
    /// that add onto those zeros give the bits of products OpenBLAS zeroes
    /// first, after a gradient-only step too (whose gradient must not be
    /// added in).
    #[test]
    fn steps_add_onto_the_zeros_the_optimizer_leaves() {
        use crate::optim::OptKind;
        for kind in [
            OptKind::Momentum,
            OptKind::Nesterov,
            OptKind::RmsProp,
            OptKind::Adam,
            OptKind::AdamW,
        ] {
            for blocks in [1, 2] {
                let (w, zero) = three_steps(kind, blocks, false, false);
                assert!(zero, "{kind:?} left a gradient in gw");
                assert_eq!(w, three_steps(kind, blocks, false, true).0, "{kind:?}");
                assert_eq!(w, three_steps(kind, blocks, true, false).0, "{kind:?}");
            }
        }
        // Folded SGD never writes gw: a gradient-only step's stays there.
        let (w, zero) = three_steps(OptKind::Sgd, 2, true, false);
        assert!(!zero);
        assert_eq!(w, three_steps(OptKind::Sgd, 2, false, false).0);
    }
}
