//! The training step allocates nothing: a counting global allocator sees
//! zero allocations across whole epochs of steps once the trainer is set up,
//! under every plan the planner may choose.
//!
//! It counts the allocations of the threads that run the trainer (every
//! pool thread, and the test's own), not those of the test harness (whose
//! main thread allocates a notice when a test runs for over 60 s, as it
//! does under an emulator). `NO_ALLOC_TRACE=1` prints a backtrace of each
//! allocation counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mnist_mlp::data::augment::{Augment, Augmenter};
use mnist_mlp::nn::{Init, Loss, Mlp, NetSpec, Regularizers};
use mnist_mlp::optim::{OptConfig, OptKind};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::plan::{candidates, measure::shape_of, Plan};
use mnist_mlp::train::{BatchSize, Trainer};
use mnist_mlp::workloads::synthetic;

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread's allocations count (the trainer's threads).
    static WATCHED: Cell<bool> = const { Cell::new(false) };
    /// Inside [`count`] (its backtrace allocates).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// Counts an allocation of a watched thread while the count is on.
fn count() {
    if !ON.load(Ordering::Relaxed) || !WATCHED.with(Cell::get) || COUNTING.with(|c| c.replace(true))
    {
        return;
    }
    COUNT.fetch_add(1, Ordering::Relaxed);
    if std::env::var_os("NO_ALLOC_TRACE").is_some() {
        eprintln!(
            "allocation:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
    }
    COUNTING.with(|c| c.set(false));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn training_epochs_allocate_nothing() {
    let data = synthetic(1000, 3);
    // Every pool lives to the end: a dropped pool's threads exit while the
    // next pool is measured, and the counter sees every thread.
    let pools: Vec<(GemmThreading, usize, Threads)> = [
        (GemmThreading::Split, 2),
        (GemmThreading::Split, 1),
        (GemmThreading::Blas, 2),
    ]
    .into_iter()
    .map(|(policy, n)| (policy, n, Threads::new(n, policy).unwrap()))
    .collect();
    WATCHED.with(|w| w.set(true));
    for (_, _, threads) in &pools {
        threads.on_each(|| WATCHED.with(|w| w.set(true)));
    }
    for (policy, n, threads) in &pools {
        let (policy, n, threads) = (*policy, *n, threads);
        for (layers, batch, opt) in [
            (
                "784,relu,64,sigmoid,32,softmax,10",
                BatchSize::N(100),
                OptKind::Sgd,
            ),
            ("784,tanh,50,softmax,10", BatchSize::N(33), OptKind::Adam),
            ("784,relu,40,sigmoid,10", BatchSize::Full, OptKind::Nesterov),
            // Dropout (input and hidden), with max-norm, label smoothing
            // and augmentation below.
            (
                "784,dropout:0.2,relu,64,dropout:0.5,tanh,32,softmax,10",
                BatchSize::N(100),
                OptKind::Adam,
            ),
        ] {
            let spec = NetSpec::parse(layers).unwrap();
            let loss = if spec.output == mnist_mlp::nn::OutputAct::Softmax {
                Loss::CrossEntropy
            } else {
                Loss::SquaredError
            };
            let mut model = Mlp::<f32>::new(spec, loss, Init::Auto, 0).unwrap();
            let mut tr = Trainer::new(
                &model,
                data.len(),
                batch,
                OptConfig::new(opt, 0.01),
                0,
                threads,
            )
            .unwrap();
            if model.spec.has_dropout() {
                model.reg = Regularizers {
                    label_smoothing: 0.1,
                    max_norm: Some(2.0),
                };
                let aug = Augment::parse(&["affine".into(), "elastic".into()]).unwrap();
                tr.set_augment(Augmenter::new(aug, 28, 28));
            }
            let noop = |_: usize, _: &mnist_mlp::nn::Stats| {};
            // Every plan the planner may choose for this shape, from a base
            // with row chunks short enough for the full batch (1000 rows,
            // read in place and converted from its bytes a chunk at a time).
            let shape = shape_of(&model, batch.rows(data.len()), threads);
            let base = Plan {
                row_chunk: 64,
                ..Plan::default()
            };
            for plan in candidates(base, &shape) {
                tr.set_plan(plan);
                tr.train_epoch(&mut model, &data, &noop).unwrap(); // warm-up: lazy buffers, thread start-up
                                                                   // Inside the pool already, so that entering it for each
                                                                   // epoch does not queue a job on rayon's injector (which
                                                                   // allocates a block every 63 jobs, whatever the job does).
                threads.install(|| {
                    COUNT.store(0, Ordering::SeqCst);
                    ON.store(true, Ordering::SeqCst);
                    for _ in 0..2 {
                        tr.train_epoch(&mut model, &data, &noop).unwrap();
                    }
                    ON.store(false, Ordering::SeqCst);
                });
                let n_alloc = COUNT.load(Ordering::SeqCst);
                assert_eq!(
                    n_alloc, 0,
                    "{layers} batch {batch} {opt:?} {policy:?}x{n} plan {plan}: {n_alloc} allocations in 2 epochs"
                );
            }
        }
    }
}
