//! Adam and AdamW, bias-corrected from the first step:
//! `m = b1 m + (1 - b1) g'`, `v = b2 v + (1 - b2) g'^2`,
//! `p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`,
//! with `g' = g + l2 p`; AdamW first decays `p -= lr * wd * p` (decoupled).
//! `m` and `v` are stored flushed (no subnormals: see [`super::flush`]).
//!
//! `step` = `lr / (1 - b1^t)` and `inv_bc2` = `1 / sqrt(1 - b2^t)` are
//! computed once per step by the caller.

use super::flush;
use crate::real::Real;

/// Per-step constants.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep<T> {
    /// `beta1` in the working precision.
    pub b1: T,
    /// `beta2` in the working precision.
    pub b2: T,
    /// `epsilon` in the working precision.
    pub eps: T,
    /// `lr / (1 - b1^t)`.
    pub step: T,
    /// `1 / sqrt(1 - b2^t)`.
    pub inv_bc2: T,
    /// `lr * wd` for AdamW, zero for Adam.
    pub decay: T,
    /// L2 coefficient added to the gradient.
    pub l2: T,
}

impl<T: Real> AdamStep<T> {
    /// The constants of step `t` (1-based) for the given hyperparameters (`wd`: AdamW's decoupled decay).
    pub fn new(t: u64, lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, l2: f64) -> Self {
        let t = t.max(1) as i32;
        Self {
            b1: T::of(b1),
            b2: T::of(b2),
            eps: T::of(eps),
            step: T::of(lr / (1.0 - b1.powi(t))),
            inv_bc2: T::of(1.0 / (1.0 - b2.powi(t)).sqrt()),
            decay: T::of(lr * wd),
            l2: T::of(l2),
        }
    }
}

/// One Adam/AdamW update of parameter `p` with moments `m`, `v` and gradient `g`.
#[inline(always)]
pub fn update<T: Real>(p: &mut T, m: &mut T, v: &mut T, g: T, k: &AdamStep<T>) {
    let g = g + k.l2 * *p;
    *p -= k.decay * *p;
    *m = flush(k.b1 * *m + (T::one() - k.b1) * g);
    *v = flush(k.b2 * *v + (T::one() - k.b2) * g * g);
    *p -= k.step * *m / (v.sqrt() * k.inv_bc2 + k.eps);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_times_sign() {
        // With bias correction, step 1 gives m_hat = g, v_hat = g^2, so the
        // update is lr * g / (|g| + eps), about lr * sign(g).
        let (mut p, mut m, mut v) = (1.0f64, 0.0, 0.0);
        let k = AdamStep::<f64>::new(1, 0.001, 0.9, 0.999, 1e-8, 0.0, 0.0);
        update(&mut p, &mut m, &mut v, -3.0, &k);
        assert!(
            (p - (1.0 + 0.001 * 3.0 / (3.0 + 1e-8))).abs() < 1e-15,
            "{p}"
        );
        assert!((m + 0.3).abs() < 1e-15 && (v - 0.009).abs() < 1e-15);
    }

    #[test]
    fn second_step_by_hand() {
        let (mut p, mut m, mut v) = (0.5f64, 0.0, 0.0);
        for (t, g) in [(1u64, 0.2f64), (2, -0.1)] {
            let k = AdamStep::<f64>::new(t, 0.01, 0.9, 0.999, 1e-8, 0.0, 0.0);
            update(&mut p, &mut m, &mut v, g, &k);
        }
        // m2 = 0.9*0.02 - 0.01 = 0.008, v2 = 0.999*4e-5 + 1e-5 = 4.996e-5
        let (m2, v2) = (0.008f64, 4.996e-5f64);
        let p1 = 0.5 - 0.01 * 0.2 / (0.2 + 1e-8);
        let p2 = p1 - 0.01 * (m2 / (1.0 - 0.81)) / ((v2 / (1.0 - 0.999f64.powi(2))).sqrt() + 1e-8);
        assert!((m - m2).abs() < 1e-15 && (v - v2).abs() < 1e-18);
        assert!((p - p2).abs() < 1e-12, "{p} vs {p2}");
    }

    #[test]
    fn adamw_decays_decoupled_from_the_gradient() {
        let (mut p, mut m, mut v) = (2.0f64, 0.0, 0.0);
        let k = AdamStep::<f64>::new(1, 0.1, 0.9, 0.999, 1e-8, 0.5, 0.0);
        update(&mut p, &mut m, &mut v, 0.0, &k);
        // zero gradient: only the decay acts, p *= 1 - 0.1*0.5
        assert!((p - 1.9).abs() < 1e-15);
    }
}
