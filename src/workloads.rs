//! The standard throughput workloads: T1..T5 (same definitions as the NumPy
//! reference in `shared/reference/common.py`) and T6 (T3's network and
//! batch with Adam: the optimizer-bound path, which the reference lacks) and the epoch timer used by
//! `mnist-mlp bench` and the criterion benches.
//!
//! One workload = one full pass over the 60,000 training images (forward,
//! backward, update), the shuffle included, data already in memory;
//! samples/s = 60000 / median seconds per epoch after a warm-up epoch.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::data::Dataset;
use crate::nn::{Init, Loss, Mlp, NetSpec, Stats};
use crate::optim::{OptConfig, OptKind};
use crate::parallel::Threads;
use crate::plan::{Choice, Chosen};
use crate::train::{BatchSize, TrainError, Trainer};

/// A standard workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `T1`..`T6`.
    pub id: &'static str,
    /// The network.
    pub layers: &'static str,
    /// Rows per step.
    pub batch: BatchSize,
    /// The optimizer.
    pub opt: OptKind,
    /// The learning rate.
    pub lr: f64,
}

/// T1..T6.
pub const WORKLOADS: [Workload; 6] = [
    Workload {
        id: "T1",
        layers: "784,relu,512,relu,512,relu,256,relu,128,softmax,10",
        batch: BatchSize::N(128),
        opt: OptKind::Sgd,
        lr: 0.01,
    },
    Workload {
        id: "T2",
        layers: "784,relu,50,softmax,10",
        batch: BatchSize::N(100),
        opt: OptKind::Sgd,
        lr: 0.1,
    },
    Workload {
        id: "T3",
        layers: "784,relu,512,relu,512,relu,256,relu,128,softmax,10",
        batch: BatchSize::N(8),
        opt: OptKind::Sgd,
        lr: 0.01,
    },
    Workload {
        id: "T4",
        layers: "784,relu,200,sigmoid,80,softmax,10",
        batch: BatchSize::Full,
        opt: OptKind::Sgd,
        lr: 0.1,
    },
    Workload {
        id: "T5",
        layers: "784,relu,1024,relu,1024,softmax,10",
        batch: BatchSize::N(256),
        opt: OptKind::Adam,
        lr: 1e-3,
    },
    // An adaptive optimizer at batch 8: every step reads and writes every
    // parameter and both moments (memory-bound), and dead units' moments
    // decay towards subnormals (see `optim::flush`).
    Workload {
        id: "T6",
        layers: "784,relu,512,relu,512,relu,256,relu,128,softmax,10",
        batch: BatchSize::N(8),
        opt: OptKind::Adam,
        lr: 1e-3,
    },
];

crate::error::message_error!(
    /// A `--workload` that names none of [`WORKLOADS`] (the message lists them).
    UnknownWorkload
);

impl Workload {
    /// The workload named `id` (any case).
    pub fn find(id: &str) -> Option<&'static Workload> {
        WORKLOADS.iter().find(|w| w.id.eq_ignore_ascii_case(id))
    }
    /// The workload `--workload id` names, or an error that lists them all.
    pub fn named(id: &str) -> Result<&'static Workload, UnknownWorkload> {
        Self::find(id).ok_or_else(|| {
            let ids: Vec<&str> = WORKLOADS.iter().map(|w| w.id).collect();
            UnknownWorkload(format!(
                "--workload: unknown workload `{id}` (expected one of {})",
                ids.join(", ")
            ))
        })
    }
    /// Its network.
    pub fn spec(&self) -> NetSpec {
        NetSpec::parse(self.layers).expect("workload specs are valid")
    }
    /// He-normal weights, zero biases, softmax cross-entropy.
    pub fn model(&self, seed: u64) -> Mlp<f32> {
        Mlp::new(self.spec(), Loss::CrossEntropy, Init::He, seed).expect("valid")
    }
}

/// Synthetic data shaped like MNIST's training set (for machines without it).
pub fn synthetic(n: usize, seed: u64) -> Dataset {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let px: Vec<u8> = (0..n * 784)
        .map(|_| {
            if rng.random_bool(0.2) {
                rng.random()
            } else {
                0
            }
        })
        .collect();
    let labels = (0..n).map(|_| rng.random_range(0..10u8)).collect();
    Dataset::from_u8(n, 28, 28, &px, labels)
}

/// Result of timing a workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// The workload's id.
    pub workload: String,
    /// The machine: CPU model and OpenBLAS's configuration (version,
    /// kernel set).
    pub cpu: String,
    /// OpenBLAS's configuration string.
    pub blas: String,
    /// Threads used.
    pub threads: usize,
    /// How matrix products used them.
    pub threading: crate::parallel::GemmThreading,
    /// The speed choices of the step ([`crate::plan::Plan`]).
    pub plan: crate::plan::Plan,
    /// How the plan was chosen ([`Chosen::to_json`]).
    pub planner: serde_json::Value,
    /// The plan in one line, and the planner's warnings (a bad cache).
    #[serde(skip)]
    pub plan_line: String,
    /// The planner's warnings.
    #[serde(skip)]
    pub plan_warnings: Vec<String>,
    /// The copy of the optimizer's update loop that ran, and the timing
    /// that chose it ([`crate::optim::simd`]); `None` for plain SGD, whose
    /// weight update rides on the weight-gradient product.
    pub opt_loop: Option<crate::optim::simd::Choice>,
    /// Training samples per second (median epoch).
    pub samples_per_s: f64,
    /// Seconds per epoch (median).
    pub sec_per_epoch: f64,
    /// Every timed epoch's seconds.
    pub epoch_secs: Vec<f64>,
    /// The loss of the last step (a sanity check).
    pub final_batch_loss: f64,
    /// Training FLOPs per sample (`6 sum fan_in fan_out`).
    pub flops_per_sample: u64,
    /// `flops_per_sample * samples_per_s`, in GFLOP/s.
    pub gflop_per_s_effective: f64,
    /// The FLOPs per sample a trainer performs (no input gradient for the
    /// first layer): the physical limit's denominator.
    pub performed_flops_per_sample: u64,
    /// `performed_flops_per_sample * samples_per_s`, in GFLOP/s.
    pub gflop_per_s_performed: f64,
    /// Rows of a step (the batch; the training set for full batch).
    pub rows_per_step: usize,
    /// The run against the physical limit (`bench --limit`), if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// Memory the run accounts for: training data (f32 images and their
    /// bytes), parameters, and the trainer's buffers and moments (MiB).
    pub accounted_mib: f64,
    /// Resident memory after the timed epochs, and the process's peak (MiB;
    /// the peak includes loading the data).
    pub rss_mib: Option<f64>,
    /// The process's peak resident memory (MiB).
    pub peak_rss_mib: Option<f64>,
    /// Durations of the timed steps (each but an epoch's first, which
    /// includes the shuffle), in ms: the 10th percentile and the median.
    /// A host's other tenants only ever add time, so the low percentile
    /// resolves small differences that the epoch medians' noise hides.
    /// `None` with one step per epoch (full batch).
    pub step_ms_p10: Option<f64>,
    /// Median step (ms).
    pub step_ms_median: Option<f64>,
    /// How busy other programs and the host (steal) kept the machine
    /// during the timed epochs ([`crate::plan::measure::Busy`]; NumPy's
    /// reference reports the same as `other_cores`); `None` where the
    /// system does not say.
    pub busy: Option<crate::plan::measure::Busy>,
    /// Where a step's thread-time went in one more epoch run with the
    /// step's timers on (`bench --profile`; [`crate::profile`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::profile::StepProfile>,
}

/// A run against the physical limit: this machine's peak sgemm rate over
/// the FLOPs a trainer performs per sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limit {
    /// Each measurement of the peak (GFLOP/s; 2048^3 through the linked
    /// OpenBLAS on the run's threads).
    pub sgemm_gflop_per_s: Vec<f64>,
    /// The limit in samples/s, from the best measurement.
    pub samples_per_s: f64,
    /// The run's samples/s over the limit.
    pub fraction: f64,
    /// The pace of the fastest tenth of the steps over the limit (`None`
    /// with one step per epoch).
    pub fast_steps_fraction: Option<f64>,
}

impl BenchResult {
    /// The share of the CPU time the run's threads wanted that others took
    /// during the timed epochs, where it is above
    /// [`crate::plan::choose::DEFAULT_BUSY`]: such a run's figures say
    /// more about the machine's other load than about this program.
    pub fn disturbed(&self) -> Option<f64> {
        self.busy
            .map(|b| b.short(self.threads))
            .filter(|&s| s > crate::plan::choose::DEFAULT_BUSY)
    }

    /// Records the run against the limit that the peak sgemm measurements
    /// `peaks` (GFLOP/s) give.
    pub fn set_limit(&mut self, peaks: Vec<f64>) {
        let best = peaks.iter().copied().fold(0.0, f64::max);
        let limit = best * 1e9 / self.performed_flops_per_sample as f64;
        self.limit = Some(Limit {
            sgemm_gflop_per_s: peaks,
            samples_per_s: limit,
            fraction: self.samples_per_s / limit,
            fast_steps_fraction: self
                .step_ms_p10
                .map(|ms| self.rows_per_step as f64 / (ms / 1e3) / limit),
        });
    }
}

impl Workload {
    /// A trainer for this workload on `model` and `train`, under the plan
    /// `choice` gives (measured, or cached, as a training run's would be).
    pub fn trainer<'t>(
        &self,
        model: &Mlp<f32>,
        train: &Dataset,
        threads: &'t Threads,
        seed: u64,
        choice: &Choice,
        runs_steps: usize,
    ) -> Result<(Trainer<'t>, Chosen), TrainError> {
        let opt = OptConfig::new(self.opt, self.lr);
        let mut tr = Trainer::new(model, train.len(), self.batch, opt.clone(), seed, threads)?;
        let rows = self.batch.rows(train.len());
        let chosen = crate::plan::choose::for_run(
            choice,
            crate::plan::measure::Target {
                model,
                opt: &opt,
                rows,
                train,
                threads,
            },
            runs_steps,
        );
        tr.set_plan(chosen.plan);
        Ok((tr, chosen))
    }
}

/// Times `epochs` epochs after one warm-up epoch, under the plan `choice`
/// gives; the median gives samples/s. With `profile`, one more epoch runs
/// with the step's timers on ([`BenchResult::profile`]), after the timed
/// ones, which the timers leave alone.
pub fn run(
    w: &Workload,
    train: &Dataset,
    threads: &Threads,
    epochs: usize,
    seed: u64,
    choice: &Choice,
    profile: bool,
) -> Result<BenchResult, TrainError> {
    let mut model = w.model(seed);
    let per_epoch = w.batch.rows(train.len());
    let steps = train.len().div_ceil(per_epoch.max(1)) * (epochs + 1);
    let (mut tr, chosen) = w.trainer(&model, train, threads, seed, choice, steps)?;
    let noop = |_: usize, _: &Stats| {};
    tr.train_epoch(&mut model, train, &noop)?;
    let mut secs = Vec::with_capacity(epochs);
    let mut last = 0.0;
    let per_epoch = tr.steps_per_epoch();
    // Nanoseconds since the epoch's start at the end of each step.
    let ends: Vec<AtomicU64> = (0..per_epoch + 1).map(|_| AtomicU64::new(0)).collect();
    let mut steps_ms = Vec::with_capacity(per_epoch * epochs.max(1));
    let cpu0 = crate::plan::measure::cpu_reading();
    for _ in 0..epochs.max(1) {
        let t = Instant::now();
        let mark = |k: usize, _: &Stats| {
            if let Some(e) = ends.get(k) {
                e.store(t.elapsed().as_nanos() as u64, Relaxed);
            }
        };
        let st = tr.train_epoch(&mut model, train, &mark)?;
        secs.push(t.elapsed().as_secs_f64());
        last = st.mean_loss();
        for k in 2..=per_epoch {
            let d = ends[k]
                .load(Relaxed)
                .saturating_sub(ends[k - 1].load(Relaxed));
            steps_ms.push(d as f64 / 1e6);
        }
    }
    let busy = cpu0
        .zip(crate::plan::measure::cpu_reading())
        .and_then(|(a, b)| crate::plan::measure::Busy::between(&a, &b));
    let profile = if profile {
        let (run, p, wall) = crate::profile::record(|| tr.train_epoch(&mut model, train, &noop));
        run?;
        Some(crate::profile::StepProfile::of(&p, wall, per_epoch))
    } else {
        None
    };
    let med = quantile(&secs, 0.5).expect("at least one timed epoch");
    let fps = w.spec().train_flops_per_sample();
    let performed = w.spec().performed_flops_per_sample();
    let params: usize = model.layers.iter().map(|l| l.w.len() + l.b.len()).sum();
    let data =
        train.images.len() * 4 + train.pixels.as_ref().map_or(0, |p| p.len()) + train.labels.len();
    let accounted = data + params * 4 + tr.bytes();
    Ok(BenchResult {
        workload: w.id.to_string(),
        cpu: crate::plan::cache::cpu_model(),
        blas: crate::blas::config(),
        threads: threads.n(),
        threading: threads.policy(),
        plan: tr.plan(),
        planner: chosen.to_json(),
        plan_line: chosen.line(),
        plan_warnings: chosen.warnings,
        opt_loop: (w.opt != OptKind::Sgd).then(crate::optim::simd::choice),
        samples_per_s: train.len() as f64 / med,
        sec_per_epoch: med,
        epoch_secs: secs,
        final_batch_loss: last,
        flops_per_sample: fps,
        gflop_per_s_effective: train.len() as f64 * fps as f64 / med / 1e9,
        performed_flops_per_sample: performed,
        gflop_per_s_performed: train.len() as f64 * performed as f64 / med / 1e9,
        rows_per_step: w.batch.rows(train.len()),
        limit: None,
        accounted_mib: crate::memory::mib(accounted as u64),
        rss_mib: crate::memory::rss_mib(),
        peak_rss_mib: crate::memory::peak_rss_mib(),
        step_ms_p10: quantile(&steps_ms, 0.1),
        step_ms_median: quantile(&steps_ms, 0.5),
        busy,
        profile,
    })
}

/// The element at fraction `q` of `v` in ascending order (`q = 0.5`: the
/// median, the upper one for an even count); `None` when `v` is empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get((sorted.len() as f64 * q) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_match_the_reference_table() {
        let f: Vec<u64> = WORKLOADS
            .iter()
            .map(|w| w.spec().train_flops_per_sample())
            .collect();
        assert_eq!(
            f,
            vec![4_972_032, 238_200, 4_972_032, 1_041_600, 11_169_792, 4_972_032]
        );
        // The reference's `performed_flops_per_sample` (bench_limit.py).
        let p: Vec<u64> = WORKLOADS
            .iter()
            .map(|w| w.spec().performed_flops_per_sample())
            .collect();
        assert_eq!(
            p,
            vec![4_169_216, 159_800, 4_169_216, 728_000, 9_564_160, 4_169_216]
        );
    }

    #[test]
    fn an_unknown_workload_is_refused_with_the_list_of_every_workload() {
        assert_eq!(Workload::named("t6").unwrap().id, "T6");
        let e = Workload::named("T7").unwrap_err();
        let ids: Vec<String> = (1..=WORKLOADS.len()).map(|i| format!("T{i}")).collect();
        assert_eq!(
            e.message(),
            format!(
                "--workload: unknown workload `T7` (expected one of {})",
                ids.join(", ")
            )
        );
    }

    #[test]
    fn a_run_reports_its_epochs_and_step_times() {
        let data = synthetic(3_000, 1);
        let threads = Threads::new(1, crate::parallel::GemmThreading::Split).unwrap();
        let t2 = Workload::find("T2").unwrap();
        let r = run(t2, &data, &threads, 2, 7, &Choice::Default, false).unwrap();
        assert_eq!(r.epoch_secs.len(), 2);
        assert!(r.samples_per_s > 0.0 && r.final_batch_loss.is_finite());
        let (p10, med) = (r.step_ms_p10.unwrap(), r.step_ms_median.unwrap());
        assert!(0.0 < p10 && p10 <= med, "p10 {p10} median {med}");
        // 30 steps per epoch, the first of each left out: 29 steps at the
        // median time fit in the longest epoch (with room for the spread).
        assert!(29.0 * med / 1e3 <= r.epoch_secs.iter().copied().fold(0.0, f64::max) * 1.5);
        // Against a limit: peaks of 10 and 20 GFLOP/s, the best counts.
        let mut r = r;
        assert_eq!(
            (r.rows_per_step, r.performed_flops_per_sample),
            (100, 159_800)
        );
        r.set_limit(vec![10.0, 20.0]);
        let l = r.limit.clone().unwrap();
        assert_eq!(l.samples_per_s, 20e9 / 159_800.0);
        assert_eq!(l.fraction, r.samples_per_s / l.samples_per_s);
        let fast = 100.0 / (p10 / 1e3) / l.samples_per_s;
        assert_eq!(l.fast_steps_fraction, Some(fast));
        assert!(
            fast >= l.fraction * 0.5,
            "fast steps {fast} vs epochs {}",
            l.fraction
        );
        // The machine's other load during the timed epochs (none where the
        // epochs were too short to tell), and when it makes a run disturbed.
        if let Some(b) = r.busy {
            assert!(
                b.cpus >= 1 && (0.0..=b.cpus as f64).contains(&b.others),
                "{b:?}"
            );
        }
        let load = |others| crate::plan::measure::Busy {
            cpus: 2,
            others,
            steal: 0.0,
        };
        r.busy = Some(load(1.0));
        assert_eq!(r.disturbed(), None, "one thread had the other CPU");
        r.threads = 2;
        assert_eq!(r.disturbed(), Some(0.5));
        r.busy = Some(load(0.1));
        assert_eq!(r.disturbed(), None, "5% short is not disturbed");
        // One step per epoch: no step times.
        let t4 = Workload::find("T4").unwrap();
        let mut r = run(t4, &data, &threads, 1, 7, &Choice::Default, false).unwrap();
        assert_eq!((r.step_ms_p10, r.step_ms_median), (None, None));
        assert_eq!(r.rows_per_step, 3_000);
        r.set_limit(vec![10.0]);
        assert_eq!(r.limit.unwrap().fast_steps_fraction, None);
    }
}
