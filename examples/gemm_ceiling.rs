//! What OpenBLAS alone allows a workload on this machine: each product of
//! its training step timed on its own, called as the trainer calls it
//! ([`mnist_mlp::blas::Gemm`]: column chunks for skinny products, and the
//! fastest of tiles and small back-propagation chunks off and on), one
//! thread, operands hot in cache, the best of 7 timings of 10 calls,
//! beside a 2048^3 sgemm of the same library in the same process. Prints each product's GFLOP/s, and the
//! step's samples/s if it were nothing but these products (no gather, no
//! elementwise work, no optimizer, no cache misses): the ceiling that this
//! OpenBLAS puts on the workload, to set beside `bench`'s figure and the
//! physical limit (`bound_samples_per_s_performed`, whose peak is NumPy's
//! sgemm). Weights stored `[in, out]` (as the trainer does) and, for
//! comparison, `[out, in]` (each product then transposes the other way).
//!
//!     cargo run --release --example gemm_ceiling -- T5 [ROWS] [--json]
//!
//! ROWS: the rows of a step (default: the workload's batch; T4's full
//! batch is 60000). `--json`: one JSON object instead of the table
//! (`scripts/compare.py` reads it to set this ceiling beside the limit).
use mnist_mlp::blas::Gemm;
use mnist_mlp::parallel::RawMat;
use mnist_mlp::workloads::Workload;
use ndarray::{linalg::general_mat_mul, Array2, ArrayView2};
use std::time::Instant;

/// Best seconds per call of `C = A B + beta C` through the trainer's entry
/// to OpenBLAS, whichever of its ways is fastest (tiles off or on, small
/// back-propagation chunks or not: plan choices). The trainer's weight
/// gradients add onto what `C` holds (`beta = 1`: SGD's update folded in,
/// or the zeros the other optimizers leave), which spares OpenBLAS the
/// pass that zeroes `C` first; its forward and back-propagation products
/// overwrite (`beta = 0`).
fn product(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: &mut Array2<f32>) -> f64 {
    let c = RawMat::of(c);
    [(false, false), (false, true), (true, false), (true, true)]
        .map(|(tiles, small_bwd)| {
            let g = Gemm { tiles, small_bwd };
            // SAFETY: `c` is this product's own output; `a`, `b` are only read.
            best(|| unsafe { g.run(1.0, a, b, beta, c) })
        })
        .into_iter()
        .fold(f64::MAX, f64::min)
}

/// Best seconds per call of `f` (7 timings of 10 calls, after one call).
fn best<F: FnMut()>(mut f: F) -> f64 {
    f();
    let mut b = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..10 {
            f();
        }
        b = b.min(t.elapsed().as_secs_f64() / 10.0);
    }
    b
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    // The table goes to stderr under --json, so stdout holds one object.
    macro_rules! say {
        ($($t:tt)*) => {
            if json { eprintln!($($t)*) } else { println!($($t)*) }
        };
    }
    let w = Workload::find(args.first().map_or("T5", |s| s.as_str())).expect("a workload T1..T6");
    let widths = w.spec().widths;
    let m: usize = args
        .get(1)
        .map(|s| s.parse().expect("ROWS is a number"))
        .unwrap_or_else(|| w.batch.rows(60_000));
    mnist_mlp::blas::set_threads(1);
    say!(
        "{} ({}), {m} rows; {}",
        w.id,
        w.layers,
        mnist_mlp::blas::config()
    );
    let n = 2048;
    let (a, b) = (
        Array2::<f32>::from_elem((n, n), 0.5),
        Array2::<f32>::from_elem((n, n), 0.25),
    );
    let mut c = Array2::<f32>::zeros((n, n));
    let peak = 2.0 * (n * n * n) as f64 / best(|| general_mat_mul(1.0, &a, &b, 0.0, &mut c)) / 1e9;
    say!("sgemm 2048^3: {peak:.1} GFLOP/s");
    say!("| layer | forward [in,out] / [out,in] | back-prop | weight gradient |");
    say!("| --- | --- | --- | --- |");
    let (mut t_io, mut t_oi, mut flops) = (0.0, 0.0, 0.0);
    for (l, p) in widths.windows(2).enumerate() {
        let (i, o) = (p[0], p[1]);
        let x = Array2::<f32>::from_elem((m, i), 0.5);
        let d = Array2::<f32>::from_elem((m, o), 0.5);
        let (w_io, w_oi) = (
            Array2::<f32>::from_elem((i, o), 0.01),
            Array2::<f32>::from_elem((o, i), 0.01),
        );
        let (mut z, mut dx) = (Array2::<f32>::zeros((m, o)), Array2::<f32>::zeros((m, i)));
        let (mut g_io, mut g_oi) = (Array2::<f32>::zeros((i, o)), Array2::<f32>::zeros((o, i)));
        let fl = 2.0 * (m * i * o) as f64;
        let gf = |t: f64| fl / t / 1e9;
        let fwd = (
            product(x.view(), w_io.view(), 0.0, &mut z),
            product(x.view(), w_oi.t(), 0.0, &mut z),
        );
        // No trainer computes the first layer's input gradient.
        let bwd = if l == 0 {
            (0.0, 0.0)
        } else {
            (
                product(d.view(), w_io.t(), 0.0, &mut dx),
                product(d.view(), w_oi.view(), 0.0, &mut dx),
            )
        };
        let grad = (
            product(x.t(), d.view(), 1.0, &mut g_io),
            product(d.t(), x.view(), 1.0, &mut g_oi),
        );
        let bwd_s = if l == 0 {
            "-".to_string()
        } else {
            format!("{:.1} / {:.1}", gf(bwd.0), gf(bwd.1))
        };
        say!(
            "| {i}x{o} | {:.1} / {:.1} | {bwd_s} | {:.1} / {:.1} |",
            gf(fwd.0),
            gf(fwd.1),
            gf(grad.0),
            gf(grad.1)
        );
        t_io += fwd.0 + bwd.0 + grad.0;
        t_oi += fwd.1 + bwd.1 + grad.1;
        flops += fl * if l == 0 { 2.0 } else { 3.0 };
    }
    let (g_io, g_oi) = (flops / t_io / 1e9, flops / t_oi / 1e9);
    if json {
        let o = serde_json::json!({
            "workload": w.id,
            "rows": m,
            "blas": mnist_mlp::blas::config(),
            "sgemm_2048_gflop_per_s": peak,
            "products_gflop_per_s": g_io,
            "samples_per_s": m as f64 / t_io,
        });
        println!("{o}");
    }
    say!(
        "all products: {g_io:.1} GFLOP/s ({:.0}% of 2048^3), {:.0} samples/s if a step were only these ([out,in]: {g_oi:.1} GFLOP/s, {:.0} samples/s)",
        100.0 * g_io / peak,
        m as f64 / t_io,
        m as f64 / t_oi
    );
}
