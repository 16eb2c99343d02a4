//! The region timers account for a step: every kind of work gets time,
//! the regions hold at least the work done in them, and nothing is
//! recorded while they are off (a binary of its own: the timers are global).

use mnist_mlp::profile::{enable, snapshot};

use mnist_mlp::nn::{Batch, Init, Loss, Mlp, NetSpec, Rows, Update, Workspace};
use mnist_mlp::optim::{OptConfig, OptKind, Optimizer};
use mnist_mlp::parallel::{GemmThreading, Threads};

#[test]
fn a_profiled_step_accounts_for_every_kind_of_work() {
    let threads = Threads::new(2, GemmThreading::Split).unwrap();
    let spec = NetSpec::parse("784,relu,64,relu,32,softmax,10").unwrap();
    let mut net = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 0).unwrap();
    let mut opt = Optimizer::new(OptConfig::new(OptKind::Adam, 1e-3), &net.param_shapes());
    let data = mnist_mlp::workloads::synthetic(64, 1);
    let idx: Vec<u32> = (0..64).rev().collect();
    let mut ws = Workspace::with_plan(&spec, 64, 2, mnist_mlp::plan::Plan::default());
    let batch = Batch {
        data: data.images.view(),
        pixels: data.pixels.as_ref().map(|p| p.view()),
        labels: &data.labels,
        rows: Rows::Indices(&idx),
        augment: None,
        key: 0,
    };
    let mut step = |on: bool| {
        enable(on);
        threads.install(|| {
            opt.begin_step();
            net.train_step(&mut ws, &batch, Update::Apply(&opt));
        });
        let p = snapshot();
        enable(false);
        p
    };
    step(true);
    let p = step(true);
    for (name, s) in &p.busy {
        assert!(*s > 0.0, "{name}: no time recorded: {p:?}");
    }
    assert_eq!(p.regions, 2, "one row region, one weight region");
    assert!(p.held >= p.busy_total() * 0.999, "{p:?}");
    assert!(p.held <= 2.0 * p.region_wall * 1.001);
    // The waits before and after the blocks are part of the waiting, and
    // the region's first block starts at once.
    assert!(p.start_wait >= 0.0 && p.end_wait >= 0.0, "{p:?}");
    assert!(
        p.start_wait + p.end_wait <= p.waiting() * 1.001 + 1e-6,
        "{p:?}"
    );
    // Off: nothing recorded (the sums stay as they were).
    let off = step(false);
    assert_eq!(off.regions, p.regions);
}
