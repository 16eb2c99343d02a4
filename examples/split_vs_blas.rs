//! One product `C (m x n) = A (m x k) B (k x n)` timed four ways (see
//! BENCHMARKS.md, "Threading policy"): one OpenBLAS-threaded call, rayon
//! row or column blocks of single-threaded calls, and blocks of the inner
//! dimension (each thread packs only its rows of B) whose partial sums are
//! then added in order, by rows. Operands hot in
//! cache. `MODE=nt` takes B transposed, `MODE=tn` A transposed (the
//! back-propagation and weight-gradient products).
//!
//!     cargo run --release --example split_vs_blas -- M K N THREADS
use mnist_mlp::blas::set_threads as set_blas_threads;
use mnist_mlp::parallel::{block, par_for, RawMat};
use ndarray::{linalg::general_mat_mul, s, Array2};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("M K N THREADS are numbers"))
        .collect();
    let [m, k, n, th] = args[..] else {
        panic!("usage: split_vs_blas M K N THREADS");
    };
    let mode = std::env::var("MODE").unwrap_or("nn".into());
    let a0 = Array2::<f32>::from_elem(if mode == "tn" { (k, m) } else { (m, k) }, 0.5);
    let w0 = Array2::<f32>::from_elem(if mode == "nt" { (n, k) } else { (k, n) }, 0.25);
    let a = if mode == "tn" { a0.t() } else { a0.view() };
    let w = if mode == "nt" { w0.t() } else { w0.view() };
    let mut c = Array2::<f32>::zeros((m, n));
    // Partial sums of the K-split variant: one m x n buffer per thread but the first.
    let mut parts = Array2::<f32>::zeros(((th - 1).max(1) * m, n));
    let reps = 200;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(th)
        .build()
        .expect("thread pool");
    // GFLOP/s of `reps` runs of `f` with OpenBLAS on `blas_threads` threads;
    // the split variants (one OpenBLAS thread) run in the rayon pool, the
    // OpenBLAS-threaded call on the main thread with the pool idle.
    let gflops = |blas_threads: usize, f: &(dyn Fn() + Sync)| {
        set_blas_threads(blas_threads);
        let t = Instant::now();
        if blas_threads == 1 {
            pool.install(|| (0..reps).for_each(|_| f()));
        } else {
            (0..reps).for_each(|_| f());
        }
        2.0 * (m * k * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
    };
    for round in 0..3 {
        let cp = RawMat::of(&mut c);
        // SAFETY: each call writes `cp` alone, or disjoint blocks of it.
        let blas = gflops(th, &|| unsafe {
            general_mat_mul(1.0, &a, &w, 0.0, &mut cp.view_mut())
        });
        let rows = gflops(1, &|| {
            par_for(th, &|t| {
                let r = block(t, th, m, 1);
                let out = cp.row_block(r.clone());
                unsafe { general_mat_mul(1.0, &a.slice(s![r, ..]), &w, 0.0, &mut out.view_mut()) };
            })
        });
        let cols = gflops(1, &|| {
            par_for(th, &|t| {
                let r = block(t, th, n, 16);
                let out = cp.col_block(r.clone());
                unsafe { general_mat_mul(1.0, &a, &w.slice(s![.., r]), 0.0, &mut out.view_mut()) };
            })
        });
        let pp = RawMat::of(&mut parts);
        let ks = gflops(1, &|| {
            par_for(th, &|t| {
                let r = block(t, th, k, 1);
                let out = if t == 0 {
                    cp
                } else {
                    pp.row_block((t - 1) * m..t * m)
                };
                unsafe {
                    general_mat_mul(
                        1.0,
                        &a.slice(s![.., r.clone()]),
                        &w.slice(s![r, ..]),
                        0.0,
                        &mut out.view_mut(),
                    )
                };
            });
            // In-order reduction by rows: C += the other threads' partials.
            par_for(th, &|t| {
                let r = block(t, th, m, 1);
                let mut out = unsafe { cp.row_block(r.clone()).view_mut() };
                for u in 1..th {
                    let part = unsafe {
                        pp.row_block((u - 1) * m + r.start..(u - 1) * m + r.end)
                            .view_mut()
                    };
                    out += &part;
                }
            });
        });
        println!("round {round} m={m} k={k} n={n} threads={th}: blas {blas:.1}  row-split {rows:.1}  col-split {cols:.1}  k-split {ks:.1} GF/s");
    }
}
