//! Where a workload's step time goes at each thread count: per kind of
//! work (gather, forward, output and loss, back-propagation, weight
//! gradient, optimizer), waiting at the joins of the parallel regions (in
//! parentheses: before a block started, and after it ended while the
//! region's slowest block ran), and the serial part between them, in
//! thread-milliseconds per step ([`mnist_mlp::profile`]).
//!
//!     MNIST_DIR=../shared/datasets/mnist cargo run --release --example profile -- T5 1 2
//!
//! The first argument is a workload (T1..T6) or `train`: the network,
//! batch and optimizer of `mnist-mlp train`'s defaults.
//!
//! Each thread count: one warm-up epoch, then `EPOCHS` (default 2) profiled
//! epochs, under the plan `--plan auto` would choose (MNIST_MLP_PLAN pins
//! one). With `n` threads a step of wall time S gives n x S thread-ms; the
//! row "ideal" is the 1-thread figure over n.

use mnist_mlp::data::{load_dir, LoadOptions};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::plan::Choice;
use mnist_mlp::profile::{self, StepProfile, WORK};
use mnist_mlp::workloads::{synthetic, Workload};

#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let w = match args.first().map(|s| s.as_str()) {
        // The network, batch and optimizer `mnist-mlp train` uses by
        // default, on MNIST's shape (no workload of its own).
        Some(s) if s.eq_ignore_ascii_case("train") => {
            let d = mnist_mlp::config::RunConfig::default()
                .settings()
                .expect("the defaults are valid");
            let spec = d.network(784, 10).expect("the default network");
            &*Box::leak(Box::new(Workload {
                id: "train",
                layers: Box::leak(spec.to_string().into_boxed_str()),
                batch: d.batch,
                opt: d.opt.kind,
                lr: d.opt.lr,
            }))
        }
        s => Workload::find(s.unwrap_or("T5")).expect("a workload T1..T6 or `train`"),
    };
    let counts: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|s| s.parse().expect("thread counts"))
            .collect()
    } else {
        vec![1, 2]
    };
    let epochs: usize = std::env::var("EPOCHS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let train = match std::env::var_os("MNIST_DIR") {
        Some(d) => {
            load_dir(d.as_ref(), &LoadOptions::default())
                .expect("MNIST")
                .train
        }
        None => {
            eprintln!("MNIST_DIR not set: synthetic data");
            synthetic(60_000, 0)
        }
    };
    let choice = Choice::from_flag(None).expect("MNIST_MLP_PLAN");
    println!(
        "{} ({}), {} epochs profiled per thread count; {}; {}",
        w.id,
        w.layers,
        epochs,
        mnist_mlp::plan::cache::cpu_model(),
        mnist_mlp::blas::config()
    );
    let mut rows: Vec<(usize, StepProfile)> = Vec::new();
    for &n in &counts {
        let threads = Threads::new(n, GemmThreading::Split).expect("threads");
        let mut model = w.model(0);
        let (mut tr, chosen) = w
            .trainer(&model, &train, &threads, 0, &choice, 1000)
            .expect("trainer");
        println!("{n} threads: {}", chosen.line());
        let noop = |_: usize, _: &mnist_mlp::nn::Stats| {};
        tr.train_epoch(&mut model, &train, &noop).expect("finite");
        let ((), p, wall) = profile::record(|| {
            for _ in 0..epochs {
                tr.train_epoch(&mut model, &train, &noop).expect("finite");
            }
        });
        rows.push((n, StepProfile::of(&p, wall, tr.steps_per_epoch() * epochs)));
    }
    let mut head = String::from("| threads | step wall ms | thread-ms per step |");
    for w in WORK {
        head += &format!(" {} |", w.name());
    }
    head += " waiting at joins (to start + at the end) | serial (outside regions) |";
    println!("{head}");
    println!("{}", "| --- ".repeat(5 + WORK.len()) + "|");
    // The cells after the thread count, for a row of `step_ms` per step
    // on `n` threads.
    let cells = |r: &StepProfile, step_ms: f64, n: usize| {
        let mut line = format!(" {step_ms:.3} | {:.3} |", step_ms * n as f64);
        for (_, v) in &r.work_ms {
            line += &format!(" {v:.3} |");
        }
        line + &format!(
            " {:.3} ({:.3} + {:.3}) | {:.3} |",
            r.waiting_ms, r.start_wait_ms, r.end_wait_ms, r.serial_ms
        )
    };
    let one = rows.iter().find(|r| r.0 == 1).map(|r| r.1.clone());
    for (n, r) in &rows {
        let n = *n;
        println!("| {n} |{}", cells(r, r.step_ms, n));
        if let (Some(o), true) = (&one, n > 1) {
            // The one-thread step's thread-time spread over n threads.
            println!("| {n}, ideal |{}", cells(o, o.step_ms / n as f64, n));
        }
    }
}
