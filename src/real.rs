//! The element type: `f32` for training, `f64` for gradient checks. Both run
//! the same layer code; BLAS dispatch (`sgemm`/`dgemm`) is done by ndarray.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type with a BLAS GEMM (`f32` or `f64`).
pub trait Real:
    ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::Float
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + 'static
{
    /// Converts from `f64` (rounding for `f32`).
    fn of(x: f64) -> Self;
    /// Widens to `f64`.
    fn f64(self) -> f64;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// `dst[i] = src[i]` converted (a plain copy for f32).
    fn copy_from_f32(dst: &mut [Self], src: &[f32]);
    /// `dst[i] = src[i] as f32 / 255` (converted): pixel bytes to the
    /// values [`crate::data::Dataset::images`] holds, bit for bit.
    fn copy_from_u8(dst: &mut [Self], src: &[u8]);
}

impl Real for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    const NAME: &'static str = "f32";
    #[inline]
    fn copy_from_f32(dst: &mut [Self], src: &[f32]) {
        dst.copy_from_slice(src);
    }
    #[inline]
    fn copy_from_u8(dst: &mut [Self], src: &[u8]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as f32 / 255.0;
        }
    }
}

impl Real for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    const NAME: &'static str = "f64";
    #[inline]
    fn copy_from_f32(dst: &mut [Self], src: &[f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as f64;
        }
    }
    #[inline]
    fn copy_from_u8(dst: &mut [Self], src: &[u8]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = (s as f32 / 255.0) as f64;
        }
    }
}
