//! GEMM shapes of a small-batch step, timed as one call and in column chunks
//! (see BENCHMARKS.md, "Threading policy"): `cargo run --release --example
//! gemm_shapes -- ROWS`. Single-threaded OpenBLAS; operands hot in cache.
use ndarray::{linalg::general_mat_mul, s, Array2};
use std::time::Instant;
fn main() {
    mnist_mlp::blas::set_threads(1);
    let m: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(4);
    for (k, n) in [(784usize, 512usize), (512, 512), (512, 256), (256, 128)] {
        let a = Array2::<f32>::from_elem((m, k), 0.5);
        let w = Array2::<f32>::from_elem((k, n), 0.25);
        let mut c = Array2::<f32>::zeros((m, n));
        let mut dx = Array2::<f32>::zeros((m, k));
        let mut ww = w.clone();
        for chunk in [n, 256, 128, 64, 32] {
            if chunk > n {
                continue;
            }
            // Seconds per repetition of `f(j..e)` over the chunks of 0..len.
            let per_call = |len: usize, f: &mut dyn FnMut(std::ops::Range<usize>)| {
                let reps = 2000;
                let t = Instant::now();
                for _ in 0..reps {
                    let mut j = 0;
                    while j < len {
                        let e = (j + chunk).min(len);
                        f(j..e);
                        j = e;
                    }
                }
                t.elapsed().as_secs_f64() / reps as f64
            };
            // forward X W -> (m x n), chunk over n
            let f = per_call(n, &mut |r| {
                general_mat_mul(
                    1.0,
                    &a,
                    &w.slice(s![.., r.clone()]),
                    0.0,
                    &mut c.slice_mut(s![.., r]),
                )
            });
            // backprop D (m x n) W^T -> (m x k), chunk over k (rows of W)
            let b = per_call(k, &mut |r| {
                general_mat_mul(
                    1.0,
                    &c,
                    &w.slice(s![r.clone(), ..]).t(),
                    0.0,
                    &mut dx.slice_mut(s![.., r]),
                )
            });
            // update W += A^T D (k x m)(m x n), chunk over n
            let u = per_call(n, &mut |r| {
                general_mat_mul(
                    -1e-9,
                    &a.t(),
                    &c.slice(s![.., r.clone()]),
                    1.0,
                    &mut ww.slice_mut(s![.., r]),
                )
            });
            let fl = 2.0 * (m * k * n) as f64;
            println!(
                "m={m} k={k} n={n} chunk={chunk}: fwd {:.1} GF/s  bwd {:.1} GF/s  upd {:.1} GF/s",
                fl / f / 1e9,
                fl / b / 1e9,
                fl / u / 1e9
            );
        }
    }
}
