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
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { bytes_to_unit_avx2(dst, src) };
        }
        bytes_to_unit(dst, src)
    }
}

/// `dst[i] = src[i] as f32 / 255`. Inlined twice: into the baseline build
/// and, on x86-64 processors that have it, into an AVX2 copy
/// ([`bytes_to_unit_avx2`]). A division is correctly rounded at any vector
/// width, so both give the same bits; the AVX2 copy converts and divides
/// eight lanes at a time instead of four: half the time for rows in cache,
/// and T2's gather (100 rows, 78,400 divisions a step) from about 41 to
/// 33 us on Zen 3 (see BENCHMARKS.md).
#[inline(always)]
fn bytes_to_unit(dst: &mut [f32], src: &[u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s as f32 / 255.0;
    }
}

/// [`bytes_to_unit`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bytes_to_unit_avx2(dst: &mut [f32], src: &[u8]) {
    bytes_to_unit(dst, src)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, at every offset of a vector's lanes and in the
    /// scalar tail: the dispatched conversion (AVX2 where the CPU has it)
    /// gives exactly `b as f32 / 255`, the value the f32 images hold.
    #[test]
    fn pixel_bytes_convert_exactly_as_the_division_does() {
        for len in [1, 7, 8, 9, 31, 256, 784] {
            for shift in 0..=255u8 {
                let src: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(shift)).collect();
                let mut got = vec![f32::NAN; len];
                f32::copy_from_u8(&mut got, &src);
                for (g, &b) in got.iter().zip(&src) {
                    assert_eq!(g.to_bits(), (b as f32 / 255.0).to_bits(), "byte {b}");
                }
                let mut wide = vec![f64::NAN; len];
                f64::copy_from_u8(&mut wide, &src);
                assert!(wide.iter().zip(&got).all(|(&w, &g)| w == g as f64));
            }
        }
    }
}
