//! What OpenBLAS alone allows a workload on this machine: each product of
//! its training step timed on its own, called as the trainer calls it
//! ([`mnist_mlp::blas::Gemm`]: column chunks for skinny products, and the
//! fastest of tiles and small back-propagation chunks off and on), operands
//! hot in cache where they fit, the best of 7 timings (each of up to 10
//! calls, as many as last about 20 ms), beside a 2048^3 sgemm of the same
//! library in the same process. Prints each product's GFLOP/s, and the
//! step's samples/s if it were nothing but these products (no gather, no
//! elementwise work, no optimizer, no joins between regions): the ceiling
//! that this OpenBLAS puts on the workload, to set beside `bench`'s figure
//! and the physical limit (`bound_samples_per_s_performed`, whose peak is
//! NumPy's sgemm).
//!
//! One thread: weights stored `[in, out]` (as the trainer does) and, for
//! comparison, `[out, in]` (each product then transposes the other way).
//! `--threads N`: each product as a step on N threads can run it, the
//! fastest of rayon blocks of single-threaded calls by rows and by columns
//! of its output (block boundaries as the trainer's: [`block`], columns
//! aligned to [`COL_ALIGN`]; the threads run their blocks 1-10 times
//! before they join, so a join's cost is spread) and one call threaded by
//! OpenBLAS itself (timed after all the split ones: OpenBLAS's workers spin
//! for a while after a call, and would slow what ran next). The trainer
//! takes one plan for all of a step's products, so no plan reaches every
//! product's best way at once: an upper bound, as on one thread. The 2048^3
//! sgemm then runs on OpenBLAS's N threads.
//!
//! Last, the same products one after the other as a step runs them (the
//! forward products, back-propagation, then the weight gradients split
//! along their longer side), each layout a plan can choose timed: one
//! region of row blocks, each block through every layer (in chunks of
//! [`ROW_CHUNK`] rows where it holds two), or, on several threads, one
//! region per product split by columns. Each product then finds in cache
//! only what the one before left there, and each region ends in a join, as
//! in the trainer, whose step adds only its elementwise passes, the
//! optimizer and the gather to these products: the nearer ceiling. Its
//! figure is the 10th percentile of single steps' times, the statistic of
//! `bench`'s fast steps (`step_ms_p10`), which it is set beside.
//!
//!     cargo run --release --example gemm_ceiling -- T5 [ROWS] [--threads N] [--json]
//!
//! ROWS: the rows of a step (default: the workload's batch; T4's full
//! batch is 60000). `--json`: one JSON object instead of the table
//! (`scripts/compare.py` reads it to set this ceiling beside the limit).
use mnist_mlp::blas::Gemm;
use mnist_mlp::parallel::{block, par_for, GemmThreading, RawMat, Threads};
use mnist_mlp::plan::{COL_ALIGN, ROW_CHUNK};
use mnist_mlp::workloads::Workload;
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2};
use std::time::Instant;

/// Large buffers on transparent huge pages, as the trainer's (`mnist-mlp`'s
/// allocator): fewer TLB misses on a step's megabytes of operands.
#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

/// The trainer's ways to call a product: tiles off or on, small
/// back-propagation chunks or not (plan choices).
const GEMMS: [Gemm; 4] = [
    way(false, false),
    way(false, true),
    way(true, false),
    way(true, true),
];

/// One way to call a product.
const fn way(tiles: bool, small_bwd: bool) -> Gemm {
    Gemm { tiles, small_bwd }
}

/// Best seconds per call of `C = A B + beta C` through the trainer's entry
/// to OpenBLAS, whichever of its ways is fastest. The trainer's weight
/// gradients add onto what `C` holds (`beta = 1`: SGD's update folded in,
/// or the zeros the other optimizers leave), which spares OpenBLAS the
/// pass that zeroes `C` first; its forward and back-propagation products
/// overwrite (`beta = 0`).
fn product(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: &mut Array2<f32>) -> f64 {
    let c = RawMat::of(c);
    GEMMS
        .map(|g| {
            // SAFETY: `c` is this product's own output; `a`, `b` are only read.
            best(|| unsafe { g.run(1.0, a, b, beta, c) })
        })
        .into_iter()
        .fold(f64::MAX, f64::min)
}

/// How a product is split between threads.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// Blocks of the output's rows (and of `A`'s).
    Rows,
    /// Blocks of the output's columns (and of `B`'s).
    Cols,
    /// One call, threaded by OpenBLAS.
    Blas,
}

/// Best seconds per product `C = A B + beta C` split `way` over the
/// `threads`' pool (blocks of single-threaded calls; the fastest of the
/// trainer's ways to call them), or threaded by OpenBLAS.
fn split(
    threads: &Threads,
    way: Way,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: &mut Array2<f32>,
) -> f64 {
    let nb = threads.n();
    let (m, n) = c.dim();
    let cm = RawMat::of(c);
    let run = |g: Gemm| {
        let f = |t: usize| match way {
            Way::Rows => {
                let r = block(t, nb, m, 1);
                // SAFETY: each block writes its own rows of `c`.
                unsafe { g.run(1.0, a.slice(s![r.clone(), ..]), b, beta, cm.row_block(r)) }
            }
            _ => {
                let r = block(t, nb, n, COL_ALIGN);
                // SAFETY: each block writes its own columns of `c`.
                unsafe { g.run(1.0, a, b.slice(s![.., r.clone()]), beta, cm.col_block(r)) }
            }
        };
        threads.install(|| best_of(|reps| par_for(nb, &|t| (0..reps).for_each(|_| f(t)))))
    };
    match way {
        Way::Blas => {
            mnist_mlp::blas::set_threads(nb);
            // SAFETY: as in `product`; one call on the calling thread.
            let s = best(|| unsafe { GEMMS[0].run(1.0, a, b, beta, cm) });
            mnist_mlp::blas::set_threads(1);
            s
        }
        _ => GEMMS.map(run).into_iter().fold(f64::MAX, f64::min),
    }
}

/// An activation-like `[rows, cols]` buffer holding `v`, its rows as far
/// apart as the trainer's (padded by a cache line where they would be a
/// multiple of 4 KiB apart: the built-in plan's `pad_bytes`).
fn act(rows: usize, cols: usize, v: f32) -> Array2<f32> {
    let mut a = mnist_mlp::nn::layout::zeros(rows, cols, mnist_mlp::nn::layout::PAD_BYTES);
    a.fill(v);
    a
}

/// A step's products on its own buffers, in the trainer's order: the
/// forward products of every layer, back-propagation through every layer
/// but the first, then the weight gradients (`beta = 1`), with no
/// elementwise work between them.
struct Step {
    widths: Vec<usize>,
    rows: usize,
    /// Weights `[n_i, n_{i+1}]` and their gradients.
    w: Vec<Array2<f32>>,
    g: Vec<Array2<f32>>,
    /// `A_i` and `D_i`, `[rows, n_i]` (`D_0` unused).
    a: Vec<Array2<f32>>,
    d: Vec<Array2<f32>>,
}

/// How a step's row stages are split between threads, as the trainer's
/// plans split them (see `nn::step`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// One region of row blocks, each through every layer forward and
    /// back (a chunk of [`ROW_CHUNK`] rows at a time, depth first, where a
    /// block holds at least two).
    Rows,
    /// One region per product, split by the output's columns.
    Cols,
}

impl Step {
    fn new(widths: &[usize], rows: usize) -> Self {
        let mats = |f: &dyn Fn(usize) -> (usize, usize), v: f32, n: usize| {
            (0..n)
                .map(|i| Array2::from_elem(f(i), v))
                .collect::<Vec<_>>()
        };
        let l = widths.len() - 1;
        Self {
            widths: widths.to_vec(),
            rows,
            w: mats(&|i| (widths[i], widths[i + 1]), 0.01, l),
            g: mats(&|i| (widths[i], widths[i + 1]), 0.0, l),
            a: (0..=l).map(|i| act(rows, widths[i], 0.5)).collect(),
            d: (0..=l).map(|i| act(rows, widths[i], 0.5)).collect(),
        }
    }

    /// Seconds of a fast step ([`fast_step`]) on `nb` blocks (the pool's
    /// threads), laid out `layout`, its products called as `g` calls them,
    /// and of its two phases: the row stages (forward and
    /// back-propagation) and the weight gradients.
    fn time(&mut self, threads: &Threads, layout: Layout, g: Gemm) -> [f64; 3] {
        let (nb, m, l) = (threads.n(), self.rows, self.widths.len() - 1);
        let widths = &self.widths;
        let w = &self.w;
        let a: Vec<RawMat<f32>> = self.a.iter_mut().map(RawMat::of).collect();
        let d: Vec<RawMat<f32>> = self.d.iter_mut().map(RawMat::of).collect();
        let gr: Vec<RawMat<f32>> = self.g.iter_mut().map(RawMat::of).collect();
        // SAFETY (every call below): each block writes only its own rows or
        // columns of one output; what it reads nobody writes in that region.
        let rows_of = |r: std::ops::Range<usize>| unsafe {
            for i in 0..l {
                let (x, z) = (a[i].row_block(r.clone()), a[i + 1].row_block(r.clone()));
                g.run(1.0, x.view(), w[i].view(), 0.0, z);
            }
            for i in (1..l).rev() {
                let (dz, dx) = (d[i + 1].row_block(r.clone()), d[i].row_block(r.clone()));
                g.run(1.0, dz.view(), w[i].t(), 0.0, dx);
            }
        };
        let step = || unsafe {
            let t0 = Instant::now();
            match layout {
                Layout::Rows => par_for(nb, &|t| {
                    let r = block(t, nb, m, 1);
                    let chunk = if r.len() >= 2 * ROW_CHUNK {
                        ROW_CHUNK
                    } else {
                        r.len().max(1)
                    };
                    let mut lo = r.start;
                    while lo < r.end {
                        let hi = (lo + chunk).min(r.end);
                        rows_of(lo..hi);
                        lo = hi;
                    }
                }),
                Layout::Cols => {
                    for i in 0..l {
                        par_for(nb, &|t| {
                            let c = block(t, nb, widths[i + 1], COL_ALIGN);
                            let wc = w[i].slice(s![.., c.clone()]);
                            g.run(1.0, a[i].view(), wc, 0.0, a[i + 1].col_block(c));
                        });
                    }
                    for i in (1..l).rev() {
                        par_for(nb, &|t| {
                            let c = block(t, nb, widths[i], COL_ALIGN);
                            let wc = w[i].slice(s![c.clone(), ..]);
                            g.run(1.0, d[i + 1].view(), wc.t(), 0.0, d[i].col_block(c));
                        });
                    }
                }
            }
            let t1 = Instant::now();
            // Weight gradients along the longer side (the plan's `auto`).
            par_for(nb, &|t| {
                for i in 0..l {
                    let (n_in, n_out) = (widths[i], widths[i + 1]);
                    if n_in >= n_out {
                        let r = block(t, nb, n_in, 1);
                        let x = a[i].view().reversed_axes();
                        let x = x.slice(s![r.clone(), ..]);
                        g.run(1.0, x, d[i + 1].view(), 1.0, gr[i].row_block(r));
                    } else {
                        let c = block(t, nb, n_out, COL_ALIGN);
                        let dc = d[i + 1].view();
                        let dc = dc.slice(s![.., c.clone()]);
                        g.run(
                            1.0,
                            a[i].view().reversed_axes(),
                            dc,
                            1.0,
                            gr[i].col_block(c),
                        );
                    }
                }
            });
            [(t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64()]
        };
        threads.install(|| fast_step(step))
    }

    /// Which of [`GEMMS`] make calls of their own on this step (the others
    /// call exactly as an earlier one: tiles and small chunks that do not
    /// apply to these shapes).
    fn distinct_gemms(&self, nb: usize) -> Vec<Gemm> {
        use mnist_mlp::blas::{gemm_calls, Orient};
        let (m, w) = (self.rows.div_ceil(nb), &self.widths);
        let m = if m >= 2 * ROW_CHUNK { ROW_CHUNK } else { m };
        let calls = |g: Gemm| -> Vec<usize> {
            w.windows(2)
                .flat_map(|p| {
                    let (i, o) = (p[0], p[1]);
                    [
                        gemm_calls(g, Orient::NN, m, o, i),
                        gemm_calls(g, Orient::NT, m, i, o),
                        gemm_calls(g, Orient::TN, i, o, self.rows),
                    ]
                })
                .collect()
        };
        let mut seen: Vec<Vec<usize>> = Vec::new();
        GEMMS
            .into_iter()
            .filter(|&g| {
                let c = calls(g);
                let new = !seen.contains(&c);
                seen.push(c);
                new
            })
            .collect()
    }

    /// Seconds of a fast step of each layout a plan can choose (columns
    /// only with several threads), over the ways to call the products.
    fn best(&mut self, threads: &Threads) -> Vec<(Layout, [f64; 3])> {
        let layouts: &[Layout] = if threads.n() > 1 {
            &[Layout::Rows, Layout::Cols]
        } else {
            &[Layout::Rows]
        };
        let gemms = self.distinct_gemms(threads.n());
        layouts
            .iter()
            .map(|&layout| {
                let t = gemms.iter().map(|&g| self.time(threads, layout, g));
                let fastest = t.fold([f64::MAX; 3], |b, x| if x[0] < b[0] { x } else { b });
                (layout, fastest)
            })
            .collect()
    }
}

/// The 10th percentile of the seconds of single calls of `step`, as
/// `bench` reports a trainer's fast steps (`step_ms_p10`): after two
/// calls, as many timed calls as last about a second (7 to 1000; the
/// fastest of them below 10).
/// `step` returns the seconds of its two phases, whose 10th percentiles
/// come back too (each on its own: they need not add up to the step's).
fn fast_step<F: Fn() -> [f64; 2]>(step: F) -> [f64; 3] {
    step();
    let t = Instant::now();
    step();
    let n = ((1.0 / t.elapsed().as_secs_f64().max(1e-9)) as usize).clamp(7, 1000);
    let mut ts: Vec<[f64; 3]> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let [a, b] = step();
            [t.elapsed().as_secs_f64(), a, b]
        })
        .collect();
    std::array::from_fn(|k| {
        ts.sort_by(|x, y| x[k].total_cmp(&y[k]));
        ts[n / 10][k]
    })
}

/// Best seconds per call of `f` (after one call, 7 timings of up to 10
/// calls: as many as last about 20 ms).
fn best<F: FnMut()>(mut f: F) -> f64 {
    best_of(|reps| (0..reps).for_each(|_| f()))
}

/// [`best`] for `f(reps)`, which makes `reps` calls.
fn best_of<F: FnMut(usize)>(mut f: F) -> f64 {
    let t = Instant::now();
    f(1);
    let reps = ((0.02 / t.elapsed().as_secs_f64().max(1e-9)) as usize).clamp(1, 10);
    let mut b = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        f(reps);
        b = b.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    b
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let nt: usize = match args.iter().position(|a| a == "--threads") {
        Some(i) => {
            let v = args.get(i + 1).and_then(|s| s.parse().ok());
            let v = v
                .filter(|&n| n >= 1)
                .expect("--threads N: a number of threads, 1 or more");
            args.drain(i..i + 2);
            v
        }
        None => 1,
    };
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
    let threads = Threads::new(nt, GemmThreading::Split).expect("a thread pool");
    mnist_mlp::blas::set_threads(1);
    say!(
        "{} ({}), {m} rows, {nt} thread{}; {}",
        w.id,
        w.layers,
        if nt == 1 { "" } else { "s" },
        mnist_mlp::blas::config()
    );
    let n = 2048;
    let (a, b) = (
        Array2::<f32>::from_elem((n, n), 0.5),
        Array2::<f32>::from_elem((n, n), 0.25),
    );
    let mut c = Array2::<f32>::zeros((n, n));
    mnist_mlp::blas::set_threads(nt);
    let peak = 2.0 * (n * n * n) as f64 / best(|| general_mat_mul(1.0, &a, &b, 0.0, &mut c)) / 1e9;
    mnist_mlp::blas::set_threads(1);
    if nt > 1 {
        // Let OpenBLAS's workers stop spinning before the split products.
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    say!("sgemm 2048^3: {peak:.1} GFLOP/s");
    if nt == 1 {
        say!("| layer | forward [in,out] / [out,in] | back-prop | weight gradient |");
    } else {
        say!("| layer | forward | back-prop | weight gradient |");
    }
    say!("| --- | --- | --- | --- |");
    // Seconds per step: weights [in,out]; [out,in] (one thread only).
    let (mut t_io, mut t_oi, mut flops) = (0.0, 0.0, 0.0);
    // Per product (layer, kind 0..3), the seconds of each way (threads > 1).
    let mut ways: Vec<[[f64; 3]; 3]> = Vec::new();
    let layers: Vec<(usize, usize)> = widths.windows(2).map(|p| (p[0], p[1])).collect();
    for (l, &(i, o)) in layers.iter().enumerate() {
        let (x, d) = (act(m, i, 0.5), act(m, o, 0.5));
        let (w_io, w_oi) = (
            Array2::<f32>::from_elem((i, o), 0.01),
            Array2::<f32>::from_elem((o, i), 0.01),
        );
        let (mut z, mut dx) = (act(m, o, 0.0), act(m, i, 0.0));
        let (mut g_io, mut g_oi) = (Array2::<f32>::zeros((i, o)), Array2::<f32>::zeros((o, i)));
        let fl = 2.0 * (m * i * o) as f64;
        let gf = |t: f64| fl / t / 1e9;
        if nt > 1 {
            // The split ways of every product first, OpenBLAS's threads after.
            let mut t = [[0.0; 3]; 3];
            for (k, way) in [Way::Rows, Way::Cols].into_iter().enumerate() {
                t[0][k] = split(&threads, way, x.view(), w_io.view(), 0.0, &mut z);
                // No trainer computes the first layer's input gradient.
                t[1][k] = if l == 0 {
                    0.0
                } else {
                    split(&threads, way, d.view(), w_io.t(), 0.0, &mut dx)
                };
                t[2][k] = split(&threads, way, x.t(), d.view(), 1.0, &mut g_io);
            }
            ways.push(t);
            flops += fl * if l == 0 { 2.0 } else { 3.0 };
            continue;
        }
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
    // The same products as a step runs them, one after the other (before
    // any call on OpenBLAS's threads, whose workers spin for a while after).
    let layouts = Step::new(&widths, m).best(&threads);
    let name = |l: Layout| match l {
        Layout::Rows if nt == 1 => "one block",
        Layout::Rows => "row blocks",
        Layout::Cols => "column blocks",
    };
    let fastest =
        |b: (Layout, [f64; 3]), x: (Layout, [f64; 3])| if x.1[0] < b.1[0] { x } else { b };
    let (layout, [t_step, t_rows, t_grad]) = layouts
        .iter()
        .copied()
        .fold((Layout::Rows, [f64::MAX; 3]), fastest);
    let layout = name(layout);
    let each = layouts
        .iter()
        .map(|&(l, t)| format!("{} {:.0}", name(l), m as f64 / t[0]))
        .collect::<Vec<_>>()
        .join(", ");
    if nt > 1 {
        // OpenBLAS's own threads, every product after all the split ones.
        for (l, &(i, o)) in layers.iter().enumerate() {
            let (x, d) = (act(m, i, 0.5), act(m, o, 0.5));
            let w_io = Array2::<f32>::from_elem((i, o), 0.01);
            let (mut z, mut dx) = (act(m, o, 0.0), act(m, i, 0.0));
            let mut g_io = Array2::<f32>::zeros((i, o));
            let t = &mut ways[l];
            t[0][2] = split(&threads, Way::Blas, x.view(), w_io.view(), 0.0, &mut z);
            if l > 0 {
                t[1][2] = split(&threads, Way::Blas, d.view(), w_io.t(), 0.0, &mut dx);
            }
            t[2][2] = split(&threads, Way::Blas, x.t(), d.view(), 1.0, &mut g_io);
            let fl = 2.0 * (m * i * o) as f64;
            let mut cell = |ts: [f64; 3]| {
                let (k, s) = ts
                    .iter()
                    .copied()
                    .enumerate()
                    .fold((0, f64::MAX), |b, (k, s)| if s < b.1 { (k, s) } else { b });
                t_io += s;
                let name = ["rows", "columns", "OpenBLAS's threads"][k];
                let all = ts.map(|s| format!("{:.0}", fl / s / 1e9)).join("/");
                format!("{:.1} by {name} ({all})", fl / s / 1e9)
            };
            let (f, b, g) = (t[0], t[1], t[2]);
            let fwd = cell(f);
            let bwd = if l == 0 { "-".to_string() } else { cell(b) };
            let grad = cell(g);
            say!("| {i}x{o} | {fwd} | {bwd} | {grad} |");
        }
        say!("(in parentheses: GFLOP/s by rows / by columns / by OpenBLAS's threads)");
    }
    let (g_io, g_oi) = (flops / t_io / 1e9, flops / t_oi / 1e9);
    if json {
        let o = serde_json::json!({
            "workload": w.id,
            "rows": m,
            "threads": nt,
            "blas": mnist_mlp::blas::config(),
            "sgemm_2048_gflop_per_s": peak,
            "products_gflop_per_s": g_io,
            "samples_per_s": m as f64 / t_io,
            "step_order_samples_per_s": m as f64 / t_step,
            "step_order_layout": layout,
            "step_order_ms": [t_step * 1e3, t_rows * 1e3, t_grad * 1e3],
        });
        println!("{o}");
    }
    if nt == 1 {
        say!(
            "all products: {g_io:.1} GFLOP/s ({:.0}% of 2048^3), {:.0} samples/s if a step were only these ([out,in]: {g_oi:.1} GFLOP/s, {:.0} samples/s)",
            100.0 * g_io / peak,
            m as f64 / t_io,
            m as f64 / t_oi
        );
    } else {
        say!(
            "all products, each its fastest way: {g_io:.1} GFLOP/s ({:.0}% of 2048^3 on {nt} threads), {:.0} samples/s if a step were only these",
            100.0 * g_io / peak,
            m as f64 / t_io
        );
    }
    say!(
        "in step order (forward, back-propagation, weight gradients; no elementwise work between them), fast steps (10th percentile): {:.1} GFLOP/s, {:.0} samples/s, in {layout} (samples/s: {each}); {:.3} ms a step: forward and back-propagation {:.3} ms, weight gradients {:.3} ms",
        flops / t_step / 1e9,
        m as f64 / t_step,
        t_step * 1e3,
        t_rows * 1e3,
        t_grad * 1e3
    );
}
