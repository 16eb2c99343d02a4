//! SGD with momentum (heavy ball) and Nesterov momentum, PyTorch's form:
//! `v = mu v + g'`; heavy ball `p -= lr v`, Nesterov `p -= lr (g' + mu v)`,
//! with `g' = g + l2 p`; `v` is stored flushed (no subnormals: see
//! [`super::flush`]).

use super::flush;
use crate::real::Real;

/// One momentum (or Nesterov) update of `p` with velocity `v`, gradient `g`, coefficient `mu`.
#[inline(always)]
pub fn update<T: Real>(p: &mut T, v: &mut T, g: T, lr: T, mu: T, l2: T, nesterov: bool) {
    let g = g + l2 * *p;
    *v = flush(mu * *v + g);
    if nesterov {
        *p -= lr * (g + mu * *v);
    } else {
        *p -= lr * *v;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_steps_by_hand() {
        let (mut p, mut v) = (1.0f64, 0.0);
        super::update(&mut p, &mut v, 0.5, 0.1, 0.9, 0.0, false);
        assert!((v - 0.5).abs() < 1e-15 && (p - 0.95).abs() < 1e-15);
        super::update(&mut p, &mut v, 0.5, 0.1, 0.9, 0.0, false);
        // v = 0.45 + 0.5 = 0.95; p = 0.95 - 0.095 = 0.855
        assert!((v - 0.95).abs() < 1e-15 && (p - 0.855).abs() < 1e-15);

        let (mut p, mut v) = (1.0f64, 0.0);
        super::update(&mut p, &mut v, 0.5, 0.1, 0.9, 0.0, true);
        // v = 0.5; p = 1 - 0.1 * (0.5 + 0.45) = 0.905
        assert!((v - 0.5).abs() < 1e-15 && (p - 0.905).abs() < 1e-15);
    }
}
