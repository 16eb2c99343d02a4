//! A training run as `mnist-mlp train` runs it, in the library: the
//! configuration layered and checked, the checkpoint resumed, the epochs
//! with early stopping, checkpoint cadence, the metrics log and the plot.
//! The binary only parses flags and shows what an [`Observer`] is told.
//!
//! Order of a run: layer the configuration (defaults < the checkpoint being
//! resumed < `--config` file < flags given: [`layered_config`]); check it
//! ([`RunConfig::settings`]); start the thread pool; load the data
//! (downloading MNIST on first use); build or restore the model and the
//! [`Trainer`] (with the run's [`Plan`]); open the outputs; then per epoch:
//! train, evaluate, report, observe early stopping, checkpoint when due,
//! record. A resumed run continues bit for bit: the checkpoint holds the
//! optimizer moments, counters, RNG position and plan.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::checkpoint::{CheckpointError, Loaded};
use crate::config::{ConfigError, RunConfig, Settings, FIXED_ON_RESUME};
use crate::data::fetch::{self, FetchError};
use crate::data::{self, DataError, LoadOptions, Splits};
use crate::early_stop::{EarlyStopping, Verdict};
use crate::nn::spec::SpecError;
use crate::nn::Mlp;
use crate::nn::NetSpec;
use crate::parallel::{Threads, ThreadsError};
use crate::plan::{Choice, Chosen, Plan};
use crate::run_state;
use crate::train::{EpochReport, Num, TrainError, Trainer};

/// Why a run could not start or stopped. Every message names the flag or
/// file at fault.
#[derive(Debug, Error)]
pub enum RunError {
    /// A setting that cannot be used, or a checkpoint that does not fit it.
    #[error("{0}")]
    Config(String),
    /// A setting refused by the configuration's checks.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// A network that cannot be built.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A thread count that cannot be used.
    #[error(transparent)]
    Threads(#[from] ThreadsError),
    /// The data cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// MNIST cannot be downloaded.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A checkpoint cannot be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint error in the context of a flag (`--resume FILE: ...`).
    #[error("{context}: {err}")]
    CheckpointIn {
        /// The flag and file (`--resume FILE`).
        context: String,
        /// The error.
        err: CheckpointError,
    },
    /// Training failed (divergence, data that does not fit).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// An output that cannot be written (`what` names the flag and file).
    #[error("{what}: {err}")]
    Io {
        /// The flag and file.
        what: String,
        /// The cause.
        err: std::io::Error,
    },
    /// Stopped on request ([`Observer::stop_requested`]) after `epoch`
    /// epochs, or between two steps of epoch `epoch`, with the checkpoint
    /// that resumes it, if any.
    #[error("interrupted {}{}", match within {
        Some((k, n)) => format!("in epoch {epoch} after step {k} of {n}"),
        None => format!("after epoch {epoch}"),
    }, match saved {
        Some(p) => format!("; resume with: mnist-mlp train --resume {}", p.display()),
        None => " (nothing saved: the run had no --save)".to_string(),
    })]
    Interrupted {
        /// Epochs done, or the epoch under way when `within` is given.
        epoch: usize,
        /// Steps done of the epoch's steps, when stopped inside it.
        within: Option<(usize, usize)>,
        /// The checkpoint written, if the run saves.
        saved: Option<PathBuf>,
    },
}

/// What a run tells the person (or program) watching it. Every method has
/// a default that ignores it.
pub trait Observer: Sync {
    /// The run's configuration, layered (before it is checked).
    fn configured(&mut self, _cfg: &RunConfig) {}
    /// A line of the run's report (the CLI prints it on stdout, or stderr
    /// under `--json`).
    fn say(&mut self, _line: &str) {}
    /// A notice or warning (the CLI prints it on stderr).
    fn note(&mut self, _line: &str) {}
    /// Epoch `epoch` of `epochs` starts, with `steps` steps.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// Step `k` of the epoch's `steps` is done, with the epoch's running
    /// statistics (called from the training thread).
    fn step(&self, _k: usize, _steps: usize, _running: &crate::nn::Stats) {}
    /// The epoch's steps are over (before its report, even on an error).
    fn epoch_trained(&mut self) {}
    /// An epoch's record, after its metrics line and checkpoint (the CLI's
    /// `--json` line).
    fn epoch_end(&mut self, _report: &EpochReport) {}
    /// Whether the run should stop after the epoch under way (the CLI:
    /// Ctrl-C or SIGTERM); it then saves a resumable checkpoint (with
    /// `--save`) and ends with [`RunError::Interrupted`].
    fn stop_requested(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What to run: the flags given (`explicit` names those given on the
/// command line, which override the config file), a `--config` file and
/// a checkpoint to `--resume`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The flags given (the others at their defaults).
    pub flags: RunConfig,
    /// Which of `flags`' keys were given (only those override the config file and checkpoint).
    pub explicit: Vec<String>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--resume`.
    pub resume: Option<PathBuf>,
    /// Show a progress bar while downloading (when not `quiet`).
    pub show_progress: bool,
    /// What a resumed run with another `--epochs` does to a cosine or
    /// one-cycle schedule.
    pub resume_schedule: crate::schedule::OnResume,
    /// Replace existing output files that mnist-mlp did not write.
    pub overwrite: bool,
}

/// The figures of a finished run (the CLI's `--json` summary).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The network (layer list).
    pub layers: String,
    /// The loss.
    pub loss: &'static str,
    /// The optimizer.
    pub optimizer: &'static str,
    /// The base learning rate.
    pub lr: f64,
    /// `--batch-size`.
    pub batch_size: String,
    /// Epochs done, a resumed run's earlier ones included.
    pub epochs: usize,
    /// The epoch whose weights the model holds.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Threads used.
    pub threads: usize,
    /// The speed choices used.
    pub plan: Plan,
    /// How the plan was chosen ([`Chosen::to_json`]: source, seconds spent
    /// measuring, speed-up over the default plan).
    pub planner: serde_json::Value,
    /// Test accuracy of the final model.
    pub test_accuracy: f64,
    /// Its test loss.
    pub test_loss: f64,
    /// The last epoch's training accuracy (as it trained).
    pub train_accuracy: f64,
    /// The last epoch's training loss.
    pub train_loss: f64,
    /// Validation accuracy (with `--validation`).
    pub val_accuracy: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Seconds of training (evaluation excluded).
    pub train_seconds: f64,
    /// Training samples per second, over the run.
    pub samples_per_s: f64,
    /// The process's peak resident memory (MiB).
    pub peak_rss_mib: Option<f64>,
}

/// A finished run: the model (the best epoch's weights after early
/// stopping), every epoch's report, and the summary.
pub struct Outcome {
    /// The model (the best epoch's weights after early stopping).
    pub model: Mlp<f32>,
    /// Every epoch's report.
    pub history: Vec<EpochReport>,
    /// The figures.
    pub summary: Summary,
}

/// Loads the splits from `dir_flag` (else `$MNIST_DIR`, else data/mnist),
/// downloading MNIST into the default directory on first use.
pub fn load_data(
    dir_flag: Option<&Path>,
    opts: &LoadOptions,
    allow_download: bool,
    progress: bool,
    obs: &mut dyn Observer,
) -> Result<Splits, RunError> {
    let dir = data::resolve_data_dir(dir_flag);
    let default = dir_flag.is_none() && data::dataset::data_dir_from_env().is_none();
    if default && allow_download && opts.subset.is_none() && data::dataset::locate(&dir).is_err() {
        obs.note(&format!("MNIST not found in {}: downloading it (use --data-dir or MNIST_DIR for an existing copy)", dir.display()));
        fetch::fetch(
            &dir,
            &fetch::MNIST_FILES,
            &fetch::mirrors_from_env(),
            progress,
        )?;
    }
    Ok(data::load_dir(&dir, opts)?)
}

/// The run's configuration, layered: defaults < the checkpoint being
/// resumed < `--config` file < flags given. Returns it with the checkpoint
/// and the checkpoint's own configuration when resuming.
pub fn layered_config(req: &Request) -> Result<(RunConfig, Option<(Loaded, RunConfig)>), RunError> {
    let mut base = RunConfig::default();
    let mut resumed = None;
    if let Some(p) = &req.resume {
        let l = crate::checkpoint::load(p).map_err(|err| RunError::CheckpointIn {
            context: format!("--resume {}", p.display()),
            err,
        })?;
        // A model-only checkpoint has no run configuration either: say so first.
        run_state::read(&l.extras)
            .map_err(|e| RunError::Config(format!("--resume {}: {e}", p.display())))?;
        let c: RunConfig = serde_json::from_value(l.config.clone()).map_err(|e| {
            RunError::Config(format!(
                "--resume {}: the checkpoint's configuration is not a run configuration of this version ({e}); only checkpoints written by `train --save` can be resumed",
                p.display()
            ))
        })?;
        c.check_integers()
            .map_err(|e| RunError::Config(format!("--resume {}: {e}", p.display())))?;
        base = c.clone();
        resumed = Some((l, c));
    }
    if let Some(p) = &req.config {
        base = base.overlay_toml_file(p)?;
    }
    let mut cfg = base.overlay(&req.flags, &req.explicit);
    // `--plan` on the command line replaces a recorded `[plan]` table.
    if req.explicit.iter().any(|k| k == "planner") {
        cfg.plan = req.flags.plan;
    }
    if let (Some((loaded, saved)), Some(p)) = (&resumed, &req.resume) {
        relocate_resumed_outputs(&mut cfg, saved, p, &req.explicit);
        // The network may be named another way than the checkpoint names
        // it (`--layers 784,relu,64,10` for `784,relu,64,softmax,10`,
        // `--hidden 64`, the same `--config`): compare the networks, not
        // the keys that spell them.
        let stored = &loaded.model.spec;
        let (input, classes) = (stored.input(), stored.output_width());
        let network = |c: &RunConfig| {
            c.settings()
                .ok()
                .and_then(|s| s.network(input, classes).ok())
                .map(|n| (n.widths, n.hidden, n.output))
        };
        let same_network = network(&cfg)
            .is_some_and(|n| n == (stored.widths.clone(), stored.hidden.clone(), stored.output));
        for k in saved.differing_keys(&cfg) {
            if same_network && NETWORK_KEYS.contains(&k.as_str()) {
                continue;
            }
            if FIXED_ON_RESUME.contains(&k.as_str()) {
                return Err(RunError::Config(format!(
                    "--resume {}: `{k}` differs from the checkpoint's run ({} there, {} now); a resumed run keeps the network, loss, optimizer, batch size, seed and validation split",
                    p.display(),
                    saved.to_json().get(&k).unwrap_or(&serde_json::Value::Null),
                    cfg.to_json().get(&k).unwrap_or(&serde_json::Value::Null),
                )));
            }
        }
    }
    Ok((cfg, resumed))
}

/// Where a resumed run writes: the checkpoint it resumes (not the path
/// stored in it: a copy resumed elsewhere must not write into the
/// original's folder), unless `--save` says otherwise; `--metrics-out`
/// and `--plot`, unless given, move beside it when it is not where the
/// original run saved.
fn relocate_resumed_outputs(
    cfg: &mut RunConfig,
    saved: &RunConfig,
    resume: &Path,
    explicit: &[String],
) {
    let given = |k: &str| explicit.iter().any(|x| x == k);
    if given("save") {
        return;
    }
    let key = crate::files::same_file_key;
    let moved = saved.save.as_deref().map(key) != Some(key(resume));
    cfg.save = Some(resume.to_path_buf());
    if !moved {
        return;
    }
    let dir = resume.parent().unwrap_or(Path::new("")).to_path_buf();
    for (k, field) in [
        ("metrics_out", &mut cfg.metrics_out),
        ("plot", &mut cfg.plot),
    ] {
        if !given(k) {
            if let Some(name) = field
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_owned())
            {
                *field = Some(dir.join(name));
            }
        }
    }
}

/// The keys that spell a network (one network, several spellings).
const NETWORK_KEYS: &[&str] = &["layers", "hidden", "activation"];

/// The files a run writes: `--metrics-out` lines, `--plot`, and checkpoints
/// with the configuration that repeats the run beside them.
struct Outputs {
    metrics_out: Option<PathBuf>,
    plot: Option<PathBuf>,
    metrics: Option<std::io::BufWriter<std::fs::File>>,
    effective_json: serde_json::Value,
    effective_toml: String,
    /// The data's identity, stored in every checkpoint.
    data: serde_json::Value,
    /// One lock per output, held for the run.
    _locks: Vec<crate::files::OutputLock>,
}

/// The first line of the configuration saved beside a checkpoint: it marks
/// the file as mnist-mlp's (which a later run may replace).
pub const TOML_MARK: &str =
    "# mnist-mlp: this run's configuration (`mnist-mlp train --config FILE` repeats it)";

/// Whether `path` is a checkpoint this program wrote (its safetensors
/// header says `format = mnist-mlp`; only the header is read).
fn is_our_checkpoint(path: &Path) -> bool {
    crate::checkpoint::read_header(path)
        .is_ok_and(|h| h.json["__metadata__"]["format"] == crate::checkpoint::FORMAT)
}

/// Whether an existing output at `path` was written by mnist-mlp, by kind:
/// a checkpoint (its header), the configuration beside one (its first
/// line, or a configuration beside a checkpoint of ours, as earlier
/// versions wrote it), a metrics file (JSON lines with `epoch`), a plot (an
/// SVG with its mark; any PNG: a PNG carries no mark).
fn written_by_us(flag: &str, path: &Path) -> bool {
    let head = |n: usize| -> Vec<u8> {
        use std::io::Read;
        let mut b = Vec::new();
        if let Ok(f) = std::fs::File::open(path) {
            let _ = f.take(n as u64).read_to_end(&mut b);
        }
        b
    };
    match flag {
        "--save" if path.extension().is_some_and(|e| e == "toml") => {
            let text = String::from_utf8_lossy(&head(1 << 16)).into_owned();
            text.starts_with(TOML_MARK)
                || (is_our_checkpoint(&path.with_extension("safetensors"))
                    && RunConfig::from_toml(&text).is_ok())
        }
        "--save" => is_our_checkpoint(path),
        "--metrics-out" => {
            // Every line this program writes starts so; a run killed while
            // writing the first line leaves a prefix of it.
            const START: &[u8] = b"{\"epoch\":";
            let b = head(START.len());
            b.is_empty() || START.starts_with(&b) || b.starts_with(START)
        }
        "--plot" => {
            let b = head(4096);
            b.starts_with(b"\x89PNG") || String::from_utf8_lossy(&b).contains(crate::plot::SVG_MARK)
        }
        _ => false,
    }
}

/// Checks every output of the run before it starts (see
/// [`crate::files::check_output`], which also makes missing folders, so
/// that a run is not lost at its first checkpoint for want of one), that
/// no two outputs and no output and input are one file (the checkpoint
/// being resumed may be the save target), and locks each output for the
/// run; then, under the lock, removes what a run killed while writing an
/// output left beside it (the outputs themselves are intact).
fn check_outputs(
    cfg: &RunConfig,
    req: &Request,
    splits: &Splits,
) -> Result<Vec<crate::files::OutputLock>, RunError> {
    use crate::files::{check_output, same_file_key, OutputLock};
    let outputs: Vec<(&'static str, PathBuf)> = [
        ("--save", cfg.save.clone()),
        (
            "--save",
            cfg.save.as_ref().map(|p| p.with_extension("toml")),
        ),
        ("--plot", cfg.plot.clone()),
        ("--metrics-out", cfg.metrics_out.clone()),
    ]
    .into_iter()
    .filter_map(|(f, p)| Some((f, p?)))
    .collect();
    // Each path's file, worked out once (links followed, folders made absolute).
    let keyed = |v: &[(&'static str, PathBuf)]| -> Vec<PathBuf> {
        v.iter().map(|(_, p)| same_file_key(p)).collect()
    };
    let f = &splits.files;
    let mut inputs: Vec<(&'static str, PathBuf)> = vec![
        ("the training images", f.train_images.clone()),
        ("the training labels", f.train_labels.clone()),
        ("the test images", f.test_images.clone()),
        ("the test labels", f.test_labels.clone()),
    ];
    if let Some(c) = &req.config {
        inputs.push(("--config", c.clone()));
    }
    if let Some(p) = &req.resume {
        inputs.push(("--resume", p.clone()));
    }
    let (out_keys, in_keys) = (keyed(&outputs), keyed(&inputs));
    let resumed = inputs
        .iter()
        .zip(&in_keys)
        .find_map(|((what, _), k)| (*what == "--resume").then_some(k));
    let bad = |msg: String| RunError::Config(msg);
    for (i, ((flag, p), key)) in outputs.iter().zip(&out_keys).enumerate() {
        let shown = |q: &Path| q.display().to_string();
        for ((other, q), k) in outputs[..i].iter().zip(&out_keys) {
            if k == key {
                return Err(bad(format!(
                    "{flag} {} and {other} {} are one file: each output needs its own (the checkpoint's configuration goes beside it, as .toml)",
                    shown(p),
                    shown(q)
                )));
            }
        }
        for ((what, q), k) in inputs.iter().zip(&in_keys) {
            let resume_target =
                *what == "--resume" && *flag == "--save" && p.extension() != Some("toml".as_ref());
            if k == key && !resume_target {
                return Err(bad(format!(
                    "{flag} {} is {what} ({}): an output may not replace an input",
                    shown(p),
                    shown(q)
                )));
            }
        }
        // The checkpoint being resumed is ours to replace.
        let ours = |t: &Path| resumed == Some(key) || written_by_us(flag, t);
        check_output(p, &ours, req.overwrite).map_err(|e| bad(format!("{flag} {e}")))?;
    }
    let locks = outputs
        .iter()
        .map(|(flag, p)| OutputLock::take(p).map_err(|e| bad(format!("{flag} {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for (_, p) in &outputs {
        crate::checkpoint::remove_stale_temps(p);
    }
    Ok(locks)
}

impl Outputs {
    fn open(
        cfg: &RunConfig,
        effective: &RunConfig,
        data: &data::DataIdentity,
        resuming: bool,
        locks: Vec<crate::files::OutputLock>,
    ) -> Result<Self, RunError> {
        // Folders, checks, locks and stale temporaries: `check_outputs`.
        let metrics = match &cfg.metrics_out {
            Some(p) => {
                let mut o = std::fs::OpenOptions::new();
                if resuming {
                    o.append(true).create(true);
                } else {
                    o.write(true).create(true).truncate(true);
                }
                Some(std::io::BufWriter::new(o.open(p).map_err(|err| {
                    RunError::Io {
                        what: format!("--metrics-out: cannot open {}", p.display()),
                        err,
                    }
                })?))
            }
            None => None,
        };
        Ok(Self {
            metrics_out: cfg.metrics_out.clone(),
            plot: cfg.plot.clone(),
            metrics,
            effective_json: effective.to_json(),
            effective_toml: format!("{TOML_MARK}\n{}", effective.to_toml()),
            data: serde_json::to_value(data).expect("an identity serializes"),
            _locks: locks,
        })
    }

    /// The checkpoint, and beside it the configuration that repeats the run.
    fn save(
        &self,
        path: &Path,
        model: &Mlp<f32>,
        trainer: &Trainer,
        early: Option<&EarlyStopping>,
        history: &[EpochReport],
        finished: bool,
    ) -> Result<(), RunError> {
        let mut extras = run_state::capture(model, trainer, early, history, finished);
        extras.data = Some(self.data.clone());
        crate::checkpoint::save_with(path, model, &self.effective_json, &extras)?;
        crate::checkpoint::write_atomic(
            &path.with_extension("toml"),
            self.effective_toml.as_bytes(),
        )?;
        Ok(())
    }

    /// The epoch's line in `--metrics-out`, and the curves so far (`--plot`).
    fn record(&mut self, r: &EpochReport, history: &[EpochReport]) -> Result<(), RunError> {
        if let (Some(w), Some(p)) = (self.metrics.as_mut(), self.metrics_out.as_ref()) {
            use std::io::Write;
            writeln!(w, "{}", epoch_json(r))
                .and_then(|_| w.flush())
                .map_err(|err| RunError::Io {
                    what: format!("--metrics-out: cannot write {}", p.display()),
                    err,
                })?;
        }
        if let Some(p) = &self.plot {
            crate::plot::draw_curves(p, history).map_err(|e| {
                RunError::Config(format!("--plot: cannot draw {}: {e}", p.display()))
            })?;
        }
        Ok(())
    }
}

/// The machine-readable record of an epoch (`--json`, `--metrics-out`):
/// the report with `"event": "epoch"`.
pub fn epoch_json(r: &EpochReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("a report serializes");
    v["event"] = "epoch".into();
    v
}

/// Runs `req` to the end, telling `obs` what happens.
pub fn train(req: &Request, obs: &mut dyn Observer) -> Result<Outcome, RunError> {
    let (cfg, resumed) = layered_config(req)?;
    obs.configured(&cfg);
    let settings = cfg.settings()?;
    let (threads, warning) = Threads::for_flag(cfg.threads, cfg.threading)?;
    if let Some(w) = warning {
        obs.note(&w);
    }
    let mut run = Session::open(req, cfg, resumed, settings, &threads, obs)?;
    run.say_start(req, obs);
    for e in run.first..=run.cfg.epochs {
        run.epoch(e, obs)?;
        if run.stopped || run.reached {
            break;
        }
        if run.interrupted {
            return Err(RunError::Interrupted {
                epoch: e,
                within: None,
                saved: run.cfg.save.clone(),
            });
        }
    }
    Ok(run.finish(obs))
}

/// A run under way: everything [`train`] built, and its progress.
struct Session<'t> {
    cfg: RunConfig,
    settings: Settings,
    splits: Splits,
    spec: NetSpec,
    model: Mlp<f32>,
    trainer: Trainer<'t>,
    /// The plan and how it was chosen.
    chosen: Chosen,
    early: Option<EarlyStopping>,
    /// Every epoch's report, a resumed run's earlier ones included.
    history: Vec<EpochReport>,
    out: Outputs,
    /// The first epoch this process trains.
    first: usize,
    train_seconds: f64,
    stopped: bool,
    /// `--stop-at-accuracy` was reached.
    reached: bool,
    /// A stop was requested during the last epoch, whose (resumable)
    /// checkpoint was then written.
    interrupted: bool,
}

impl<'t> Session<'t> {
    /// Loads the data, builds (or restores from the checkpoint `resumed`)
    /// the model and the trainer on `threads`, and opens the outputs.
    fn open(
        req: &Request,
        cfg: RunConfig,
        resumed: Option<(Loaded, RunConfig)>,
        settings: Settings,
        threads: &'t Threads,
        obs: &mut dyn Observer,
    ) -> Result<Self, RunError> {
        // A recorded plan is kept; else `--plan` (or MNIST_MLP_PLAN) says.
        let choice = match cfg.plan {
            Some(p) => Choice::Pinned(p),
            None => Choice::from_flag(cfg.planner.as_deref())
                .map_err(|e| RunError::Config(e.to_string()))?,
        };
        let splits = load_data(
            cfg.data_dir.as_deref(),
            &LoadOptions {
                classes: settings.layers.as_ref().map(|s| s.output_width()),
                validation: cfg.validation,
                seed: cfg.seed,
                subset: cfg.subset.clone(),
            },
            !cfg.no_download,
            req.show_progress && !cfg.quiet,
            obs,
        )?;
        for w in unseen_classes(&splits) {
            obs.note(&w);
        }
        // Every output checked and locked before anything is written
        // (a resume trims --metrics-out next).
        let locks = check_outputs(&cfg, req, &splits)?;
        let features = splits.train.features();
        let spec = settings.network(features, splits.classes)?;
        if spec.input() != features {
            return Err(RunError::Config(format!(
                "--layers: the network's input width is {} but the images in {} have {} pixels ({}x{}); start the list with {}",
                spec.input(), splits.files.train_images.display(), features, splits.train.rows, splits.train.cols, features
            )));
        }
        // Refused before anything this size is allocated.
        let rows = settings.batch.rows(splits.train.len());
        let need = crate::train::MemoryEstimate::of(
            &spec,
            rows,
            settings.opt.kind.slot_names().len(),
            cfg.patience.is_some(),
        );
        if let Some(avail) = crate::memory::available_bytes() {
            if need.total() > avail {
                return Err(RunError::Config(format!(
                    "network {spec} with batch {}: the run needs about {} ({}), more than the {} of memory available; use narrower layers or a smaller --batch-size",
                    settings.batch,
                    crate::memory::human(need.total()),
                    need,
                    crate::memory::human(avail)
                )));
            }
        }
        let loss = settings.loss;
        // The model: the checkpoint's when resuming (its run state is
        // restored below, once the trainer exists), else freshly initialized.
        let saved_cfg = resumed.as_ref().map(|(_, c)| c.clone());
        let (mut model, resumed_extras) = match (resumed, &req.resume) {
            (Some((l, _)), Some(p)) => {
                if l.model.spec != spec || l.model.loss != loss {
                    return Err(RunError::Config(format!(
                        "--resume {}: the checkpoint holds {} ({}), the configuration asks for {spec} ({})",
                        p.display(), l.model.spec, l.model.loss.name(), loss.name()
                    )));
                }
                (l.model, Some(l.extras))
            }
            _ => (
                Mlp::<f32>::new(spec.clone(), loss, settings.init, cfg.seed)?,
                None,
            ),
        };
        model.reg = settings.reg;
        let mut trainer = Trainer::new(
            &model,
            splits.train.len(),
            settings.batch,
            settings.opt.clone(),
            cfg.seed,
            threads,
        )?;
        trainer.schedule = settings.schedule;
        if settings.augment.is_on() {
            let t = &splits.train;
            trainer.set_augment(crate::data::augment::Augmenter::new(
                settings.augment,
                t.rows,
                t.cols,
            ));
        }
        trainer.total_epochs = cfg.epochs;
        let mut early = cfg.patience.map(|p| EarlyStopping::new(p, cfg.min_delta));
        let mut history = Vec::new();
        if let (Some(x), Some(p)) = (&resumed_extras, &req.resume) {
            history = run_state::restore(x, &model, &mut trainer, early.as_mut(), cfg.epochs)
                .map_err(|e| RunError::Config(format!("--resume {}: {e}", p.display())))?;
            if let Some(m) = &cfg.metrics_out {
                run_state::trim_metrics(m, trainer.epoch).map_err(|err| {
                    RunError::CheckpointIn {
                        context: "--metrics-out".into(),
                        err,
                    }
                })?;
            }
        }
        // The schedule's epochs: all of the run, unless a resume kept or
        // restarted it (recorded, so that later resumes stay on its curve).
        let window = match &saved_cfg {
            Some(saved) => {
                let kept = saved
                    .schedule_window
                    .unwrap_or(crate::schedule::Window::whole(saved.epochs));
                let done = trainer.epoch;
                let w = crate::schedule::Window::on_resume(
                    kept,
                    saved.epochs,
                    done,
                    cfg.epochs,
                    req.resume_schedule,
                );
                (w != crate::schedule::Window::whole(cfg.epochs)).then_some(w)
            }
            None => None,
        };
        trainer.window = window;
        // The plan: given, cached, or measured now on a copy of the model
        // (the run's own state is not touched).
        let rows = settings.batch.rows(splits.train.len());
        let steps = trainer.steps_per_epoch() * cfg.epochs.saturating_sub(trainer.epoch).max(1);
        let target = crate::plan::measure::Target {
            model: &model,
            opt: &settings.opt,
            rows,
            train: &splits.train,
            threads,
        };
        let chosen = crate::plan::choose::for_run(&choice, target, steps);
        for w in &chosen.warnings {
            obs.note(w);
        }
        let plan = chosen.plan;
        trainer.set_plan(plan);
        if let (Some(saved), Some(p)) = (&saved_cfg, &req.resume) {
            warn_resume_differences(p, saved, &cfg, threads, plan, obs);
            if let Some(w) = horizon_warning(saved, &cfg, &settings, &trainer, req.resume_schedule)
            {
                obs.note(&w);
            }
        }
        // The configuration that repeats this run exactly.
        let effective = RunConfig {
            // The folder the data came from, MNIST_DIR's or the default
            // included: the saved configuration names its data.
            data_dir: Some(data::resolve_data_dir(cfg.data_dir.as_deref())),
            threads: Some(threads.n()),
            lr: Some(settings.opt.lr),
            weight_decay: Some(settings.opt.weight_decay),
            layers: Some(spec.to_string()),
            plan: Some(plan),
            schedule_window: window,
            ..cfg.clone()
        };
        let identity = data::DataIdentity::of(
            effective.data_dir.as_deref().expect("resolved above"),
            &splits,
        );
        let out = Outputs::open(&cfg, &effective, &identity, req.resume.is_some(), locks)?;
        Ok(Self {
            first: trainer.epoch + 1,
            cfg,
            settings,
            splits,
            spec,
            model,
            trainer,
            chosen,
            early,
            history,
            out,
            train_seconds: 0.0,
            stopped: false,
            reached: false,
            interrupted: false,
        })
    }

    /// The run's first lines: network, data, and where a resumed run goes on.
    fn say_start(&self, req: &Request, obs: &mut dyn Observer) {
        let (cfg, opt, spec) = (&self.cfg, &self.settings.opt, &self.spec);
        obs.say(&format!(
            "network {spec} ({} parameters), loss {}, optimizer {} lr {} ({}), batch {}, {} epochs, {} threads ({:?})",
            spec.params(), self.settings.loss.name(), opt.kind.name(), opt.lr, cfg.schedule, self.settings.batch, cfg.epochs, self.trainer.threads.n(), self.trainer.threads.policy()
        ));
        for line in spec.summary().lines() {
            obs.say(&format!("  {line}"));
        }
        if self.settings.batch == crate::train::BatchSize::Full {
            let steps = cfg.epochs.saturating_sub(self.trainer.epoch);
            obs.say(&format!(
                "full batch: 1 step per epoch, {steps} steps in all{}",
                if steps < 100 {
                    "; full-batch gradient descent needs hundreds of steps (for example --epochs 300 --optimizer sgd --lr 0.5)"
                } else {
                    ""
                }
            ));
        }
        obs.say(&self.chosen.line());
        let splits = &self.splits;
        obs.say(&format!(
            "data {}: train {} x {}, test {}{}",
            data::resolve_data_dir(cfg.data_dir.as_deref()).display(),
            splits.train.len(),
            splits.train.features(),
            splits.test.len(),
            splits
                .validation
                .as_ref()
                .map_or(String::new(), |v| format!(", validation {}", v.len()))
        ));
        if let Some(p) = &req.resume {
            obs.say(&match self.trainer.partial() {
                Some(part) => format!(
                    "resuming {} in epoch {} after its step {} (step {})",
                    p.display(),
                    self.trainer.epoch + 1,
                    part.steps_done,
                    self.trainer.step
                ),
                None => format!(
                    "resuming {} after epoch {} (step {})",
                    p.display(),
                    self.trainer.epoch,
                    self.trainer.step
                ),
            });
            let outs: Vec<String> = [
                ("--save", &cfg.save),
                ("--metrics-out", &cfg.metrics_out),
                ("--plot", &cfg.plot),
            ]
            .iter()
            .filter_map(|(f, p)| Some(format!("{f} {}", p.as_ref()?.display())))
            .collect();
            obs.say(&format!("writing {}", outs.join(", ")));
        }
    }

    /// Trains epoch `e`, evaluates it, applies early stopping, and writes
    /// the metrics line and the plot, then the checkpoint (when due).
    fn epoch(&mut self, e: usize, obs: &mut dyn Observer) -> Result<(), RunError> {
        let (epochs, steps) = (self.cfg.epochs, self.trainer.steps_per_epoch());
        obs.epoch_start(e, epochs, steps);
        let r = {
            let watcher: &dyn Observer = obs;
            let on_step = |k: usize, st: &crate::nn::Stats| watcher.step(k, steps, st);
            // Ctrl-C stops between two steps, not at the epoch's end.
            let stop = || watcher.stop_requested();
            self.trainer.epoch_report_until(
                &mut self.model,
                &self.splits.train,
                &self.splits.test,
                self.splits.validation.as_ref(),
                &on_step,
                &stop,
            )
        };
        obs.epoch_trained();
        if let Err(TrainError::Stopped {
            epoch,
            steps_done,
            steps,
        }) = r
        {
            // The checkpoint holds the partial epoch; no metrics line yet
            // (the resumed run writes the epoch's line when it ends).
            if let Some(path) = &self.cfg.save {
                self.checkpoint(path, false)?;
                obs.say(&format!(
                    "saved {} (epoch {epoch}, step {steps_done} of {steps})",
                    path.display()
                ));
            }
            return Err(RunError::Interrupted {
                epoch,
                within: Some((steps_done, steps)),
                saved: self.cfg.save.clone(),
            });
        }
        let r = r?;
        self.train_seconds += r.seconds;
        let val = match (r.val_loss, r.val_accuracy) {
            (Some(l), Some(acc)) => format!("  val loss {l:.4} acc {:.2}%", acc * 100.0),
            _ => String::new(),
        };
        obs.say(&format!(
            "epoch {:>3}/{}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%{val}  {:.2} s  {:.0} samples/s",
            e, epochs, r.train_loss, r.train_accuracy * 100.0, r.test_loss, r.test_accuracy * 100.0, r.seconds, r.samples_per_s
        ));
        if let (Some(es), Some(vl)) = (&mut self.early, r.val_loss) {
            if es.observe(e, vl, &self.model) == Verdict::Stop {
                es.restore_best(&mut self.model);
                obs.say(&format!(
                    "early stopping: no validation-loss improvement for {} epoch(s); restored the weights of epoch {} (val loss {:.4})",
                    es.patience, es.state.best_epoch, es.state.best_loss
                ));
                self.stopped = true;
            }
        }
        if let Some(a) = self.cfg.stop_at_accuracy.filter(|_| !self.stopped) {
            let (acc, which) = match r.val_accuracy {
                Some(v) => (v, "validation"),
                None => (r.test_accuracy, "test"),
            };
            if acc >= a {
                obs.say(&format!(
                    "reached {which} accuracy {:.2}% >= {:.2}% (--stop-at-accuracy) after epoch {e}: stopping",
                    acc * 100.0,
                    a * 100.0
                ));
                self.reached = true;
            }
        }
        self.history.push(r.clone());
        // The metrics line before the checkpoint: a run killed between the
        // two resumes from the previous checkpoint, which trims the line
        // and trains the epoch again (the other order would lose it).
        self.out.record(&r, &self.history)?;
        // A stop requested now (Ctrl-C) makes this epoch's checkpoint due.
        self.interrupted = e < epochs && !self.stopped && !self.reached && obs.stop_requested();
        let every = self.cfg.checkpoint_every.unwrap_or(0);
        let due = e == epochs
            || self.stopped
            || self.reached
            || self.interrupted
            || (every > 0 && e % every == 0);
        if let Some(path) = self.cfg.save.as_ref().filter(|_| due) {
            self.checkpoint(path, self.stopped)?;
            obs.say(&format!("saved {} (epoch {e})", path.display()));
        }
        obs.epoch_end(&r);
        Ok(())
    }

    /// The run's checkpoint at `path` as it stands (`finished`: ended by
    /// early stopping, not to be resumed).
    fn checkpoint(&self, path: &Path, finished: bool) -> Result<(), RunError> {
        self.out.save(
            path,
            &self.model,
            &self.trainer,
            self.early.as_ref(),
            &self.history,
            finished,
        )
    }

    /// The closing line and the run's figures: those of the model as it
    /// ends (the best epoch's after early stopping).
    fn finish(self, obs: &mut dyn Observer) -> Outcome {
        let history = self.history;
        let r = match (self.stopped, &self.early) {
            (true, Some(es)) => history[es.state.best_epoch - 1].clone(),
            _ => history.last().expect("at least one epoch").clone(),
        };
        let n_done = history.len();
        // Epochs this process trained (a resumed run's history starts earlier).
        let epochs_run = n_done + 1 - self.first;
        let train_seconds = self.train_seconds;
        let samples_per_s = (self.splits.train.len() * epochs_run) as f64 / train_seconds;
        let peak_rss_mib = crate::memory::peak_rss_mib();
        obs.say(&format!(
            "done: test accuracy {:.2}% (loss {:.4}) after {} epochs{}; training took {:.2} s ({:.0} samples/s on average){}",
            r.test_accuracy * 100.0,
            r.test_loss,
            n_done,
            if self.stopped { format!(" (weights of epoch {})", r.epoch) } else { String::new() },
            train_seconds,
            samples_per_s,
            peak_rss_mib.map_or(String::new(), |m| format!(", peak memory {m:.0} MiB"))
        ));
        let opt = &self.settings.opt;
        let summary = Summary {
            layers: self.spec.to_string(),
            loss: self.settings.loss.name(),
            optimizer: opt.kind.name(),
            lr: opt.lr,
            batch_size: self.settings.batch.to_string(),
            epochs: n_done,
            best_epoch: r.epoch,
            stopped_early: self.stopped,
            threads: self.trainer.threads.n(),
            plan: self.trainer.plan(),
            planner: self.chosen.to_json(),
            test_accuracy: r.test_accuracy,
            test_loss: r.test_loss,
            train_accuracy: r.train_accuracy,
            train_loss: r.train_loss,
            val_accuracy: r.val_accuracy,
            val_loss: r.val_loss,
            train_seconds,
            samples_per_s,
            peak_rss_mib,
        };
        Outcome {
            model: self.model,
            history,
            summary,
        }
    }
}

/// Warnings for classes the test (or validation) set has and the training
/// set never does: the network gets an output it cannot learn, and every
/// such sample counts as wrong.
pub fn unseen_classes(splits: &Splits) -> Vec<String> {
    let train = splits.train.class_counts(splits.classes);
    let mut out = Vec::new();
    for (name, d) in [
        ("test", Some(&splits.test)),
        ("validation", splits.validation.as_ref()),
    ] {
        let Some(d) = d else { continue };
        let counts = d.class_counts(splits.classes);
        let unseen: Vec<String> = counts
            .iter()
            .enumerate()
            .filter(|&(c, &n)| n > 0 && train.get(c).copied().unwrap_or(0) == 0)
            .map(|(c, &n)| format!("class {c} ({n} samples)"))
            .collect();
        if !unseen.is_empty() {
            out.push(format!(
                "warning: the {name} set has {}, which the training set never has: the network gets an output for it that it cannot learn, and those samples will count as wrong (is the data folder's train/test pair from one dataset?)",
                unseen.join(", ")
            ));
        }
    }
    out
}

/// On `--resume` with another `--epochs`: a schedule that depends on the
/// run's length (cosine, one-cycle) is stretched over the new total, so the
/// learning rate jumps from where the run had left it; says from what to
/// what.
fn horizon_warning(
    saved: &RunConfig,
    cfg: &RunConfig,
    settings: &Settings,
    trainer: &Trainer,
    how: crate::schedule::OnResume,
) -> Option<String> {
    use crate::schedule::{OnResume, Schedule, Window};
    if saved.epochs == cfg.epochs
        || !matches!(
            settings.schedule,
            Schedule::Cosine { .. } | Schedule::OneCycle
        )
    {
        return None;
    }
    let per = trainer.steps_per_epoch() as u64;
    let (step, base) = (trainer.step, settings.opt.lr);
    let old = saved.schedule_window.unwrap_or(Window::whole(saved.epochs));
    let new = trainer.window.unwrap_or(Window::whole(cfg.epochs));
    let (left, next) = (
        old.lr(&settings.schedule, base, step, per),
        new.lr(&settings.schedule, base, step, per),
    );
    let change = format!(
        "--epochs {} changes the run's length from {} epochs",
        cfg.epochs, saved.epochs
    );
    Some(match how {
        OnResume::Stretch => format!(
            "warning: --resume: {change}; the {} schedule is stretched over the new total, so the learning rate goes from {} (where the run left it) to {} at the next step; --resume-schedule keep goes on at the rate where the schedule ends ({}), --resume-schedule restart runs the schedule again over the epochs added",
            cfg.schedule,
            Num(left),
            Num(next),
            Num(old.lr(&settings.schedule, base, per * old.end as u64, per)),
        ),
        OnResume::Keep => format!(
            "note: --resume: {change}; --resume-schedule keep: the {} schedule keeps its end at epoch {}, the rate goes on from {} and stays at {} after it",
            cfg.schedule,
            new.end,
            Num(next),
            Num(new.lr(&settings.schedule, base, per * new.end as u64, per)),
        ),
        OnResume::Restart => format!(
            "note: --resume: {change}; --resume-schedule restart: the {} schedule starts again over epochs {}..{}, the rate goes from {} to {} at the next step",
            cfg.schedule,
            new.start + 1,
            new.end,
            Num(left),
            Num(next),
        ),
    })
}

/// Warns when a resumed run differs from its checkpoint in what can change
/// the last bits (threads, threading policy, plan).
fn warn_resume_differences(
    p: &Path,
    saved: &RunConfig,
    cfg: &RunConfig,
    threads: &Threads,
    plan: Plan,
    obs: &mut dyn Observer,
) {
    if saved.threads != Some(threads.n()) || saved.threading != cfg.threading {
        obs.note(&format!(
            "warning: --resume {}: the run used {:?} threads ({:?}), this one {} ({:?}); it continues, but its results may differ in the last bits from the original's (OpenBLAS can round differently on the other thread count's blocks)",
            p.display(), saved.threads.unwrap_or(0), saved.threading, threads.n(), cfg.threading
        ));
    }
    if saved.plan.is_some_and(|s| s != plan) {
        obs.note(&format!(
            "warning: --resume {}: the run's [plan] differs from the checkpoint's; it continues, but its results may differ in the last bits from the original's",
            p.display()
        ));
    }
}
