//! Max-norm: after every update, each unit's incoming weight vector (a
//! column `W[:, j]` of a `[fan_in, fan_out]` weight matrix) whose L2 norm
//! exceeds `c` is scaled back onto the ball of radius `c`:
//! `W[:, j] *= c / max(c, ||W[:, j]||)` (Srivastava et al. 2014, section
//! 5.1, with `c` typically 3-4). Biases are not constrained.
//!
//! Shapes: `w` a `[fan_in, c]` block of whole columns (every row of `W`).

use crate::parallel::RawMat;
use crate::real::Real;

/// The most columns [`clip_columns`] handles in one pass (its norms live
/// on the stack); wider blocks are done in several.
const CHUNK: usize = 256;

/// Scales each column of `w` whose L2 norm exceeds `c` down to norm `c`.
///
/// # Safety
/// `w` is written by no one else and read by no one.
pub unsafe fn clip_columns<T: Real>(w: RawMat<T>, c: f64) {
    let mut start = 0;
    while start < w.cols {
        let end = (start + CHUNK).min(w.cols);
        let block = w.col_block(start..end);
        let mut sq = [T::zero(); CHUNK];
        let sq = &mut sq[..end - start];
        for r in 0..block.rows {
            for (s, &v) in sq.iter_mut().zip(block.row(r)) {
                *s += v * v;
            }
        }
        let limit = T::of(c);
        let mut any = false;
        for s in sq.iter_mut() {
            let norm = s.sqrt();
            *s = if norm > limit {
                any = true;
                limit / norm
            } else {
                T::one()
            };
        }
        if any {
            for r in 0..block.rows {
                for (v, &f) in block.row_mut(r).iter_mut().zip(sq.iter()) {
                    *v *= f;
                }
            }
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn long_columns_are_scaled_onto_the_ball_and_short_ones_kept() {
        // 300 columns (two chunks): column j has norm j / 100.
        let mut w = Array2::from_shape_fn((4, 300), |(_, j)| j as f64 / 200.0);
        let before = w.clone();
        unsafe { clip_columns(RawMat::of(&mut w), 1.5) };
        for j in 0..300 {
            let norm = w.column(j).dot(&w.column(j)).sqrt();
            if j <= 150 {
                assert_eq!(w.column(j), before.column(j), "column {j}");
            } else {
                assert!((norm - 1.5).abs() < 1e-12, "column {j}: {norm}");
                // Only the length changes, not the direction.
                let ratio = w[[0, j]] / before[[0, j]];
                assert!(w
                    .column(j)
                    .iter()
                    .zip(before.column(j))
                    .all(|(a, b)| (a / b - ratio).abs() < 1e-12));
            }
        }
    }
}
