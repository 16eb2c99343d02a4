//! A training run through the library (`mnist_mlp::run`), as the CLI runs
//! it but without spawning it: it reports every epoch and step, saves a
//! checkpoint whose configuration records the plan, and a run resumed from
//! its checkpoint after epoch 2 ends with the same bits as the run straight
//! through. On a small learnable dataset written as IDX files.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use mnist_mlp::config::RunConfig;
use mnist_mlp::run::{self, Observer, Request, Silent};
use mnist_mlp::train::EpochReport;

/// Collects what a run says.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    epochs: Vec<usize>,
    steps: AtomicUsize,
    /// After this epoch's checkpoint, copy it from the first path to the second.
    copy_at: Option<(usize, PathBuf, PathBuf)>,
    /// The run's --metrics-out, and how many checkpoints were checked
    /// against it.
    metrics: Option<PathBuf>,
    checked: usize,
}

impl Observer for Log {
    fn say(&mut self, line: &str) {
        // Right after a checkpoint is written, the metrics file already
        // holds that epoch's line: a kill between the two writes can only
        // leave a line the resume trims, never a checkpoint without its line.
        if let (Some(e), Some(m)) = (line.strip_prefix("saved "), &self.metrics) {
            let epoch: usize = e
                .rsplit("(epoch ")
                .next()
                .unwrap()
                .trim_end_matches(')')
                .parse()
                .unwrap();
            let text = std::fs::read_to_string(m).unwrap();
            assert!(
                text.lines()
                    .any(|l| l.contains(&format!("\"epoch\":{epoch},"))),
                "checkpoint of epoch {epoch} written before its metrics line: {text}"
            );
            self.checked += 1;
        }
        self.lines.push(line.to_string());
    }
    fn step(&self, _k: usize, _steps: usize, _running: &mnist_mlp::nn::Stats) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        self.epochs.push(r.epoch);
        if let Some((e, from, to)) = &self.copy_at {
            if *e == r.epoch {
                std::fs::copy(from, to).unwrap();
            }
        }
    }
}

#[test]
fn a_library_run_trains_saves_and_resumes_bit_for_bit() {
    let (d, data) = common::workdir(2000, 300);
    let flags = |epochs: usize, save: &str| RunConfig {
        data_dir: Some(data.clone()),
        hidden: "32".into(),
        epochs,
        batch_size: "64".into(),
        threads: Some(2),
        no_download: true,
        save: Some(d.path().join(save)),
        checkpoint_every: Some(1),
        metrics_out: Some(d.path().join(save).with_extension("jsonl")),
        // Nothing measured here (and the user's plan cache untouched).
        planner: Some("default".into()),
        ..RunConfig::default()
    };
    // Every key counts as given, as if each were a flag.
    let req = |flags: RunConfig, resume: Option<PathBuf>| Request {
        explicit: mnist_mlp::config::flag_keys(),
        flags,
        config: None,
        resume,
        show_progress: false,
        resume_schedule: Default::default(),
        overwrite: false,
    };
    let mut log = Log {
        copy_at: Some((
            2,
            d.path().join("a.safetensors"),
            d.path().join("b.safetensors"),
        )),
        metrics: Some(d.path().join("a.jsonl")),
        ..Log::default()
    };
    let straight = run::train(&req(flags(3, "a.safetensors"), None), &mut log).unwrap();
    assert_eq!(log.epochs, vec![1, 2, 3]);
    assert_eq!(
        log.checked, 3,
        "every checkpoint checked against the metrics"
    );
    assert_eq!(log.steps.into_inner(), 3 * 2000usize.div_ceil(64));
    assert!(log.lines.last().unwrap().starts_with("done: test accuracy"));
    assert_eq!(straight.summary.epochs, 3);
    assert!(
        straight.summary.test_accuracy > 0.5,
        "the dataset is learnable"
    );
    let saved = mnist_mlp::checkpoint::load(&d.path().join("a.safetensors")).unwrap();
    let cfg: RunConfig = serde_json::from_value(saved.config).unwrap();
    assert_eq!(cfg.plan, Some(straight.summary.plan));
    let toml = std::fs::read_to_string(d.path().join("a.toml")).unwrap();
    assert!(toml.contains("[plan]"), "{toml}");

    // As `train --resume b.safetensors --epochs 3`: the rest from the checkpoint.
    let resumed = run::train(
        &Request {
            explicit: vec!["epochs".into()],
            ..req(
                flags(3, "b.safetensors"),
                Some(d.path().join("b.safetensors")),
            )
        },
        &mut Silent,
    )
    .unwrap();
    assert_eq!(resumed.history.len(), 3);
    for (a, b) in straight.history.iter().zip(&resumed.history) {
        assert_eq!(
            (a.epoch, a.train_loss, a.test_loss, a.lr),
            (b.epoch, b.train_loss, b.test_loss, b.lr)
        );
    }
    for (a, b) in straight.model.layers.iter().zip(&resumed.model.layers) {
        assert_eq!(a.w, b.w);
        assert_eq!(a.b, b.b);
    }
}
