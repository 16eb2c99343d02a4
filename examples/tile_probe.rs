//! One product timed whole and cut into tiles of the output, for choosing
//! the tile shapes of `blas::gemm_tile` (BENCHMARKS.md, "Tiles"):
//!
//!     TILES=256x1024,12x64 MODE=nn cargo run --release --example tile_probe -- 256 1024 1024 2
//!
//! Arguments: M K N THREADS; the output is M x N with inner dimension K,
//! computed as A W (`MODE=nn`, the default), A W^T (`nt`, W stored N x K)
//! or A^T W (`tn`, A stored K x M). Each thread takes a block of M's rows
//! and calls single-threaded sgemm per tile (rows first; `COL_OUTER=1`:
//! columns first). `PAD=E` stores every matrix with rows E elements longer
//! than their width (`nn::layout`). Prints the best and the median GFLOP/s
//! of 7 timings.
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2, ArrayViewMut2};
use std::time::Instant;

fn tiled(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    rt: usize,
    ct: usize,
    col_outer: bool,
) {
    let (m, n) = c.dim();
    let rows: Vec<usize> = (0..m).step_by(rt).collect();
    let cols: Vec<usize> = (0..n).step_by(ct).collect();
    let origins: Vec<(usize, usize)> = if col_outer {
        cols.iter()
            .flat_map(|&j| rows.iter().map(move |&i| (i, j)))
            .collect()
    } else {
        rows.iter()
            .flat_map(|&i| cols.iter().map(move |&j| (i, j)))
            .collect()
    };
    for (i, j) in origins {
        let (ie, je) = ((i + rt).min(m), (j + ct).min(n));
        general_mat_mul(
            1.0,
            &a.slice(s![i..ie, ..]),
            &b.slice(s![.., j..je]),
            0.0,
            &mut c.slice_mut(s![i..ie, j..je]),
        );
    }
}

fn main() {
    mnist_mlp::blas::set_threads(1);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    // Output is (m x n), inner k. MODE: nn = A W, nt = A W^T (W stored n x k), tn = A^T W (A stored k x m)
    let (m, k, n, threads) = (args[0], args[1], args[2], args[3]);
    let mode = std::env::var("MODE").unwrap_or("nn".into());
    let col_outer = std::env::var("COL_OUTER").is_ok();
    let pad: usize = std::env::var("PAD")
        .ok()
        .map(|s| s.parse().unwrap())
        .unwrap_or(0);
    let (ar, ac) = if mode == "tn" { (k, m) } else { (m, k) };
    let (br, bc) = if mode == "nt" { (n, k) } else { (k, n) };
    let a_st =
        Array2::<f32>::from_shape_fn((ar, ac + pad), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1);
    let b_st =
        Array2::<f32>::from_shape_fn((br, bc + pad), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.01);
    let a_st = a_st.slice(s![.., ..ac]);
    let b_st = b_st.slice(s![.., ..bc]);
    let a = if mode == "tn" { a_st.t() } else { a_st };
    let b = if mode == "nt" { b_st.t() } else { b_st };
    let mut c_st = Array2::<f32>::zeros((m, n + pad));
    let mut c = c_st.slice_mut(s![.., ..n]);
    let flop = 2.0 * (m * k * n) as f64;
    let tiles: Vec<(usize, usize)> = std::env::var("TILES")
        .unwrap()
        .split(',')
        .map(|t| {
            let mut p = t.split('x');
            (
                p.next().unwrap().parse().unwrap(),
                p.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    for (rt, ct) in tiles {
        let mut best = f64::MAX;
        let mut all = vec![];
        for _ in 0..7 {
            let reps = 20;
            let t = Instant::now();
            for _ in 0..reps {
                let per = m.div_ceil(threads);
                pool.scope(|sc| {
                    let mut rest = c.view_mut();
                    let mut i = 0;
                    while i < m {
                        let ie = (i + per).min(m);
                        let (blk, r) = rest.split_at(ndarray::Axis(0), ie - i);
                        rest = r;
                        let ab = a.slice(s![i..ie, ..]);
                        let bb = b;
                        sc.spawn(move |_| tiled(ab, bb, blk, rt.min(ie - i), ct, col_outer));
                        i = ie;
                    }
                });
            }
            let e = t.elapsed().as_secs_f64() / reps as f64;
            all.push(flop / e / 1e9);
            best = best.min(e);
        }
        all.sort_by(|x, y| x.partial_cmp(y).unwrap());
        println!("{mode} {m}x{k}x{n} t{threads} tile {rt}x{ct} (MNK {}): best {:.1} median {:.1} GFLOP/s", rt * ct * k, flop / best / 1e9, all[3]);
    }
}
