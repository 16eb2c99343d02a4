//! Gradient checks: back-propagation against central finite differences, in
//! f64, through the very layer code that trains (the network is generic over
//! the element type), with the batch split into blocks as in training.
//!
//! The loss differentiated is the training step's: with the network's
//! dropout (its masks fixed by the batch's key, so every evaluation sees the
//! same mask) and label smoothing ([`Regularizers`]).
//!
//! Error per entry: `|a - n| / max(|a|, |n|, 1e-4)`, where `a` is the
//! analytic and `n` the numeric gradient of the mean batch loss (the floor
//! keeps entries that are zero up to rounding from dividing noise by noise).

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::nn::spec::SpecError;
use crate::nn::{Batch, Init, Loss, Mlp, NetSpec, Regularizers, Rows, Update, Workspace};
use crate::parallel::{GemmThreading, Threads, ThreadsError};
use crate::plan::Plan;

/// Why a gradient check could not run.
#[derive(Debug, thiserror::Error)]
pub enum GradCheckError {
    /// The network cannot be built with that loss.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The thread pool for the blocks could not start.
    #[error(transparent)]
    Threads(#[from] ThreadsError),
}

/// Result for one parameter tensor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorCheck {
    /// The tensor (`W1`, `b2`, ...).
    pub name: String,
    /// Entries checked.
    pub entries: usize,
    /// Largest relative error between analytic and numeric gradient.
    pub max_rel_err: f64,
    /// Largest absolute error.
    pub max_abs_err: f64,
}

/// Result for one network.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GradCheck {
    /// The network checked (layer list).
    pub spec: String,
    /// The loss.
    pub loss: &'static str,
    /// Every tensor's result.
    pub tensors: Vec<TensorCheck>,
}

impl GradCheck {
    /// The largest relative error over all tensors.
    pub fn max_rel_err(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.max_rel_err)
            .fold(0.0, f64::max)
    }
}

/// Finite-difference step.
pub const STEP: f64 = 1e-5;

/// Checks every parameter of `spec` with `loss` on a random batch of
/// `batch` samples (inputs uniform in `[0, 1)`), split into `blocks`.
pub fn check(
    spec: &NetSpec,
    loss: Loss,
    batch: usize,
    blocks: usize,
    seed: u64,
) -> Result<GradCheck, GradCheckError> {
    check_plan(spec, loss, batch, blocks, seed, Plan::from_env())
}

/// [`check`] with the step's blocks chosen by `plan`, on a pool of
/// `blocks` threads.
pub fn check_plan(
    spec: &NetSpec,
    loss: Loss,
    batch: usize,
    blocks: usize,
    seed: u64,
    plan: Plan,
) -> Result<GradCheck, GradCheckError> {
    check_regularized(
        spec,
        loss,
        Regularizers::default(),
        batch,
        blocks,
        seed,
        plan,
    )
}

/// [`check_plan`] of the loss with the regularizers `reg` (those that
/// change the gradient: label smoothing; dropout is in `spec`).
pub fn check_regularized(
    spec: &NetSpec,
    loss: Loss,
    reg: Regularizers,
    batch: usize,
    blocks: usize,
    seed: u64,
    plan: Plan,
) -> Result<GradCheck, GradCheckError> {
    let threads = Threads::new(blocks.max(1), GemmThreading::Split)?;
    // The steps split into blocks run inside the pool.
    threads.install(|| -> Result<GradCheck, GradCheckError> {
        let mut net = Mlp::<f64>::new(spec.clone(), loss, Init::Auto, seed)?;
        net.reg = reg;
        // Non-zero biases, so that their gradients are exercised off the origin.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb1a5);
        for l in &mut net.layers {
            l.b.mapv_inplace(|_| rng.random_range(-0.1..0.1));
        }
        let x = Array2::from_shape_simple_fn((batch, spec.input()), || rng.random::<f32>());
        let labels: Vec<u8> = (0..batch)
            .map(|_| rng.random_range(0..spec.output_width()) as u8)
            .collect();
        let b = Batch {
            data: x.view(),
            pixels: None,
            labels: &labels,
            rows: Rows::Range(0, batch),
            augment: None,
            key: crate::nn::dropout::step_key(seed, 1),
        };
        let mut ws = Workspace::<f64>::with_plan(spec, batch, blocks, plan);
        net.train_step(&mut ws, &b, Update::GradOnly);
        // Every analytic gradient before any loss evaluation overwrites them.
        let analytics: Vec<Vec<f64>> = net
            .layers
            .iter()
            .flat_map(|l| {
                [
                    l.gw.iter().copied().collect(),
                    l.gb.iter().copied().collect(),
                ]
            })
            .collect();
        // The training loss (the step's masks and smoothing), not evaluation's.
        let mut loss_at =
            |net: &mut Mlp<f64>| net.train_step(&mut ws, &b, Update::GradOnly).mean_loss();

        let mut tensors = Vec::new();
        for i in 0..net.layers.len() {
            for which in ["weight", "bias"] {
                let analytic = &analytics[2 * i + usize::from(which == "bias")];
                let mut t = TensorCheck {
                    name: format!("layers.{i}.{which}"),
                    entries: analytic.len(),
                    max_rel_err: 0.0,
                    max_abs_err: 0.0,
                };
                for (k, &a) in analytic.iter().enumerate() {
                    let mut at = |net: &mut Mlp<f64>, v: f64| {
                        let p = if which == "weight" {
                            net.layers[i].w.as_slice_mut().expect("contiguous")
                        } else {
                            net.layers[i].b.as_slice_mut().expect("contiguous")
                        };
                        let old = p[k];
                        p[k] = old + v;
                        let l = loss_at(net);
                        let p = if which == "weight" {
                            net.layers[i].w.as_slice_mut().expect("contiguous")
                        } else {
                            net.layers[i].b.as_slice_mut().expect("contiguous")
                        };
                        p[k] = old;
                        l
                    };
                    let n = (at(&mut net, STEP) - at(&mut net, -STEP)) / (2.0 * STEP);
                    let abs = (a - n).abs();
                    let rel = abs / a.abs().max(n.abs()).max(1e-4);
                    t.max_abs_err = t.max_abs_err.max(abs);
                    t.max_rel_err = t.max_rel_err.max(rel);
                }
                tensors.push(t);
            }
        }
        Ok(GradCheck {
            spec: spec.to_string(),
            loss: loss.name(),
            tensors,
        })
    })
}

/// The standard matrix: every hidden activation with cross-entropy,
/// squared error with each output activation, and dropout.
pub fn standard_specs() -> Vec<(NetSpec, Loss)> {
    let mut v = Vec::new();
    for act in crate::nn::Activation::ALL {
        let a = act.name();
        v.push((
            NetSpec::parse(&format!("12,{a},9,{a},7,softmax,5")).expect("valid"),
            Loss::CrossEntropy,
        ));
    }
    for out in ["softmax", "sigmoid", "identity"] {
        v.push((
            NetSpec::parse(&format!("12,tanh,9,sigmoid,7,{out},5")).expect("valid"),
            Loss::SquaredError,
        ));
    }
    v.push((
        NetSpec::parse("12,relu,40,leaky_relu,35,softmax,5").expect("valid"),
        Loss::CrossEntropy,
    ));
    // Dropout on the input and the hidden layers (masks fixed by the key).
    v.push((
        NetSpec::parse("12,dropout:0.2,tanh,9,dropout:0.5,relu,7,softmax,5").expect("valid"),
        Loss::CrossEntropy,
    ));
    v
}

/// About what a check of `spec` on `batch` samples holds: f64 copies of
/// the batch's activations and deltas per layer, and of the parameters and
/// their gradients (eight of each, generously).
pub fn memory_bytes(spec: &NetSpec, batch: usize) -> u64 {
    let units: u64 = spec.widths.iter().map(|&w| w as u64).sum();
    (batch as u64).saturating_mul(units).saturating_mul(8 * 8) + 8 * 8 * spec.params() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activation_and_loss_passes_in_f64() {
        for (spec, loss) in standard_specs() {
            // Batch 7 split into 2-3 blocks takes the column-split path of a
            // step, batch 70 the row-split one (see `COL_SPLIT_ROWS`); 16
            // blocks, as on a 16-core machine, leave some blocks without
            // rows or columns (batch 7; layers of 5 to 12 units).
            for (batch, blocks) in [(7, 1), (7, 2), (7, 3), (70, 2), (70, 3), (7, 16), (70, 16)] {
                let r = check(&spec, loss, batch, blocks, 42).unwrap();
                assert!(
                    r.max_rel_err() < 1e-6,
                    "{} {:?} batch={batch} blocks={blocks}: {:#?}",
                    spec,
                    loss,
                    r.tensors
                );
            }
        }
    }

    #[test]
    fn mixed_row_and_column_stages_pass_in_f64() {
        // Batch 34 on 2 blocks is row-split by default; with `big_weights`
        // 0 every product wider than 34 columns (all but the output layer's
        // here) is split by columns, in the forward pass, back-propagation,
        // or both: regions of row blocks and of column blocks alternate.
        let spec = NetSpec::parse("12,relu,40,leaky_relu,35,softmax,5").unwrap();
        for (big_fwd, big_bwd) in [(true, false), (false, true), (true, true)] {
            let split = Plan {
                big_cols: Some(0),
                big_fwd,
                big_bwd,
                ..Plan::default()
            };
            assert!(!split.split_cols(34, 2, 40, 5, true), "the output layer");
            assert_eq!(split.split_cols(34, 2, 12, 40, true), big_fwd);
            assert_eq!(split.split_cols(34, 2, 35, 40, false), big_bwd);
            for blocks in [2, 3] {
                let r = check_plan(&spec, Loss::CrossEntropy, 34, blocks, 7, split).unwrap();
                assert!(
                    r.max_rel_err() < 1e-6,
                    "fwd={big_fwd} bwd={big_bwd} blocks={blocks}: {:#?}",
                    r.tensors
                );
            }
        }
    }

    #[test]
    fn dropout_and_label_smoothing_pass_in_f64() {
        // Dropout on the input and every hidden layer (masks fixed by the
        // batch's key), with every activation, row- and column-split steps.
        for act in crate::nn::Activation::ALL {
            let a = act.name();
            let spec = NetSpec::parse(&format!(
                "12,dropout:0.2,{a},40,dropout:0.5,{a},35,dropout:0.3,softmax,5"
            ))
            .unwrap();
            for reg in [
                Regularizers::default(),
                Regularizers {
                    label_smoothing: 0.1,
                    max_norm: None,
                },
            ] {
                for (batch, blocks) in [(7, 2), (70, 3)] {
                    let r = check_regularized(
                        &spec,
                        Loss::CrossEntropy,
                        reg,
                        batch,
                        blocks,
                        3,
                        Plan::from_env(),
                    )
                    .unwrap();
                    assert!(
                        r.max_rel_err() < 1e-6,
                        "{spec} {reg:?} batch={batch} blocks={blocks}: {:#?}",
                        r.tensors
                    );
                }
            }
        }
    }

    #[test]
    fn a_wrong_gradient_is_caught() {
        // Sanity of the checker itself: corrupt the analytic gradient.
        let spec = NetSpec::parse("6,tanh,5,softmax,3").unwrap();
        let mut net = Mlp::<f64>::new(spec.clone(), Loss::CrossEntropy, Init::Auto, 1).unwrap();
        let x = Array2::from_shape_fn((4, 6), |(i, j)| ((i * 7 + j) % 5) as f32 / 5.0);
        let labels = [0u8, 1, 2, 1];
        let b = Batch {
            data: x.view(),
            pixels: None,
            labels: &labels,
            rows: Rows::Range(0, 4),
            augment: None,
            key: 0,
        };
        let mut ws = Workspace::<f64>::new(&spec, 4, 1);
        net.train_step(&mut ws, &b, Update::GradOnly);
        let a = net.layers[0].gw[[2, 3]];
        let h = STEP;
        net.layers[0].w[[2, 3]] += h;
        let lp = net.forward(&mut ws, &b).mean_loss();
        net.layers[0].w[[2, 3]] -= 2.0 * h;
        let lm = net.forward(&mut ws, &b).mean_loss();
        let n = (lp - lm) / (2.0 * h);
        assert!((a - n).abs() / a.abs().max(n.abs()).max(1e-4) < 1e-6);
        assert!(((a * 1.001) - n).abs() / a.abs().max(n.abs()).max(1e-4) > 1e-6);
    }
}
