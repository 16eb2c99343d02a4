//! `mnist-mlp eval`: a saved model's accuracy, per-class precision,
//! recall and F1, and confusion matrix on a split or IDX files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use mnist_mlp::config::RunConfig;
use mnist_mlp::data;

use super::{DataArgs, ThreadArgs};

#[derive(Args)]
#[command(
    after_help = "The report has precision, recall, F1 and support per class, their macro and weighted averages \
(as scikit-learn's classification_report), and the confusion matrix. A model records the data it was trained on; \
evaluating it on another dataset's test set prints a warning.\n\n\
Examples:\n  mnist-mlp eval --model model.safetensors\n  \
mnist-mlp eval --model model.safetensors --split train --top-k 3\n  \
mnist-mlp eval --model model.safetensors --images my-images-idx3-ubyte.gz --labels my-labels-idx1-ubyte.gz"
)]
pub(crate) struct EvalArgs {
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

/// The names of `classes` classes from `--mapping` (none without it).
pub(super) fn class_names(mapping: Option<&Path>, classes: usize) -> Result<Vec<Option<String>>> {
    match mapping {
        Some(m) => Ok(mnist_mlp::predict::read_mapping(m, classes)?),
        None => Ok(vec![None; classes]),
    }
}

pub(crate) fn run(a: EvalArgs) -> Result<()> {
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
pub(super) fn refuse_non_finite(
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
