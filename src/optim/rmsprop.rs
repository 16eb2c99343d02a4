//! RMSprop: `s = rho s + (1 - rho) g'^2`, `p -= lr g' / (sqrt(s) + eps)`,
//! with `g' = g + l2 p`; `s` is stored flushed (no subnormals: see
//! [`super::flush`]).

use super::flush;
use crate::real::Real;

/// One RMSprop update of `p` with mean square `s`, gradient `g`, decay `rho`.
#[inline(always)]
pub fn update<T: Real>(p: &mut T, s: &mut T, g: T, lr: T, rho: T, eps: T, l2: T) {
    let g = g + l2 * *p;
    *s = flush(rho * *s + (T::one() - rho) * g * g);
    *p -= lr * g / (s.sqrt() + eps);
}

#[cfg(test)]
mod tests {
    #[test]
    fn by_hand() {
        let (mut p, mut s) = (1.0f64, 0.0);
        super::update(&mut p, &mut s, 2.0, 0.01, 0.9, 1e-8, 0.0);
        // s = 0.1 * 4 = 0.4; p = 1 - 0.01 * 2 / (sqrt(0.4) + 1e-8)
        assert!((s - 0.4).abs() < 1e-15);
        assert!((p - (1.0 - 0.02 / (0.4f64.sqrt() + 1e-8))).abs() < 1e-15);
    }
}
