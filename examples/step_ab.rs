//! Two splitting policies of the same workload, interleaved step by step in
//! one process (A B B A, ...), for effects smaller than the drift between
//! whole runs on a shared host: both variants see the same minute, the same
//! data and the same model. Prints each variant's median and 10th-percentile
//! step time and the median ratio of neighbouring A/B steps.
//!
//!     MNIST_DIR=... cargo run --release --example step_ab -- W THREADS STEPS B-SETTING...
//!
//! A is [`Plan::from_env`]; B is A with the settings applied:
//! `rows=N` (`col_split_rows`), `big=MIN[:f|b|fb]` (`big_weights` and its
//! passes), `blas=1` (`blas_threads`: OpenBLAS's threads instead of
//! blocks), `blocks=N`.
use std::time::Instant;

use mnist_mlp::data::{load_dir, LoadOptions};
use mnist_mlp::nn::{Batch, Rows, Update, Workspace};
use mnist_mlp::optim::{OptConfig, Optimizer};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::plan::Plan;
use mnist_mlp::workloads::{quantile, synthetic, Workload};
use rand::{seq::SliceRandom, SeedableRng};

/// As in the binary: large buffers on transparent huge pages.
#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [w, th, steps, settings @ ..] = &args[..] else {
        panic!("usage: step_ab W THREADS STEPS B-SETTING...");
    };
    let w = Workload::find(w).expect("a workload T1..T5");
    let steps: usize = steps.parse().expect("STEPS is a number");
    let a = Plan::from_env();
    let mut b = a;
    for s in settings {
        let (k, v) = s.split_once('=').expect("settings are KEY=VALUE");
        match k {
            "rows" => b.col_split_rows = v.parse().expect("rows=N"),
            "big" => {
                let (min, which) = v.split_once(':').unwrap_or((v, "fb"));
                b.big_cols = Some(min.parse().expect("big=MIN"));
                (b.big_fwd, b.big_bwd) = (which.contains('f'), which.contains('b'));
            }
            "blas" => b.blas_threads = v == "1",
            "blocks" => b.blocks = v.parse().expect("blocks=N"),
            _ => panic!("unknown setting {k}"),
        }
    }
    let train = match std::env::var_os("MNIST_DIR") {
        Some(d) => {
            load_dir(d.as_ref(), &LoadOptions::default())
                .expect("MNIST")
                .train
        }
        None => synthetic(60_000, 0),
    };
    let threads = Threads::new(th.parse().expect("THREADS"), GemmThreading::Split).unwrap();
    let mut model = w.model(0);
    let rows = w.batch.rows(train.len());
    let mut ws = Workspace::new(&model.spec, rows, threads.blocks());
    let mut opt = Optimizer::new(OptConfig::new(w.opt, w.lr), &model.param_shapes());
    let mut perm: Vec<u32> = (0..train.len() as u32).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut ratios = Vec::new();
    let mut order = Vec::new();
    threads.install(|| {
        let mut k = 0;
        let mut pair = [0.0f64; 2];
        // Warm-up: 20 steps, then `steps` steps per variant.
        for i in 0..2 * steps + 20 {
            if k == 0 {
                perm.shuffle(&mut rng);
            }
            let s = k * rows;
            let e = (s + rows).min(train.len());
            k = if e == train.len() { 0 } else { k + 1 };
            let is_b = matches!(i % 4, 1 | 2);
            ws.set_plan(if is_b { b } else { a });
            opt.begin_step();
            let batch = Batch {
                data: train.images.view(),
                pixels: train.pixels.as_ref().map(|p| p.view()),
                labels: &train.labels,
                rows: Rows::Indices(&perm[s..e]),
                augment: None,
                key: 0,
            };
            let t = Instant::now();
            model.train_step(&mut ws, &batch, Update::Apply(&opt));
            let dt = t.elapsed().as_secs_f64() * 1e3;
            if i < 20 || e - s != rows {
                continue;
            }
            pair[is_b as usize] = dt;
            if is_b {
                tb.push(dt)
            } else {
                ta.push(dt)
            };
            if i % 2 == 1 {
                ratios.push(pair[0] / pair[1]);
                // i % 4 == 3: A ran right after B (B B A order).
                order.push(i % 4 == 3);
            }
        }
    });
    let q = |v: &[f64], f: f64| quantile(v, f).expect("timed steps");
    println!("A {a:?}\nB {b:?}");
    println!(
        "A: median {:.3} ms, p10 {:.3} ms ({} steps)",
        q(&ta, 0.5),
        q(&ta, 0.1),
        ta.len()
    );
    println!(
        "B: median {:.3} ms, p10 {:.3} ms ({} steps)",
        q(&tb, 0.5),
        q(&tb, 0.1),
        tb.len()
    );
    println!(
        "speed of B over A, neighbouring steps: median {:.3} [p25 {:.3}, p75 {:.3}]",
        q(&ratios, 0.5),
        q(&ratios, 0.25),
        q(&ratios, 0.75)
    );
    // A step that follows the other variant can pay for what that one left
    // behind (its buffers in the caches, OpenBLAS's threads still awake).
    let by = |after: bool| -> Vec<f64> {
        ratios
            .iter()
            .zip(&order)
            .filter(|(_, &o)| o == after)
            .map(|(r, _)| *r)
            .collect()
    };
    let (after, before) = (by(true), by(false));
    println!(
        "  A right before B: median {:.3} [p25 {:.3}, p75 {:.3}]; A right after B: median {:.3} [p25 {:.3}, p75 {:.3}]",
        q(&before, 0.5),
        q(&before, 0.25),
        q(&before, 0.75),
        q(&after, 0.5),
        q(&after, 0.25),
        q(&after, 0.75)
    );
}
