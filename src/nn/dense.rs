//! A dense (affine) layer: `y = x W + b`.
//!
//! Shapes: `x` `[batch, fan_in]`, `W` `[fan_in, fan_out]` (row-major, so a
//! forward pass is one plain GEMM), `b` `[fan_out]`, `y` `[batch, fan_out]`.
//! The gradient buffers `gw`, `gb` have the shapes of `W`, `b`. The forward
//! and backward passes themselves live in [`crate::nn::mlp`], which runs them
//! block by block over buffers allocated once.

use ndarray::{Array1, Array2};

use crate::real::Real;

#[derive(Debug, Clone)]
pub struct Dense<T: Real> {
    /// `[fan_in, fan_out]`.
    pub w: Array2<T>,
    /// `[fan_out]`.
    pub b: Array1<T>,
    /// `dL/dW`, `[fan_in, fan_out]` (filled unless plain SGD folds the update into its GEMM).
    pub gw: Array2<T>,
    /// `dL/db`, `[fan_out]`.
    pub gb: Array1<T>,
}

impl<T: Real> Dense<T> {
    pub fn new(w: Array2<T>) -> Self {
        let (i, o) = w.dim();
        Self {
            w,
            b: Array1::zeros(o),
            gw: Array2::zeros((i, o)),
            gb: Array1::zeros(o),
        }
    }
    pub fn fan_in(&self) -> usize {
        self.w.nrows()
    }
    pub fn fan_out(&self) -> usize {
        self.w.ncols()
    }
    /// Converts to another element type (f32 <-> f64).
    pub fn cast<U: Real>(&self) -> Dense<U> {
        let c = |x: &T| U::of(x.f64());
        Dense {
            w: self.w.map(c),
            b: self.b.map(c),
            gw: self.gw.map(c),
            gb: self.gb.map(c),
        }
    }
}
