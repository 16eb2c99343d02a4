//! The `mnist-mlp` command line: train, eval, gradcheck, info, fetch, bench.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use mnist_mlp::config::{self, RunConfig};
use mnist_mlp::data::{self, fetch, LoadOptions};
use mnist_mlp::gradcheck;
use mnist_mlp::nn::{Loss, NetSpec};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::plan::Choice;
use mnist_mlp::train::EpochReport;
use mnist_mlp::workloads::{self, Workload};

/// Large buffers (weights, moments, data) on transparent huge pages.
#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

#[derive(Parser)]
#[command(
    name = "mnist-mlp",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MNIST_MLP_COMMIT"), ")"),
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
    /// Classify PNG/JPEG pictures or IDX image files with a saved model.
    Predict(PredictArgs),
    /// Check back-propagation against finite differences (f64).
    Gradcheck(GradArgs),
    /// Describe a data directory (files, shapes, per-class counts) or, with --model, a saved model (layers, parameters, training, data).
    Info(InfoArgs),
    /// Download MNIST from the public mirrors (verified by SHA-256).
    Fetch(FetchArgs),
    /// Time a standard workload (T1..T6) and print samples/s.
    Bench(BenchArgs),
    /// Measure the training step's speed choices (the plan) on this machine: each candidate's step time and the choice, which is cached for `train --plan auto`.
    Tune(TuneArgs),
    /// Draw what --augment does: training digits (one per class) beside augmented versions, as a PNG grid.
    AugmentPreview(PreviewArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  mnist-mlp completions bash > ~/.local/share/bash-completion/completions/mnist-mlp\n  \
mnist-mlp completions zsh > ~/.zfunc/_mnist-mlp\n  mnist-mlp completions fish > ~/.config/fish/completions/mnist-mlp.fish"
    )]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
#[command(
    after_help = "Each row is a training sample (the first of each class), the original on the left, then augmented versions as the steps of a run with --seed would draw them.\n\n\
Example:\n  mnist-mlp augment-preview --augment affine:rotate=12,shift=2,scale=0.1 --augment elastic:sigma=4,alpha=34 --out grid.png"
)]
struct PreviewArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The augmentation to draw, as for `train --augment` (repeat to combine).
    #[arg(long, value_name = "KIND[:K=V,...]", required = true)]
    augment: Vec<String>,
    /// The PNG file to write (atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Rows: samples, one per class.
    #[arg(long, default_value_t = 10, value_parser = config::int_flag::<usize>)]
    samples: usize,
    /// Augmented versions per sample.
    #[arg(long, default_value_t = 8, value_parser = config::int_flag::<usize>)]
    variants: usize,
    /// The run's seed.
    #[arg(long, default_value_t = 0, value_parser = config::int_flag::<u64>)]
    seed: u64,
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Directory with the four IDX files (raw or .gz) [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When the directory holds several datasets, the one whose file names start with NAME (EMNIST's folder: --subset letters reads emnist-letters-*).
    #[arg(long, value_name = "NAME")]
    subset: Option<String>,
}

impl DataArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            subset: self.subset.clone(),
            ..LoadOptions::default()
        }
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  mnist-mlp info --data-dir /usr/share/datasets/fashion-mnist\n  \
mnist-mlp info --json\n  mnist-mlp info --model run/model.safetensors"
)]
struct InfoArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Describe this saved model instead of a data directory: its layers and parameters (a model summary), how it was trained, and on which data.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data_dir", "subset"])]
    model: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct DirArgs {
    /// Directory to download into [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ThreadArgs {
    /// Threads for rayon and OpenBLAS together [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// How matrix products use the threads: `split` (rayon blocks of single-threaded OpenBLAS calls, or, where the plan measures it faster, OpenBLAS's own threads: `blas_threads=on`) or `blas` (OpenBLAS threads every product, always).
    #[arg(long, default_value = "split", value_name = "POLICY")]
    threading: GemmThreading,
}

impl ThreadArgs {
    fn pool(&self) -> Result<Threads> {
        thread_pool(self.threads, self.threading)
    }
}

/// The pool for `--threads` (None: all cores).
fn thread_pool(n: Option<usize>, policy: GemmThreading) -> Result<Threads> {
    let (threads, warning) = Threads::for_flag(n, policy)?;
    if let Some(w) = warning {
        eprintln!("{w}");
    }
    Ok(threads)
}

#[derive(Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Every flag is also a key of a --config TOML file (--batch-size is batch_size); flags given here override the file. \
With --save, the run's effective configuration is written beside the model (model.safetensors -> model.toml): \
`train --config model.toml` repeats the run.\n\n\
Examples:\n  mnist-mlp train                                  # 784-512-256-10 ReLU, Adam, 6 epochs\n  mnist-mlp train --hidden 128 --epochs 2 --json\n  mnist-mlp train --layers 784,relu,200,sigmoid,80,softmax,10 --batch-size full --optimizer sgd --lr 0.5\n  mnist-mlp train --layers 784,sigmoid,300,sigmoid,10 --loss mse --optimizer sgd --lr 0.5\n  mnist-mlp train --save run/model.safetensors --checkpoint-every 1 --metrics-out run/metrics.jsonl --plot run/curves.svg\n  mnist-mlp train --resume run/model.safetensors --epochs 10     # continue to 10 epochs in all\n  mnist-mlp train --validation 5000 --patience 3 --epochs 50      # early stopping\n  mnist-mlp train --config run.toml --lr 0.01"
)]
struct TrainArgs {
    /// Read settings from this TOML file (keys named like the flags: batch_size = 64).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (written by --save/--checkpoint-every): weights, optimizer state, epoch, RNG and schedule position. --epochs is the total.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// With --resume and another --epochs under a cosine or one-cycle schedule: `stretch` the schedule over the new total (the rate goes back up), `keep` its end (past it the rate stays where the schedule ended), or `restart` it over the epochs added.
    #[arg(long, value_enum, default_value = "stretch", requires = "resume")]
    resume_schedule: mnist_mlp::schedule::OnResume,
    /// Replace existing output files (--save, its .toml, --metrics-out, --plot) that mnist-mlp did not write. Devices, FIFOs, folders and read-only files are never replaced.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    run: RunConfig,
}

#[derive(Args)]
#[command(
    after_help = "The report has precision, recall, F1 and support per class, their macro and weighted averages \
(as scikit-learn's classification_report), and the confusion matrix. A model records the data it was trained on; \
evaluating it on another dataset's test set prints a warning.\n\n\
Examples:\n  mnist-mlp eval --model model.safetensors\n  \
mnist-mlp eval --model model.safetensors --split train --top-k 3\n  \
mnist-mlp eval --model model.safetensors --images my-images-idx3-ubyte.gz --labels my-labels-idx1-ubyte.gz"
)]
struct EvalArgs {
    /// Model to evaluate (a safetensors file written by `train --save`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// The split of --data-dir to evaluate on: test or train (the whole training file, validation samples included).
    #[arg(long, value_enum, default_value = "test")]
    split: EvalSplit,
    /// Evaluate on this IDX image file (raw or .gz) instead of a split of --data-dir; needs --labels.
    #[arg(long, value_name = "FILE", requires = "labels", conflicts_with_all = ["split", "data_dir", "subset"])]
    images: Option<PathBuf>,
    /// The IDX label file that goes with --images.
    #[arg(long, value_name = "FILE", requires = "images")]
    labels: Option<PathBuf>,
    /// Also report top-K accuracy (the label among the K most likely classes).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=255))]
    top_k: Option<u64>,
    /// Class names for the per-class table, as for `predict --mapping` (EMNIST's mapping files or `CLASS NAME` lines).
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Print one JSON object (with `test_accuracy`) instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EvalSplit {
    Test,
    Train,
}

#[derive(Args)]
#[command(
    after_help = "Pictures are turned into grayscale, white ink on black (--invert), and fitted into the \
model's square input frame (--preprocess). IDX image files are classified as they are, one line per image.\n\n\
Examples:\n  mnist-mlp predict --model model.safetensors digit.png\n  \
mnist-mlp predict --model model.safetensors --json scan1.jpg scan2.jpg\n  \
mnist-mlp predict --model model.safetensors scans/ --save-input seen/\n  \
mnist-mlp predict --model model.safetensors --top 3 t10k-images-idx3-ubyte.gz"
)]
struct PredictArgs {
    /// Model (a safetensors file written by `train --save`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Pictures (PNG, JPEG), IDX image files (raw or .gz), folders (their pictures) or quoted glob patterns ("scans/*.png").
    #[arg(required = true, value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Write the frame the model saw for each input (after inversion, levelling, cropping and centring) as a PNG into this folder: NAME.png for a picture, NAME-INDEX.png for an IDX file's images.
    #[arg(long, value_name = "DIR")]
    save_input: Option<PathBuf>,
    /// Turn dark ink on a light background into white on black (auto: when the picture's border is light).
    #[arg(long, value_enum, default_value = "auto")]
    invert: mnist_mlp::predict::Invert,
    /// Fit pictures as MNIST's digits were made (crop, scale to 20/28, center by mass) or just resize them.
    #[arg(long, value_enum, default_value = "mnist")]
    preprocess: mnist_mlp::predict::Preprocess,
    /// Transpose pictures after fitting them (for models trained on EMNIST, whose IDX files store every character transposed). IDX inputs are used as stored.
    #[arg(long)]
    transpose: bool,
    /// Class names: EMNIST's mapping file (`CLASS CODE...` per line, Unicode codes, e.g. `emnist-letters-mapping.txt`) or `CLASS NAME` lines (`0 T-shirt/top`).
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Show this many most likely classes (all probabilities are in --json).
    #[arg(long, default_value_t = 3, value_name = "K")]
    top: usize,
    /// One JSON object per input image (file, index, class, probabilities).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: ThreadArgs,
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
    data: DirArgs,
    /// Mirror URL prefix to try (repeatable; replaces the defaults and $MNIST_MIRRORS).
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
}

#[derive(Args)]
struct BenchArgs {
    /// Workload: T1..T6 (see BENCHMARKS.md).
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
    /// The step's plan: auto (cached or measured), default, or a plan FILE (see `train --help`) [default: $MNIST_MLP_PLAN, else auto].
    #[arg(long, value_name = "auto|default|FILE")]
    plan: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Also measure this machine's peak sgemm rate (2048^3 through the linked OpenBLAS, on the run's threads, before and after the timed epochs; the best counts) and print the run as a fraction of the physical limit: that peak over the FLOPs a trainer performs per sample. About a second per measurement on one thread.
    #[arg(long)]
    limit: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Every candidate is a plan that makes the step run different code for this shape \
(products split by rows or columns, weight gradients split by rows or columns, tiles, row padding, \
fewer blocks than threads, OpenBLAS's own threads instead of blocks); \
they are timed in interleaved rounds, the slower half dropped after each level, and the fastest \
is chosen unless it beats the default plan by less than 1% (a plan with OpenBLAS's threads that wins \
is timed again apart from the default, after OpenBLAS's workers stop spinning, and kept only if it still wins). The choice is stored in the plan cache \
($XDG_CACHE_HOME/mnist-mlp/plans.json, else ~/.cache/mnist-mlp/plans.json), which `train` and `bench` read; \
not when other programs or the host took more than a tenth of the CPU time the threads wanted meanwhile \
($MNIST_MLP_PLAN_BUSY sets that share, 0 to 1): a plan that wins on a busy machine can lose on a quiet one.\n\n\
Examples:\n  mnist-mlp tune --workload T5 --threads 2\n  mnist-mlp tune --layers 784,relu,1024,relu,1024,softmax,10 --batch-size 256 --optimizer adam --save plan.toml\n  mnist-mlp train --plan plan.toml"
)]
struct TuneArgs {
    /// A standard workload (T1..T6), instead of --layers/--batch-size/--optimizer.
    #[arg(long, conflicts_with_all = ["layers"])]
    workload: Option<String>,
    /// The network as a layer list (as `train --layers`).
    #[arg(long, value_name = "LIST")]
    layers: Option<String>,
    /// Mini-batch size, or `full`.
    #[arg(long, default_value = "128", value_name = "N|full")]
    batch_size: String,
    /// Optimizer: sgd, momentum, nesterov, rmsprop, adam, adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Seconds the measurement may take [default: 5, or more where steps are long: enough to time every candidate and the last two three rounds side by side] (a training run gives it 5% of its estimated time, under a second).
    #[arg(long, value_name = "SECONDS")]
    budget: Option<f64>,
    /// Write the chosen plan here (TOML), for `train --plan FILE`.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Use synthetic data of MNIST's shape instead of the real files.
    #[arg(long)]
    synthetic: bool,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long)]
    json: bool,
}

/// The ids of the arguments given on the command line (not defaulted).
fn explicit_ids(m: &clap::ArgMatches) -> Vec<String> {
    config::flag_keys()
        .into_iter()
        .filter(|id| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .collect()
}

fn main() -> ExitCode {
    mnist_mlp::memory::return_large_frees_to_the_os();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let r = match cli.cmd {
        Cmd::Train(a) => {
            let sub = matches.subcommand_matches("train").expect("train matches");
            cmd_train(*a, &explicit_ids(sub))
        }
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Predict(a) => cmd_predict(a),
        Cmd::Gradcheck(a) => cmd_gradcheck(a),
        Cmd::Info(a) => cmd_info(a),
        Cmd::Fetch(a) => cmd_fetch(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Tune(a) => cmd_tune(a),
        Cmd::AugmentPreview(a) => cmd_augment_preview(a),
        Cmd::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mnist-mlp", &mut script);
            use std::io::Write as _;
            if let Err(e) = std::io::stdout().lock().write_all(&script) {
                stdout_failed(e);
            }
            Ok(())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<mnist_mlp::run::RunError>() {
                // 128 + SIGINT, as a shell reports an interrupted command.
                Some(mnist_mlp::run::RunError::Interrupted { .. }) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `println!` for the short commands: standard output closed by its reader
/// (`mnist-mlp info | head -2`) ends the command quietly (exit 0); any other
/// failure to write it (`eval > /dev/full`) is an error, exit 1. Never a
/// panic. (`train` writes through [`Console`], which keeps training.)
macro_rules! println {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            stdout_failed(e);
        }
    }};
}

macro_rules! print {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($t)*) {
            stdout_failed(e);
        }
    }};
}

/// Ends the process after a failed write to standard output.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// Writes a line to standard output for `train`, whose run must not be
/// lost to its console: a closed or failing stdout is reported once on
/// stderr and the run goes on (checkpoints, `--metrics-out` and `--plot`
/// are still written). Returns whether stdout still works.
fn train_out(ok: &mut bool, line: &dyn std::fmt::Display) {
    use std::io::Write as _;
    if !*ok {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
        *ok = false;
        eprintln!("warning: standard output failed ({e}); training goes on, and its files (--save, --metrics-out, --plot) are still written");
    }
}

/// What `train` shows: report lines on stdout (stderr under `--json`),
/// notices on stderr, a progress bar per epoch on a terminal, and the
/// `--json` lines.
struct Console {
    json: bool,
    bars: bool,
    bar: ProgressBar,
    /// When the epoch under way started.
    started: std::time::Instant,
    /// Standard output still works.
    stdout_ok: bool,
}

impl mnist_mlp::run::Observer for Console {
    // `--json` and `--quiet` may come from the config file or checkpoint.
    fn configured(&mut self, cfg: &RunConfig) {
        self.json = cfg.json;
        self.bars = self.bars && !cfg.quiet;
    }
    fn say(&mut self, line: &str) {
        if self.json {
            eprintln!("{line}")
        } else {
            train_out(&mut self.stdout_ok, &line)
        }
    }
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if !self.bars {
            return;
        }
        self.bar = ProgressBar::new(steps as u64);
        self.bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg}, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_prefix(format!("{epoch}/{epochs}"));
        self.started = std::time::Instant::now();
    }
    fn step(&self, k: usize, steps: usize, running: &mnist_mlp::nn::Stats) {
        if k % (steps / 200).max(1) == 0 || k == steps {
            // Samples/s (as every other figure here), and the epoch's loss
            // and accuracy so far, as Keras' progress bar shows them.
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            self.bar.set_message(format!(
                "{:.0} samples/s, loss {:.4}, acc {:.2}%",
                running.samples as f64 / secs,
                running.mean_loss(),
                running.accuracy() * 100.0
            ));
            self.bar.set_position(k as u64);
        }
    }
    fn epoch_trained(&mut self) {
        self.bar.finish_and_clear();
    }
    fn stop_requested(&self) -> bool {
        STOP.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        if self.json {
            train_out(&mut self.stdout_ok, &mnist_mlp::run::epoch_json(r));
        }
    }
}

/// Set by the first Ctrl-C (SIGINT) or SIGTERM during `train`.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ctrl-C or SIGTERM: the first finishes the epoch under way, saves a
/// resumable checkpoint (with --save) and exits 130; a second exits at once.
fn stop_on_signals() {
    let r = ctrlc::set_handler(|| {
        if STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting now (the last checkpoint written is intact)");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the step under way, then saving a checkpoint that resumes there (with --save); press Ctrl-C again to quit at once");
    });
    if let Err(e) = r {
        eprintln!(
            "warning: cannot catch Ctrl-C ({e}); an interrupt ends the run without a checkpoint"
        );
    }
}

fn cmd_train(a: TrainArgs, explicit: &[String]) -> Result<()> {
    stop_on_signals();
    let req = mnist_mlp::run::Request {
        flags: a.run,
        explicit: explicit.to_vec(),
        config: a.config,
        resume: a.resume,
        show_progress: std::io::stderr().is_terminal(),
        resume_schedule: a.resume_schedule,
        overwrite: a.overwrite,
    };
    let mut console = Console {
        json: false,
        bars: std::io::stderr().is_terminal(),
        bar: ProgressBar::hidden(),
        started: std::time::Instant::now(),
        stdout_ok: true,
    };
    let outcome = mnist_mlp::run::train(&req, &mut console)?;
    if console.json {
        let mut s = serde_json::to_value(&outcome.summary)?;
        s["event"] = "summary".into();
        train_out(&mut console.stdout_ok, &s);
    }
    Ok(())
}

/// The names of `classes` classes from `--mapping` (none without it).
fn class_names(mapping: Option<&Path>, classes: usize) -> Result<Vec<Option<String>>> {
    match mapping {
        Some(m) => Ok(mnist_mlp::predict::read_mapping(m, classes)?),
        None => Ok(vec![None; classes]),
    }
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let threads = a.threads.pool()?;
    let loaded = mnist_mlp::checkpoint::load(&a.model)?;
    let mut model = loaded.model;
    let classes = model.spec.output_width();
    let names = class_names(a.mapping.as_deref(), classes)?;
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    // Only the files evaluated are read (the other split need not be there).
    let (images, labels, what) = match (&a.images, &a.labels, a.split) {
        (Some(i), Some(l), _) => (i.clone(), l.clone(), "data"),
        (_, _, EvalSplit::Test) => {
            let (i, l) = data::dataset::locate_test(&dir, a.data.subset.as_deref())?;
            (i, l, "test")
        }
        (_, _, EvalSplit::Train) => {
            let f = data::dataset::locate_subset(&dir, a.data.subset.as_deref())?;
            (f.train_images, f.train_labels, "train")
        }
    };
    let test = &data::dataset::load_split(&images, &labels, Some(classes))?;
    if test.features() != model.spec.input() {
        bail!(
            "{}: the model's input width is {} but the images in {} have {} pixels",
            a.model.display(),
            model.spec.input(),
            images.display(),
            test.features()
        );
    }
    // Is this the data the model was trained on? (Its test split.)
    if a.images.is_none() && a.split == EvalSplit::Test {
        if let Some(w) = loaded
            .extras
            .data_identity()
            .and_then(|id| id.mismatch(&dir, test))
        {
            eprintln!("{w}");
        }
    }
    // The plan the model was trained under, so that its figures repeat.
    let plan = serde_json::from_value::<RunConfig>(loaded.config.clone())
        .ok()
        .and_then(|c| c.plan)
        .unwrap_or_else(mnist_mlp::plan::Plan::from_env);
    let mut ws = mnist_mlp::nn::Workspace::<f32>::with_plan(
        &model.spec,
        mnist_mlp::train::EVAL_CHUNK,
        threads.blocks(),
        plan,
    );
    let mut probs = ndarray::Array2::<f32>::zeros((test.len(), classes));
    let stats = threads
        .install(|| model.evaluate_into(&mut ws, test.images.view(), &test.labels, &mut probs));
    refuse_non_finite(&a.model, &model, &probs)?;
    if !stats.mean_loss().is_finite() {
        bail!(
            "{}: the loss on {what} is {}: the model's outputs overflow",
            a.model.display(),
            stats.mean_loss()
        );
    }
    let confusion = mnist_mlp::metrics::Confusion::from_outputs(probs.view(), &test.labels);
    let top_k = a.top_k.map(|k| {
        (
            k,
            mnist_mlp::metrics::top_k_accuracy(probs.view(), &test.labels, k as usize),
        )
    });
    if a.json {
        let mut o = serde_json::json!({
            "model": a.model.display().to_string(), "layers": model.spec.to_string(),
            "split": what, "images": images.display().to_string(), "labels": labels.display().to_string(),
            "accuracy": stats.accuracy(), "loss": stats.mean_loss(),
            // The names of earlier versions, for scripts that read them.
            "test_accuracy": stats.accuracy(), "test_loss": stats.mean_loss(), "samples": test.len(),
            "precision": confusion.precision(), "recall": confusion.recall(), "f1": confusion.f1(),
            "support": confusion.support(), "averages": confusion.averages(),
            "confusion": confusion.0, "names": names,
        });
        if let Some((k, acc)) = top_k {
            o["top_k"] = k.into();
            o["top_k_accuracy"] = acc.into();
        }
        println!("{o}");
        return Ok(());
    }
    println!("model {} ({})", a.model.display(), model.spec);
    println!(
        "{what} ({}): {} samples, accuracy {:.2}%, loss {:.4}{}",
        images.display(),
        test.len(),
        stats.accuracy() * 100.0,
        stats.mean_loss(),
        top_k.map_or(String::new(), |(k, acc)| format!(
            ", top-{k} accuracy {:.2}%",
            acc * 100.0
        ))
    );
    print!("{}", confusion.table(&names));
    Ok(())
}

/// Refuses a model whose outputs are NaN or infinite (weights near the
/// float limit: every class would be a guess), naming the samples hit.
fn refuse_non_finite(
    path: &Path,
    model: &mnist_mlp::nn::Mlp<f32>,
    probs: &ndarray::Array2<f32>,
) -> Result<()> {
    let bad = probs
        .rows()
        .into_iter()
        .filter(|r| r.iter().any(|v| !v.is_finite()))
        .count();
    if bad > 0 {
        bail!(
            "{}: the model's outputs are not finite (NaN or infinite) for {bad} of {} inputs: its weights overflow (largest |weight| {:e}); this checkpoint cannot classify anything, retrain it (lower --lr, --max-norm)",
            path.display(),
            probs.nrows(),
            mnist_mlp::train::max_abs_param(model)
        );
    }
    Ok(())
}

/// True when `path` starts like an IDX file of unsigned bytes (raw or gzip).
fn looks_like_idx(path: &Path) -> bool {
    use std::io::Read;
    // Not opened unless regular (a FIFO would block): the picture path
    // then says what it is.
    if mnist_mlp::files::regular(path).is_err() {
        return false;
    }
    let Ok((mut r, _)) = data::idx::open_content(path) else {
        return false;
    };
    let mut m = [0u8; 4];
    r.read_exact(&mut m).is_ok() && m[0] == 0 && m[1] == 0 && m[2] == data::idx::TYPE_U8
}

fn cmd_predict(a: PredictArgs) -> Result<()> {
    use mnist_mlp::predict;
    let threads = a.threads.pool()?;
    let loaded = mnist_mlp::checkpoint::load(&a.model)?;
    let identity = loaded.extras.data_identity();
    let mut model = loaded.model;
    let input = model.spec.input();
    let classes = model.spec.output_width();
    let side = (input as f64).sqrt().round() as usize;
    let names = class_names(a.mapping.as_deref(), classes)?;
    let label = |c: usize| {
        names[c]
            .as_deref()
            .map_or(String::new(), |n| format!(" {n}"))
    };
    if let Some(d) = &a.save_input {
        std::fs::create_dir_all(d)
            .with_context(|| format!("--save-input: cannot create the folder {}", d.display()))?;
    }
    let mut items: Vec<Input> = Vec::new();
    for p in &predict::expand_inputs(&a.inputs)? {
        if looks_like_idx(p) {
            let arr = data::idx::read_images(p)?;
            if let Some(w) = identity
                .as_ref()
                .and_then(|id| id.predict_mismatch(p, &arr.data))
            {
                eprintln!("{w}");
            }
            let per: usize = arr.dims[1..].iter().product();
            let frame = match arr.dims[1..] {
                [r, c] => (c as u32, r as u32),
                _ => (per as u32, 1),
            };
            if per != input {
                bail!(
                    "{}: images of {:?} have {per} pixels, the model {} expects {input}",
                    p.display(),
                    &arr.dims[1..],
                    a.model.display()
                );
            }
            for (i, img) in arr.data.chunks_exact(per).enumerate() {
                items.push(Input {
                    file: p.display().to_string(),
                    index: Some(i),
                    pixels: img.iter().map(|&v| v as f32 / 255.0).collect(),
                    frame,
                });
            }
        } else {
            if side * side != input {
                bail!(
                    "{}: the model's input width {input} is not a square picture; give IDX files of its shape instead",
                    a.model.display()
                );
            }
            let mut v = predict::load_picture(p, side as u32, a.invert, a.preprocess)?;
            if a.transpose {
                predict::transpose_square(&mut v, side);
            }
            if !predict::has_ink(&v) {
                eprintln!(
                    "warning: {}: no ink found (a blank or uniform picture): its class below is a guess",
                    p.display()
                );
            }
            items.push(Input {
                file: p.display().to_string(),
                index: None,
                pixels: v,
                frame: (side as u32, side as u32),
            });
        }
    }
    if let Some(dir) = &a.save_input {
        save_inputs(dir, &items)?;
    }
    let x = predict::stack(&items.iter().map(|i| &i.pixels[..]).collect::<Vec<_>>());
    let mut ws = mnist_mlp::nn::Workspace::<f32>::new(
        &model.spec,
        mnist_mlp::train::EVAL_CHUNK.min(x.nrows().max(1)),
        threads.blocks(),
    );
    let mut probs = ndarray::Array2::<f32>::zeros((x.nrows(), classes));
    threads.install(|| model.predict_into(&mut ws, x.view(), &mut probs));
    refuse_non_finite(&a.model, &model, &probs)?;
    for (
        Input {
            file, index: idx, ..
        },
        row,
    ) in items.iter().zip(probs.rows())
    {
        let p = row.as_slice().expect("contiguous");
        let class = mnist_mlp::nn::loss::argmax(p);
        if a.json {
            let mut o =
                serde_json::json!({"file": file, "index": idx, "class": class, "probabilities": p});
            if let Some(n) = &names[class] {
                o["name"] = n.as_str().into();
            }
            println!("{o}");
        } else {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&i, &j| p[j].total_cmp(&p[i]));
            let top: Vec<String> = order
                .iter()
                .take(a.top.max(1))
                .map(|&c| format!("{c}{} {:.4}", label(c), p[c]))
                .collect();
            let name = match idx {
                Some(i) => format!("{file}[{i}]"),
                None => file.clone(),
            };
            println!("{name}: {class}{}  ({})", label(class), top.join(", "));
        }
    }
    Ok(())
}

/// One input of `predict`: a picture, or one image of an IDX file.
struct Input {
    /// The file it came from.
    file: String,
    /// Its index within an IDX file.
    index: Option<usize>,
    /// What the model sees, in [0, 1].
    pixels: Vec<f32>,
    /// Width and height of the frame.
    frame: (u32, u32),
}

/// `predict --save-input`: each input as the model saw it, one PNG each
/// (names made unique with `-2`, `-3`, ... when two inputs share a stem).
fn save_inputs(dir: &Path, items: &[Input]) -> Result<()> {
    let mut used = std::collections::HashSet::new();
    for Input {
        file,
        index: idx,
        pixels: v,
        frame: (w, h),
    } in items
    {
        let stem = Path::new(file)
            .file_name()
            .map_or("input".into(), |n| n.to_string_lossy().into_owned());
        let bare = stem.strip_suffix(".gz").unwrap_or(&stem);
        let stem = bare.rsplit_once('.').map_or(bare, |(s, _)| s).to_string();
        let base = match idx {
            Some(i) => format!("{stem}-{i}"),
            None => stem,
        };
        let mut name = format!("{base}.png");
        let mut k = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{k}.png");
            k += 1;
        }
        let png = mnist_mlp::predict::gray_png(v, *w, *h)?;
        mnist_mlp::checkpoint::write_atomic(&dir.join(&name), &png)?;
    }
    Ok(())
}

fn cmd_gradcheck(a: GradArgs) -> Result<()> {
    if a.batch == 0 || a.blocks == 0 {
        bail!("--batch and --blocks must be at least 1");
    }
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        bail!(
            "--tolerance must be a positive finite number (a relative error), got {}",
            a.tolerance
        );
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
    // Refused before allocating what cannot fit.
    if let Some(available) = mnist_mlp::memory::available_bytes() {
        let need = cases
            .iter()
            .map(|(s, _)| gradcheck::memory_bytes(s, a.batch))
            .max()
            .unwrap_or(0);
        if need > available {
            bail!(
                "--batch {}: the check needs about {}, more than the {} of memory available",
                a.batch,
                mnist_mlp::memory::human(need),
                mnist_mlp::memory::human(available)
            );
        }
    }
    let mut worst: f64 = 0.0;
    let mut results = Vec::new();
    for (spec, loss) in cases {
        let r = gradcheck::check(&spec, loss, a.batch, a.blocks, a.seed)?;
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

fn cmd_info(a: InfoArgs) -> Result<()> {
    if let Some(m) = &a.model {
        return model_info(m, a.json);
    }
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let s = data::load_dir(&dir, &a.data.options())?;
    let splits = [
        (
            "train",
            &s.train,
            &s.files.train_images,
            &s.files.train_labels,
        ),
        ("test", &s.test, &s.files.test_images, &s.files.test_labels),
    ];
    if a.json {
        let mut o = serde_json::json!({
            "data_dir": dir.display().to_string(), "classes": s.classes,
        });
        for (name, d, img, lab) in splits {
            o[name] = serde_json::json!({
                "samples": d.len(), "rows": d.rows, "cols": d.cols, "features": d.features(),
                "images": img.display().to_string(), "labels": lab.display().to_string(),
                "per_class": d.class_counts(s.classes),
                "pixel_mean": d.images.mean().unwrap_or(0.0),
            });
        }
        println!("{o}");
        return Ok(());
    }
    println!("data directory {}", dir.display());
    println!("classes {}", s.classes);
    for (name, d, img, lab) in splits {
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

/// `info --model`: the summary of a saved model, its training and data.
fn model_info(path: &Path, json: bool) -> Result<()> {
    let loaded = mnist_mlp::checkpoint::load(path)?;
    let spec = &loaded.model.spec;
    let identity = loaded.extras.data_identity();
    let state = mnist_mlp::run_state::read(&loaded.extras).ok();
    let last = state.as_ref().and_then(|s| s.history.last().cloned());
    let cfg = serde_json::from_value::<RunConfig>(loaded.config.clone()).ok();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": path.display().to_string(), "layers": spec.to_string(),
                "loss": loaded.model.loss.name(), "parameters": spec.params(),
                "summary": spec.summary_rows(),
                "epochs_trained": state.as_ref().map(|s| s.trainer.epoch),
                "steps": state.as_ref().map(|s| s.trainer.step),
                "last_epoch": last, "data": identity, "config": loaded.config,
            })
        );
        return Ok(());
    }
    println!(
        "model {} ({spec}, loss {})",
        path.display(),
        loaded.model.loss.name()
    );
    print!("{}", spec.summary());
    if let Some(st) = &state {
        let of = cfg
            .as_ref()
            .map_or(String::new(), |c| format!(" of {}", c.epochs));
        println!(
            "trained {} epochs{of} ({} steps){}",
            st.trainer.epoch,
            st.trainer.step,
            if st.finished { ", stopped early" } else { "" }
        );
    }
    if let Some(r) = &last {
        let val = r
            .val_accuracy
            .map_or(String::new(), |v| format!(", validation {:.2}%", v * 100.0));
        println!(
            "epoch {}: test accuracy {:.2}%, loss {:.4}{val}",
            r.epoch,
            r.test_accuracy * 100.0,
            r.test_loss
        );
    }
    if let Some(c) = &cfg {
        println!(
            "optimizer {} lr {} ({}), batch {}, seed {}",
            c.optimizer,
            c.lr.map_or("default".into(), |v| v.to_string()),
            c.schedule,
            c.batch_size,
            c.seed
        );
    }
    match &identity {
        Some(id) => println!("{}", id.describe()),
        None => println!("data: not recorded (a checkpoint of an earlier version)"),
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
    let w = Workload::named(&a.workload)?;
    if a.epochs == 0 {
        bail!("--epochs must be at least 1 (timed epochs after the warm-up)");
    }
    let threads = a.threads.pool()?;
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let train = training_set(a.synthetic, &a.data, a.seed, "time")?;
    let choice = Choice::from_flag(a.plan.as_deref())?;
    let peak = || mnist_mlp::blas::sgemm_peak(threads.n(), 2048, 3);
    let before = a.limit.then(peak);
    let mut r = workloads::run(w, &train, &threads, a.epochs, a.seed, &choice).with_context(|| {
        format!(
            "--workload {} on {}: the standard workloads are defined on MNIST's shape (784 inputs, 10 classes; --synthetic times them without data)",
            w.id,
            if a.synthetic { "synthetic data".to_string() } else { dir.display().to_string() }
        )
    })?;
    if let Some(before) = before {
        r.set_limit(vec![before, peak()]);
    }
    for w in r
        .plan_warnings
        .iter()
        .chain(&mnist_mlp::blas::coretype_note())
    {
        eprintln!("{w}");
    }
    if a.json {
        eprintln!("{}", r.plan_line);
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.plan_line);
        if let Some(c) = &r.opt_loop {
            println!("{}", c.line());
        }
        println!(
            "{} threads={} ({:?}): {:.0} samples/s ({:.3} s/epoch, median of {}), {:.1} GFLOP/s effective",
            r.workload, r.threads, r.threading, r.samples_per_s, r.sec_per_epoch, r.epoch_secs.len(), r.gflop_per_s_effective
        );
        println!(
            "memory: {:.0} MiB accounted for (data, parameters, buffers, moments); resident {} MiB after the run, peak {} MiB",
            r.accounted_mib,
            r.rss_mib.map_or("?".into(), |v| format!("{v:.0}")),
            r.peak_rss_mib.map_or("?".into(), |v| format!("{v:.0}")),
        );
        if let (Some(p10), Some(med)) = (r.step_ms_p10, r.step_ms_median) {
            println!("steps: median {med:.3} ms, fastest tenth under {p10:.3} ms");
        }
        if let Some(b) = &r.busy {
            println!(
                "other load during the timed epochs: other programs and the host took {} (steal {:.1}% of its CPU time){}",
                b.taken(),
                b.steal * 100.0,
                r.disturbed().map_or(String::new(), |_| format!(
                    "; this run lacked {}: its figures are disturbed, run it again on a quiet machine",
                    b.lacked(r.threads)
                ))
            );
        }
        if let Some(l) = &r.limit {
            let peaks: Vec<String> = l
                .sgemm_gflop_per_s
                .iter()
                .map(|g| format!("{g:.1}"))
                .collect();
            println!(
                "physical limit: {:.0} samples/s (sgemm 2048^3 {} GFLOP/s on {} thread{} with this OpenBLAS, the best counts; {} FLOPs performed per sample): this run {:.0}% of it{}",
                l.samples_per_s,
                peaks.join(" / "),
                r.threads,
                if r.threads == 1 { "" } else { "s" },
                r.performed_flops_per_sample,
                100.0 * l.fraction,
                l.fast_steps_fraction
                    .map_or(String::new(), |f| format!(", its fastest tenth of steps {:.0}%", 100.0 * f))
            );
        }
    }
    Ok(())
}

/// The training set `bench` and `tune` run on: MNIST-shaped synthetic
/// data (`--synthetic`, from `seed`), else the data directory's; `verb`
/// says what --synthetic would do instead.
fn training_set(
    synthetic: bool,
    data: &DataArgs,
    seed: u64,
    verb: &str,
) -> Result<mnist_mlp::data::Dataset> {
    if synthetic {
        return Ok(workloads::synthetic(60_000, seed));
    }
    let dir = data::resolve_data_dir(data.data_dir.as_deref());
    Ok(data::load_dir(&dir, &data.options())
        .with_context(|| {
            format!("cannot load the data (use --synthetic to {verb} on synthetic data)")
        })?
        .train)
}

fn cmd_augment_preview(a: PreviewArgs) -> Result<()> {
    use mnist_mlp::data::augment::{self, Augment, Augmenter};
    let cfg = Augment::parse(&a.augment)?;
    if a.out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "--out {}: the preview is a PNG picture; name it .png",
            a.out.display()
        );
    }
    if a.samples == 0 || a.samples > 64 || a.variants > 32 {
        bail!("--samples must be 1..=64 and --variants at most 32");
    }
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let s = data::load_dir(&dir, &a.data.options())?;
    let aug = Augmenter::new(cfg, s.train.rows, s.train.cols);
    let img = augment::preview(&s.train, &aug, a.samples, a.variants, a.seed);
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the PNG")?;
    mnist_mlp::checkpoint::write_atomic(&a.out, &png)?;
    println!(
        "wrote {} ({}x{} pixels): training samples of {}, one per class, each with {} augmented versions",
        a.out.display(),
        img.width(),
        img.height(),
        dir.display(),
        a.variants
    );
    Ok(())
}

fn cmd_tune(a: TuneArgs) -> Result<()> {
    use mnist_mlp::optim::{OptConfig, OptKind};
    use mnist_mlp::plan::{cache, measure};
    use mnist_mlp::train::BatchSize;
    if let Some(b) = a.budget.filter(|b| !(*b > 0.0 && *b <= 600.0)) {
        bail!("--budget must be more than 0 and at most 600 seconds, not {b}");
    }
    let (spec, batch, opt, what) = match &a.workload {
        Some(id) => {
            let w = Workload::named(id)?;
            (
                w.spec(),
                w.batch,
                OptConfig::new(w.opt, w.lr),
                format!("workload {}", w.id),
            )
        }
        None => {
            let layers = a
                .layers
                .as_deref()
                .unwrap_or("784,relu,512,relu,256,softmax,10");
            let spec = NetSpec::parse(layers).map_err(|e| anyhow::anyhow!("--layers: {e}"))?;
            let kind = OptKind::parse(&a.optimizer).with_context(|| {
                format!("--optimizer: unknown optimizer `{}` (sgd, momentum, nesterov, rmsprop, adam, adamw)", a.optimizer)
            })?;
            let batch = BatchSize::parse(&a.batch_size)?;
            (
                spec.clone(),
                batch,
                OptConfig::new(kind, 1e-3),
                format!("network {spec}"),
            )
        }
    };
    let threads = a.threads.pool()?;
    let busy_limit = mnist_mlp::plan::choose::busy_limit()?;
    if let Some(note) = mnist_mlp::blas::coretype_note() {
        eprintln!("{note}");
    }
    let train = training_set(a.synthetic, &a.data, 0, "tune")?;
    if train.features() != spec.input() {
        bail!(
            "--layers: the network's input width is {} but the images have {} pixels",
            spec.input(),
            train.features()
        );
    }
    let model =
        mnist_mlp::nn::Mlp::<f32>::new(spec, Loss::CrossEntropy, mnist_mlp::nn::Init::He, 0)?;
    let rows = batch.rows(train.len());
    let base = mnist_mlp::plan::Plan::default();
    let target = measure::Target {
        model: &model,
        opt: &opt,
        rows,
        train: &train,
        threads: &threads,
    };
    let shape = target.shape();
    let n = mnist_mlp::plan::candidates(base, &shape).len();
    eprintln!(
        "tuning {what}, batch {batch}, {} threads ({:?}), {n} candidates, budget {} ...",
        threads.n(),
        threads.policy(),
        a.budget
            .map_or("5 s or what long steps need".to_string(), |b| format!(
                "{b} s"
            ))
    );
    let budget = |step_s: f64| a.budget.unwrap_or_else(|| measure::tune_budget(step_s, n));
    let m = measure::measure(target, base, &budget);
    // A search that could not decide between two candidates (the rest
    // left out, or the last pair's rounds cut short) is no choice.
    if m.undecided() {
        let need = measure::tune_budget(m.step_s, n).ceil();
        bail!(
            "a budget of {} s is too short to compare two candidates (a step takes about {:.2} s; {}): nothing cached",
            (budget(m.step_s) * 1e3).round() / 1e3,
            m.step_s,
            match a.budget {
                Some(_) => format!("leave --budget out, or give at least {need}"),
                None => "a smaller network or batch, or more threads, would fit".to_string(),
            }
        );
    }
    let key = cache::key(&shape);
    // Timed while other programs or the host took the CPU time the
    // threads wanted: shown, saved if asked, never cached.
    let busy = m.busy.filter(|b| b.short(threads.n()) > busy_limit);
    if let Some(b) = busy {
        eprintln!(
            "note: other programs or the host took {} while the candidates were timed ({}): a plan that wins on a busy machine can lose on a quiet one, so this choice is not cached; run tune again when the machine is quiet ({} sets how busy is tolerated)",
            b.taken(),
            b.lacked(threads.n()),
            mnist_mlp::plan::choose::BUSY_ENV
        );
    }
    let stored = match cache::path().filter(|_| busy.is_none()) {
        // tune's last pair plays for seconds: its choice needs no second
        // run to confirm it.
        Some(p) => match cache::store(
            &p,
            &key,
            cache::Entry {
                confirmed: true,
                ..cache::Entry::of(&m)
            },
        ) {
            Ok(()) => Some(p),
            Err(w) => {
                eprintln!("{w}");
                None
            }
        },
        None => None,
    };
    if let Some(p) = &a.save {
        let text = format!("# mnist-mlp tune: {key}\n{}", toml::to_string(&m.plan())?);
        mnist_mlp::checkpoint::write_atomic(p, text.as_bytes())
            .with_context(|| format!("--save {}", p.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "key": key, "candidates": m.candidates, "outcome": m.outcome,
                "chosen": m.plan(), "seconds": m.seconds, "left_out": m.left_out, "apart": m.apart,
                "cache": stored.as_ref().map(|p| p.display().to_string()),
                "busy": m.busy, "busy_limit": busy_limit,
            })
        );
        return Ok(());
    }
    let base_best = m.outcome.timings[0].best();
    println!(
        "{:>3}  {:>9}  {:>9}  {:>7}  {:>6}  plan",
        "#", "best ms", "median ms", "vs base", "levels"
    );
    for (i, (p, t)) in m.candidates.iter().zip(&m.outcome.timings).enumerate() {
        let best = t.best();
        let med = t
            .median()
            .map_or("-".to_string(), |v| format!("{:.4}", v * 1e3));
        let rel = if best.is_finite() {
            format!("{:.3}", base_best / best)
        } else {
            "-".into()
        };
        let mark = if i == m.outcome.chosen { "*" } else { " " };
        println!(
            "{i:>2}{mark}  {:>9}  {med:>9}  {rel:>7}  {:>6}  {p}",
            if best.is_finite() {
                format!("{:.4}", best * 1e3)
            } else {
                "-".into()
            },
            t.levels
        );
    }
    println!(
        "(vs base: the base's fastest sample over this one's, which ranks the levels; the choice rests on the last pair's rounds side by side)"
    );
    // The decision: the last pair's rounds side by side.
    let versus = match m.outcome.challenger {
        0 => String::new(),
        i => format!(
            " (#{i} against #0 round by round: {:.3}x, median of {} rounds)",
            m.outcome.paired_speedup(),
            m.outcome.paired.len()
        ),
    };
    println!(
        "chosen #{}: {}{versus}; {} steps of {} per sample, {:.2} s{}",
        m.outcome.chosen,
        m.plan(),
        m.outcome.steps,
        m.outcome.steps_per_sample,
        m.seconds,
        if m.left_out > 0 {
            format!(", {} candidates left out for time", m.left_out)
        } else {
            String::new()
        }
    );
    match m.apart {
        Some(measure::Apart::Timed(r)) => println!(
            "#{} (OpenBLAS's threads) won the rounds; timed apart from #0 once OpenBLAS's workers slept (they spin for about 0.1 s after a threaded call and slow what runs next): {r:.3}x, {}",
            m.outcome.challenger,
            if m.outcome.chosen == 0 { "so #0 stays" } else { "kept" }
        ),
        Some(measure::Apart::NoRoom) => println!(
            "#{} (OpenBLAS's threads) won the rounds, but the budget left no room to time it apart from #0",
            m.outcome.challenger
        ),
        None => {}
    }
    match stored {
        Some(p) => println!("cached in {} for {key}", p.display()),
        None if busy.is_some() => println!("not cached (the machine was busy)"),
        None => println!("not cached (no writable cache folder)"),
    }
    if let Some(p) = &a.save {
        println!("saved {} (use with --plan {})", p.display(), p.display());
    }
    Ok(())
}
