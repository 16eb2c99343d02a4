//! Runs users keep: a run killed and resumed ends bit-identical to an
//! uninterrupted one; configs layer and repeat a run; early stopping keeps
//! the best weights; metrics, plots and predictions are written. On a small
//! learnable dataset written as IDX files (no MNIST needed).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ok, s, tensors, workdir};

fn metrics(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The figures of an epoch that must repeat exactly (not the timings).
fn figures(v: &serde_json::Value) -> Vec<serde_json::Value> {
    [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "val_loss",
        "lr",
    ]
    .iter()
    .map(|k| v[k].clone())
    .collect()
}

#[test]
fn killed_and_resumed_run_ends_identical_to_an_uninterrupted_one() {
    let (d, data) = workdir(12000, 1000);
    let run = |name: &str| -> Vec<String> {
        [
            "train",
            "--data-dir",
            &s(&data),
            "--hidden",
            "64,32",
            "--optimizer",
            "adam",
            "--schedule",
            "cosine:1",
            "--epochs",
            "6",
            "--validation",
            "1000",
            "--patience",
            "10",
            "--threads",
            "2",
            "--quiet",
            "--checkpoint-every",
            "1",
            "--save",
            &s(&d.path().join(format!("{name}.safetensors"))),
            "--metrics-out",
            &s(&d.path().join(format!("{name}.jsonl"))),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let args_a = run("a");
    ok(&args_a.iter().map(|s| s.as_str()).collect::<Vec<_>>());

    // The same run, killed (SIGKILL) once its first checkpoint exists.
    let b_metrics = d.path().join("b.jsonl");
    let mut child = common::bin()
        .args(run("b"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    // (The metrics line is written before its checkpoint: wait for both.)
    let b_ck = d.path().join("b.safetensors");
    while std::fs::read_to_string(&b_metrics).map_or(true, |m| m.is_empty()) || !b_ck.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "no epoch finished");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = metrics(&b_metrics).len();
    assert!(
        done < 6,
        "the run finished before it could be killed: make the epochs longer"
    );
    println!("killed after {done} epoch(s) of 6");

    // Resume from the checkpoint alone: everything else comes from it.
    let b = d.path().join("b.safetensors");
    let out = ok(&["train", "--resume", &s(&b), "--quiet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("resuming"), "{text}");

    let (ta, tb) = (tensors(&d.path().join("a.safetensors")), tensors(&b));
    let names: Vec<&str> = ta.iter().map(|t| t.0.as_str()).collect();
    assert!(
        names.contains(&"optimizer.layers.0.weight.exp_avg_sq"),
        "{names:?}"
    );
    assert!(names.contains(&"best.layers.2.bias"), "{names:?}");
    assert_eq!(ta.len(), tb.len());
    for (x, y) in ta.iter().zip(&tb) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1 && x.2 == y.2, "tensor {} differs", x.0);
    }
    let (ma, mb) = (metrics(&d.path().join("a.jsonl")), metrics(&b_metrics));
    assert_eq!(mb.len(), 6, "one metrics line per epoch, none twice");
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(figures(x), figures(y));
    }
    // The effective configuration beside the checkpoint now says 6 epochs
    // and 2 threads.
    let cfg = std::fs::read_to_string(d.path().join("b.toml")).unwrap();
    assert!(
        cfg.contains("epochs = 6") && cfg.contains("threads = 2"),
        "{cfg}"
    );

    // Resuming a finished run asks for more epochs; --epochs 7 trains one more.
    let err = common::fails(&["train", "--resume", &s(&b), "--quiet"]);
    assert!(
        err.contains("already trained 6 epoch(s)") && err.contains("--epochs 7"),
        "{err}"
    );
    // A resumed run may not change what the state depends on.
    let err = common::fails(&[
        "train",
        "--resume",
        &s(&b),
        "--batch-size",
        "64",
        "--epochs",
        "7",
    ]);
    assert!(err.contains("`batch_size` differs"), "{err}");
    ok(&["train", "--resume", &s(&b), "--epochs", "7", "--quiet"]);
    assert_eq!(metrics(&b_metrics).len(), 7);
    // Another thread count continues, saying that the bits may differ.
    let out = ok(&[
        "train",
        "--resume",
        &s(&b),
        "--epochs",
        "8",
        "--threads",
        "1",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: --resume")
            && err.contains("used 2 threads")
            && err.contains("this one 1"),
        "{err}"
    );
    assert_eq!(metrics(&b_metrics).len(), 8);
}

#[test]
fn config_files_layer_under_flags_and_repeat_a_run() {
    let (d, data) = workdir(3000, 500);
    let toml = d.path().join("run.toml");
    std::fs::write(
        &toml,
        format!(
            "data_dir = {:?}\nhidden = \"32\"\noptimizer = \"momentum\"\nlr = 0.02\nepochs = 3\nthreads = 2\nquiet = true\n",
            s(&data)
        ),
    )
    .unwrap();
    let m1 = d.path().join("m1.safetensors");
    // The flag overrides the file's epochs.
    ok(&[
        "train",
        "--config",
        &s(&toml),
        "--epochs",
        "2",
        "--save",
        &s(&m1),
    ]);
    let eff = std::fs::read_to_string(d.path().join("m1.toml")).unwrap();
    // The network as the resolved layer list only (a config names one
    // network: `hidden` beside `layers` would be refused).
    assert!(!eff.contains("hidden ="), "{eff}");
    for want in [
        "epochs = 2",
        "optimizer = \"momentum\"",
        "lr = 0.02",
        "layers = \"784,relu,32,softmax,10\"",
    ] {
        assert!(eff.contains(want), "missing `{want}` in\n{eff}");
    }
    // The effective configuration repeats the run bit for bit.
    let m2 = d.path().join("m2.safetensors");
    ok(&[
        "train",
        "--config",
        &s(&d.path().join("m1.toml")),
        "--save",
        &s(&m2),
    ]);
    let (a, b) = (tensors(&m1), tensors(&m2));
    assert!(a.iter().zip(&b).all(|(x, y)| x == y) && a.len() == b.len());
    // The checkpoint's metadata holds the same configuration.
    let bytes = std::fs::read(&m1).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["config"]).unwrap();
    assert_eq!(cfg["lr"], 0.02);
    assert_eq!(cfg["epochs"], 2);

    // Unknown keys and wrong types name the file, the key and the line.
    std::fs::write(&toml, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    let err = common::fails(&["train", "--config", &s(&toml)]);
    assert!(
        err.contains("run.toml")
            && err.contains("unknown field `learning_rate`")
            && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn early_stopping_keeps_the_best_weights() {
    let (d, data) = workdir(2000, 500);
    let m = d.path().join("m.safetensors");
    // A high learning rate on a small set: the validation loss soon stops improving.
    let out = ok(&[
        "train",
        "--data-dir",
        &s(&data),
        "--hidden",
        "64",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
        "--schedule",
        "constant",
        "--epochs",
        "60",
        "--validation",
        "500",
        "--patience",
        "2",
        "--min-delta",
        "0.001",
        "--threads",
        "2",
        "--json",
        "--save",
        &s(&m),
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.last().unwrap();
    assert_eq!(summary["stopped_early"], true, "{summary}");
    let epochs = lines.len() - 1;
    assert!(epochs < 60);
    let best = summary["best_epoch"].as_u64().unwrap() as usize;
    assert_eq!(
        best + 2,
        epochs,
        "patience 2: stopped two epochs after the best"
    );
    // The best epoch had the lowest validation loss so far, and no later
    // epoch beat it by more than min_delta.
    let val: Vec<f64> = lines[..epochs]
        .iter()
        .map(|l| l["val_loss"].as_f64().unwrap())
        .collect();
    assert!(val[..best].iter().all(|&v| v >= val[best - 1]), "{val:?}");
    assert!(
        val[best..].iter().all(|&v| v >= val[best - 1] - 0.001),
        "{val:?}"
    );
    // The saved model is the best epoch's: same as the kept copy.
    let t = tensors(&m);
    let get = |n: &str| t.iter().find(|x| x.0 == n).unwrap().2.clone();
    assert_eq!(get("layers.0.weight"), get("best.layers.0.weight"));
    assert_eq!(summary["test_accuracy"], lines[best - 1]["test_accuracy"]);
    // A run that ended by early stopping is not resumed.
    let err = common::fails(&["train", "--resume", &s(&m), "--epochs", "80"]);
    assert!(err.contains("already ended (early stopping"), "{err}");
}

#[test]
fn metrics_plot_predict_and_eval() {
    let (d, data) = workdir(3000, 500);
    // Folders that do not exist yet are made.
    let m = d.path().join("run").join("m.safetensors");
    let (svg, png, jl) = (
        d.path().join("plots").join("c.svg"),
        d.path().join("c.png"),
        d.path().join("logs").join("deeper").join("m.jsonl"),
    );
    common::train(
        &data,
        "32",
        3,
        &[
            "--save",
            &s(&m),
            "--metrics-out",
            &s(&jl),
            "--plot",
            &s(&svg),
            "--validation",
            "300",
        ],
    );
    let ms = metrics(&jl);
    assert_eq!(ms.len(), 3);
    for (i, v) in ms.iter().enumerate() {
        assert_eq!(v["epoch"], i + 1);
        for k in [
            "train_loss",
            "test_accuracy",
            "val_loss",
            "lr",
            "seconds",
            "samples_per_s",
            "rss_mib",
        ] {
            assert!(v[k].is_number(), "{k} missing in {v}");
        }
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with(mnist_mlp::plot::SVG_MARK)
            && text.contains("\n<svg")
            && text.contains("validation"),
        "{}",
        &text[..200]
    );
    // PNG through a resume-free second run.
    common::train(&data, "32", 1, &["--plot", &s(&png)]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // eval --json and predict on the IDX test file agree.
    let out = ok(&["eval", "--model", &s(&m), "--data-dir", &s(&data), "--json"]);
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = ev["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.95, "the pattern set is easy: {acc}");
    let out = ok(&[
        "predict",
        "--model",
        &s(&m),
        "--json",
        &s(&data.join("t10k-images-idx3-ubyte.gz")),
    ]);
    let preds: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["class"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let labels = mnist_mlp::data::idx::read_labels(&data.join("t10k-labels-idx1-ubyte.gz"), None)
        .unwrap()
        .data;
    let hits = preds
        .iter()
        .zip(&labels)
        .filter(|(p, &l)| **p == l as u64)
        .count();
    assert_eq!(hits as f64 / labels.len() as f64, acc);

    // A PNG of class 6's pattern, dark on light (inverted by --invert auto).
    let mut rng = rand::rng();
    let px = common::picture(6, &mut rng);
    let img = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([255 - px[(y * 28 + x) as usize]])
    });
    let p = d.path().join("six.png");
    img.save(&p).unwrap();
    // `predict` with pictures resized into the frame.
    fn resized<'a>(model: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        [
            &["predict", "--model", model, "--preprocess", "resize"],
            rest,
        ]
        .concat()
    }
    let model = s(&m);
    let out = ok(&resized(&model, &[&s(&p)]));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.starts_with(&format!("{}: 6 ", s(&p))), "{line}");

    // The same picture stored transposed (as EMNIST stores characters),
    // classified with --transpose; class names from a mapping file.
    let t = d.path().join("six_t.png");
    image::GrayImage::from_fn(28, 28, |x, y| *img.get_pixel(y, x))
        .save(&t)
        .unwrap();
    let names = d.path().join("names.txt");
    let mapping: String = (0..10).map(|c| format!("{c} class-{c}\n")).collect();
    std::fs::write(&names, mapping).unwrap();
    let (names_s, t_s) = (s(&names), s(&t));
    let args = resized(&model, &["--transpose", "--mapping", &names_s, &t_s]);
    let line = String::from_utf8_lossy(&ok(&args).stdout).into_owned();
    assert!(
        line.starts_with(&format!("{}: 6 class-6  (6 class-6 ", s(&t))),
        "{line}"
    );
    let probs = |args: &[&str]| -> (serde_json::Value, Vec<f64>) {
        let mut json = args.to_vec();
        json.push("--json");
        let v: serde_json::Value = serde_json::from_slice(&ok(&json).stdout).unwrap();
        let p = v["probabilities"].as_array().unwrap();
        let p = p.iter().map(|x| x.as_f64().unwrap()).collect();
        (v, p)
    };
    let (v, transposed) = probs(&args);
    assert_eq!(
        (v["class"].as_u64(), v["name"].as_str()),
        (Some(6), Some("class-6"))
    );
    // --transpose undoes the transposition: the original picture gets the
    // same probabilities, the transposed one without the flag others.
    let (_, upright) = probs(&resized(&model, &[&s(&p)]));
    let (_, as_stored) = probs(&resized(&model, &[&t_s]));
    let dist = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    assert!(
        dist(&transposed, &upright) < 1e-5,
        "{transposed:?} vs {upright:?}"
    );
    assert!(
        dist(&as_stored, &upright) > 1e-3,
        "{as_stored:?} vs {upright:?}"
    );
    // A mapping with a class the model lacks is refused, naming the file.
    std::fs::write(&names, "10 65\n").unwrap();
    let err = common::fails(&args);
    assert!(
        err.contains("names.txt line 1: class 10, but the model has 10 classes"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_with_advice_and_writes_no_nan() {
    let (d, data) = workdir(2000, 200);
    let m = d.path().join("m.safetensors");
    // One good epoch first (checkpointed), then a resumed run at an absurd rate.
    common::train(&data, "32", 1, &["--save", &s(&m)]);
    let before = std::fs::read(&m).unwrap();
    let err = common::fails(&[
        "train",
        "--resume",
        &s(&m),
        "--epochs",
        "3",
        "--lr",
        "1e30",
        "--schedule",
        "constant",
        "--quiet",
    ]);
    assert!(
        err.contains("training diverged")
            && err.contains("epoch 2")
            && err.contains("try --lr 1e29"),
        "{err}"
    );
    // The last good checkpoint is untouched and finite.
    assert_eq!(std::fs::read(&m).unwrap(), before);
    assert!(mnist_mlp::checkpoint::load(&m).unwrap().model.is_finite());
}

#[test]
fn several_datasets_in_one_folder_are_told_apart_by_subset() {
    // EMNIST's folder holds every split, named `emnist-<split>-train-images-
    // idx3-ubyte.gz`, `emnist-<split>-test-...`: two such sets here.
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("emnist");
    std::fs::create_dir(&data).unwrap();
    for (set, n, seed) in [("emnist-aa", 600, 1), ("emnist-bb", 900, 2)] {
        let tmp = tempfile::tempdir().unwrap();
        common::write_dataset(tmp.path(), n, 100, seed);
        for e in std::fs::read_dir(tmp.path()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let to = format!("{set}-{}", name.replace("t10k", "test"));
            std::fs::rename(tmp.path().join(&name), data.join(to)).unwrap();
        }
    }
    let err = common::fails(&["info", "--data-dir", &s(&data)]);
    assert!(
        err.contains("several files could be the training images file")
            && err.contains("choose one with --subset (emnist-aa, emnist-bb)"),
        "{err}"
    );
    let out = ok(&["info", "--data-dir", &s(&data), "--subset", "bb"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("train: 900 images") && text.contains("emnist-bb-test-labels-idx1-ubyte.gz"),
        "{text}"
    );
    let err = common::fails(&["info", "--data-dir", &s(&data), "--subset", "cc"]);
    assert!(
        err.contains("no training images file") && err.contains("cc-train-images"),
        "{err}"
    );
    // Training reads the chosen set and records the choice in its config.
    let m = d.path().join("m.safetensors");
    let out = common::train(
        &data,
        "16",
        1,
        &["--subset", "emnist-aa", "--save", &s(&m), "--json"],
    );
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert!(v["test_accuracy"].is_number(), "{last}");
    let toml = std::fs::read_to_string(d.path().join("m.toml")).unwrap();
    assert!(toml.contains("subset = \"emnist-aa\""), "{toml}");
    let out = ok(&[
        "eval",
        "--model",
        &s(&m),
        "--data-dir",
        &s(&data),
        "--subset",
        "aa",
        "--json",
    ]);
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(ev["test_accuracy"].is_number());
}

#[test]
fn eval_names_classes_and_marks_undefined_ratios() {
    // An 11th output that no sample uses (as EMNIST letters never use 0).
    let (d, data) = workdir(1500, 300);
    let m = d.path().join("m.safetensors");
    ok(&[
        "train",
        "--data-dir",
        &s(&data),
        "--layers",
        "784,relu,16,softmax,11",
        "--epochs",
        "2",
        "--quiet",
        "--save",
        &s(&m),
    ]);
    // Evaluation reads only the test files.
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::remove_file(data.join(f)).unwrap();
    }
    let names = d.path().join("names.txt");
    std::fs::write(&names, "3 three\n10 unused\n").unwrap();
    let (m, data, names) = (s(&m), s(&data), s(&names));
    let args = [
        "eval",
        "--model",
        &m,
        "--data-dir",
        &data,
        "--mapping",
        &names,
    ];
    let text = String::from_utf8_lossy(&ok(&args).stdout).into_owned();
    let row = |c: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(c))
            .unwrap_or_else(|| panic!("no row {c}: {text}"))
            .to_string()
    };
    assert!(
        text.contains("class  precision   recall       f1  support  name"),
        "{text}"
    );
    assert!(row("3").ends_with("  three"), "{text}");
    // Class 10: no samples (recall undefined), never predicted (precision too).
    let r10 = row("10");
    let r10: Vec<&str> = r10.split_whitespace().collect();
    assert_eq!(r10, ["10", "-", "-", "-", "0", "unused"], "{text}");
    let mut json = args.to_vec();
    json.push("--json");
    let v: serde_json::Value = serde_json::from_slice(&ok(&json).stdout).unwrap();
    assert!(
        v["recall"][10].is_null() && v["precision"][10].is_null(),
        "{v}"
    );
    assert!(v["recall"][3].as_f64().unwrap() > 0.5, "{v}");
    assert_eq!(
        (v["names"][3].as_str(), v["names"][0].as_str()),
        (Some("three"), None)
    );
}

#[test]
fn full_batch_says_how_few_steps_it_takes() {
    let (_d, data) = workdir(600, 100);
    let out = common::train(&data, "8", 5, &["--batch-size", "full"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("full batch: 1 step per epoch, 5 steps in all; full-batch gradient descent needs hundreds of steps"),
        "{text}"
    );
}

#[test]
fn the_saved_config_names_the_data_even_from_mnist_dir() {
    let (d, data) = workdir(600, 100);
    let m = d.path().join("m.safetensors");
    let out = common::bin()
        .env("MNIST_DIR", &data)
        .args([
            "train",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--quiet",
            "--save",
            &s(&m),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(m.with_extension("toml")).unwrap();
    assert!(
        toml.contains(&format!("data_dir = \"{}\"", s(&data))),
        "{toml}"
    );
}
