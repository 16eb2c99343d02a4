//! Hidden-layer activations, forward fused with the bias add and backward
//! expressed through the activation's *output* (so only `a = f(z)` is kept).
//!
//! Shapes: a row `z` of `[batch, width]` pre-activations and the bias `[width]`.

use crate::real::Real;

/// Negative-side slope of [`Activation::LeakyRelu`].
pub const LEAKY_SLOPE: f64 = 0.01;

/// A hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, else `0.01 x`.
    LeakyRelu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `x` (a linear layer).
    Identity,
}

impl Activation {
    /// Every activation (for tests and gradient checks).
    pub const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Identity,
    ];

    /// The name in layer lists (`relu`, `leaky_relu`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
        }
    }

    /// The activation a layer list names (`None`: unknown).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "leaky_relu" | "leakyrelu" | "lrelu" => Activation::LeakyRelu,
            "sigmoid" | "logistic" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "identity" | "linear" | "none" => Activation::Identity,
            _ => return None,
        })
    }

    /// `z[j] = f(z[j] + bias[j])` over one row.
    #[inline]
    pub fn forward_row<T: Real>(self, z: &mut [T], bias: &[T]) {
        debug_assert_eq!(z.len(), bias.len());
        match self {
            Activation::Relu => {
                for (z, &b) in z.iter_mut().zip(bias) {
                    let v = *z + b;
                    *z = if v > T::zero() { v } else { T::zero() };
                }
            }
            Activation::LeakyRelu => {
                let s = T::of(LEAKY_SLOPE);
                for (z, &b) in z.iter_mut().zip(bias) {
                    let v = *z + b;
                    *z = if v > T::zero() { v } else { v * s };
                }
            }
            Activation::Sigmoid => {
                for (z, &b) in z.iter_mut().zip(bias) {
                    *z = sigmoid(*z + b);
                }
            }
            Activation::Tanh => {
                for (z, &b) in z.iter_mut().zip(bias) {
                    *z = (*z + b).tanh();
                }
            }
            Activation::Identity => {
                for (z, &b) in z.iter_mut().zip(bias) {
                    *z += b;
                }
            }
        }
    }

    /// `d[j] *= f'(z[j])`, with `f'` written through the output `a = f(z)`.
    #[inline]
    pub fn backward_row<T: Real>(self, d: &mut [T], a: &[T]) {
        debug_assert_eq!(d.len(), a.len());
        match self {
            // Written as selects (not conditional stores) so that they vectorize.
            Activation::Relu => {
                for (d, &a) in d.iter_mut().zip(a) {
                    *d = if a > T::zero() { *d } else { T::zero() };
                }
            }
            Activation::LeakyRelu => {
                let s = T::of(LEAKY_SLOPE);
                for (d, &a) in d.iter_mut().zip(a) {
                    *d *= if a > T::zero() { T::one() } else { s };
                }
            }
            Activation::Sigmoid => {
                for (d, &a) in d.iter_mut().zip(a) {
                    *d *= a * (T::one() - a);
                }
            }
            Activation::Tanh => {
                for (d, &a) in d.iter_mut().zip(a) {
                    *d *= T::one() - a * a;
                }
            }
            Activation::Identity => {}
        }
    }

    /// `f'(z)` written through the output `a = f(z)` (what
    /// [`Activation::backward_row`] multiplies by).
    #[inline(always)]
    pub fn grad_from_output<T: Real>(self, a: T) -> T {
        match self {
            Activation::Relu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::of(LEAKY_SLOPE)
                }
            }
            Activation::Sigmoid => a * (T::one() - a),
            Activation::Tanh => T::one() - a * a,
            Activation::Identity => T::one(),
        }
    }
}

/// The logistic function, stable for large `|x|`.
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_values() {
        let b = [0.5f64, 0.5, 0.5];
        let cases: [(Activation, [f64; 3]); 5] = [
            (Activation::Relu, [0.0, 0.5, 2.5]),
            (Activation::LeakyRelu, [-0.015, 0.5, 2.5]),
            (
                Activation::Sigmoid,
                [
                    sigmoid(-1.5),
                    0.5f64.exp() / (1.0 + 0.5f64.exp()),
                    sigmoid(2.5),
                ],
            ),
            (
                Activation::Tanh,
                [(-1.5f64).tanh(), 0.5f64.tanh(), 2.5f64.tanh()],
            ),
            (Activation::Identity, [-1.5, 0.5, 2.5]),
        ];
        for (act, want) in cases {
            let mut z = [-2.0, 0.0, 2.0];
            act.forward_row(&mut z, &b);
            for (g, w) in z.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{act:?}: {z:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn backward_matches_finite_difference_of_forward() {
        for act in Activation::ALL {
            for &z0 in &[-1.3f64, -0.2, 0.4, 1.7] {
                let h = 1e-6;
                let f = |z: f64| {
                    let mut v = [z];
                    act.forward_row(&mut v, &[0.0]);
                    v[0]
                };
                let numeric = (f(z0 + h) - f(z0 - h)) / (2.0 * h);
                let mut d = [1.0];
                act.backward_row(&mut d, &[f(z0)]);
                assert!(
                    (d[0] - numeric).abs() < 1e-8,
                    "{act:?} at {z0}: {} vs {numeric}",
                    d[0]
                );
            }
        }
    }

    #[test]
    fn sigmoid_saturates_without_nan() {
        assert_eq!(sigmoid(-1000.0f32), 0.0);
        assert_eq!(sigmoid(1000.0f32), 1.0);
    }

    #[test]
    fn names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(Activation::parse(a.name()), Some(a));
        }
        assert_eq!(Activation::parse("swish"), None);
    }
}
