//! The `mnist-mlp` command line: the subcommands and `main`. Each
//! subcommand's flags and wiring live in a file of their own under
//! `cli/` (train, eval, predict, gradcheck, info, fetch, bench, tune,
//! augment-preview); the work itself is the library's.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// `println!` for the short commands: standard output closed by its reader
/// (`mnist-mlp info | head -2`) ends the command quietly (exit 0); any other
/// failure to write it (`eval > /dev/full`) is an error, exit 1. Never a
/// panic. (`train` writes through its console, `cli::train`, which keeps
/// training.)
macro_rules! println {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            $crate::stdout_failed(e);
        }
    }};
}

macro_rules! print {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($t)*) {
            $crate::stdout_failed(e);
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

mod cli;

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
    Train(Box<cli::train::TrainArgs>),
    /// Evaluate a saved model: accuracy, per-class precision/recall, confusion matrix.
    Eval(cli::eval::EvalArgs),
    /// Classify PNG/JPEG pictures or IDX image files with a saved model.
    Predict(cli::predict::PredictArgs),
    /// Check back-propagation against finite differences (f64).
    Gradcheck(cli::gradcheck::GradArgs),
    /// Describe a data directory (files, shapes, per-class counts) or, with --model, a saved model (layers, parameters, training, data).
    Info(cli::info::InfoArgs),
    /// Download MNIST from the public mirrors (verified by SHA-256).
    Fetch(cli::fetch::FetchArgs),
    /// Time a standard workload (T1..T6) and print samples/s.
    Bench(cli::bench::BenchArgs),
    /// Measure the training step's speed choices (the plan) on this machine: each candidate's step time and the choice, which is cached for `train --plan auto`.
    Tune(cli::tune::TuneArgs),
    /// Draw what --augment does: training digits (one per class) beside augmented versions, as a PNG grid.
    AugmentPreview(cli::preview::PreviewArgs),
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

fn main() -> ExitCode {
    mnist_mlp::memory::return_large_frees_to_the_os();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let r = match cli.cmd {
        Cmd::Train(a) => {
            let sub = matches.subcommand_matches("train").expect("train matches");
            cli::train::run(*a, &cli::explicit_ids(sub))
        }
        Cmd::Eval(a) => cli::eval::run(a),
        Cmd::Predict(a) => cli::predict::run(a),
        Cmd::Gradcheck(a) => cli::gradcheck::run(a),
        Cmd::Info(a) => cli::info::run(a),
        Cmd::Fetch(a) => cli::fetch::run(a),
        Cmd::Bench(a) => cli::bench::run(a),
        Cmd::Tune(a) => cli::tune::run(a),
        Cmd::AugmentPreview(a) => cli::preview::run(a),
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
