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

use crate::parallel::GemmThreading;

/// Every setting of a training run.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Directory with the four IDX files (raw or .gz) [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
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
    pub batch_size: String,
    /// Total passes over the training set (with --resume: the total, including the epochs already done).
    #[arg(long, default_value_t = 6)]
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
    /// Weight init: auto (He for ReLU layers, Xavier otherwise), he, xavier, normal:STD.
    #[arg(long, default_value = "auto")]
    pub init: String,
    /// Seed of initialization, shuffling and the validation split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Hold out this many training samples for validation (reported beside test; needed by --patience).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub validation: usize,
    /// Early stopping: stop when the validation loss has not improved for N epochs, and keep the best weights.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Early stopping: an improvement must lower the validation loss by more than this.
    #[arg(long, default_value_t = 0.0, value_name = "DELTA")]
    pub min_delta: f64,
    /// Threads for rayon and OpenBLAS together [default: all cores].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// How matrix products use the threads: `split` (rayon blocks, single-threaded OpenBLAS) or `blas` (OpenBLAS threads).
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
    /// Save the model here after the last epoch (safetensors, written atomically), with the run's configuration beside it (FILE with the extension .toml).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save: Option<PathBuf>,
    /// With --save: also save after every N epochs (a checkpoint --resume can continue from).
    #[arg(long, value_name = "N", requires = "save")]
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

impl RunConfig {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_string() + &location(text, &e))
    }

    /// The configuration as a TOML document (keys in declaration order).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config serializes to TOML")
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
    pub fn overlay_toml_file(&self, path: &Path) -> Result<RunConfig, String> {
        let ctx = |e: String| format!("--config {}: {e}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| ctx(format!("cannot read: {e}")))?;
        let file = Self::from_toml(&text).map_err(ctx)?;
        // Valid TOML by now: the keys it sets.
        let keys: Vec<String> = text
            .parse::<toml::Table>()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        Ok(self.overlay(&file, &keys))
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
        assert_eq!(RunConfig::from_toml(&text).unwrap(), c);

        let e = RunConfig::from_toml("epochs = 3\nbatch-size = 4\n").unwrap_err();
        assert!(
            e.contains("unknown field `batch-size`") && e.contains("line 2"),
            "{e}"
        );
        let e = RunConfig::from_toml("epochs = \"three\"\n").unwrap_err();
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
}
