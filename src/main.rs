//! The `mnist-mlp` command line: train, eval, gradcheck, info, fetch, bench.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use mnist_mlp::data::{self, fetch, LoadOptions};
use mnist_mlp::gradcheck;
use mnist_mlp::nn::{Activation, Init, Loss, Mlp, NetSpec};
use mnist_mlp::optim::{OptConfig, OptKind};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::schedule::Schedule;
use mnist_mlp::train::{BatchSize, Trainer};
use mnist_mlp::workloads::{self, Workload};

#[derive(Parser)]
#[command(
    name = "mnist-mlp",
    version,
    about = "Fast multilayer-perceptron training on MNIST and other IDX datasets (OpenBLAS + rayon)",
    long_about = "Fast multilayer-perceptron training on MNIST and every dataset in IDX format \
(Fashion-MNIST, KMNIST, EMNIST). Matrix products run on OpenBLAS, everything else on rayon.\n\n\
Data is read from --data-dir, else $MNIST_DIR, else ./data/mnist (downloaded there on first use).",
    after_help = "Examples:\n  mnist-mlp fetch\n  mnist-mlp train\n  mnist-mlp train --layers 784,relu,200,sigmoid,80,softmax,10 --optimizer momentum --lr 0.05 --epochs 10\n  mnist-mlp gradcheck\n  mnist-mlp bench --workload T1 --threads 2"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a network and report per-epoch loss, accuracy and speed.
    Train(Box<TrainArgs>),
    /// Evaluate a saved model: accuracy, per-class precision/recall, confusion matrix.
    Eval(EvalArgs),
    /// Check back-propagation against finite differences (f64).
    Gradcheck(GradArgs),
    /// Describe a data directory: files, shapes, per-class counts.
    Info(DataArgs),
    /// Download MNIST from the public mirrors (verified by SHA-256).
    Fetch(FetchArgs),
    /// Time a standard workload (T1..T5) and print samples/s.
    Bench(BenchArgs),
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Directory with the four IDX files (raw or .gz) [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ThreadArgs {
    /// Threads for rayon and OpenBLAS together (0: all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// How matrix products use the threads: `split` (rayon blocks, single-threaded OpenBLAS) or `blas` (OpenBLAS threads).
    #[arg(long, default_value = "split", value_name = "POLICY")]
    threading: GemmThreading,
}

impl ThreadArgs {
    fn pool(&self) -> Result<Threads> {
        if self.threads > 4096 {
            bail!(
                "--threads {} is out of range (0 for all cores, or 1..=4096)",
                self.threads
            );
        }
        Threads::new(self.threads, self.threading).map_err(anyhow::Error::msg)
    }
}

#[derive(Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Examples:\n  mnist-mlp train                                  # 784-512-256-10 ReLU, Adam, 6 epochs\n  mnist-mlp train --hidden 128 --epochs 2 --json\n  mnist-mlp train --layers 784,relu,200,sigmoid,80,softmax,10 --batch-size full --optimizer sgd --lr 0.5\n  mnist-mlp train --layers 784,sigmoid,300,sigmoid,10 --loss mse --optimizer sgd --lr 0.5"
)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Network as a layer list: input width, then activation,width pairs; the activation before the output width is softmax (default), sigmoid or identity. Example: 784,relu,200,sigmoid,80,softmax,10.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["hidden", "activation"])]
    layers: Option<String>,
    /// Hidden widths (shorthand for --layers; input and output widths come from the data).
    #[arg(long, value_name = "W,W,...", default_value = "512,256")]
    hidden: String,
    /// Activation of every hidden layer with --hidden: relu, leaky_relu, sigmoid, tanh, identity.
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Loss: ce (softmax cross-entropy) or mse (0.5 * sum of squared errors).
    #[arg(long, default_value = "ce")]
    loss: String,
    /// Optimizer: sgd, momentum, nesterov, rmsprop, adam, adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate [default: 0.1 for sgd, 0.05 for momentum/nesterov, 0.001 otherwise].
    #[arg(long)]
    lr: Option<f64>,
    /// Mini-batch size, or `full` for full-batch gradient descent.
    #[arg(long, default_value = "128", value_name = "N|full")]
    batch_size: String,
    /// Passes over the training set.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Learning-rate schedule: constant, step:EPOCHS:GAMMA, cosine, cosine:WARMUP_EPOCHS, onecycle.
    #[arg(long, default_value = "cosine")]
    schedule: String,
    /// L2 regularization added to the weight gradient (g + l2 * w).
    #[arg(long, default_value_t = 0.0)]
    l2: f64,
    /// Decoupled weight decay (AdamW) [default: 0.01 for adamw].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Momentum coefficient for momentum/nesterov.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Adam/AdamW beta1.
    #[arg(long, default_value_t = 0.9)]
    beta1: f64,
    /// Adam/AdamW beta2.
    #[arg(long, default_value_t = 0.999)]
    beta2: f64,
    /// Epsilon of Adam, AdamW and RMSprop.
    #[arg(long, default_value_t = 1e-8)]
    eps: f64,
    /// RMSprop decay.
    #[arg(long, default_value_t = 0.9)]
    rho: f64,
    /// Weight init: auto (He for ReLU layers, Xavier otherwise), he, xavier, normal:STD.
    #[arg(long, default_value = "auto")]
    init: String,
    /// Seed of initialization, shuffling and the validation split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hold out this many training samples for validation (reported beside test).
    #[arg(long, default_value_t = 0, value_name = "N")]
    validation: usize,
    #[command(flatten)]
    threads: ThreadArgs,
    /// One JSON object per epoch and a final summary on stdout (human output goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress bars: one line per epoch.
    #[arg(long)]
    quiet: bool,
    /// Do not download MNIST into data/mnist when it is missing.
    #[arg(long)]
    no_download: bool,
    /// Save the trained model here (safetensors, written atomically).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Write one JSON object per epoch (epoch, losses, accuracies, lr, seconds, samples/s) to this file, a line each as the epochs finish (the file is replaced).
    #[arg(long, value_name = "FILE")]
    metrics_out: Option<PathBuf>,
    /// With --save: also save after every N epochs.
    #[arg(long, value_name = "N", requires = "save")]
    checkpoint_every: Option<usize>,
}

#[derive(Args)]
struct EvalArgs {
    /// Model to evaluate (a safetensors file written by `train --save`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Print one JSON object (with `test_accuracy`) instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GradArgs {
    /// Check only this layer list (default: every activation and loss on small networks).
    #[arg(long, value_name = "LIST")]
    layers: Option<String>,
    /// Loss for --layers: ce or mse.
    #[arg(long, default_value = "ce")]
    loss: String,
    /// Samples in the batch.
    #[arg(long, default_value_t = 7)]
    batch: usize,
    /// Blocks the batch is split into (as threads would).
    #[arg(long, default_value_t = 2)]
    blocks: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Largest relative error accepted.
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FetchArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Mirror URL prefix to try (repeatable; replaces the defaults and $MNIST_MIRRORS).
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
}

#[derive(Args)]
struct BenchArgs {
    /// Workload: T1..T5 (see BENCHMARKS.md).
    #[arg(long)]
    workload: String,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Timed epochs after one warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use synthetic data of MNIST's shape instead of the real files.
    #[arg(long)]
    synthetic: bool,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Train(a) => cmd_train(*a),
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Gradcheck(a) => cmd_gradcheck(a),
        Cmd::Info(a) => cmd_info(a),
        Cmd::Fetch(a) => cmd_fetch(a),
        Cmd::Bench(a) => cmd_bench(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_list(s: &str, flag: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            let w: u128 = t
                .parse()
                .with_context(|| format!("{flag}: `{t}` is not a width"))?;
            if w == 0 || w > mnist_mlp::nn::spec::MAX_WIDTH as u128 {
                bail!(
                    "{flag}: width {t} is out of range (1..={})",
                    mnist_mlp::nn::spec::MAX_WIDTH
                );
            }
            Ok(w as usize)
        })
        .collect()
}

/// Loads the splits, downloading MNIST into the default directory on first use.
fn load_data(
    dir_flag: Option<&Path>,
    opts: &LoadOptions,
    allow_download: bool,
    progress: bool,
) -> Result<data::Splits> {
    let dir = data::resolve_data_dir(dir_flag);
    let default = dir_flag.is_none() && data::dataset::data_dir_from_env().is_none();
    if default && allow_download && data::dataset::locate(&dir).is_err() {
        eprintln!("MNIST not found in {}: downloading it (use --data-dir or MNIST_DIR for an existing copy)", dir.display());
        fetch::fetch(
            &dir,
            &fetch::MNIST_FILES,
            &fetch::mirrors_from_env(),
            progress,
        )?;
    }
    Ok(data::load_dir(&dir, opts)?)
}

fn default_lr(kind: OptKind) -> f64 {
    match kind {
        OptKind::Sgd => 0.1,
        OptKind::Momentum | OptKind::Nesterov => 0.05,
        _ => 1e-3,
    }
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let loss = Loss::parse(&a.loss)
        .with_context(|| format!("--loss: unknown loss `{}` (expected ce or mse)", a.loss))?;
    let kind = OptKind::parse(&a.optimizer)
        .with_context(|| format!("--optimizer: unknown optimizer `{}` (expected sgd, momentum, nesterov, rmsprop, adam or adamw)", a.optimizer))?;
    let mut opt = OptConfig::new(kind, a.lr.unwrap_or_else(|| default_lr(kind)));
    opt.l2 = a.l2;
    opt.momentum = a.momentum;
    opt.beta1 = a.beta1;
    opt.beta2 = a.beta2;
    opt.eps = a.eps;
    opt.rho = a.rho;
    if let Some(wd) = a.weight_decay {
        opt.weight_decay = wd;
    }
    opt.validate().map_err(anyhow::Error::msg)?;
    let schedule = Schedule::parse(&a.schedule).map_err(anyhow::Error::msg)?;
    let batch = BatchSize::parse(&a.batch_size).map_err(anyhow::Error::msg)?;
    let init = Init::parse(&a.init).map_err(|e| anyhow::anyhow!("--init: {e}"))?;
    if a.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if a.checkpoint_every == Some(0) {
        bail!("--checkpoint-every must be at least 1");
    }
    let spec = match &a.layers {
        Some(l) => Some(NetSpec::parse(l).map_err(|e| anyhow::anyhow!("--layers: {e}"))?),
        None => None,
    };
    let hidden = parse_list(&a.hidden, "--hidden")?;
    let act = Activation::parse(&a.activation)
        .with_context(|| format!("--activation: unknown activation `{}` (expected relu, leaky_relu, sigmoid, tanh or identity)", a.activation))?;
    let threads = a.threads.pool()?;

    let tty = std::io::stderr().is_terminal() && !a.quiet;
    let classes = spec.as_ref().map(|s| s.output_width());
    let splits = load_data(
        a.data.data_dir.as_deref(),
        &LoadOptions {
            classes,
            validation: a.validation,
            seed: a.seed,
        },
        !a.no_download,
        tty,
    )?;
    let features = splits.train.features();
    let spec = match spec {
        Some(s) => {
            if s.input() != features {
                bail!(
                    "--layers: the network's input width is {} but the images have {} pixels ({}x{}); start the list with {}",
                    s.input(), features, splits.train.rows, splits.train.cols, features
                );
            }
            s
        }
        None => NetSpec::from_hidden(features, &hidden, act, splits.classes)
            .map_err(anyhow::Error::msg)?,
    };
    let mut model =
        Mlp::<f32>::new(spec.clone(), loss, init, a.seed).map_err(anyhow::Error::msg)?;
    let mut trainer = Trainer::new(
        &model,
        splits.train.len(),
        batch,
        opt.clone(),
        a.seed,
        &threads,
    )?;
    trainer.schedule = schedule;
    trainer.total_epochs = a.epochs;

    let say = |s: String| {
        if a.json {
            eprintln!("{s}")
        } else {
            println!("{s}")
        }
    };
    say(format!(
        "network {spec} ({} parameters), loss {}, optimizer {} lr {} ({}), batch {batch}, {} epochs, {} threads ({:?})",
        spec.params(), loss.name(), kind.name(), opt.lr, a.schedule, a.epochs, threads.n(), threads.policy()
    ));
    say(format!(
        "data {}: train {} x {}, test {}{}",
        data::resolve_data_dir(a.data.data_dir.as_deref()).display(),
        splits.train.len(),
        features,
        splits.test.len(),
        splits
            .validation
            .as_ref()
            .map_or(String::new(), |v| format!(", validation {}", v.len()))
    ));

    let mut metrics = match &a.metrics_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("--metrics-out: cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let steps = trainer.steps_per_epoch();
    let mut train_seconds = 0.0;
    let mut last = None;
    for e in 1..=a.epochs {
        let pb = if tty {
            let pb = ProgressBar::new(steps as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "epoch {msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb.set_message(format!("{e}/{}", a.epochs));
            pb
        } else {
            ProgressBar::hidden()
        };
        let every = (steps / 200).max(1);
        let on_step = |k: usize| {
            if k % every == 0 || k == steps {
                pb.set_position(k as u64);
            }
        };
        let r = trainer.epoch_report(
            &mut model,
            &splits.train,
            &splits.test,
            splits.validation.as_ref(),
            &on_step,
        );
        pb.finish_and_clear();
        let r = r?;
        train_seconds += r.seconds;
        let val = match (r.val_loss, r.val_accuracy) {
            (Some(l), Some(acc)) => format!("  val loss {l:.4} acc {:.2}%", acc * 100.0),
            _ => String::new(),
        };
        say(format!(
            "epoch {:>3}/{}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%{val}  {:.2} s  {:.0} samples/s",
            e, a.epochs, r.train_loss, r.train_accuracy * 100.0, r.test_loss, r.test_accuracy * 100.0, r.seconds, r.samples_per_s
        ));
        if a.json || metrics.is_some() {
            let mut v = serde_json::to_value(&r)?;
            v["event"] = "epoch".into();
            if a.json {
                println!("{v}");
            }
            if let (Some(w), Some(p)) = (metrics.as_mut(), a.metrics_out.as_ref()) {
                use std::io::Write;
                writeln!(w, "{v}")
                    .and_then(|_| w.flush())
                    .with_context(|| format!("--metrics-out: cannot write {}", p.display()))?;
            }
        }
        if let Some(path) = &a.save {
            let every = a.checkpoint_every.unwrap_or(0);
            if e == a.epochs || (every > 0 && e % every == 0) {
                let config = serde_json::json!({
                    "layers": spec.to_string(), "loss": loss.name(), "optimizer": opt, "schedule": a.schedule,
                    "batch_size": batch.to_string(), "epochs": a.epochs, "epochs_done": e, "init": a.init,
                    "seed": a.seed, "validation": a.validation, "threads": threads.n(),
                    "test_accuracy": r.test_accuracy, "test_loss": r.test_loss,
                });
                mnist_mlp::checkpoint::save(path, &model, &config)?;
                say(format!("saved {} (epoch {e})", path.display()));
            }
        }
        last = Some(r);
    }
    let r = last.expect("at least one epoch");
    say(format!(
        "done: test accuracy {:.2}% (loss {:.4}) after {} epochs; training took {:.2} s ({:.0} samples/s on average)",
        r.test_accuracy * 100.0,
        r.test_loss,
        a.epochs,
        train_seconds,
        (splits.train.len() * a.epochs) as f64 / train_seconds
    ));
    if a.json {
        let s = serde_json::json!({
            "event": "summary",
            "layers": spec.to_string(),
            "loss": loss.name(),
            "optimizer": kind.name(),
            "lr": opt.lr,
            "batch_size": batch.to_string(),
            "epochs": a.epochs,
            "threads": threads.n(),
            "test_accuracy": r.test_accuracy,
            "test_loss": r.test_loss,
            "train_accuracy": r.train_accuracy,
            "train_loss": r.train_loss,
            "val_accuracy": r.val_accuracy,
            "train_seconds": train_seconds,
            "samples_per_s": (splits.train.len() * a.epochs) as f64 / train_seconds,
        });
        println!("{s}");
    }
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let loaded = mnist_mlp::checkpoint::load(&a.model)?;
    let mut model = loaded.model;
    let classes = model.spec.output_width();
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let splits = data::load_dir(
        &dir,
        &LoadOptions {
            classes: Some(classes),
            ..LoadOptions::default()
        },
    )?;
    let test = &splits.test;
    if test.features() != model.spec.input() {
        bail!(
            "{}: the model's input width is {} but the images in {} have {} pixels",
            a.model.display(),
            model.spec.input(),
            dir.display(),
            test.features()
        );
    }
    let threads = a.threads.pool()?;
    let mut ws = mnist_mlp::nn::Workspace::<f32>::new(
        &model.spec,
        mnist_mlp::train::EVAL_CHUNK,
        threads.blocks(),
    );
    let mut probs = ndarray::Array2::<f32>::zeros((test.len(), classes));
    let stats = threads
        .install(|| model.evaluate_into(&mut ws, test.images.view(), &test.labels, &mut probs));
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (row, &y) in probs.rows().into_iter().zip(&test.labels) {
        let p = mnist_mlp::nn::loss::argmax(row.as_slice().expect("contiguous"));
        confusion[y as usize][p] += 1;
    }
    let recall: Vec<f64> = (0..classes)
        .map(|c| confusion[c][c] as f64 / confusion[c].iter().sum::<usize>().max(1) as f64)
        .collect();
    let precision: Vec<f64> = (0..classes)
        .map(|c| {
            confusion[c][c] as f64
                / (0..classes).map(|r| confusion[r][c]).sum::<usize>().max(1) as f64
        })
        .collect();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": a.model.display().to_string(), "layers": model.spec.to_string(),
                "test_accuracy": stats.accuracy(), "test_loss": stats.mean_loss(), "samples": test.len(),
                "precision": precision, "recall": recall, "confusion": confusion,
            })
        );
        return Ok(());
    }
    println!("model {} ({})", a.model.display(), model.spec);
    println!(
        "test: {} samples, accuracy {:.2}%, loss {:.4}",
        test.len(),
        stats.accuracy() * 100.0,
        stats.mean_loss()
    );
    println!("class  precision  recall");
    for c in 0..classes {
        println!(
            "{c:>5}  {:>8.2}%  {:>6.2}%",
            precision[c] * 100.0,
            recall[c] * 100.0
        );
    }
    println!("confusion matrix (rows: true class, columns: predicted)");
    print!("     ");
    for c in 0..classes {
        print!("{c:>6}");
    }
    println!();
    for (r, row) in confusion.iter().enumerate() {
        print!("{r:>5}");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(())
}

fn cmd_gradcheck(a: GradArgs) -> Result<()> {
    if a.batch == 0 || a.blocks == 0 {
        bail!("--batch and --blocks must be at least 1");
    }
    let cases = match &a.layers {
        Some(l) => {
            let spec = NetSpec::parse(l).map_err(|e| anyhow::anyhow!("--layers: {e}"))?;
            if spec.params() > 200_000 {
                bail!("--layers: {} parameters is too many for a finite-difference check (at most 200000)", spec.params());
            }
            let loss = Loss::parse(&a.loss)
                .with_context(|| format!("--loss: unknown loss `{}`", a.loss))?;
            vec![(spec, loss)]
        }
        None => gradcheck::standard_specs(),
    };
    let mut worst: f64 = 0.0;
    let mut results = Vec::new();
    for (spec, loss) in cases {
        let r =
            gradcheck::check(&spec, loss, a.batch, a.blocks, a.seed).map_err(anyhow::Error::msg)?;
        worst = worst.max(r.max_rel_err());
        if !a.json {
            println!(
                "{:<44} {:<14} max rel err {:.2e}  {}",
                r.spec,
                r.loss,
                r.max_rel_err(),
                if r.max_rel_err() < a.tolerance {
                    "ok"
                } else {
                    "FAIL"
                }
            );
            for t in &r.tensors {
                println!(
                    "    {:<18} {:>6} entries  rel {:.2e}  abs {:.2e}",
                    t.name, t.entries, t.max_rel_err, t.max_abs_err
                );
            }
        }
        results.push(r);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "max_rel_err": worst, "tolerance": a.tolerance, "passed": worst < a.tolerance, "checks": results })
        );
    } else {
        println!(
            "worst relative error {worst:.2e} (tolerance {:.0e}, f64, step {:.0e})",
            a.tolerance,
            gradcheck::STEP
        );
    }
    if worst >= a.tolerance {
        bail!(
            "gradient check failed: relative error {worst:.2e} >= {:.0e}",
            a.tolerance
        );
    }
    Ok(())
}

fn cmd_info(a: DataArgs) -> Result<()> {
    let dir = data::resolve_data_dir(a.data_dir.as_deref());
    let s = data::load_dir(&dir, &LoadOptions::default())?;
    println!("data directory {}", dir.display());
    println!("classes {}", s.classes);
    for (name, d, img, lab) in [
        (
            "train",
            &s.train,
            &s.files.train_images,
            &s.files.train_labels,
        ),
        ("test", &s.test, &s.files.test_images, &s.files.test_labels),
    ] {
        println!(
            "{name}: {} images of {}x{} ({} features), {} labels",
            d.len(),
            d.rows,
            d.cols,
            d.features(),
            d.labels.len()
        );
        println!("  files: {}, {}", img.display(), lab.display());
        let counts = d.class_counts(s.classes);
        println!(
            "  per class: {}",
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mean = d.images.mean().unwrap_or(0.0);
        println!("  pixel mean {mean:.4}");
    }
    Ok(())
}

fn cmd_fetch(a: FetchArgs) -> Result<()> {
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let mirrors = if a.mirror.is_empty() {
        fetch::mirrors_from_env()
    } else {
        a.mirror.clone()
    };
    let out = fetch::fetch(
        &dir,
        &fetch::MNIST_FILES,
        &mirrors,
        std::io::stderr().is_terminal(),
    )?;
    for o in out {
        match o {
            fetch::FetchOutcome::Present(p) => println!("{}: present, verified", p.display()),
            fetch::FetchOutcome::Downloaded { path, mirror } => {
                println!("{}: downloaded from {mirror}, verified", path.display())
            }
        }
    }
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let w = Workload::find(&a.workload).with_context(|| {
        format!(
            "--workload: unknown workload `{}` (expected T1, T2, T3, T4 or T5)",
            a.workload
        )
    })?;
    let threads = a.threads.pool()?;
    let train = if a.synthetic {
        workloads::synthetic(60_000, a.seed)
    } else {
        let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
        data::load_dir(&dir, &LoadOptions::default())
            .with_context(|| "cannot load the data (use --synthetic to time on synthetic data)")?
            .train
    };
    let r = workloads::run(w, &train, &threads, a.epochs, a.seed)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} threads={} ({:?}): {:.0} samples/s ({:.3} s/epoch, median of {}), {:.1} GFLOP/s effective",
            r.workload, r.threads, r.threading, r.samples_per_s, r.sec_per_epoch, r.epoch_secs.len(), r.gflop_per_s_effective
        );
    }
    Ok(())
}
