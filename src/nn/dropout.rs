//! Inverted dropout with counter-based masks.
//!
//! In training, unit `j` of row `r` of a layer's output `A` (or of the
//! input) is kept with probability `1 - p` and scaled by `1 / (1 - p)`, so
//! that its expected value is unchanged and evaluation uses the network as
//! it is (no dropout, no rescaling):
//!
//! - forward: `A = f(Z) * m / (1 - p)`, `m` in {0, 1};
//! - backward: `dL/dZ = (D W^T) * m / (1 - p) * f'(Z)`, with `f'` written
//!   through the undropped output `f(Z) = A (1 - p)` of a kept unit.
//!
//! The mask is not stored: `m = [h(row key, j) >= p 2^32]`, a hash of the
//! unit's coordinates, where the row key hashes (step key, layer, row of the
//! batch) and the step key hashes (seed, step). The backward pass computes
//! the same bits again. So the masks do not depend on the thread count or on
//! how a step is split into blocks, and a resumed run needs no state beyond
//! the step counter it already saves. The hash is MurmurHash3's 32-bit
//! finalizer (a bijection with full avalanche), which vectorizes.
//!
//! Shapes: one row (or a column block of one row) of `[batch, width]`, with
//! `col0` the block's first column.

use crate::nn::activation::Activation;
use crate::real::Real;

/// The highest dropout rate accepted (a rate of 1 would drop everything).
pub const MAX_RATE: f64 = 0.95;

/// SplitMix64's finalizer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// MurmurHash3's 32-bit finalizer.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The key of a training step's masks: a hash of the run's seed and the
/// step's number.
pub fn step_key(seed: u64, step: u64) -> u64 {
    mix64(seed ^ mix64(step ^ 0x6472_6f70_6f75_7400))
}

/// A layer's dropout in one step: its rate and the step's key.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    key: u64,
    threshold: u32,
    /// `1 / (1 - p)`.
    scale: f64,
}

impl Dropout {
    /// Dropout at rate `p` (in `[0, MAX_RATE]`) on layer `layer`'s output
    /// (0: the input) in the step with key `key`; `None` for `p = 0`.
    pub fn new(p: f64, key: u64, layer: usize) -> Option<Self> {
        debug_assert!((0.0..=MAX_RATE).contains(&p), "dropout rate {p}");
        if p <= 0.0 {
            return None;
        }
        Some(Self {
            key: mix64(key ^ (layer as u64).wrapping_mul(0xa076_1d64_78bd_642f)),
            threshold: (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32,
            scale: 1.0 / (1.0 - p),
        })
    }

    /// The key of batch row `row`.
    #[inline]
    fn row_key(&self, row: usize) -> u32 {
        let h = mix64(self.key ^ row as u64);
        (h ^ (h >> 32)) as u32
    }

    /// Whether unit `j` of the row with key `rk` is kept.
    #[inline(always)]
    fn keep(&self, rk: u32, j: usize) -> bool {
        fmix32(rk ^ (j as u32).wrapping_mul(0x9e37_79b9)) >= self.threshold
    }

    /// `a[j] = m_j a[j] / (1 - p)` on batch row `row`, columns `col0..`.
    #[inline]
    pub fn forward_row<T: Real>(&self, a: &mut [T], row: usize, col0: usize) {
        let (rk, s) = (self.row_key(row), T::of(self.scale));
        for (j, a) in a.iter_mut().enumerate() {
            *a = if self.keep(rk, col0 + j) {
                *a * s
            } else {
                T::zero()
            };
        }
    }

    /// `d[j] = m_j d[j] / (1 - p) f'(a[j] (1 - p))` on batch row `row`,
    /// columns `col0..`, where `a` is the dropped output of the forward pass
    /// and `d` holds `D W^T`.
    #[inline]
    pub fn backward_row<T: Real>(
        &self,
        act: Activation,
        d: &mut [T],
        a: &[T],
        row: usize,
        col0: usize,
    ) {
        debug_assert_eq!(d.len(), a.len());
        let rk = self.row_key(row);
        let s = T::of(self.scale);
        let q = T::one() / s;
        match act {
            // f' is 1 wherever a kept unit's output is positive (ReLU) or
            // everywhere (identity): no need to undo the scaling.
            Activation::Relu | Activation::Identity => {
                let identity = act == Activation::Identity;
                self.kept_map(d, a, rk, col0, |d, a| {
                    if identity || a > T::zero() {
                        d * s
                    } else {
                        T::zero()
                    }
                })
            }
            _ => self.kept_map(d, a, rk, col0, |d, a| d * s * act.grad_from_output(a * q)),
        }
    }

    /// `d[j] = g(d[j], a[j])` for kept units, 0 for dropped ones.
    #[inline(always)]
    fn kept_map<T: Real>(&self, d: &mut [T], a: &[T], rk: u32, col0: usize, g: impl Fn(T, T) -> T) {
        for (j, (d, &a)) in d.iter_mut().zip(a).enumerate() {
            *d = if self.keep(rk, col0 + j) {
                g(*d, a)
            } else {
                T::zero()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_share_is_one_minus_p_and_kept_units_are_scaled() {
        for p in [0.1, 0.2, 0.5, 0.8] {
            let d = Dropout::new(p, step_key(3, 17), 1).unwrap();
            let (rows, width) = (200, 500);
            let mut kept = 0usize;
            for r in 0..rows {
                let mut a = vec![1.0f64; width];
                d.forward_row(&mut a, r, 0);
                for &v in &a {
                    if v != 0.0 {
                        assert!((v - 1.0 / (1.0 - p)).abs() < 1e-12);
                        kept += 1;
                    }
                }
            }
            let share = kept as f64 / (rows * width) as f64;
            // 100,000 Bernoulli draws: 5 standard deviations is < 0.008.
            assert!((share - (1.0 - p)).abs() < 0.008, "p={p}: kept {share}");
        }
        assert!(Dropout::new(0.0, 1, 0).is_none());
    }

    #[test]
    fn masks_depend_on_the_coordinates_not_on_the_blocks() {
        let d = Dropout::new(0.5, step_key(0, 5), 2).unwrap();
        let mut whole = vec![1.0f32; 64];
        d.forward_row(&mut whole, 9, 0);
        let (mut left, mut right) = (vec![1.0f32; 24], vec![1.0f32; 40]);
        d.forward_row(&mut left, 9, 0);
        d.forward_row(&mut right, 9, 24);
        assert_eq!([left, right].concat(), whole);
        // Another row, step, layer or seed draws another mask.
        let other = |d: Dropout, row: usize| {
            let mut a = vec![1.0f32; 64];
            d.forward_row(&mut a, row, 0);
            a
        };
        assert_ne!(other(d, 10), whole);
        assert_ne!(
            other(Dropout::new(0.5, step_key(0, 6), 2).unwrap(), 9),
            whole
        );
        assert_ne!(
            other(Dropout::new(0.5, step_key(0, 5), 1).unwrap(), 9),
            whole
        );
        assert_ne!(
            other(Dropout::new(0.5, step_key(1, 5), 2).unwrap(), 9),
            whole
        );
    }

    #[test]
    fn backward_is_the_derivative_of_forward_for_every_activation() {
        let d = Dropout::new(0.3, step_key(1, 2), 1).unwrap();
        for act in Activation::ALL {
            // Off the kink of ReLU at 0.
            let z: Vec<f64> = (0..40).map(|j| (j as f64 - 20.0) / 7.0 + 0.01).collect();
            let fwd = |z: &[f64]| {
                let mut a = z.to_vec();
                act.forward_row(&mut a, &vec![0.0; z.len()]);
                d.forward_row(&mut a, 4, 3);
                a
            };
            let a = fwd(&z);
            let mut g = vec![1.0; z.len()];
            d.backward_row(act, &mut g, &a, 4, 3);
            for j in 0..z.len() {
                let h = 1e-6;
                let (mut zp, mut zm) = (z.clone(), z.clone());
                zp[j] += h;
                zm[j] -= h;
                let n = (fwd(&zp)[j] - fwd(&zm)[j]) / (2.0 * h);
                assert!((g[j] - n).abs() < 1e-6, "{act:?} unit {j}: {} vs {n}", g[j]);
            }
        }
    }
}
