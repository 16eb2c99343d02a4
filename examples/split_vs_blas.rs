//! One product `C (m x n) = A (m x k) B (k x n)` timed three ways (see
//! BENCHMARKS.md, "Threading policy"): one OpenBLAS-threaded call, and
//! rayon row or column blocks of single-threaded calls. Operands hot in
//! cache. `MODE=nt` takes B transposed, `MODE=tn` A transposed (the
//! back-propagation and weight-gradient products).
//!
//!     cargo run --release --example split_vs_blas -- M K N THREADS
use ndarray::{linalg::general_mat_mul, s, Array2};
use std::time::Instant;
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (m, k, n, th) = (args[0], args[1], args[2], args[3]);
    let mode = std::env::var("MODE").unwrap_or("nn".into());
    let a0 = Array2::<f32>::from_elem(if mode == "tn" { (k, m) } else { (m, k) }, 0.5);
    let w0 = Array2::<f32>::from_elem(if mode == "nt" { (n, k) } else { (k, n) }, 0.25);
    let a = if mode == "tn" { a0.t() } else { a0.view() };
    let w = if mode == "nt" { w0.t() } else { w0.view() };
    let mut c = Array2::<f32>::zeros((m, n));
    let reps = 200;
    let fl = 2.0 * (m * k * n) as f64 * reps as f64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(th)
        .build()
        .unwrap();
    for round in 0..3 {
        mnist_mlp::parallel::set_blas_threads(th);
        let t = Instant::now();
        for _ in 0..reps {
            general_mat_mul(1.0, &a, &w, 0.0, &mut c);
        }
        let blas = fl / t.elapsed().as_secs_f64() / 1e9;
        mnist_mlp::parallel::set_blas_threads(1);
        let rows = |c: &mut Array2<f32>| {
            let cp = mnist_mlp::parallel::RawMat::of(c);
            pool.install(|| {
                for _ in 0..reps {
                    mnist_mlp::parallel::par_for(th, &|t| {
                        let r = mnist_mlp::parallel::block(t, th, m, 1);
                        let out = cp.row_block(r.clone());
                        unsafe {
                            general_mat_mul(1.0, &a.slice(s![r, ..]), &w, 0.0, &mut out.view_mut())
                        };
                    });
                }
            })
        };
        let t = Instant::now();
        rows(&mut c);
        let rs = fl / t.elapsed().as_secs_f64() / 1e9;
        let cp = mnist_mlp::parallel::RawMat::of(&mut c);
        let t = Instant::now();
        pool.install(|| {
            for _ in 0..reps {
                mnist_mlp::parallel::par_for(th, &|t| {
                    let r = mnist_mlp::parallel::block(t, th, n, 16);
                    let out = cp.col_block(r.clone());
                    unsafe {
                        general_mat_mul(1.0, &a, &w.slice(s![.., r]), 0.0, &mut out.view_mut())
                    };
                });
            }
        });
        let cs = fl / t.elapsed().as_secs_f64() / 1e9;
        println!("round {round} m={m} k={k} n={n} threads={th}: blas {blas:.1}  row-split {rs:.1}  col-split {cs:.1} GF/s");
    }
}
