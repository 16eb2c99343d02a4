//! The configuration of a training run: one struct that is at once the
//! `train` command's flags (clap) and the keys of a `--config run.toml` file
//! (serde), so every flag is a config key of the same name (`--batch-size`
//! is `batch_size`).
//!
//! Precedence, lowest first: built-in defaults, the checkpoint being resumed
//! (`--resume`), the `--config` file, flags given on the command line. The
//! effective configuration of a run is saved as TOML beside its checkpoint
//! (`model.safetensors` -> `model.toml`) and as JSON in the checkpoint's
//! metadata, so `train --config model.toml` repeats the run.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::nn::init::InitError;
use crate::nn::spec::SpecError;
use crate::nn::{Activation, Init, Loss, NetSpec, Regularizers};
use crate::optim::{HyperparameterError, OptConfig, OptKind};
use crate::parallel::GemmThreading;
use crate::schedule::{Schedule, ScheduleError};
use crate::train::{BatchSize, BatchSizeError};

/// Every setting of a training run.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Directory with the four IDX files (raw or .gz) [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// When the data directory holds several datasets, the one whose file names start with NAME (EMNIST's folder: --subset letters reads emnist-letters-*).
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Network as a layer list: input width, then activation,width pairs; the activation before the output width is softmax (default), sigmoid or identity. Example: 784,relu,200,sigmoid,80,softmax,10.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["hidden", "activation"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<String>,
    /// Hidden widths (shorthand for --layers; input and output widths come from the data).
    #[arg(long, value_name = "W,W,...", default_value = "512,256")]
    pub hidden: String,
    /// Activation of every hidden layer with --hidden: relu, leaky_relu, sigmoid, tanh, identity.
    #[arg(long, default_value = "relu")]
    pub activation: String,
    /// Loss: ce (softmax cross-entropy) or mse (0.5 * sum of squared errors).
    #[arg(long, default_value = "ce")]
    pub loss: String,
    /// Optimizer: sgd, momentum, nesterov, rmsprop, adam, adamw.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Learning rate [default: 0.1 for sgd, 0.05 for momentum/nesterov, 0.001 otherwise].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Mini-batch size, or `full` for full-batch gradient descent.
    #[arg(long, default_value = "128", value_name = "N|full")]
    #[serde(deserialize_with = "count_or_word")]
    pub batch_size: String,
    /// Total passes over the training set (with --resume: the total, including the epochs already done).
    #[arg(long, default_value_t = 6, value_parser = int_flag::<usize>)]
    pub epochs: usize,
    /// Learning-rate schedule: constant, step:EPOCHS:GAMMA, cosine, cosine:WARMUP_EPOCHS, onecycle.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// L2 regularization added to the weight gradient (g + l2 * w).
    #[arg(long, default_value_t = 0.0)]
    pub l2: f64,
    /// Decoupled weight decay (AdamW) [default: 0.01 for adamw].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Momentum coefficient for momentum/nesterov.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Adam/AdamW beta1.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    /// Adam/AdamW beta2.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    /// Epsilon of Adam, AdamW and RMSprop.
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f64,
    /// RMSprop decay.
    #[arg(long, default_value_t = 0.9)]
    pub rho: f64,
    /// Dropout rate of every hidden layer in training (inverted dropout: kept units are scaled by 1/(1-P); evaluation never drops). Replaces the rates a layer list gives with `dropout:P` after a width.
    #[arg(long, value_name = "P")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Dropout rate of the input pixels in training (0.2 in Srivastava et al.'s MNIST nets).
    #[arg(long, value_name = "P")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_dropout: Option<f64>,
    /// Max-norm: after every update, scale each unit's incoming weight vector down to L2 norm C when it is longer (3-4 with dropout).
    #[arg(long, value_name = "C")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_norm: Option<f64>,
    /// Label smoothing of the cross-entropy target: (1-E) one-hot + E/classes (training loss only; 0.1 is common).
    #[arg(long, default_value_t = 0.0, value_name = "E")]
    pub label_smoothing: f64,
    /// Augment the training samples on the fly (never test or validation data); repeat the flag to combine: affine[:rotate=DEG,shift=PX,scale=F,shear=DEG] (default rotate=12,shift=2,scale=0.1), elastic[:sigma=PX,alpha=PX] (Simard's distortions, default sigma=4,alpha=34), flip (left-right, for clothes, not digits), erase[:p=F,min=F,max=F,ratio=F] (random erasing: with probability p, default 0.5, a rectangle of min..max of the image's area, default 0.02..0.33, aspect ratio within [ratio, 1/ratio], default 0.3, set to the background). See what they do with `mnist-mlp augment-preview`.
    #[arg(long, value_name = "KIND[:K=V,...]")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<String>,
    /// Weight init: auto (He for ReLU layers, Xavier otherwise), he, xavier, normal:STD.
    #[arg(long, default_value = "auto")]
    pub init: String,
    /// Seed of initialization, shuffling and the validation split.
    #[arg(long, default_value_t = 0, value_parser = int_flag::<u64>)]
    pub seed: u64,
    /// Hold out training samples for validation (reported beside test; needed by --patience): a count (5000) or a fraction of the training set (0.1, as Keras' validation_split).
    #[arg(long, default_value = "0", value_name = "N|FRACTION", value_parser = validation_flag)]
    pub validation: crate::data::Validation,
    /// Early stopping: stop when the validation loss has not improved for N epochs, and keep the best weights.
    #[arg(long, value_name = "N", value_parser = int_flag::<usize>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Stop after the first epoch whose accuracy reaches A (a fraction, e.g. 0.98): on the validation set with --validation, else on the test set (a time-to-accuracy run; choose settings on a validation split).
    #[arg(long, value_name = "A")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_at_accuracy: Option<f64>,
    /// Early stopping: an improvement must lower the validation loss by more than this.
    #[arg(long, default_value_t = 0.0, value_name = "DELTA")]
    pub min_delta: f64,
    /// Threads for rayon and OpenBLAS together [default: all cores].
    #[arg(long, value_name = "N", value_parser = int_flag::<usize>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// How matrix products use the threads: `split` (rayon blocks of single-threaded OpenBLAS calls, or, where the plan measures it faster, OpenBLAS's own threads: `blas_threads=on`) or `blas` (OpenBLAS threads every product, always).
    #[arg(long, default_value = "split", value_name = "POLICY")]
    pub threading: GemmThreading,
    /// One JSON object per epoch and a final summary on stdout (human output goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress bars: one line per epoch.
    #[arg(long)]
    pub quiet: bool,
    /// Do not download MNIST into data/mnist when it is missing.
    #[arg(long)]
    pub no_download: bool,
    /// Save the model here after the last epoch (safetensors, written atomically), with the run's configuration beside it (FILE with the extension .toml). Missing folders are created before training starts.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save: Option<PathBuf>,
    /// With --save: also save after every N epochs (a checkpoint --resume can continue from).
    #[arg(long, value_name = "N", requires = "save", value_parser = int_flag::<usize>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Write one JSON object per epoch (epoch, losses, accuracies, lr, seconds, samples/s, memory) to this file as the epochs finish (replaced by a new run, continued by --resume).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_out: Option<PathBuf>,
    /// Draw loss and accuracy curves (train, test, validation) against epoch to this file: .svg or .png.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plot: Option<PathBuf>,
    /// How the training step's speed choices are made: `auto` (time the candidates on this machine once per network, batch size and thread count, well under a second or 2% of a long run, and cache the choice in $XDG_CACHE_HOME/mnist-mlp or ~/.cache/mnist-mlp; a plan other than the built-in one is timed once more by the next run before it is kept, and a new boot times the shape again; a run that cannot time every candidate times what this machine chose for other shapes first; a measurement during which other programs or the host took more than a tenth of the CPU time the run's threads wanted decides nothing: the built-in plan runs, nothing is cached, a later run measures again, and $MNIST_MLP_PLAN_BUSY sets that share, 0 to 1), `default` (the built-in plan, nothing measured) or FILE (a plan saved before: a run's model.toml, or `mnist-mlp tune --save` output). Given on the command line, it replaces a `[plan]` table of --config or --resume [default: $MNIST_MLP_PLAN, else auto].
    #[arg(long = "plan", value_name = "auto|default|FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// The speed choices of the training step ([`crate::plan::Plan`]): a
    /// `[plan]` table in a config file, recorded with every run so that a
    /// resumed or repeated run makes the same choices (and so the same
    /// bits). `None`: chosen as `planner` says ([`crate::plan::choose`]).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::plan::Plan>,
    /// The epochs the learning-rate schedule spans when a resumed run kept
    /// or restarted it (`train --resume-schedule`), recorded so that later
    /// resumes go on on the same curve. `None`: the whole run. Only a
    /// resumed run reads it.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_window: Option<crate::schedule::Window>,
}

/// A config value that is a word (`full`) or a count: `batch_size = 64`
/// and `batch_size = "64"` both read as `"64"`.
fn count_or_word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum CountOrWord {
        Count(u64),
        Word(String),
    }
    match CountOrWord::deserialize(d) {
        Ok(CountOrWord::Count(n)) => Ok(n.to_string()),
        Ok(CountOrWord::Word(w)) => Ok(w),
        Err(_) => Err(serde::de::Error::custom(
            "expected a positive integer or \"full\"",
        )),
    }
}

/// A `--validation` value: a count (at most [`TOML_INT_MAX`]) or a fraction.
fn validation_flag(s: &str) -> Result<crate::data::Validation, String> {
    match crate::data::Validation::parse(s)? {
        crate::data::Validation::Count(c) if c > TOML_INT_MAX => {
            Err(format!("{s} is too large (at most {TOML_INT_MAX})"))
        }
        v => Ok(v),
    }
}

/// The largest integer a TOML file (where a run's settings are saved) can
/// hold.
pub const TOML_INT_MAX: u64 = i64::MAX as u64;

crate::error::message_error!(
    /// An integer flag that is not a non-negative integer a run can use.
    IntFlagError
);

/// An integer flag: a non-negative integer of at most [`TOML_INT_MAX`].
pub fn int_flag<T: TryFrom<u64>>(s: &str) -> Result<T, IntFlagError> {
    int_value(s).map_err(IntFlagError)
}

fn int_value<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let v: u64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a non-negative integer"))?;
    if v > TOML_INT_MAX {
        return Err(format!("{s} is too large (at most {TOML_INT_MAX})"));
    }
    T::try_from(v).map_err(|_| format!("{s} is too large for this machine"))
}

#[derive(Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    run: RunConfig,
}

impl Default for RunConfig {
    /// The defaults the command line declares (one source of truth).
    fn default() -> Self {
        DefaultsOnly::try_parse_from(["defaults"])
            .expect("the defaults parse")
            .run
    }
}

/// The config keys: the ids of the flags (field names).
pub fn flag_keys() -> Vec<String> {
    use clap::CommandFactory;
    DefaultsOnly::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| id != "help")
        .collect()
}

/// Keys whose value decides the network or the data order: a resumed run
/// may not change them.
pub const FIXED_ON_RESUME: &[&str] = &[
    "layers",
    "hidden",
    "activation",
    "loss",
    "optimizer",
    "batch_size",
    "seed",
    "validation",
];

/// The configuration as a TOML table (TOML, unlike JSON, keeps NaN and
/// infinities, so a bad value given as a flag survives layering and is
/// refused by validation instead of turning into a default).
fn to_table(c: &RunConfig) -> toml::Table {
    toml::Table::try_from(c).expect("a config serializes to TOML")
}

/// Why a configuration was refused. Every message names the flag (= key)
/// or the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// TOML that does not parse, or an unknown key or a wrong type (with
    /// the line).
    #[error("{0}")]
    Toml(String),
    /// A `--config` file that cannot be read or parsed.
    #[error("--config {}: {msg}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and line where known.
        msg: String,
    },
    /// A setting out of range, unknown, or in conflict with another.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for ConfigError {
    fn from(msg: String) -> Self {
        ConfigError::Invalid(msg)
    }
}
impl From<&str> for ConfigError {
    fn from(msg: &str) -> Self {
        ConfigError::Invalid(msg.to_string())
    }
}
impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}
macro_rules! invalid_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ConfigError {
            fn from(e: $t) -> Self {
                ConfigError::Invalid(e.to_string())
            }
        }
    )*};
}
invalid_from!(
    SpecError,
    crate::data::augment::AugmentError,
    crate::data::dataset::ValidationError,
    IntFlagError,
    ScheduleError,
    BatchSizeError,
    HyperparameterError,
    InitError,
    crate::plot::PlotError
);

impl RunConfig {
    /// Parses a TOML configuration (every key optional; unknown keys are
    /// errors).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::Toml(e.message().to_string() + &location(text, &e)))
    }

    /// The configuration as a TOML document (keys in declaration order).
    /// With a layer list, the hidden widths and activation (which it
    /// overrides) are left out, so that the file names one network, as a
    /// config file must.
    pub fn to_toml(&self) -> String {
        let text = toml::to_string(self).expect("a config serializes to TOML");
        if self.layers.is_none() {
            return text;
        }
        text.lines()
            .filter(|l| !l.starts_with("hidden = ") && !l.starts_with("activation = "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Layers `top`'s values for `keys` over `self`.
    pub fn overlay(&self, top: &RunConfig, keys: &[String]) -> RunConfig {
        let mut base = to_table(self);
        let top = to_table(top);
        for k in keys {
            match top.get(k) {
                Some(v) => base.insert(k.clone(), v.clone()),
                None => base.remove(k),
            };
        }
        // `layers` and `hidden`/`activation` describe the same thing: the
        // upper layer's choice wins.
        let sets = |k: &str| keys.iter().any(|x| x == k);
        if (sets("hidden") || sets("activation")) && !sets("layers") {
            base.remove("layers");
        }
        toml::Value::Table(base)
            .try_into()
            .expect("keys of a valid config")
    }

    /// Layers the keys a TOML config file sets over `self`: unknown keys
    /// and wrong types are errors naming the file, the key and the line.
    pub fn overlay_toml_file(&self, path: &Path) -> Result<RunConfig, ConfigError> {
        let ctx = |msg: String| ConfigError::File {
            path: path.to_path_buf(),
            msg,
        };
        let text =
            crate::files::read_to_string(path).map_err(|e| ctx(format!("cannot read: {e}")))?;
        let file = Self::from_toml(&text).map_err(|e| ctx(e.to_string()))?;
        // Valid TOML by now: the keys it sets.
        let keys: Vec<String> = text
            .parse::<toml::Table>()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        // As on the command line, the network is a layer list or hidden
        // widths, not both.
        let has = |k: &str| keys.iter().any(|x| x == k);
        if has("layers") && (has("hidden") || has("activation")) {
            let other = if has("hidden") {
                "hidden"
            } else {
                "activation"
            };
            return Err(ctx(format!(
                "sets both `layers` and `{other}`; a network is either a layer list (`layers`) or hidden widths with an activation (`hidden`, `activation`): keep one"
            )));
        }
        Ok(self.overlay(&file, &keys))
    }

    /// Refuses integers a TOML file cannot hold (above `i64::MAX`: only a
    /// hand-edited JSON configuration, such as a checkpoint's, can have them).
    pub fn check_integers(&self) -> Result<(), ConfigError> {
        let big = |v: u64| v > TOML_INT_MAX;
        let fields: [(&str, Option<u64>); 6] = [
            ("epochs", Some(self.epochs as u64)),
            ("seed", Some(self.seed)),
            (
                "validation",
                match self.validation {
                    crate::data::Validation::Count(c) => Some(c),
                    crate::data::Validation::Fraction(_) => None,
                },
            ),
            ("patience", self.patience.map(|v| v as u64)),
            ("threads", self.threads.map(|v| v as u64)),
            ("checkpoint_every", self.checkpoint_every.map(|v| v as u64)),
        ];
        match fields.iter().find(|(_, v)| v.is_some_and(big)) {
            Some((k, Some(v))) => Err(ConfigError::Invalid(format!(
                "`{k}` = {v} is too large (at most {TOML_INT_MAX})"
            ))),
            _ => Ok(()),
        }
    }

    /// The keys on which `self` and `other` differ.
    pub fn differing_keys(&self, other: &RunConfig) -> Vec<String> {
        let (a, b) = (to_table(self), to_table(other));
        let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        keys.retain(|k| a.get(k) != b.get(k));
        keys
    }

    /// As JSON (for checkpoint metadata; validated configurations hold no
    /// NaN or infinity, which JSON cannot express).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a config serializes")
    }
}

/// A run's settings parsed and checked: what the network, optimizer and
/// trainer are built from. Every error names the flag (= config key).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--loss`.
    pub loss: Loss,
    /// The optimizer and its hyperparameters (`--optimizer`, `--lr`, ...).
    pub opt: OptConfig,
    /// `--schedule`.
    pub schedule: Schedule,
    /// `--batch-size`.
    pub batch: BatchSize,
    /// `--init`.
    pub init: Init,
    /// The network of `--layers`; `None`: from `--hidden`/`--activation`
    /// once the data's widths are known ([`Settings::network`]).
    pub layers: Option<NetSpec>,
    /// `--hidden` widths (without a layer list).
    pub hidden: Vec<usize>,
    /// `--activation` of the hidden layers (without a layer list).
    pub activation: Activation,
    /// `--input-dropout`, `--dropout`: replace the layer list's rates.
    pub dropout: (Option<f64>, Option<f64>),
    /// Label smoothing and max-norm.
    pub reg: Regularizers,
    /// `--augment`.
    pub augment: crate::data::augment::Augment,
}

impl Settings {
    /// The network for data with `features` inputs and `classes` classes.
    pub fn network(&self, features: usize, classes: usize) -> Result<NetSpec, SpecError> {
        let spec = match &self.layers {
            Some(s) => s.clone(),
            None => NetSpec::from_hidden(features, &self.hidden, self.activation, classes)?,
        };
        spec.with_dropout(self.dropout.0, self.dropout.1)
    }
}

/// The learning rate when none is given.
pub fn default_lr(kind: OptKind) -> f64 {
    match kind {
        OptKind::Sgd => 0.1,
        OptKind::Momentum | OptKind::Nesterov => 0.05,
        _ => 1e-3,
    }
}

/// A comma-separated list of layer widths (`--hidden`).
pub fn parse_widths(s: &str, flag: &str) -> Result<Vec<usize>, ConfigError> {
    let max = crate::nn::spec::MAX_WIDTH;
    s.split(',')
        .map(|t| {
            let t = t.trim();
            let w: u128 = t
                .parse()
                .map_err(|_| format!("{flag}: `{t}` is not a width"))?;
            if w == 0 || w > max as u128 {
                return Err(ConfigError::Invalid(format!(
                    "{flag}: width {t} is out of range (1..={max})"
                )));
            }
            Ok(w as usize)
        })
        .collect()
}

impl RunConfig {
    /// Parses and checks every setting (ranges, names, combinations).
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let loss = Loss::parse(&self.loss)
            .ok_or_else(|| format!("--loss: unknown loss `{}` (expected ce or mse)", self.loss))?;
        let kind = OptKind::parse(&self.optimizer).ok_or_else(|| format!("--optimizer: unknown optimizer `{}` (expected sgd, momentum, nesterov, rmsprop, adam or adamw)", self.optimizer))?;
        let mut opt = OptConfig::new(kind, self.lr.unwrap_or_else(|| default_lr(kind)));
        opt.l2 = self.l2;
        opt.momentum = self.momentum;
        opt.beta1 = self.beta1;
        opt.beta2 = self.beta2;
        opt.eps = self.eps;
        opt.rho = self.rho;
        if let Some(wd) = self.weight_decay {
            opt.weight_decay = wd;
        }
        opt.validate()?;
        let schedule = Schedule::parse(&self.schedule)?;
        let batch = BatchSize::parse(&self.batch_size)?;
        let init = Init::parse(&self.init).map_err(|e| format!("--init: {e}"))?;
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        schedule.check_run(self.epochs)?;
        if self.checkpoint_every == Some(0) {
            return Err("--checkpoint-every must be at least 1".into());
        }
        if self.checkpoint_every.is_some() && self.save.is_none() {
            return Err("--checkpoint-every needs --save FILE".into());
        }
        if let Some(p) = &self.save {
            if p.extension().is_some_and(|e| e == "toml") {
                return Err(ConfigError::Invalid(format!("--save {}: the configuration is written beside the model as .toml; give the model another extension (.safetensors)", p.display())));
            }
        }
        if let Some(p) = &self.plot {
            crate::plot::Format::of(p).map_err(|e| format!("--plot: {e}"))?;
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(ConfigError::Invalid(format!(
                "--min-delta must be a finite number >= 0, got {}",
                self.min_delta
            )));
        }
        match self.patience {
            Some(0) => return Err("--patience must be at least 1".into()),
            Some(_) if self.validation.is_none() => return Err(
                "--patience needs a validation set: add --validation N (e.g. --validation 5000)"
                    .into(),
            ),
            _ => {}
        }
        let layers = match &self.layers {
            Some(l) => Some(NetSpec::parse(l).map_err(|e| format!("--layers: {e}"))?),
            None => None,
        };
        let hidden = parse_widths(&self.hidden, "--hidden")?;
        for (p, flag) in [
            (self.input_dropout, "--input-dropout"),
            (self.dropout, "--dropout"),
        ] {
            if let Some(p) = p {
                crate::nn::spec::check_dropout_rate(p).map_err(|e| format!("{flag}: {e}"))?;
            }
        }
        if let crate::data::Validation::Fraction(f) = self.validation {
            if !(f > 0.0 && f < 1.0) {
                return Err(ConfigError::Invalid(format!(
                    "--validation {f}: a fraction of the training set must be in (0, 1) (or give a number of samples)"
                )));
            }
        }
        if let Some(a) = self.stop_at_accuracy {
            if !(a > 0.0 && a <= 1.0) {
                let hint = if a > 1.0 && a <= 100.0 {
                    format!(" (for {a}% write {})", a / 100.0)
                } else {
                    String::new()
                };
                return Err(ConfigError::Invalid(format!(
                    "--stop-at-accuracy must be a fraction in (0, 1], got {a}{hint}"
                )));
            }
        }
        let ls = self.label_smoothing;
        if !(0.0..1.0).contains(&ls) {
            return Err(ConfigError::Invalid(format!(
                "--label-smoothing must be in [0, 1) (the share of the target spread over all classes), got {ls}"
            )));
        }
        if ls > 0.0 && loss != Loss::CrossEntropy {
            return Err("--label-smoothing needs the cross-entropy loss (--loss ce)".into());
        }
        if let Some(c) = self.max_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "--max-norm must be a positive number (the largest L2 norm of a unit's incoming weights, e.g. 3), got {c}"
                )));
            }
        }
        let activation = Activation::parse(&self.activation).ok_or_else(|| format!("--activation: unknown activation `{}` (expected relu, leaky_relu, sigmoid, tanh or identity)", self.activation))?;
        Ok(Settings {
            loss,
            opt,
            schedule,
            batch,
            init,
            layers,
            hidden,
            activation,
            dropout: (self.input_dropout, self.dropout),
            augment: crate::data::augment::Augment::parse(&self.augment)?,
            reg: Regularizers {
                label_smoothing: ls,
                max_norm: self.max_norm,
            },
        })
    }
}

fn location(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_is_a_count_or_full_and_a_network_is_one_of_two_forms() {
        assert_eq!(
            RunConfig::from_toml("batch_size = 64").unwrap().batch_size,
            "64"
        );
        assert_eq!(
            RunConfig::from_toml("batch_size = \"full\"")
                .unwrap()
                .batch_size,
            "full"
        );
        let e = RunConfig::from_toml("batch_size = 1.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive integer or \"full\""), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.toml");
        std::fs::write(&p, "layers = \"784,relu,64,10\"\nhidden = \"32\"\n").unwrap();
        let e = RunConfig::default()
            .overlay_toml_file(&p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run.toml") && e.contains("`layers` and `hidden`"),
            "{e}"
        );
        std::fs::write(&p, "hidden = \"32\"\nactivation = \"tanh\"\n").unwrap();
        assert!(RunConfig::default().overlay_toml_file(&p).is_ok());
    }

    #[test]
    fn integers_a_toml_file_cannot_hold_are_refused() {
        let c = RunConfig {
            seed: u64::MAX,
            ..RunConfig::default()
        };
        let e = c.check_integers().unwrap_err().to_string();
        assert!(e.contains("`seed`") && e.contains("too large"), "{e}");
        assert!(RunConfig::default().check_integers().is_ok());
        assert_eq!(int_flag::<usize>("12"), Ok(12));
        assert!(int_flag::<u64>("9223372036854775808")
            .unwrap_err()
            .message()
            .contains("too large"));
        assert!(int_flag::<u64>("-1")
            .unwrap_err()
            .message()
            .contains("not a non-negative integer"));
    }

    #[test]
    fn defaults_come_from_the_flags() {
        let d = RunConfig::default();
        assert_eq!(d.epochs, 6);
        assert_eq!(d.batch_size, "128");
        assert_eq!(d.hidden, "512,256");
        assert_eq!(d.threads, None);
    }

    #[test]
    fn toml_round_trip_and_errors() {
        let mut c = RunConfig {
            layers: Some("784,relu,64,softmax,10".into()),
            lr: Some(0.003),
            epochs: 3,
            threads: Some(2),
            ..RunConfig::default()
        };
        c.save = Some("runs/m.safetensors".into());
        let text = c.to_toml();
        assert!(text.contains("batch_size = \"128\""), "{text}");
        assert!(
            !text.contains("hidden =") && !text.contains("activation ="),
            "{text}"
        );
        assert_eq!(RunConfig::from_toml(&text).unwrap(), c);

        let e = RunConfig::from_toml("epochs = 3\nbatch-size = 4\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `batch-size`") && e.contains("line 2"),
            "{e}"
        );
        let e = RunConfig::from_toml("epochs = \"three\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid type") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn layering_sets_only_the_given_keys() {
        let base = RunConfig {
            layers: Some("784,relu,64,softmax,10".into()),
            epochs: 9,
            ..RunConfig::default()
        };
        let top = RunConfig {
            epochs: 2,
            lr: Some(0.5),
            ..RunConfig::default()
        };
        let c = base.overlay(&top, &["epochs".into()]);
        assert_eq!(c.epochs, 2);
        assert_eq!(c.lr, None, "lr was not among the keys");
        assert_eq!(c.layers, base.layers);
        // --hidden on top replaces a layer list below.
        let c = base.overlay(&top, &["hidden".into()]);
        assert_eq!(c.layers, None);
        assert_eq!(base.differing_keys(&c), vec!["layers".to_string()]);
        // NaN survives layering (to be refused by validation, not defaulted).
        let nan = RunConfig {
            lr: Some(f64::NAN),
            ..RunConfig::default()
        };
        assert!(base.overlay(&nan, &["lr".into()]).lr.unwrap().is_nan());
    }

    #[test]
    fn settings_checks_every_setting_and_names_the_flag() {
        let p = RunConfig::default().settings().unwrap();
        assert_eq!(p.opt.kind, OptKind::Adam);
        assert_eq!(p.opt.lr, 1e-3, "the optimizer's default rate");
        assert_eq!(p.hidden, vec![512, 256]);
        assert_eq!(
            p.network(784, 10).unwrap().to_string(),
            "784,relu,512,relu,256,softmax,10"
        );
        let sgd = RunConfig {
            optimizer: "sgd".into(),
            layers: Some("4,tanh,3,softmax,2".into()),
            ..RunConfig::default()
        };
        let p = sgd.settings().unwrap();
        assert_eq!(p.opt.lr, 0.1);
        assert_eq!(
            p.network(784, 10).unwrap().to_string(),
            "4,tanh,3,softmax,2"
        );
        let bad = |f: fn(&mut RunConfig), want: &str| {
            let mut c = RunConfig::default();
            f(&mut c);
            let e = c.settings().unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        };
        bad(|c| c.loss = "hinge".into(), "--loss: unknown loss `hinge`");
        bad(|c| c.optimizer = "lbfgs".into(), "--optimizer");
        bad(|c| c.lr = Some(f64::NAN), "--lr");
        bad(|c| c.batch_size = "0".into(), "batch");
        bad(|c| c.epochs = 0, "--epochs");
        bad(
            |c| c.checkpoint_every = Some(2),
            "--checkpoint-every needs --save",
        );
        bad(|c| c.save = Some("m.toml".into()), "--save m.toml");
        bad(|c| c.plot = Some("c.pdf".into()), "--plot");
        bad(|c| c.min_delta = -1.0, "--min-delta");
        bad(
            |c| c.patience = Some(3),
            "--patience needs a validation set",
        );
        bad(|c| c.layers = Some("784,relu".into()), "--layers");
        bad(|c| c.hidden = "64,0".into(), "--hidden: width 0");
        bad(|c| c.activation = "swish".into(), "--activation");
        bad(|c| c.init = "zeros".into(), "--init");
    }
}
