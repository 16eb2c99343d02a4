//! `mnist-mlp train`: wires the flags to [`mnist_mlp::run::train`] and
//! shows the run: report lines, a progress bar per epoch, `--json` lines,
//! and a checkpoint on Ctrl-C.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use mnist_mlp::config::RunConfig;
use mnist_mlp::train::EpochReport;

#[derive(Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Every flag is also a key of a --config TOML file (--batch-size is batch_size); flags given here override the file. \
With --save, the run's effective configuration is written beside the model (model.safetensors -> model.toml): \
`train --config model.toml` repeats the run.\n\n\
Examples:\n  mnist-mlp train                                  # 784-512-256-10 ReLU, Adam, 6 epochs\n  mnist-mlp train --hidden 128 --epochs 2 --json\n  mnist-mlp train --layers 784,relu,200,sigmoid,80,softmax,10 --batch-size full --optimizer sgd --lr 0.5\n  mnist-mlp train --layers 784,sigmoid,300,sigmoid,10 --loss mse --optimizer sgd --lr 0.5\n  mnist-mlp train --save run/model.safetensors --checkpoint-every 1 --metrics-out run/metrics.jsonl --plot run/curves.svg\n  mnist-mlp train --resume run/model.safetensors --epochs 10     # continue to 10 epochs in all\n  mnist-mlp train --validation 5000 --patience 3 --epochs 50      # early stopping\n  mnist-mlp train --config run.toml --lr 0.01"
)]
pub(crate) struct TrainArgs {
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

pub(crate) fn run(a: TrainArgs, explicit: &[String]) -> Result<()> {
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
