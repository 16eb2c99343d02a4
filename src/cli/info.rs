//! `mnist-mlp info`: a data directory's files, shapes and class counts,
//! or a saved model's summary, training and data.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use mnist_mlp::config::RunConfig;
use mnist_mlp::data;

use super::DataArgs;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  mnist-mlp info --data-dir /usr/share/datasets/fashion-mnist\n  \
mnist-mlp info --json\n  mnist-mlp info --model run/model.safetensors"
)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Describe this saved model instead of a data directory: its layers and parameters (a model summary), how it was trained, and on which data.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data_dir", "subset"])]
    model: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: InfoArgs) -> Result<()> {
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
