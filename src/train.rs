//! The training loop: epochs of shuffled mini-batches (or full batch), with
//! per-epoch train/test loss, accuracy, time and samples/s.
//!
//! Everything the loop needs is allocated before the first step (workspaces,
//! permutation, optimizer state); a step allocates nothing.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::checkpoint::{NamedTensor, StateError};
use crate::data::Dataset;
use crate::nn::{Batch, Mlp, Rows, Stats, Update, Workspace};
use crate::optim::{OptConfig, Optimizer};
use crate::parallel::Threads;
use crate::plan::Plan;
use crate::schedule::Schedule;

/// Mini-batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSize {
    /// Mini-batches of this many samples (the last one may be smaller).
    N(usize),
    /// The whole training set in every step.
    Full,
}

crate::error::message_error!(
    /// A `--batch-size` value that is neither a positive count nor `full`.
    BatchSizeError
);

impl BatchSize {
    /// A positive count, or `full` (any case).
    pub fn parse(s: &str) -> Result<Self, BatchSizeError> {
        if s.eq_ignore_ascii_case("full") {
            return Ok(BatchSize::Full);
        }
        match s.parse::<usize>() {
            Ok(0) => Err("--batch-size must be at least 1 (or `full`)".into()),
            Ok(n) => Ok(BatchSize::N(n)),
            Err(_) => Err(BatchSizeError(format!(
                "--batch-size: `{s}` is neither a positive integer nor `full`"
            ))),
        }
    }
    /// Rows per step for a training set of `n` samples.
    pub fn rows(self, n: usize) -> usize {
        match self {
            BatchSize::N(b) => b.min(n),
            BatchSize::Full => n,
        }
    }
}

impl std::fmt::Display for BatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSize::N(n) => write!(f, "{n}"),
            BatchSize::Full => write!(f, "full"),
        }
    }
}

/// A number printed plainly when moderate, in exponent form otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Num(pub f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Round to 6 significant digits first (0.003 / 10 is not 0.0003 in binary).
        let x: f64 = format!("{:.5e}", self.0).parse().unwrap_or(self.0);
        let a = x.abs();
        if a == 0.0 || (1e-4..1e6).contains(&a) {
            write!(f, "{x}")
        } else {
            write!(f, "{x:e}")
        }
    }
}

/// Why training stopped early.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error(
        "training diverged: the loss became {loss} at epoch {epoch}, step {step} (optimizer {opt}, learning rate {lr} at that step). \
         The learning rate is most likely too high for this optimizer and initialization: try --lr {suggest} \
         (or a smaller --init scale)"
    )]
    /// The loss became NaN or infinite.
    NonFinite {
        /// The epoch.
        epoch: usize,
        /// The step (0-based, over the run).
        step: u64,
        /// The loss.
        loss: f64,
        /// The optimizer.
        opt: &'static str,
        /// The step's learning rate.
        lr: Num,
        /// The `--lr` to try instead.
        suggest: Num,
    },
    /// A setting that cannot be used.
    #[error("{0}")]
    Config(String),
    /// The data does not fit the model (input width, labels).
    #[error("{0}")]
    Data(String),
    /// Stopped on request between two steps; the epoch is left partial
    /// (a checkpoint holds it).
    #[error("stopped in epoch {epoch} after step {steps_done} of {steps}")]
    Stopped {
        /// The epoch under way.
        epoch: usize,
        /// Its steps done.
        steps_done: usize,
        /// Its steps in all.
        steps: usize,
    },
    /// Evaluation gave a NaN or infinite loss although training did not:
    /// the model's outputs overflow on that set.
    #[error(
        "evaluation after epoch {epoch} gave a non-finite {set} loss ({loss}): the model's outputs overflow (largest |weight| {max_weight}); \
         the run stops here (checkpoints written so far are intact). Lower --lr, or bound the weights with --max-norm or --weight-decay"
    )]
    NonFiniteEval {
        /// The epoch.
        epoch: usize,
        /// `test` or `validation`.
        set: &'static str,
        /// The loss.
        loss: f64,
        /// The largest absolute weight of the model.
        max_weight: Num,
    },
}

/// What a run will allocate besides its data, estimated from the network
/// before anything is allocated (so that an impossible run is refused
/// with the figure, not killed by the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The model, its gradients, and the copy the planner measures on.
    pub parameters: u64,
    /// The optimizer's moments (and the planner copy's).
    pub optimizer: u64,
    /// Early stopping's best weights, and a checkpoint's encoding.
    pub copies: u64,
    /// Activation and delta buffers of the step and of evaluation.
    pub buffers: u64,
}

impl MemoryEstimate {
    /// For `spec` trained on `rows`-row steps with an optimizer of `slots`
    /// moments per parameter, with or without early stopping.
    pub fn of(spec: &crate::nn::NetSpec, rows: usize, slots: usize, early: bool) -> Self {
        let p = 4 * spec.params() as u64;
        let units: u64 = spec.widths.iter().map(|&w| w as u64).sum();
        let slots = slots as u64;
        Self {
            parameters: 3 * p,
            optimizer: 2 * slots * p,
            copies: (u64::from(early) + 1 + slots) * p,
            buffers: 4 * 4 * units * (rows as u64 + EVAL_CHUNK as u64),
        }
    }

    /// Bytes in all.
    pub fn total(&self) -> u64 {
        self.parameters + self.optimizer + self.copies + self.buffers
    }
}

impl std::fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::memory::human;
        write!(
            f,
            "parameters and gradients {}, optimizer state {}, copies {}, buffers {}",
            human(self.parameters),
            human(self.optimizer),
            human(self.copies),
            human(self.buffers)
        )
    }
}

/// The largest absolute parameter of `model` (weights and biases).
pub fn max_abs_param(model: &Mlp<f32>) -> f32 {
    model
        .layers
        .iter()
        .flat_map(|l| l.w.iter().chain(l.b.iter()))
        .fold(0.0f32, |m, &v| m.max(v.abs()))
}

/// Checks that `data` fits `model`: as many features as the model's inputs,
/// every label below its number of outputs. `what` names the set in the
/// error (`training set`).
pub fn check_dataset<T: crate::real::Real>(
    model: &Mlp<T>,
    data: &Dataset,
    what: &str,
) -> Result<(), TrainError> {
    let (input, classes) = (model.spec.input(), model.spec.output_width());
    if data.features() != input {
        return Err(TrainError::Data(format!(
            "{what}: samples have {} features ({}x{} images), but the network's input layer takes {input}",
            data.features(),
            data.rows,
            data.cols
        )));
    }
    if let Some(i) = data.labels.iter().position(|&l| l as usize >= classes) {
        let l = data.labels[i];
        return Err(TrainError::Data(format!(
            "{what}: sample {i} has label {l}, but the network has {classes} outputs (labels 0..={}); \
             its output layer needs at least {} units",
            classes - 1,
            l as usize + 1
        )));
    }
    Ok(())
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Mean loss and accuracy over the epoch's mini-batches (as they trained).
    pub train_loss: f64,
    /// Share of training samples classified right (as they trained).
    pub train_accuracy: f64,
    /// Test loss after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Validation loss (with a validation split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Training time of the epoch (shuffle and steps, not evaluation).
    pub seconds: f64,
    /// Seconds of evaluation.
    pub eval_seconds: f64,
    /// Training samples per second.
    pub samples_per_s: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Resident memory after the epoch, and the process's peak so far (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_mib: Option<f64>,
    /// The process's peak resident memory so far (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
}

/// What a [`Trainer`] needs, besides the model and its configuration, to
/// continue a run exactly where it stopped.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Epochs completed.
    pub epoch: usize,
    /// Steps taken (the learning-rate schedule's position).
    pub step: u64,
    /// The optimizer's step count (Adam's bias correction).
    pub optimizer_step: u64,
    /// Position of the shuffling RNG (ChaCha8 word position; stored as a
    /// decimal string).
    #[serde(with = "decimal")]
    pub rng_word_pos: u128,
    /// An epoch stopped between two steps (Ctrl-C), to be finished first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// A `u128` as a decimal string in JSON (numbers past 2^53 do not survive
/// every JSON reader); a string that is not one fails the whole state.
mod decimal {
    pub fn serialize<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        s.parse().map_err(|_| {
            serde::de::Error::custom(format!("bad RNG position `{s}` (not a decimal integer)"))
        })
    }
}

/// An epoch stopped after some of its steps: enough to finish it exactly
/// as it would have gone (its permutation is drawn again from the RNG
/// position it started at; the later steps' keys come from the step
/// count).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartialEpoch {
    /// Steps of the epoch done.
    pub steps_done: usize,
    /// The shuffling RNG's position when the epoch started (stored as a
    /// decimal string).
    #[serde(with = "decimal")]
    pub rng_word_pos_at_start: u128,
    /// The epoch's running figures over the steps done (stored as
    /// `loss_sum`, `correct`, `samples` beside the fields above).
    #[serde(flatten)]
    pub stats: Stats,
}

/// Owns everything a run needs besides the model: optimizer state, buffers,
/// the shuffling RNG and the thread pool.
pub struct Trainer<'t> {
    /// The optimizer and its state.
    pub opt: Optimizer<f32>,
    /// Rows per step.
    pub batch: BatchSize,
    /// The thread pool the steps run in.
    pub threads: &'t Threads,
    /// Learning-rate schedule over [`Trainer::window`] (by default all of
    /// `total_epochs`).
    pub schedule: Schedule,
    /// Epochs of the run.
    pub total_epochs: usize,
    /// The epochs the schedule spans; `None`: `[0, total_epochs)`.
    pub window: Option<crate::schedule::Window>,
    base_lr: f64,
    ws: Workspace<f32>,
    eval_ws: Workspace<f32>,
    perm: Vec<u32>,
    rng: ChaCha8Rng,
    /// The run's seed: with the step number, the key of each step's
    /// dropout masks and augmentations.
    seed: u64,
    /// Augmentation of the training samples (`--augment`), if any.
    augment: Option<crate::data::augment::Augmenter>,
    /// Epochs completed.
    pub epoch: usize,
    /// Steps taken.
    pub step: u64,
    /// The epoch under way, when it was stopped between steps.
    partial: Option<PartialEpoch>,
}

/// `layers.{i}.weight` / `layers.{i}.bias` for parameter tensor `k`.
fn param_name(k: usize) -> String {
    format!(
        "layers.{}.{}",
        k / 2,
        if k % 2 == 0 { "weight" } else { "bias" }
    )
}

/// Shapes of the optimizer's per-tensor state as stored (biases 1-D).
fn optimizer_tensor_shapes(model: &Mlp<f32>) -> Vec<Vec<usize>> {
    model
        .layers
        .iter()
        .flat_map(|l| [vec![l.fan_in(), l.fan_out()], vec![l.fan_out()]])
        .collect()
}

/// Rows per evaluation chunk.
pub const EVAL_CHUNK: usize = 2000;

impl<'t> Trainer<'t> {
    /// Sets up training of `model` on `n_train` samples.
    pub fn new(
        model: &Mlp<f32>,
        n_train: usize,
        batch: BatchSize,
        opt: OptConfig,
        seed: u64,
        threads: &'t Threads,
    ) -> Result<Self, TrainError> {
        opt.validate().map_err(|e| TrainError::Config(e.into()))?;
        if n_train == 0 {
            return Err(TrainError::Config("the training set is empty".into()));
        }
        let rows = batch.rows(n_train);
        let blocks = threads.blocks();
        Ok(Self {
            base_lr: opt.lr,
            opt: Optimizer::new(opt, &model.param_shapes()),
            batch,
            threads,
            schedule: Schedule::Constant,
            total_epochs: 1,
            window: None,
            ws: Workspace::new(&model.spec, rows, blocks),
            eval_ws: Workspace::new(&model.spec, EVAL_CHUNK, blocks),
            perm: (0..n_train as u32).collect(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            partial: None,
            seed,
            augment: None,
            epoch: 0,
            step: 0,
        })
    }

    /// The state to checkpoint: counters, RNG position and the optimizer's
    /// moments as named tensors (`optimizer.layers.{i}.{weight|bias}.{slot}`).
    pub fn snapshot(&self, model: &Mlp<f32>) -> (TrainerState, Vec<NamedTensor>) {
        let state = TrainerState {
            epoch: self.epoch,
            step: self.step,
            optimizer_step: self.opt.t,
            rng_word_pos: self.rng.get_word_pos(),
            partial: self.partial.clone(),
        };
        let mut tensors = Vec::new();
        for (k, shape) in optimizer_tensor_shapes(model).into_iter().enumerate() {
            for (slot, a) in self.opt.cfg.kind.slot_names().iter().zip(self.opt.state(k)) {
                tensors.push(NamedTensor {
                    name: format!("optimizer.{}.{slot}", param_name(k)),
                    shape: shape.clone(),
                    data: a.iter().copied().collect(),
                });
            }
        }
        (state, tensors)
    }

    /// Restores what [`Trainer::snapshot`] saved, checking every shape.
    pub fn restore(
        &mut self,
        model: &Mlp<f32>,
        state: &TrainerState,
        tensors: &[NamedTensor],
    ) -> Result<(), StateError> {
        let kind = self.opt.cfg.kind;
        for (k, shape) in optimizer_tensor_shapes(model).into_iter().enumerate() {
            for (j, slot) in kind.slot_names().iter().enumerate() {
                let name = format!("optimizer.{}.{slot}", param_name(k));
                let t = tensors.iter().find(|t| t.name == name).ok_or_else(|| {
                    format!("missing tensor `{name}` (optimizer {})", kind.name())
                })?;
                if t.shape != shape {
                    return Err(StateError(format!(
                        "tensor `{name}` has shape {:?}, expected {shape:?}",
                        t.shape
                    )));
                }
                let dst = &mut self.opt.state_mut(k)[j];
                for (d, &v) in dst.iter_mut().zip(&t.data) {
                    *d = v;
                }
            }
        }
        self.rng.set_word_pos(state.rng_word_pos);
        self.epoch = state.epoch;
        self.step = state.step;
        self.opt.t = state.optimizer_step;
        self.partial = state.partial.clone();
        Ok(())
    }

    /// The epoch under way when it was stopped between steps (restored
    /// from a checkpoint, or left by [`Trainer::train_epoch_until`]).
    pub fn partial(&self) -> Option<&PartialEpoch> {
        self.partial.as_ref()
    }

    /// Augments every training sample with `aug` from now on; each pool
    /// thread's scratch is made ready here, so that steps allocate nothing.
    pub fn set_augment(&mut self, aug: crate::data::augment::Augmenter) {
        self.threads.on_each(|| aug.reserve());
        self.augment = Some(aug);
    }

    /// The plan the trainer's steps and evaluations follow.
    pub fn plan(&self) -> Plan {
        self.ws.plan()
    }

    /// Follows `plan` from now on (the trainer starts with
    /// [`Plan::from_env`]).
    pub fn set_plan(&mut self, plan: Plan) {
        self.ws.set_plan(plan);
        self.eval_ws.set_plan(plan);
    }

    /// Bytes the trainer holds: workspaces, optimizer moments, permutation.
    pub fn bytes(&self) -> usize {
        self.ws.bytes() + self.eval_ws.bytes() + self.opt.bytes() + 4 * self.perm.len()
    }

    /// Steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        let n = self.perm.len();
        n.div_ceil(self.batch.rows(n))
    }

    /// One pass over `train`: shuffle, then every mini-batch. `on_step` is
    /// called after each step with the number of steps done in this epoch
    /// and the epoch's statistics so far (loss, accuracy, samples).
    /// Errors: data that does not fit the model ([`check_dataset`]), a
    /// non-finite loss.
    pub fn train_epoch(
        &mut self,
        model: &mut Mlp<f32>,
        train: &Dataset,
        on_step: &(dyn Fn(usize, &Stats) + Sync),
    ) -> Result<Stats, TrainError> {
        self.train_epoch_until(model, train, on_step, &|| false)
    }

    /// [`Trainer::train_epoch`], stopping between two steps when `stop`
    /// says so: then the epoch is left partial (a checkpoint taken now
    /// holds it, and the next call, here or after a resume, finishes it
    /// exactly as an uninterrupted epoch) and the error is
    /// [`TrainError::Stopped`].
    pub fn train_epoch_until(
        &mut self,
        model: &mut Mlp<f32>,
        train: &Dataset,
        on_step: &(dyn Fn(usize, &Stats) + Sync),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Stats, TrainError> {
        if train.len() != self.perm.len() {
            return Err(TrainError::Data(format!(
                "training set: {} samples, but this trainer was made for {}",
                train.len(),
                self.perm.len()
            )));
        }
        check_dataset(model, train, "training set")?;
        let epoch = self.epoch + 1;
        let n = train.len();
        let rows = self.batch.rows(n);
        let data = train.images.view();
        let pixels = train.pixels.as_ref().map(|p| p.view());
        let labels = &train.labels[..];
        let per_epoch = n.div_ceil(rows) as u64;
        let window = self
            .window
            .unwrap_or(crate::schedule::Window::whole(self.total_epochs.max(epoch)));
        let (schedule, base, seed) = (self.schedule, self.base_lr, self.seed);
        // A stopped epoch starts again from its RNG position and steps.
        let resume = self.partial.take();
        if let Some(p) = &resume {
            self.rng.set_word_pos(p.rng_word_pos_at_start);
        }
        let rng_at_start = self.rng.get_word_pos();
        let (skip, mut total) = resume
            .as_ref()
            .map_or((0, Stats::default()), |p| (p.steps_done, p.stats));
        let Self {
            opt,
            threads,
            ws,
            perm,
            rng,
            step,
            augment,
            partial,
            ..
        } = self;
        let full = rows == n;
        let result = threads.install(|| {
            if !full {
                // A fresh permutation each epoch (from the identity, so that
                // the RNG state alone determines it).
                for (i, p) in perm.iter_mut().enumerate() {
                    *p = i as u32;
                }
                perm.shuffle(rng);
            }
            for (k, s) in (0..n).step_by(rows).enumerate().skip(skip) {
                if k > skip && stop() {
                    *partial = Some(PartialEpoch {
                        steps_done: k,
                        rng_word_pos_at_start: rng_at_start,
                        stats: total,
                    });
                    return Err(TrainError::Stopped {
                        epoch,
                        steps_done: k,
                        steps: per_epoch as usize,
                    });
                }
                let e = (s + rows).min(n);
                let sel = if full {
                    Rows::Range(s, e)
                } else {
                    Rows::Indices(&perm[s..e])
                };
                opt.cfg.lr = window.lr(&schedule, base, *step, per_epoch);
                opt.begin_step();
                let st = model.train_step(
                    ws,
                    &Batch {
                        data,
                        pixels,
                        labels,
                        rows: sel,
                        key: crate::nn::dropout::step_key(seed, *step),
                        augment: augment.as_ref(),
                    },
                    Update::Apply(opt),
                );
                *step += 1;
                if !st.loss_sum.is_finite() {
                    return Err(TrainError::NonFinite {
                        epoch,
                        step: *step,
                        loss: st.loss_sum,
                        opt: opt.cfg.kind.name(),
                        lr: Num(opt.cfg.lr),
                        // A --lr value: a tenth of the base rate the
                        // schedule starts from, not of the scheduled one.
                        suggest: Num(base / 10.0),
                    });
                }
                total.add(st);
                on_step(k + 1, &total);
            }
            Ok(total)
        });
        if result.is_ok() {
            self.epoch = epoch;
        }
        result
    }

    /// Loss and accuracy of `model` on `data`.
    ///
    /// # Panics
    /// If `data` does not fit the model ([`check_dataset`] says why).
    pub fn evaluate(&mut self, model: &mut Mlp<f32>, data: &Dataset) -> Stats {
        let ws = &mut self.eval_ws;
        self.threads
            .install(|| model.evaluate(ws, data.images.view(), &data.labels))
    }

    /// One epoch with evaluation: the figures of [`EpochReport`].
    pub fn epoch_report(
        &mut self,
        model: &mut Mlp<f32>,
        train: &Dataset,
        test: &Dataset,
        val: Option<&Dataset>,
        on_step: &(dyn Fn(usize, &Stats) + Sync),
    ) -> Result<EpochReport, TrainError> {
        self.epoch_report_until(model, train, test, val, on_step, &|| false)
    }

    /// [`Trainer::epoch_report`], stopping between two steps when `stop`
    /// says so ([`Trainer::train_epoch_until`]).
    pub fn epoch_report_until(
        &mut self,
        model: &mut Mlp<f32>,
        train: &Dataset,
        test: &Dataset,
        val: Option<&Dataset>,
        on_step: &(dyn Fn(usize, &Stats) + Sync),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<EpochReport, TrainError> {
        check_dataset(model, test, "test set")?;
        if let Some(v) = val {
            check_dataset(model, v, "validation set")?;
        }
        // Samples of this epoch trained before a stop (none usually).
        let before = self.partial.as_ref().map_or(0, |p| p.stats.samples);
        let t0 = Instant::now();
        let tr = self.train_epoch_until(model, train, on_step, stop)?;
        let seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let te = self.evaluate(model, test);
        let va = val.map(|v| self.evaluate(model, v));
        // A NaN here would reach early stopping's comparisons and the
        // saved model: the run stops instead.
        for (set, st) in [("test", Some(te)), ("validation", va)] {
            if let Some(st) = st.filter(|s| !s.mean_loss().is_finite()) {
                return Err(TrainError::NonFiniteEval {
                    epoch: self.epoch,
                    set,
                    loss: st.mean_loss(),
                    max_weight: Num(max_abs_param(model) as f64),
                });
            }
        }
        Ok(EpochReport {
            epoch: self.epoch,
            train_loss: tr.mean_loss(),
            train_accuracy: tr.accuracy(),
            test_loss: te.mean_loss(),
            test_accuracy: te.accuracy(),
            val_loss: va.map(|s| s.mean_loss()),
            val_accuracy: va.map(|s| s.accuracy()),
            seconds,
            eval_seconds: t1.elapsed().as_secs_f64(),
            samples_per_s: (tr.samples - before) as f64 / seconds,
            lr: self.opt.cfg.lr,
            rss_mib: crate::memory::rss_mib(),
            peak_rss_mib: crate::memory::peak_rss_mib(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Loss, NetSpec};
    use crate::optim::OptKind;
    use crate::parallel::GemmThreading;

    #[test]
    fn divergence_stops_at_the_first_non_finite_loss_with_advice() {
        let data = crate::workloads::synthetic(500, 1);
        let threads = Threads::new(2, GemmThreading::Split).unwrap();
        // SGD at an absurd rate under `schedule`: the error of its epoch.
        let diverge = |schedule: Schedule| {
            let spec = NetSpec::parse("784,relu,32,softmax,10").unwrap();
            let mut model = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 0).unwrap();
            let opt = OptConfig::new(OptKind::Sgd, 1e30);
            let mut tr =
                Trainer::new(&model, data.len(), BatchSize::N(50), opt, 0, &threads).unwrap();
            tr.schedule = schedule;
            tr.train_epoch(&mut model, &data, &|_, _| {}).unwrap_err()
        };
        let e = diverge(Schedule::Constant);
        let msg = e.to_string();
        assert!(matches!(e, TrainError::NonFinite { epoch: 1, .. }), "{msg}");
        assert!(
            msg.contains("learning rate is most likely too high") && msg.contains("--lr 1e29"),
            "{msg}"
        );
        // Under a schedule the advice is a --lr value: a tenth of the base
        // rate, not of the rate the schedule had reached.
        let msg = diverge(Schedule::OneCycle).to_string();
        assert!(
            msg.contains("--lr 1e29")
                && msg.contains("at that step")
                && !msg.contains("--lr 3.6e28"),
            "{msg}"
        );
    }

    #[test]
    fn an_epoch_stopped_between_steps_resumes_bit_for_bit() {
        // (#23) Ctrl-C stops after the step under way; the checkpointed
        // partial epoch, restored into a fresh trainer, ends exactly as
        // the uninterrupted epoch (weights, moments, the epoch's figures).
        let data = crate::workloads::synthetic(600, 3);
        let threads = Threads::new(2, GemmThreading::Split).unwrap();
        let spec = NetSpec::parse("784,relu,32,softmax,10").unwrap();
        let fresh = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 5).unwrap();
        let opt = OptConfig::new(OptKind::Adam, 1e-3);
        let new_trainer = || {
            Trainer::new(
                &fresh,
                data.len(),
                BatchSize::N(50),
                opt.clone(),
                9,
                &threads,
            )
            .unwrap()
        };
        let none = |_: usize, _: &Stats| {};
        // Uninterrupted: two epochs.
        let mut a = fresh.clone();
        let mut ta = new_trainer();
        ta.train_epoch(&mut a, &data, &none).unwrap();
        let ea = ta.train_epoch(&mut a, &data, &none).unwrap();
        // Interrupted in epoch 2 after its 5th step (of 12).
        let mut b = fresh.clone();
        let mut tb = new_trainer();
        tb.train_epoch(&mut b, &data, &none).unwrap();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stop = || calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 4;
        let e = tb
            .train_epoch_until(&mut b, &data, &none, &stop)
            .unwrap_err();
        assert!(
            matches!(
                e,
                TrainError::Stopped {
                    epoch: 2,
                    steps_done: 5,
                    steps: 12
                }
            ),
            "{e}"
        );
        assert_eq!(tb.epoch, 1);
        let (state, tensors) = tb.snapshot(&b);
        assert_eq!(state.partial.as_ref().unwrap().steps_done, 5);
        // Through JSON, as a checkpoint stores it; into a fresh trainer.
        let state: TrainerState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let mut tc = new_trainer();
        tc.restore(&b, &state, &tensors).unwrap();
        let ec = tc.train_epoch(&mut b, &data, &none).unwrap();
        assert_eq!((tc.epoch, tc.step), (ta.epoch, ta.step));
        assert!(tc.partial().is_none());
        assert_eq!(ec, ea, "the epoch's figures");
        for (x, y) in a.layers.iter().zip(&b.layers) {
            assert_eq!(x.w, y.w);
            assert_eq!(x.b, y.b);
        }
    }

    #[test]
    fn floats_survive_the_checkpoints_json_exactly() {
        // A partial epoch's loss sum and the run's history go through
        // JSON; serde_json's default parser can be 1 ulp off (the kill
        // soak found train losses differing in the last digit), so the
        // crate enables `float_roundtrip`. Here: 100,000 values.
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100_000 {
            let x: f64 = rng.random::<f64>() * 10f64.powi(rng.random_range(-8..8));
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    #[test]
    fn a_non_finite_evaluation_stops_the_epoch_with_a_message() {
        // (#23) Weights near f32's limit, training images all zero (so
        // training stays finite: x W = 0), test images not: the test
        // outputs overflow. Before, the report carried a NaN loss on.
        let threads = Threads::new(1, GemmThreading::Split).unwrap();
        let spec = NetSpec::parse("4,relu,3,softmax,2").unwrap();
        let mut model = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 0).unwrap();
        model.layers[0].w.fill(3e38);
        let train = Dataset::from_u8(8, 2, 2, &[0u8; 32], vec![0, 1, 0, 1, 0, 1, 0, 1]);
        let test = Dataset::from_u8(2, 2, 2, &[255u8; 8], vec![0, 1]);
        let opt = OptConfig::new(OptKind::Sgd, 0.01);
        let mut tr = Trainer::new(&model, 8, BatchSize::N(4), opt, 0, &threads).unwrap();
        let e = tr
            .epoch_report(&mut model, &train, &test, Some(&train), &|_, _| {})
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                TrainError::NonFiniteEval {
                    epoch: 1,
                    set: "test",
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("largest |weight| 3e38") && msg.contains("--max-norm"),
            "{msg}"
        );
    }

    #[test]
    fn data_that_does_not_fit_the_model_is_an_error_not_a_panic() {
        let threads = Threads::new(2, GemmThreading::Split).unwrap();
        let spec = NetSpec::parse("784,relu,16,softmax,10").unwrap();
        let mut model = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 0).unwrap();
        let data = crate::workloads::synthetic(200, 1);
        let mut tr = Trainer::new(
            &model,
            data.len(),
            BatchSize::N(50),
            OptConfig::new(OptKind::Adam, 1e-3),
            0,
            &threads,
        )
        .unwrap();
        // A label beyond the 10 outputs (EMNIST letters go up to 26).
        let mut bad = data.clone();
        bad.labels[137] = 26;
        let e = tr
            .train_epoch(&mut model, &bad, &|_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("training set: sample 137 has label 26, but the network has 10 outputs")
                && e.contains("at least 27 units"),
            "{e}"
        );
        let e = tr
            .epoch_report(&mut model, &data, &bad, None, &|_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test set: sample 137 has label 26"), "{e}");
        // Images of another size.
        let px = vec![0u8; 200 * 32 * 32];
        let other = Dataset::from_u8(200, 32, 32, &px, vec![0; 200]);
        let e = tr
            .train_epoch(&mut model, &other, &|_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1024 features (32x32 images), but the network's input layer takes 784"),
            "{e}"
        );
        let e = tr
            .train_epoch(&mut model, &crate::workloads::synthetic(100, 1), &|_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("100 samples, but this trainer was made for 200"),
            "{e}"
        );
        // Nothing was trained by the refused calls; the good data still trains.
        assert_eq!(tr.epoch, 0);
        tr.train_epoch(&mut model, &data, &|_, _| {}).unwrap();
        assert_eq!(tr.epoch, 1);
    }

    #[test]
    fn batch_size_parsing() {
        assert_eq!(BatchSize::parse("full").unwrap(), BatchSize::Full);
        assert_eq!(BatchSize::parse("32").unwrap(), BatchSize::N(32));
        assert!(BatchSize::parse("0").is_err());
        assert!(BatchSize::parse("-3").is_err());
        assert_eq!(BatchSize::N(100).rows(60), 60);
    }
}
