//! The planner's measurement of two candidates only, the built-in plan
//! against the same with OpenBLAS's threads (`blas_threads`), repeated:
//! per repetition the rounds the last pair played, the round-by-round
//! speed of the OpenBLAS-threaded plan over the built-in one, the choice,
//! and the check that times the two apart once OpenBLAS's workers slept
//! (`plan::measure::Apart`). BENCHMARKS.md, session 26.
//!
//!     MNIST_DIR=... cargo run --release --example apart_probe -- W BUDGET_S REPS
use mnist_mlp::data::{load_dir, LoadOptions};
use mnist_mlp::optim::OptConfig;
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::plan::measure::{measure_among, Target};
use mnist_mlp::plan::Plan;
use mnist_mlp::workloads::Workload;

#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [w, budget, reps] = &args[..] else {
        panic!("usage: apart_probe W BUDGET_S REPS");
    };
    let w = Workload::find(w).expect("a workload T1..T6");
    let budget: f64 = budget.parse().expect("BUDGET_S is a number");
    let reps: usize = reps.parse().expect("REPS is a number");
    let dir = std::env::var_os("MNIST_DIR").expect("MNIST_DIR: the MNIST folder");
    let train = load_dir(dir.as_ref(), &LoadOptions::default())
        .expect("MNIST")
        .train;
    let threads = Threads::new(2, GemmThreading::Split).unwrap();
    let model = w.model(0);
    let opt = OptConfig::new(w.opt, w.lr);
    let rows = w.batch.rows(train.len());
    for _ in 0..reps {
        let target = Target {
            model: &model,
            opt: &opt,
            rows,
            train: &train,
            threads: &threads,
        };
        let blas = Plan {
            blas_threads: true,
            ..Plan::default()
        };
        let m = measure_among(target, vec![Plan::default(), blas], &|_| budget);
        println!(
            "rounds {} round by round {:.3}x, chosen #{}, apart {:?}, {:.2} s",
            m.outcome.paired.len(),
            m.outcome.paired_speedup(),
            m.outcome.chosen,
            m.apart,
            m.seconds
        );
    }
}
