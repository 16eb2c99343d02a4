//! Output activations and losses, fused: one pass over a row of logits
//! computes the loss, whether the prediction is right, and (for training)
//! overwrites the row with `dL/dz` already divided by the batch size.
//!
//! Shapes: one row `z` of `[batch, classes]` logits (bias added), its label.

use crate::nn::activation::sigmoid;
use crate::real::Real;

/// The activation of the output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputAct {
    /// Softmax over the classes (with cross-entropy: the fused backward `p - y`).
    Softmax,
    /// Sigmoid per unit.
    Sigmoid,
    /// No activation.
    Identity,
}

impl OutputAct {
    /// The name in layer lists.
    pub fn name(self) -> &'static str {
        match self {
            OutputAct::Softmax => "softmax",
            OutputAct::Sigmoid => "sigmoid",
            OutputAct::Identity => "identity",
        }
    }
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `-ln p[label]` with `p = softmax(z)`; needs a softmax output.
    CrossEntropy,
    /// `0.5 * sum_j (y_j - t_j)^2` against the one-hot target.
    SquaredError,
}

impl Loss {
    /// The name of `--loss`.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::SquaredError => "squared_error",
        }
    }
    /// The loss `--loss` names (`ce`, `cross-entropy`, `mse`, ...; `None`: unknown).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "ce" | "cross_entropy" | "cross-entropy" | "xent" => Loss::CrossEntropy,
            "mse" | "squared_error" | "squared-error" | "se" => Loss::SquaredError,
            _ => return None,
        })
    }
}

/// Index of the largest element (the first one on ties).
#[inline]
pub fn argmax<T: Real>(z: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = j;
        }
    }
    best
}

/// Loss of one row and whether its argmax is `label`. With `scale = Some(s)`
/// the row is overwritten with `s * dL/dz` (`s = 1/batch`); with `None` it is
/// overwritten with the output activation (probabilities for softmax).
#[inline]
pub fn loss_row<T: Real>(
    out: OutputAct,
    loss: Loss,
    z: &mut [T],
    label: usize,
    scale: Option<T>,
) -> (f64, bool) {
    loss_row_smoothed(out, loss, z, label, scale, T::zero())
}

/// [`loss_row`] with label smoothing `eps` (cross-entropy only): the target
/// is `t = (1 - eps) onehot(label) + eps / K` over the `K` classes, so
/// `L = -sum_j t_j ln p_j = ln sum_j e^{z_j} - sum_j t_j z_j` and
/// `dL/dz = p - t`. `eps = 0` is plain cross-entropy.
#[inline]
pub fn loss_row_smoothed<T: Real>(
    out: OutputAct,
    loss: Loss,
    z: &mut [T],
    label: usize,
    scale: Option<T>,
    eps: T,
) -> (f64, bool) {
    let correct = argmax(z) == label;
    match (out, loss) {
        (OutputAct::Softmax, Loss::CrossEntropy) => {
            let m = z.iter().copied().fold(T::neg_infinity(), T::max);
            let zy = z[label] - m;
            let k = T::of(z.len() as f64);
            // sum_j t_j (z_j - m), with the smoothing's share spread evenly.
            let target_dot = if eps > T::zero() {
                let zsum = z.iter().fold(T::zero(), |a, &v| a + (v - m));
                (T::one() - eps) * zy + eps / k * zsum
            } else {
                zy
            };
            let mut sum = T::zero();
            for v in z.iter_mut() {
                *v = (*v - m).exp();
                sum += *v;
            }
            let l = sum.ln() - target_dot;
            let inv = T::one() / sum;
            match scale {
                Some(s) => {
                    let f = inv * s;
                    let floor = s * eps / k;
                    for v in z.iter_mut() {
                        *v = *v * f - floor;
                    }
                    z[label] -= s * (T::one() - eps);
                }
                None => {
                    for v in z.iter_mut() {
                        *v *= inv;
                    }
                }
            }
            (l.f64(), correct)
        }
        (out, Loss::SquaredError) => {
            apply_output(out, z);
            let mut l = T::zero();
            for (j, &a) in z.iter().enumerate() {
                let e = a - if j == label { T::one() } else { T::zero() };
                l += e * e;
            }
            let l = T::of(0.5) * l;
            if let Some(s) = scale {
                match out {
                    OutputAct::Identity => {
                        z[label] -= T::one();
                        z.iter_mut().for_each(|v| *v *= s);
                    }
                    OutputAct::Sigmoid => {
                        for (j, v) in z.iter_mut().enumerate() {
                            let a = *v;
                            let e = a - if j == label { T::one() } else { T::zero() };
                            *v = e * a * (T::one() - a) * s;
                        }
                    }
                    OutputAct::Softmax => {
                        // dz_k = p_k (g_k - sum_j g_j p_j), g = p - t.
                        let mut dot = T::zero();
                        for (j, &p) in z.iter().enumerate() {
                            let g = p - if j == label { T::one() } else { T::zero() };
                            dot += g * p;
                        }
                        for (j, v) in z.iter_mut().enumerate() {
                            let p = *v;
                            let g = p - if j == label { T::one() } else { T::zero() };
                            *v = p * (g - dot) * s;
                        }
                    }
                }
            }
            (l.f64(), correct)
        }
        (_, Loss::CrossEntropy) => {
            unreachable!("cross-entropy needs a softmax output (checked by the spec)")
        }
    }
}

/// Applies the output activation to a row of logits in place.
#[inline]
pub fn apply_output<T: Real>(out: OutputAct, z: &mut [T]) {
    match out {
        OutputAct::Softmax => {
            let m = z.iter().copied().fold(T::neg_infinity(), T::max);
            let mut sum = T::zero();
            for v in z.iter_mut() {
                *v = (*v - m).exp();
                sum += *v;
            }
            let inv = T::one() / sum;
            z.iter_mut().for_each(|v| *v *= inv);
        }
        OutputAct::Sigmoid => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
        OutputAct::Identity => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_grad(out: OutputAct, loss: Loss, z: &[f64], y: usize) -> Vec<f64> {
        let h = 1e-6;
        (0..z.len())
            .map(|k| {
                let mut p = z.to_vec();
                let mut m = z.to_vec();
                p[k] += h;
                m[k] -= h;
                (loss_row(out, loss, &mut p, y, None).0 - loss_row(out, loss, &mut m, y, None).0)
                    / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn fused_gradients_match_finite_differences() {
        let z = [0.3, -1.2, 2.0, 0.7];
        let combos = [
            (OutputAct::Softmax, Loss::CrossEntropy),
            (OutputAct::Softmax, Loss::SquaredError),
            (OutputAct::Sigmoid, Loss::SquaredError),
            (OutputAct::Identity, Loss::SquaredError),
        ];
        for (out, loss) in combos {
            for y in 0..z.len() {
                let want = numeric_grad(out, loss, &z, y);
                let mut d = z.to_vec();
                loss_row(out, loss, &mut d, y, Some(0.5));
                for (g, w) in d.iter().zip(&want) {
                    assert!(
                        (g - 0.5 * w).abs() < 1e-8,
                        "{out:?}/{loss:?} y={y}: {d:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn label_smoothing_is_cross_entropy_against_the_smoothed_target() {
        let z = [0.3f64, -1.2, 2.0, 0.7];
        let eps = 0.1;
        for y in 0..z.len() {
            let p: Vec<f64> = {
                let mut p = z.to_vec();
                apply_output(OutputAct::Softmax, &mut p);
                p
            };
            let t = |j: usize| eps / 4.0 + if j == y { 1.0 - eps } else { 0.0 };
            let want: f64 = -(0..4).map(|j| t(j) * p[j].ln()).sum::<f64>();
            let smoothed = |z: &mut [f64], s| {
                loss_row_smoothed(OutputAct::Softmax, Loss::CrossEntropy, z, y, s, eps).0
            };
            assert!((smoothed(&mut z.to_vec(), None) - want).abs() < 1e-12);
            // The gradient: (p - t) * scale, and finite differences agree.
            let mut d = z.to_vec();
            smoothed(&mut d, Some(0.5));
            for j in 0..4 {
                assert!((d[j] - 0.5 * (p[j] - t(j))).abs() < 1e-15);
                let h = 1e-6;
                let (mut a, mut b) = (z.to_vec(), z.to_vec());
                a[j] += h;
                b[j] -= h;
                let n = (smoothed(&mut a, None) - smoothed(&mut b, None)) / (2.0 * h);
                assert!((d[j] - 0.5 * n).abs() < 1e-8, "y={y} j={j}");
            }
        }
    }

    #[test]
    fn softmax_cross_entropy_is_stable_for_huge_logits() {
        let mut z = [1000.0f32, 0.0, -1000.0];
        let (l, ok) = loss_row(OutputAct::Softmax, Loss::CrossEntropy, &mut z, 0, Some(1.0));
        assert!(ok && l.is_finite() && l.abs() < 1e-6);
        assert!(z.iter().all(|v| v.is_finite()));
        let mut z = [1000.0f32, 0.0, -1000.0];
        let (l, ok) = loss_row(OutputAct::Softmax, Loss::CrossEntropy, &mut z, 2, Some(1.0));
        assert!(!ok && (l - 2000.0).abs() < 1e-3);
    }

    #[test]
    fn cross_entropy_backward_is_p_minus_onehot_over_batch() {
        let mut z = [1.0f64, 2.0, 3.0];
        let e: Vec<f64> = z.iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        loss_row(
            OutputAct::Softmax,
            Loss::CrossEntropy,
            &mut z,
            1,
            Some(0.25),
        );
        for j in 0..3 {
            let want = (e[j] / s - if j == 1 { 1.0 } else { 0.0 }) / 4.0;
            assert!((z[j] - want).abs() < 1e-15);
        }
    }
}
