//! Optimizers. Each update rule is one elementwise function in its own file;
//! [`Optimizer`] owns the state (moments) and applies a rule to one block of
//! one parameter tensor at a time, so the network can run updates in
//! parallel over disjoint column blocks right after computing their gradient.
//!
//! The loop is compiled for several vector widths, all giving the same bits;
//! [`simd`] times them once per process and runs the fastest.
//!
//! Tensors are numbered `2*layer` (weights `[fan_in, fan_out]`) and
//! `2*layer + 1` (bias, seen as `[1, fan_out]`). L2 (`--l2`, added to the
//! gradient) and AdamW's decoupled weight decay act on weights, not biases.
//!
//! **No subnormal state.** A moment whose gradient stays zero (the weights
//! of a dead ReLU unit) decays geometrically, `m <- b1 m`, into the
//! subnormal range and stays there: `b1` times the smallest subnormal rounds
//! back to it. After one Adam epoch of T3's network at batch 8, 10-29% of
//! each weight tensor's first moment was subnormal, and arithmetic on
//! subnormals is slow (flushing them made that run 1.2-2.0x faster on Zen
//! 5: BENCHMARKS.md, session 13). Every rule with state therefore stores
//! [`flush`]`(value)`: a magnitude below the smallest normal number
//! (`1.2e-38` in f32, `2.2e-308` in f64) is stored as zero. This changes an
//! update by less than `lr * 1e-38 / eps`, i.e. nothing; it is plain
//! arithmetic, so it gives the same bits on every thread and machine, unlike
//! the processor's flush-to-zero/denormals-are-zero modes (MXCSR), which are
//! per thread, not shared with OpenBLAS's threads, and which Rust declares
//! undefined behaviour to change (`core::arch::x86_64::_mm_setcsr`).
//! Parameters and gradients are not flushed; gradient checks (f64, no
//! optimizer) are unaffected.

pub mod adam;
pub mod max_norm;
pub mod momentum;
pub mod rmsprop;
pub mod sgd;
pub mod simd;

/// `x`, or zero when `x` is subnormal (`|x|` below the smallest normal
/// number): what every optimizer stores as its state (see the module doc).
#[inline(always)]
pub fn flush<T: Real>(x: T) -> T {
    if x.abs() < T::min_positive_value() {
        T::zero()
    } else {
        x
    }
}

use std::ops::Range;

use ndarray::Array2;

use crate::parallel::RawMat;
use crate::real::Real;

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptKind {
    /// Plain gradient descent.
    Sgd,
    /// Heavy-ball momentum.
    Momentum,
    /// Nesterov momentum.
    Nesterov,
    /// RMSprop.
    RmsProp,
    /// Adam (with L2 in the gradient).
    Adam,
    /// AdamW (decoupled weight decay).
    AdamW,
}

impl OptKind {
    /// Every update rule.
    pub const ALL: [OptKind; 6] = [
        OptKind::Sgd,
        OptKind::Momentum,
        OptKind::Nesterov,
        OptKind::RmsProp,
        OptKind::Adam,
        OptKind::AdamW,
    ];

    /// The optimizer `--optimizer` names (`None`: unknown).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sgd" => OptKind::Sgd,
            "momentum" => OptKind::Momentum,
            "nesterov" => OptKind::Nesterov,
            "rmsprop" => OptKind::RmsProp,
            "adam" => OptKind::Adam,
            "adamw" => OptKind::AdamW,
            _ => return None,
        })
    }
    /// The name of `--optimizer`.
    pub fn name(self) -> &'static str {
        match self {
            OptKind::Sgd => "sgd",
            OptKind::Momentum => "momentum",
            OptKind::Nesterov => "nesterov",
            OptKind::RmsProp => "rmsprop",
            OptKind::Adam => "adam",
            OptKind::AdamW => "adamw",
        }
    }
    /// State arrays per parameter tensor.
    fn slots(self) -> usize {
        self.slot_names().len()
    }
    /// Names of the state arrays per parameter tensor (PyTorch's names),
    /// as checkpoints store them.
    pub fn slot_names(self) -> &'static [&'static str] {
        match self {
            OptKind::Sgd => &[],
            OptKind::Momentum | OptKind::Nesterov => &["momentum_buffer"],
            OptKind::RmsProp => &["square_avg"],
            OptKind::Adam | OptKind::AdamW => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptConfig {
    /// Which optimizer.
    pub kind: OptKind,
    /// The learning rate (the base rate under a schedule).
    pub lr: f64,
    /// Momentum coefficient (momentum, nesterov).
    pub momentum: f64,
    /// Adam's beta1, beta2 and epsilon (also RMSprop's epsilon).
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's and RMSprop's epsilon.
    pub eps: f64,
    /// RMSprop's decay.
    pub rho: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// L2 coefficient added to the weight gradient (`g + l2 * w`).
    pub l2: f64,
}

crate::error::message_error!(
    /// A hyperparameter out of its range (the message names the flag).
    HyperparameterError
);

impl OptConfig {
    /// `kind` with learning rate `lr` and the usual defaults (momentum 0.9,
    /// betas 0.9/0.999, epsilon 1e-8, rho 0.9; weight decay 0.01 for AdamW,
    /// else none; no L2).
    pub fn new(kind: OptKind, lr: f64) -> Self {
        Self {
            kind,
            lr,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            rho: 0.9,
            weight_decay: if kind == OptKind::AdamW { 0.01 } else { 0.0 },
            l2: 0.0,
        }
    }

    /// Checks every hyperparameter, naming the flag that is wrong.
    pub fn validate(&self) -> Result<(), HyperparameterError> {
        self.check().map_err(HyperparameterError)
    }

    fn check(&self) -> Result<(), String> {
        let pos = |v: f64, flag: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{flag} must be a positive finite number, got {v}"))
            }
        };
        let nonneg = |v: f64, flag: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{flag} must be a finite number >= 0, got {v}"))
            }
        };
        let unit = |v: f64, flag: &str| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{flag} must be in [0, 1), got {v}"))
            }
        };
        pos(self.lr, "--lr")?;
        nonneg(self.l2, "--l2")?;
        nonneg(self.weight_decay, "--weight-decay")?;
        unit(self.momentum, "--momentum")?;
        unit(self.beta1, "--beta1")?;
        unit(self.beta2, "--beta2")?;
        unit(self.rho, "--rho")?;
        pos(self.eps, "--eps")
    }
}

/// Optimizer state for a network's parameter tensors.
#[derive(Debug)]
pub struct Optimizer<T: Real> {
    /// The hyperparameters (the rate is set each step by the schedule).
    pub cfg: OptConfig,
    /// Steps taken.
    pub t: u64,
    state: Vec<Vec<Array2<T>>>,
    raw: Vec<[RawMat<T>; 2]>,
    adam: adam::AdamStep<T>,
}

impl<T: Real> Clone for Optimizer<T> {
    fn clone(&self) -> Self {
        let mut o = Self {
            cfg: self.cfg.clone(),
            t: self.t,
            state: self.state.clone(),
            raw: self.raw.clone(),
            adam: self.adam,
        };
        o.refresh_raw();
        o
    }
}

impl<T: Real> Optimizer<T> {
    /// State for tensors of the given `[rows, cols]` shapes.
    pub fn new(cfg: OptConfig, shapes: &[(usize, usize)]) -> Self {
        // The update loop's copy is timed now, not inside the first step.
        if cfg.kind != OptKind::Sgd {
            simd::width();
        }
        Self::untimed(cfg, shapes)
    }

    /// [`Optimizer::new`] without choosing the update loop's copy (which
    /// times an optimizer of its own).
    fn untimed(cfg: OptConfig, shapes: &[(usize, usize)]) -> Self {
        let slots = cfg.kind.slots();
        let state = shapes
            .iter()
            .map(|&s| (0..slots).map(|_| Array2::zeros(s)).collect())
            .collect();
        let mut o = Self {
            adam: adam::AdamStep::new(1, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, 0.0, 0.0),
            cfg,
            t: 0,
            state,
            raw: vec![[RawMat::empty(); 2]; shapes.len()],
        };
        o.refresh_raw();
        o
    }

    fn refresh_raw(&mut self) {
        for (r, s) in self.raw.iter_mut().zip(self.state.iter_mut()) {
            for (k, a) in s.iter_mut().enumerate() {
                r[k] = RawMat::of(a);
            }
        }
    }

    /// Bytes of state held (moments).
    pub fn bytes(&self) -> usize {
        self.state
            .iter()
            .flatten()
            .map(|a| a.len() * std::mem::size_of::<T>())
            .sum()
    }

    /// The state arrays of one tensor (moments), e.g. for checkpoints.
    pub fn state(&self, tensor: usize) -> &[Array2<T>] {
        &self.state[tensor]
    }
    /// The state slots (moments) of parameter tensor `tensor`.
    pub fn state_mut(&mut self, tensor: usize) -> &mut [Array2<T>] {
        &mut self.state[tensor]
    }

    /// Starts a step: counts it and computes the per-step constants.
    pub fn begin_step(&mut self) {
        self.t += 1;
        let c = &self.cfg;
        let wd = if c.kind == OptKind::AdamW {
            c.weight_decay
        } else {
            0.0
        };
        self.adam = adam::AdamStep::new(self.t, c.lr, c.beta1, c.beta2, c.eps, wd, c.l2);
    }

    /// For plain SGD, `(lr, l2)`: the caller folds the weight update into
    /// the weight-gradient GEMM (`alpha = -lr`, `beta = 1 - lr * l2`).
    pub fn folded_sgd(&self) -> Option<(T, T)> {
        (self.cfg.kind == OptKind::Sgd).then(|| (T::of(self.cfg.lr), T::of(self.cfg.l2)))
    }

    /// Updates the block `rows x cols` of tensor `tensor`: `p` and `g` are
    /// those blocks of the parameter and its gradient. `decay`: weights (L2
    /// and weight decay apply), not biases. Runs the copy of the loop that
    /// [`simd::width`] chose for this processor.
    ///
    /// The gradient is consumed: `g` is zero afterwards, written in the same
    /// pass that reads it, so that the next step's weight-gradient product
    /// can accumulate onto it (`beta = 1`) instead of OpenBLAS zeroing its
    /// output in a pass of its own (see [`crate::nn::step`]).
    ///
    /// # Safety
    /// Between [`Optimizer::begin_step`] calls, blocks updated concurrently
    /// must be disjoint, and `p`, `g` must be valid blocks of that shape.
    pub unsafe fn update_block(
        &self,
        tensor: usize,
        decay: bool,
        rows: Range<usize>,
        cols: Range<usize>,
        p: RawMat<T>,
        g: RawMat<T>,
    ) {
        self.update_block_as(simd::width(), tensor, decay, rows, cols, p, g)
    }

    /// [`Optimizer::update_block`] by the copy `w` of the loop (the
    /// baseline where this processor lacks it).
    ///
    /// # Safety
    /// As for [`Optimizer::update_block`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn update_block_as(
        &self,
        w: simd::Width,
        tensor: usize,
        decay: bool,
        rows: Range<usize>,
        cols: Range<usize>,
        mut p: RawMat<T>,
        mut g: RawMat<T>,
    ) {
        let c = &self.cfg;
        let lr = T::of(c.lr);
        let l2 = if decay { T::of(c.l2) } else { T::zero() };
        let (mut s0, mut s1) = (self.raw[tensor][0], self.raw[tensor][1]);
        if s0.rows > 0 {
            s0 = s0.block(rows.clone(), cols.clone());
        }
        if s1.rows > 0 {
            s1 = s1.block(rows, cols);
        }
        // Whole rows of a tensor are one contiguous run: one long loop
        // (one stream per array for the prefetchers) instead of one per row.
        if p.is_contiguous() && g.is_contiguous() && s0.is_contiguous() && s1.is_contiguous() {
            (p, g, s0, s1) = (p.flat(), g.flat(), s0.flat(), s1.flat());
        }
        let mut k = self.adam;
        if !decay {
            k.decay = T::zero();
            k.l2 = T::zero();
        }
        let u = BlockUpdate {
            c,
            k,
            lr,
            l2,
            p,
            g,
            s0,
            s1,
        };
        simd::update(w, u)
    }
}

/// One block's update, as [`Optimizer::update_block`] prepared it: the
/// configuration, this step's Adam constants, the learning rate and L2
/// factor, and the blocks of the parameter, its gradient and the state
/// (`s0`, `s1`; empty where the optimizer has fewer slots).
#[derive(Clone, Copy)]
struct BlockUpdate<'a, T> {
    c: &'a OptConfig,
    k: adam::AdamStep<T>,
    lr: T,
    l2: T,
    p: RawMat<T>,
    g: RawMat<T>,
    s0: RawMat<T>,
    s1: RawMat<T>,
}

/// The update loop over the rows of one block (see [`Optimizer::update_block`]).
/// Inlined into the baseline build and, on x86-64, into an AVX2 and an
/// AVX-512 copy, of which [`simd::width`] picks one by timing them: all do
/// the same IEEE operations per element (no fused multiply-add), so they
/// give the same bits.
///
/// # Safety
/// As for [`Optimizer::update_block`].
#[inline(always)]
unsafe fn update_rows<T: Real>(u: BlockUpdate<T>) {
    let BlockUpdate {
        c,
        k,
        lr,
        l2,
        p,
        g,
        s0,
        s1,
    } = u;
    // Each loop reads the gradient and leaves a zero in its place.
    for r in 0..p.rows {
        let pr = p.row_mut(r);
        let gr = g.row_mut(r);
        match c.kind {
            OptKind::Sgd => {
                for (p, g) in pr.iter_mut().zip(gr) {
                    sgd::update(p, std::mem::take(g), lr, l2);
                }
            }
            OptKind::Momentum | OptKind::Nesterov => {
                let (mu, nest) = (T::of(c.momentum), c.kind == OptKind::Nesterov);
                let v = s0.row_mut(r);
                for ((p, g), v) in pr.iter_mut().zip(gr).zip(v) {
                    momentum::update(p, v, std::mem::take(g), lr, mu, l2, nest);
                }
            }
            OptKind::RmsProp => {
                let (rho, eps) = (T::of(c.rho), T::of(c.eps));
                let s = s0.row_mut(r);
                for ((p, g), s) in pr.iter_mut().zip(gr).zip(s) {
                    rmsprop::update(p, s, std::mem::take(g), lr, rho, eps, l2);
                }
            }
            OptKind::Adam | OptKind::AdamW => {
                let m = s0.row_mut(r);
                let v = s1.row_mut(r);
                for (((p, g), m), v) in pr.iter_mut().zip(gr).zip(m).zip(v) {
                    adam::update(p, m, v, std::mem::take(g), &k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_zeroes_subnormals_only() {
        let tiny = f32::MIN_POSITIVE;
        assert_eq!(flush(tiny), tiny);
        assert_eq!(flush(-tiny), -tiny);
        assert_eq!(flush(tiny / 2.0), 0.0);
        assert_eq!(flush(-f32::from_bits(1)), 0.0);
        assert_eq!(flush(0.5f32), 0.5);
        assert_eq!(flush(f64::MIN_POSITIVE / 4.0), 0.0);
        assert_eq!(flush(1e-300f64), 1e-300);
        assert!(flush(f32::NAN).is_nan(), "NaN must survive to be caught");
        assert_eq!(flush(f32::INFINITY), f32::INFINITY);
    }

    /// A dead unit: one gradient, then zeros for thousands of steps. Without
    /// the flush its moments decay into subnormals and stay there.
    /// Returns the state's values every 100 steps, and the first state's last.
    fn dead_unit_state<T: Real>(kind: OptKind) -> (Vec<T>, T) {
        let mut cfg = OptConfig::new(kind, 1e-3);
        cfg.momentum = 0.9;
        let mut opt = Optimizer::<T>::new(cfg, &[(1, 1)]);
        let mut p = ndarray::Array2::<T>::from_elem((1, 1), T::of(0.5));
        let mut g = ndarray::Array2::<T>::from_elem((1, 1), T::of(1e-3));
        let mut seen = Vec::new();
        for step in 0..12_000 {
            opt.begin_step();
            unsafe {
                let (pr, gr) = (RawMat::of(&mut p), RawMat::of(&mut g));
                opt.update_block(
                    0,
                    true,
                    0..1,
                    0..1,
                    pr.block(0..1, 0..1),
                    gr.block(0..1, 0..1),
                );
            }
            g[[0, 0]] = T::zero();
            if step % 100 == 99 {
                seen.extend(opt.state(0).iter().map(|a| a[[0, 0]]));
            }
        }
        (seen, opt.state(0)[0][[0, 0]])
    }

    #[test]
    fn no_optimizer_state_is_ever_subnormal() {
        for kind in [OptKind::Momentum, OptKind::RmsProp, OptKind::Adam] {
            let (s32, last) = dead_unit_state::<f32>(kind);
            assert!(s32.iter().all(|v| !v.is_subnormal()), "{kind:?} f32");
            // The state did decay to zero (the test would pass vacuously
            // if it never got small).
            assert_eq!(last, 0.0, "{kind:?} f32");
            let (s64, _) = dead_unit_state::<f64>(kind);
            assert!(s64.iter().all(|v| !v.is_subnormal()), "{kind:?} f64");
        }
    }

    #[test]
    fn block_updates_equal_the_elementwise_rule() {
        for kind in OptKind::ALL {
            let mut cfg = OptConfig::new(kind, 0.05);
            cfg.l2 = 0.01;
            let mut opt = Optimizer::<f64>::new(cfg.clone(), &[(2, 3)]);
            let mut p = ndarray::arr2(&[[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]]);
            let g = ndarray::arr2(&[[0.1, 0.2, -0.3], [0.0, -0.5, 0.7]]);
            let mut want = p.clone();
            let mut s = [[0.0f64; 6]; 2];
            for step in 1..=4u64 {
                opt.begin_step();
                let mut gg = g.clone();
                // Blocks as threads would do them: column blocks (strided),
                // row blocks, a 1 x 2 block beside the rest, and the whole
                // tensor (contiguous: one flat loop).
                let blocks: &[(Range<usize>, Range<usize>)] = match step {
                    1 => &[(0..2, 0..1), (0..2, 1..3)],
                    2 => &[(0..1, 0..3), (1..2, 0..3)],
                    3 => &[(0..1, 1..3), (0..1, 0..1), (1..2, 0..3)],
                    _ => &[(0..2, 0..3)],
                };
                unsafe {
                    let (pr, gr) = (RawMat::of(&mut p), RawMat::of(&mut gg));
                    for (r, c) in blocks.iter().cloned() {
                        let (pb, gb) = (
                            pr.block(r.clone(), c.clone()),
                            gr.block(r.clone(), c.clone()),
                        );
                        opt.update_block(0, true, r, c, pb, gb);
                    }
                }
                for (i, (w, &g)) in want.iter_mut().zip(g.iter()).enumerate() {
                    let (lr, l2) = (0.05, 0.01);
                    match kind {
                        OptKind::Sgd => sgd::update(w, g, lr, l2),
                        OptKind::Momentum => {
                            momentum::update(w, &mut s[0][i], g, lr, 0.9, l2, false)
                        }
                        OptKind::Nesterov => {
                            momentum::update(w, &mut s[0][i], g, lr, 0.9, l2, true)
                        }
                        OptKind::RmsProp => rmsprop::update(w, &mut s[0][i], g, lr, 0.9, 1e-8, l2),
                        OptKind::Adam | OptKind::AdamW => {
                            let wd = if kind == OptKind::AdamW { 0.01 } else { 0.0 };
                            let k = adam::AdamStep::new(step, lr, 0.9, 0.999, 1e-8, wd, l2);
                            let (m, v) = s.split_at_mut(1);
                            adam::update(w, &mut m[0][i], &mut v[0][i], g, &k)
                        }
                    }
                }
            }
            assert_eq!(p, want, "{kind:?}");
        }
    }

    #[test]
    fn validation_names_the_flag() {
        let mut c = OptConfig::new(OptKind::Adam, f64::NAN);
        assert!(c.validate().unwrap_err().to_string().contains("--lr"));
        c.lr = -1.0;
        assert!(c.validate().unwrap_err().to_string().contains("--lr"));
        c.lr = 0.1;
        c.l2 = -0.5;
        assert!(c.validate().unwrap_err().to_string().contains("--l2"));
        c.l2 = 0.0;
        c.validate().unwrap();
    }
}
