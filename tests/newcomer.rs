//! What a newcomer hit (issue #22): a test class the training set never
//! has is warned about; `--version` names the build. On the small dataset
//! of `common`. And what a newcomer asks of `bench` (issue #20): how near
//! the machine's limit it runs.

mod common;

use common::{ok, train, workdir};

#[test]
fn a_test_class_the_training_set_never_has_is_warned_about() {
    // (#22) Test labels 0..=10, training labels 0..=9: an 11th output that
    // no training sample teaches.
    let (_d, data) = workdir(600, 100);
    let labels: Vec<u8> = (0..100)
        .map(|i| if i < 7 { 10 } else { (i % 10) as u8 })
        .collect();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &mnist_mlp::data::idx::encode_idx(&[100], &labels)).unwrap();
    std::fs::write(data.join("t10k-labels-idx1-ubyte.gz"), e.finish().unwrap()).unwrap();
    let out = train(&data, "16", 1, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: the test set has class 10 (7 samples), which the training set never has"
        ),
        "{err}"
    );
    // Matching sets say nothing.
    let (_d, data) = workdir(600, 100);
    let out = train(&data, "16", 1, &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("never has"));
}

#[test]
fn version_names_the_commit() {
    // (#22) `--version` says which build it is: the crate version and the
    // git commit it was built from.
    let out = ok(&["--version"]);
    let v = String::from_utf8_lossy(&out.stdout);
    let inner = v
        .trim()
        .strip_prefix(concat!("mnist-mlp ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        inner == "unknown commit"
            || (inner.len() == 12 && inner.chars().all(|c| c.is_ascii_hexdigit())),
        "{v}"
    );
}

#[test]
fn raising_epochs_on_resume_says_what_it_does_to_the_schedule() {
    // (#22) Cosine over 2 epochs, resumed to 4: the rate jumps back up.
    let (d, data) = workdir(1000, 200);
    let m = common::s(&d.path().join("m.safetensors"));
    train(&data, "16", 2, &["--schedule", "cosine", "--save", &m]);
    let out = ok(&["train", "--resume", &m, "--epochs", "4", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--epochs 4 changes the run's length from 2 epochs")
            && err.contains("stretched over the new total")
            && err
                .contains("--resume-schedule keep goes on at the rate where the schedule ends (0)"),
        "{err}"
    );
    // Going on at a fixed rate instead says nothing.
    let c = common::s(&d.path().join("c.safetensors"));
    train(&data, "16", 2, &["--schedule", "constant", "--save", &c]);
    let out = ok(&["train", "--resume", &c, "--epochs", "4", "--quiet"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("stretched"));
}

#[test]
fn resume_schedule_keeps_or_restarts_the_schedule_and_records_it() {
    // (#22) The choice the warning offers: keep the schedule's end (the
    // rate stays where it ended) or restart it over the epochs added;
    // the choice is recorded, so a later resume stays on its curve.
    use mnist_mlp::schedule::{Schedule, Window};
    let (d, data) = workdir(1000, 200);
    let path = |n: &str| common::s(&d.path().join(n));
    let lrs = |metrics: &str| -> Vec<f64> {
        std::fs::read_to_string(metrics)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (a, am) = (path("a.safetensors"), path("a.jsonl"));
    train(
        &data,
        "16",
        2,
        &[
            "--schedule",
            "cosine",
            "--lr",
            "0.01",
            "--save",
            &a,
            "--metrics-out",
            &am,
        ],
    );
    let resume = |from: &str, epochs: &str, how: &str, save: &str, metrics: &str| {
        let out = ok(&[
            "train",
            "--resume",
            from,
            "--epochs",
            epochs,
            "--resume-schedule",
            how,
            "--save",
            save,
            "--metrics-out",
            metrics,
            "--quiet",
        ]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Keep: past the old end (epoch 2) the cosine rate stays at 0.
    std::fs::copy(&am, path("k.jsonl")).unwrap();
    let err = resume(&a, "4", "keep", &path("k.safetensors"), &path("k.jsonl"));
    assert!(
        err.contains("--resume-schedule keep: the cosine schedule keeps its end at epoch 2"),
        "{err}"
    );
    assert_eq!(&lrs(&path("k.jsonl"))[2..], &[0.0, 0.0]);
    // Restart: epochs 3-4 repeat epochs 1-2's rates.
    std::fs::copy(&am, path("r.jsonl")).unwrap();
    let r = path("r.safetensors");
    let err = resume(&a, "4", "restart", &r, &path("r.jsonl"));
    assert!(err.contains("starts again over epochs 3..4"), "{err}");
    let rl = lrs(&path("r.jsonl"));
    assert_eq!(rl[2..], rl[..2], "{rl:?}");
    assert!(std::fs::read_to_string(path("r.toml"))
        .unwrap()
        .contains("[schedule_window]"));
    // Stretching the restarted run to 6 epochs stretches its window [2, 4)
    // to [2, 6), not the whole run.
    std::fs::copy(path("r.jsonl"), path("s.jsonl")).unwrap();
    resume(&r, "6", "stretch", &path("s.safetensors"), &path("s.jsonl"));
    let per = 1000u64.div_ceil(128);
    let w = Window { start: 2, end: 6 };
    let want: Vec<f64> = (5..=6)
        .map(|e| w.lr(&Schedule::Cosine { warmup: 0.0 }, 0.01, e * per - 1, per))
        .collect();
    assert_eq!(&lrs(&path("s.jsonl"))[4..], &want[..]);
}

#[test]
fn eval_warns_on_other_data_and_reports_like_scikit_learn() {
    // (#22) A model evaluated on another dataset's test set: a warning
    // naming the data it was trained on. Before, it scored silently.
    let (d, data) = workdir(1500, 300);
    let m = common::s(&d.path().join("m.safetensors"));
    let out = train(&data, "16", 2, &["--save", &m]);
    // The model summary opens the run.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dense1  784 -> 16") && text.contains("12,730"),
        "{text}"
    );
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    common::write_dataset(&other, 100, 300, 99);
    let (data_s, other_s) = (common::s(&data), common::s(&other));
    let eval = |dir: &str, extra: &[&str]| {
        let mut args = vec!["eval", "--model", &m, "--data-dir", dir];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let out = eval(&other_s, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the model was trained on the data in")
            && err.contains(&format!("evaluate with --data-dir {data_s}")),
        "{err}"
    );
    // The same data (here: a copy in another folder) says nothing.
    let copy = d.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(&data).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
    }
    let out = eval(&common::s(&copy), &["--json", "--top-k", "10"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Per class F1 and support; averages; top-10 of 10 classes is 1.
    assert_eq!(v["support"].as_array().unwrap().len(), 10);
    let support: u64 = v["support"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(support, 300);
    assert!(v["f1"][0].as_f64().unwrap() > 0.0, "{v}");
    let w = v["averages"]["weighted"][1].as_f64().unwrap();
    // Weighted recall is the accuracy.
    assert!((w - v["accuracy"].as_f64().unwrap()).abs() < 1e-9, "{v}");
    assert_eq!(v["top_k_accuracy"].as_f64(), Some(1.0));
    // The training split, and any pair of IDX files.
    let v: serde_json::Value =
        serde_json::from_slice(&eval(&data_s, &["--split", "train", "--json"]).stdout).unwrap();
    assert_eq!(
        (v["samples"].as_u64(), v["split"].as_str()),
        (Some(1500), Some("train"))
    );
    let imgs = common::s(&other.join("train-images-idx3-ubyte.gz"));
    let labs = common::s(&other.join("train-labels-idx1-ubyte.gz"));
    let out = ok(&["eval", "--model", &m, "--images", &imgs, "--labels", &labs]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("data (") && text.contains("100 samples"),
        "{text}"
    );
    assert!(
        text.contains("macro avg") && text.contains("weighted avg"),
        "{text}"
    );
    // predict on the other data's test images warns; on the model's own,
    // nothing.
    let warn = "holds other images";
    let t10k = |dir: &std::path::Path| common::s(&dir.join("t10k-images-idx3-ubyte.gz"));
    let out = ok(&["predict", "--model", &m, &t10k(&other)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(warn), "{err}");
    let out = ok(&["predict", "--model", &m, &t10k(&copy)]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(warn));
    // --images needs --labels.
    let e = common::bin()
        .args(["eval", "--model", &m, "--images", &imgs])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(2));
}

#[test]
fn info_describes_a_model_and_speaks_json() {
    // (#22) `info --model`: the summary, the training and the data;
    // `info --json` for scripts.
    let (d, data) = workdir(600, 100);
    let m = common::s(&d.path().join("m.safetensors"));
    train(&data, "16", 1, &["--save", &m]);
    let text = String::from_utf8_lossy(&ok(&["info", "--model", &m]).stdout).into_owned();
    for needle in [
        "784,relu,16,softmax,10",
        "dense2  16 -> 10",
        "total",
        "trained 1 epochs of 1",
        "test accuracy",
        "trained on ",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&ok(&["info", "--model", &m, "--json"]).stdout).unwrap();
    assert_eq!(v["parameters"].as_u64(), Some(785 * 16 + 17 * 10));
    assert_eq!(v["summary"][0]["fan_out"].as_u64(), Some(16));
    assert_eq!(v["data"]["test_samples"].as_u64(), Some(100));
    let v: serde_json::Value =
        serde_json::from_slice(&ok(&["info", "--json", "--data-dir", &common::s(&data)]).stdout)
            .unwrap();
    assert_eq!(v["train"]["samples"].as_u64(), Some(600));
    assert_eq!(v["test"]["per_class"].as_array().unwrap().len(), 10);
}

#[test]
fn predict_reads_folders_and_globs_saves_what_it_saw_and_warns_on_blank_pictures() {
    // (#22) Folders, quoted globs, --save-input; a picture without ink is
    // warned about instead of answered silently.
    use rand::SeedableRng;
    let (d, data) = workdir(1500, 100);
    let m = common::s(&d.path().join("m.safetensors"));
    train(&data, "16", 2, &["--save", &m]);
    let pics = d.path().join("pics");
    std::fs::create_dir(&pics).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for c in [2u8, 5, 7] {
        let px = common::picture(c, &mut rng);
        image::GrayImage::from_raw(28, 28, px)
            .unwrap()
            .save(pics.join(format!("class{c}.png")))
            .unwrap();
    }
    std::fs::write(pics.join("notes.txt"), "not a picture").unwrap();
    let seen = d.path().join("seen");
    let out = ok(&[
        "predict",
        "--model",
        &m,
        &common::s(&pics),
        "--save-input",
        &common::s(&seen),
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Sorted by name, the text file left out.
    let files: Vec<&str> = lines.iter().map(|v| v["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files[0].ends_with("class2.png") && files[2].ends_with("class7.png"));
    // What the model saw: 28x28 gray frames, one per picture, with ink.
    for c in [2, 5, 7] {
        let img = image::open(seen.join(format!("class{c}.png")))
            .unwrap()
            .to_luma8();
        assert_eq!(img.dimensions(), (28, 28));
        assert!(img.pixels().any(|p| p.0[0] > 200), "class{c}: no ink saved");
    }
    // A quoted pattern is expanded; one that matches nothing is an error.
    let pattern = common::s(&pics.join("class[57].png"));
    let out = ok(&["predict", "--model", &m, &pattern]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let none = common::s(&pics.join("*.gif"));
    let err = common::fails(&["predict", "--model", &m, &none]);
    assert!(err.contains("the pattern matches no file"), "{err}");
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = common::fails(&["predict", "--model", &m, &common::s(&empty)]);
    assert!(err.contains("the folder has no pictures"), "{err}");
    // A blank page: a warning, still a line of output.
    let blank = pics.join("blank.png");
    image::GrayImage::from_pixel(40, 30, image::Luma([230]))
        .save(&blank)
        .unwrap();
    let out = ok(&["predict", "--model", &m, &common::s(&blank)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blank.png: no ink found"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // An IDX file's images are saved as NAME-INDEX.png.
    let idx = common::s(&data.join("t10k-images-idx3-ubyte.gz"));
    let seen2 = d.path().join("seen2");
    ok(&[
        "predict",
        "--model",
        &m,
        &idx,
        "--save-input",
        &common::s(&seen2),
    ]);
    assert!(seen2.join("t10k-images-idx3-ubyte-99.png").is_file());
    assert_eq!(std::fs::read_dir(&seen2).unwrap().count(), 100);
}

#[test]
fn resume_accepts_the_network_in_any_spelling_and_refuses_another() {
    // (#22) Before, `--layers 784,relu,16,10` (the stored list is
    // `784,relu,16,softmax,10`), `--hidden 16` and the same --config file
    // were refused as "`layers` differs".
    let (d, data) = workdir(600, 100);
    let m = common::s(&d.path().join("m.safetensors"));
    let cfg = d.path().join("run.toml");
    std::fs::write(&cfg, "hidden = \"16\"\nactivation = \"relu\"\n").unwrap();
    let cfg = common::s(&cfg);
    let data = common::s(&data);
    ok(&[
        "train",
        "--data-dir",
        &data,
        "--config",
        &cfg,
        "--epochs",
        "1",
        "--quiet",
        "--save",
        &m,
    ]);
    let resume = |epochs: &str, extra: &[&str]| {
        let mut args = vec!["train", "--resume", &m, "--epochs", epochs, "--quiet"];
        args.extend_from_slice(extra);
        common::bin().args(&args).output().unwrap()
    };
    for (epochs, extra) in [
        ("2", vec!["--layers", "784,relu,16,10"]),
        ("3", vec!["--hidden", "16"]),
        ("4", vec!["--activation", "relu"]),
        ("5", vec!["--config", &cfg]),
    ] {
        let out = resume(epochs, &extra);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = resume("6", &["--hidden", "32"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("differs from the checkpoint's run"), "{err}");
    let out = resume("6", &["--layers", "784,tanh,16,10"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn completions_are_scripts_the_shells_accept() {
    // (#22) `mnist-mlp completions SHELL` prints a script naming every
    // subcommand and the train flags; bash parses it (`bash -n`).
    let out = ok(&["completions", "bash"]);
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "train",
        "predict",
        "augment-preview",
        "--resume-schedule",
        "--save-input",
    ] {
        assert!(script.contains(needle), "{needle}");
    }
    if let Ok(mut child) = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "bash -n refused the script"
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(!ok(&["completions", shell]).stdout.is_empty(), "{shell}");
    }
    assert_eq!(
        common::bin()
            .args(["completions", "tcsh"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

/// `bench --json` of T2 on synthetic data, one thread, one epoch, the
/// built-in plan, with `extra`.
fn bench_t2(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench",
        "--workload",
        "T2",
        "--synthetic",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--plan",
        "default",
        "--json",
    ];
    args.extend(extra);
    let out = ok(&args);
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

#[test]
fn bench_limit_measures_the_peak_and_gives_the_fraction() {
    // (#20) `bench --limit`: the sgemm peak before and after, the physical
    // limit from the best, and the run as a fraction of it.
    let r = bench_t2(&["--limit"]);
    let l = &r["limit"];
    let peaks: Vec<f64> = l["sgemm_gflop_per_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(peaks.len(), 2, "{r}");
    assert!(peaks.iter().all(|g| *g > 0.0), "{r}");
    let best = peaks.iter().copied().fold(0.0, f64::max);
    let limit = l["samples_per_s"].as_f64().unwrap();
    assert!((limit - best * 1e9 / 159_800.0).abs() < 1e-6 * limit, "{r}");
    let fraction = l["fraction"].as_f64().unwrap();
    assert!((fraction - r["samples_per_s"].as_f64().unwrap() / limit).abs() < 1e-9);
    assert!(fraction > 0.0 && fraction < 2.0, "{r}");
    // Without the flag, nothing is measured.
    let r = bench_t2(&[]);
    assert!(r.get("limit").is_none(), "{r}");
    assert!(r.get("profile").is_none(), "{r}");
    assert_eq!(r["performed_flops_per_sample"], 159_800);
}

#[test]
fn bench_profile_says_where_a_steps_time_went() {
    // `bench --profile`: one more epoch with the timers on; every kind of
    // work, the waits and the serial part add up to the step's thread-time.
    let r = bench_t2(&["--profile"]);
    let p = &r["profile"];
    let f = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert_eq!(p["blocks"], 1, "{r}");
    assert_eq!(p["steps"], 600, "{r}");
    let work = p["work_ms"].as_array().unwrap();
    let names: Vec<&str> = work.iter().map(|w| w[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "gather",
            "forward",
            "output+loss",
            "back-propagation",
            "weight gradient",
            "optimizer"
        ]
    );
    let busy: f64 = work.iter().map(|w| w[1].as_f64().unwrap()).sum();
    assert!(
        work[1][1].as_f64().unwrap() > 0.0,
        "forward took no time: {r}"
    );
    let total = busy + f("waiting_ms") + f("serial_ms");
    assert!((total - f("step_ms")).abs() <= 0.01 * f("step_ms"), "{r}");
    // One thread: nothing to wait for.
    assert!(
        f("start_wait_ms") + f("end_wait_ms") <= f("waiting_ms") + 1e-9,
        "{r}"
    );
    assert!(f("end_wait_ms") < 0.05 * f("step_ms"), "{r}");
}
