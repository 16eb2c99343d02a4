//! Criterion benches of the standard workloads T1..T6: one iteration = one
//! epoch over the 60,000 training images (shuffle, forward, backward,
//! update), so criterion's throughput is samples/s.
//!
//! Data: real MNIST from `MNIST_DIR` when present, else synthetic data of the
//! same shape (a notice says so). Threads: `MLP_BENCH_THREADS` (default: all
//! cores), policy `MLP_BENCH_THREADING` (`split` or `blas`, default `split`).
//! Plan: as `train --plan auto` (the cached choice for this machine, else
//! measured and cached); `MNIST_MLP_PLAN=default` or a plan file pins it.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_mlp::data::{load_dir, Dataset, LoadOptions};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::plan::Choice;
use mnist_mlp::workloads::{synthetic, WORKLOADS};

/// As in the binary: large buffers on transparent huge pages.
#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

fn train_set() -> Dataset {
    if let Some(d) = std::env::var_os("MNIST_DIR") {
        match load_dir(d.as_ref(), &LoadOptions::default()) {
            Ok(s) => return s.train,
            Err(e) => {
                eprintln!("notice: cannot load MNIST from MNIST_DIR ({e}); using synthetic data")
            }
        }
    } else {
        eprintln!("notice: MNIST_DIR not set; benchmarking on synthetic data of MNIST's shape");
    }
    synthetic(60_000, 0)
}

pub fn threads_from_env() -> Threads {
    let n = std::env::var("MLP_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let policy = std::env::var("MLP_BENCH_THREADING")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(GemmThreading::Split);
    Threads::new(n, policy).expect("thread pool")
}

fn workloads(c: &mut Criterion) {
    let train = train_set();
    let threads = threads_from_env();
    let choice = Choice::from_flag(None).expect("MNIST_MLP_PLAN: auto, default or a plan file");
    let mut g = c.benchmark_group("workload");
    g.throughput(Throughput::Elements(train.len() as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(5));
    for w in &WORKLOADS {
        let mut model = w.model(0);
        // The plan a training run would use here: cached, else measured.
        let (mut tr, chosen) = w
            .trainer(&model, &train, &threads, 0, &choice, 1000)
            .expect("trainer");
        eprintln!("{}: {}", w.id, chosen.line());
        let noop = |_: usize, _: &mnist_mlp::nn::Stats| {};
        let id = format!("{}/{}threads", w.id, threads.n());
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    tr.train_epoch(&mut model, &train, &noop).expect("finite");
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, workloads);
criterion_main!(benches);
