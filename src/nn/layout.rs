//! Row strides of the training step's activation buffers.
//!
//! A row-major `[rows, cols]` matrix whose rows are a multiple of 4 KiB
//! apart (1024 f32 columns, 512 f64) puts the same column of every row at
//! the same offset within a page, so all its rows compete for the few
//! cache sets of that offset (64 of the 2048 sets of a 1 MiB 8-way L2).
//! The weight gradient `A^T D` reads `A` by column blocks, a few columns
//! over all rows of the batch, and such a block then does not stay in
//! cache however small it is. One cache line more per row spreads the rows
//! over all the sets: [`zeros`] allocates the workspace's activations and
//! deltas with rows [`padded_cols`] apart (a `[rows, cols]` array that is
//! not in standard layout where that pads).
//!
//! Measured on Zen 4 (BENCHMARKS.md, "Padded rows"): T5's weight gradient
//! with 1024-wide activations ran 14-32% faster, T5's steps 3-4% faster;
//! padding the weights as well gained nothing more, so they stay in
//! standard layout.

use ndarray::{Array2, ShapeBuilder};

/// Row strides that are multiples of this many bytes are padded.
pub const PAD_BYTES: usize = 4096;

/// One cache line.
const LINE: usize = 64;

/// Elements per row (the row stride) for `cols` columns of `T`: `cols`,
/// plus one cache line where `cols` elements are a multiple of
/// `pad_bytes` ([`PAD_BYTES`] by default, the plan's
/// [`crate::plan::Plan::pad_bytes`]; 0: never).
pub fn padded_cols<T>(cols: usize, pad_bytes: usize) -> usize {
    stride_for(cols, std::mem::size_of::<T>(), pad_bytes)
}

fn stride_for(cols: usize, size: usize, modulus: usize) -> usize {
    let bytes = cols * size;
    if modulus > 0 && size > 0 && bytes >= modulus && bytes % modulus == 0 && LINE % size == 0 {
        cols + LINE / size
    } else {
        cols
    }
}

/// A zeroed `[rows, cols]` matrix with rows [`padded_cols`] apart.
pub fn zeros<T: Clone + num_traits::Zero>(rows: usize, cols: usize, pad_bytes: usize) -> Array2<T> {
    let stride = padded_cols::<T>(cols, pad_bytes);
    if rows <= 1 || stride == cols {
        return Array2::zeros((rows, cols));
    }
    let shape = (rows, cols).strides((stride, 1));
    let len = (rows - 1) * stride + cols;
    Array2::from_shape_vec(shape, vec![T::zero(); len]).expect("the strides fit the buffer")
}

/// Elements of storage behind `a`, the padding between its rows included.
pub fn storage_len<T>(a: &Array2<T>) -> usize {
    match a.dim() {
        (0, _) | (_, 0) => 0,
        (rows, cols) => (rows - 1) * (a.strides()[0] as usize) + cols,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_page_multiple_rows_are_padded() {
        assert_eq!(stride_for(1024, 4, 4096), 1040);
        assert_eq!(stride_for(2048, 4, 4096), 2064);
        assert_eq!(stride_for(512, 8, 4096), 520);
        for cols in [0, 10, 512, 784, 1000, 1023, 1025] {
            assert_eq!(stride_for(cols, 4, 4096), cols, "{cols}");
        }
        assert_eq!(stride_for(1024, 4, 0), 1024, "0 turns padding off");
        assert_eq!(stride_for(256, 4, 1024), 272);
    }

    #[test]
    fn padded_buffers_have_their_shape_and_stride() {
        let z = zeros::<f32>(3, 1024, PAD_BYTES);
        assert_eq!(z.dim(), (3, 1024));
        assert!(z.iter().all(|&v| v == 0.0));
        assert_eq!(
            z.strides(),
            [padded_cols::<f32>(1024, PAD_BYTES) as isize, 1]
        );
        let z = zeros::<f64>(4, 784, PAD_BYTES);
        assert!(z.is_standard_layout(), "784 columns are not padded");
        assert_eq!(zeros::<f32>(0, 1024, PAD_BYTES).dim(), (0, 1024));
        assert_eq!(zeros::<f32>(1, 1024, PAD_BYTES).dim(), (1, 1024));
        assert_eq!(zeros::<f32>(5, 0, PAD_BYTES).dim(), (5, 0));
        assert_eq!(
            storage_len(&zeros::<f32>(3, 1024, PAD_BYTES)),
            2 * padded_cols::<f32>(1024, PAD_BYTES) + 1024
        );
        assert_eq!(storage_len(&zeros::<f32>(3, 784, PAD_BYTES)), 3 * 784);
        assert_eq!(storage_len(&zeros::<f32>(0, 1024, PAD_BYTES)), 0);
        let mut z = zeros::<f32>(2, 1024, PAD_BYTES);
        z[[1, 1023]] = 1.0;
        let raw = crate::parallel::RawMat::of(&mut z);
        assert_eq!(
            (raw.rows, raw.cols, raw.stride),
            (2, 1024, z.strides()[0] as usize)
        );
    }
}
