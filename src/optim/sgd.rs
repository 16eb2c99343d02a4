//! Plain SGD with L2: `p -= lr * (g + l2 * p)`.
//!
//! In training the weight update is folded into the weight-gradient GEMM
//! (`W <- (1 - lr*l2) W - lr * X^T dY`, see [`crate::nn::mlp`]); this
//! elementwise form is used for biases and as the reference in tests.

use crate::real::Real;

/// One gradient-descent update of `p` with gradient `g`.
#[inline(always)]
pub fn update<T: Real>(p: &mut T, g: T, lr: T, l2: T) {
    *p -= lr * (g + l2 * *p);
}

#[cfg(test)]
mod tests {
    #[test]
    fn by_hand() {
        let mut p = 2.0f64;
        super::update(&mut p, 0.5, 0.1, 0.01);
        // 2 - 0.1 * (0.5 + 0.02) = 1.948
        assert!((p - 1.948).abs() < 1e-15);
    }
}
