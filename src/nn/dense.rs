//! A dense (affine) layer `Z = X W + b`, its parameters and its math.
//!
//! Shapes: `X` `[batch, fan_in]`, `W` `[fan_in, fan_out]` (row-major, so a
//! forward pass is one plain GEMM), `b` `[fan_out]`, `Z` `[batch, fan_out]`;
//! the gradient buffers `gw`, `gb` have the shapes of `W`, `b`. With
//! `A = f(Z)` and `D = dL/dZ`:
//!
//! - forward: `A = f(X W + b)` ([`forward`]);
//! - input gradient: `dL/dZ_prev = (D W^T) * f'_prev(X)` ([`backward_input`]),
//!   where `X = f_prev(Z_prev)` is the previous layer's output;
//! - weight and bias gradients: `dW = X^T D` ([`weight_grad`]),
//!   `db = sum over rows of D` ([`bias_grad`]).
//!
//! Each function works on one block of a parallel region: rows of the batch,
//! columns of `W`, or both, as raw handles of preallocated buffers
//! ([`RawMat`]); the step ([`crate::nn::step`]) decides the blocks. The
//! elementwise epilogue (bias, activation and, in training, dropout) runs on
//! each row right after its product, while it is in cache.

use ndarray::{Array1, Array2};

use crate::blas::Gemm;
use crate::nn::activation::Activation;
use crate::nn::dropout::Dropout;
use crate::parallel::RawMat;
use crate::real::Real;

/// A dense layer's parameters and gradient buffers.
#[derive(Debug, Clone)]
pub struct Dense<T: Real> {
    /// `[fan_in, fan_out]`.
    pub w: Array2<T>,
    /// `[fan_out]`.
    pub b: Array1<T>,
    /// `dL/dW`, `[fan_in, fan_out]`: the gradient after a gradient-only
    /// step; zero after a training step, whose optimizer consumes it (plain
    /// SGD folds the update into its GEMM and never writes it).
    pub gw: Array2<T>,
    /// `dL/db`, `[fan_out]`.
    pub gb: Array1<T>,
}

impl<T: Real> Dense<T> {
    /// A layer with weights `w` (`[fan_in, fan_out]`) and zero biases.
    pub fn new(w: Array2<T>) -> Self {
        let (i, o) = w.dim();
        Self {
            w,
            b: Array1::zeros(o),
            gw: Array2::zeros((i, o)),
            gb: Array1::zeros(o),
        }
    }
    /// Inputs of the layer (rows of `w`).
    pub fn fan_in(&self) -> usize {
        self.w.nrows()
    }
    /// Units of the layer (columns of `w`).
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

/// Raw handles of one layer's tensors (biases as `[1, fan_out]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DensePtrs<T> {
    pub w: RawMat<T>,
    pub b: RawMat<T>,
    pub gw: RawMat<T>,
    pub gb: RawMat<T>,
}

impl<T: Real> DensePtrs<T> {
    pub fn empty() -> Self {
        Self {
            w: RawMat::empty(),
            b: RawMat::empty(),
            gw: RawMat::empty(),
            gb: RawMat::empty(),
        }
    }
    pub fn of(l: &mut Dense<T>) -> Self {
        Self {
            w: RawMat::of(&mut l.w),
            b: RawMat::of_slice(l.b.as_slice_mut().expect("contiguous")),
            gw: RawMat::of(&mut l.gw),
            gb: RawMat::of_slice(l.gb.as_slice_mut().expect("contiguous")),
        }
    }
}

/// `out = f(x w + b)` on a block, or `out = x w + b` without `act` (the
/// output layer, whose loss takes it from there). With `drop`, dropout
/// follows the activation on each row while the row is in cache: `drop`
/// is the layer's dropout in this step and the block's first row of the
/// batch and first column of the layer (the mask's coordinates).
///
/// Shapes: `x` `[r, fan_in]` (rows of the batch), `w` `[fan_in, c]`
/// (columns of `W`), `b` `[1, c]`, `out` `[r, c]`.
///
/// # Safety
/// `out` is written by no one else; `x`, `w`, `b` by no one.
pub unsafe fn forward<T: Real>(
    g: Gemm,
    x: RawMat<T>,
    w: RawMat<T>,
    b: RawMat<T>,
    out: RawMat<T>,
    act: Option<Activation>,
    drop: Option<(&Dropout, usize, usize)>,
) {
    g.run(T::one(), x.view(), w.view(), T::zero(), out);
    let bias = b.row(0);
    for r in 0..out.rows {
        let z = out.row_mut(r);
        match act {
            Some(f) => f.forward_row(z, bias),
            None => {
                for (z, &b) in z.iter_mut().zip(bias) {
                    *z += b;
                }
            }
        }
        if let Some((d, row0, col0)) = drop {
            d.forward_row(z, row0 + r, col0);
        }
    }
}

/// `d_in = (d_out w^T) * f'(x)`: the gradient of the loss at the previous
/// layer's pre-activation `Z_prev`, from this layer's `D` and the previous
/// layer's output `x = f(Z_prev)`.
///
/// Shapes: `d_out` `[r, fan_out]`, `w` `[c, fan_out]` (rows of `W`), `x` and
/// `d_in` `[r, c]`.
///
/// # Safety
/// `d_in` is written by no one else; the rest by no one.
pub unsafe fn backward_input<T: Real>(
    g: Gemm,
    d_out: RawMat<T>,
    w: RawMat<T>,
    x: RawMat<T>,
    d_in: RawMat<T>,
    act: Activation,
) {
    g.run(T::one(), d_out.view(), w.view().t(), T::zero(), d_in);
    for r in 0..d_in.rows {
        act.backward_row(d_in.row_mut(r), x.row(r));
    }
}

/// `gb = sum over rows of d_out`.
///
/// Shapes: `d_out` `[n, c]` (all rows of the batch, columns of `D`), `gb`
/// `[1, c]`.
///
/// # Safety
/// `gb` is written by no one else; `d_out` by no one.
pub unsafe fn bias_grad<T: Real>(d_out: RawMat<T>, gb: RawMat<T>) {
    let sums = gb.row_mut(0);
    sums.iter_mut().for_each(|v| *v = T::zero());
    for r in 0..d_out.rows {
        for (g, &v) in sums.iter_mut().zip(d_out.row(r)) {
            *g += v;
        }
    }
}

/// `gw = alpha x^T d_out + beta gw`: the weight gradient (`alpha = 1`,
/// `beta = 0`), or plain SGD folded into the product (`gw` is then `W`
/// itself, `alpha = -lr`, `beta = 1 - lr l2`).
///
/// Shapes: `x` `[n, r]` (all rows of the batch, columns = rows of `W`),
/// `d_out` `[n, c]`, `gw` `[r, c]`.
///
/// # Safety
/// `gw` is written by no one else; `x`, `d_out` by no one.
pub unsafe fn weight_grad<T: Real>(
    g: Gemm,
    alpha: T,
    x: RawMat<T>,
    d_out: RawMat<T>,
    beta: T,
    gw: RawMat<T>,
) {
    if gw.rows == 0 || gw.cols == 0 {
        return;
    }
    g.run(alpha, x.view().t(), d_out.view(), beta, gw);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn grid(r: usize, c: usize, s: usize) -> Array2<f64> {
        Array2::from_shape_fn((r, c), |(i, j)| ((i * 7 + j * s) % 5) as f64 - 2.0)
    }

    /// Each function against its formula on whole matrices (integer-valued,
    /// so exact).
    #[test]
    fn the_math_matches_its_formulas() {
        let g = Gemm {
            tiles: false,
            small_bwd: false,
        };
        let (n, i, o) = (6, 5, 4);
        let (mut x, mut w) = (grid(n, i, 3), grid(i, o, 2));
        let mut b = Array2::from_shape_fn((1, o), |(_, j)| j as f64);
        let mut z = Array2::zeros((n, o));
        unsafe {
            forward(
                g,
                RawMat::of(&mut x),
                RawMat::of(&mut w),
                RawMat::of(&mut b),
                RawMat::of(&mut z),
                None,
                None,
            )
        };
        assert_eq!(z, x.dot(&w) + &b);
        let mut a = Array2::zeros((n, o));
        unsafe {
            forward(
                g,
                RawMat::of(&mut x),
                RawMat::of(&mut w),
                RawMat::of(&mut b),
                RawMat::of(&mut a),
                Some(Activation::Relu),
                None,
            )
        };
        assert_eq!(a, z.mapv(|v| v.max(0.0)));
        // With dropout: the block's rows 3.. of the batch, columns 8.. of
        // the layer, masked as the dropout masks those coordinates.
        let drop = Dropout::new(0.5, 42, 1).unwrap();
        let mut ad = Array2::zeros((n, o));
        unsafe {
            forward(
                g,
                RawMat::of(&mut x),
                RawMat::of(&mut w),
                RawMat::of(&mut b),
                RawMat::of(&mut ad),
                Some(Activation::Relu),
                Some((&drop, 3, 8)),
            )
        };
        for (r, mut row) in a.rows_mut().into_iter().enumerate() {
            drop.forward_row(row.as_slice_mut().unwrap(), 3 + r, 8);
        }
        assert_eq!(ad, a);
        assert!(ad.iter().filter(|&&v| v == 0.0).count() > z.iter().filter(|&&v| v <= 0.0).count());

        let mut d = grid(n, o, 1);
        let mut d_in = Array2::zeros((n, i));
        let mut xr = x.mapv(|v| v.max(0.0));
        unsafe {
            backward_input(
                g,
                RawMat::of(&mut d),
                RawMat::of(&mut w),
                RawMat::of(&mut xr),
                RawMat::of(&mut d_in),
                Activation::Relu,
            )
        };
        let mask = xr.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
        assert_eq!(d_in, d.dot(&w.t()) * mask);

        let mut gb = Array2::from_elem((1, o), 9.0);
        unsafe { bias_grad(RawMat::of(&mut d), RawMat::of(&mut gb)) };
        assert_eq!(gb.row(0), d.sum_axis(ndarray::Axis(0)));

        let mut gw = Array2::from_elem((i, o), 1.0);
        unsafe {
            weight_grad(
                g,
                2.0,
                RawMat::of(&mut x),
                RawMat::of(&mut d),
                0.5,
                RawMat::of(&mut gw),
            )
        };
        assert_eq!(gw, x.t().dot(&d) * 2.0 + 0.5);
    }
}
