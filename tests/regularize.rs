//! The regularizers and augmentation from the command line: a resumed run
//! with dropout, max-norm, label smoothing and augmentation is bit-identical
//! to an uninterrupted one; evaluation never drops; bad settings are
//! refused naming the flag; `--stop-at-accuracy` stops; the preview is
//! drawn. On the small learnable dataset of `common` (no MNIST needed).

mod common;

use common::{fails, ok, s, tensors, train, workdir};

const REG: [&str; 12] = [
    "--dropout",
    "0.3",
    "--input-dropout",
    "0.1",
    "--max-norm",
    "2",
    "--label-smoothing",
    "0.1",
    "--augment",
    "affine:rotate=10,shift=1,scale=0.1",
    "--augment",
    "elastic:sigma=3,alpha=20",
];

#[test]
fn a_resumed_regularized_and_augmented_run_is_bit_identical() {
    let (d, data) = workdir(3000, 500);
    let save = |n: &str| s(&d.path().join(format!("{n}.safetensors")));
    let mut whole = vec!["--schedule", "constant", "--seed", "5"];
    whole.extend_from_slice(&REG);
    let (a, b) = (save("a"), save("b"));
    let mut args = whole.clone();
    args.extend_from_slice(&["--save", &a]);
    train(&data, "48,24", 3, &args);
    let mut args = whole.clone();
    args.extend_from_slice(&["--save", &b]);
    train(&data, "48,24", 1, &args);
    ok(&["train", "--resume", &b, "--epochs", "3", "--quiet"]);
    let (ta, tb) = (tensors(a.as_ref()), tensors(b.as_ref()));
    assert_eq!(ta.len(), tb.len());
    for (x, y) in ta.iter().zip(&tb) {
        assert!(x.0 == y.0 && x.2 == y.2, "tensor {} differs", x.0);
    }
    // The regularizers act: without them the weights differ.
    let c = save("c");
    train(
        &data,
        "48,24",
        3,
        &["--schedule", "constant", "--seed", "5", "--save", &c],
    );
    assert_ne!(tensors(c.as_ref())[0].2, ta[0].2);
    // The saved network says where it drops; the config keeps the rest.
    let cfg = std::fs::read_to_string(d.path().join("a.toml")).unwrap();
    for want in [
        "784,dropout:0.1,relu,48,dropout:0.3,relu,24,dropout:0.3,softmax,10",
        "max_norm = 2",
        "label_smoothing = 0.1",
        "elastic:sigma=3,alpha=20",
    ] {
        assert!(cfg.contains(want), "{want} missing from\n{cfg}");
    }
    // Max-norm holds after every update: no unit's incoming weights are
    // longer than 2.
    for (name, shape, bytes) in &ta {
        if !(name.starts_with("layers.") && name.ends_with(".weight")) {
            continue;
        }
        let w: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let (rows, cols) = (shape[0], shape[1]);
        for j in 0..cols {
            let n: f32 = (0..rows)
                .map(|i| w[i * cols + j].powi(2))
                .sum::<f32>()
                .sqrt();
            assert!(n <= 2.0 + 1e-5, "{name} unit {j}: norm {n}");
        }
    }
}

#[test]
fn evaluation_never_drops_or_augments() {
    let (d, data) = workdir(2000, 500);
    let m = s(&d.path().join("m.safetensors"));
    let mut args = vec!["--json", "--save", &m];
    args.extend_from_slice(&REG);
    let out = train(&data, "32", 2, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let reported = last["test_accuracy"].as_f64().unwrap();
    // `eval` twice: the same figure, and the run's own test figure.
    let acc = |out: std::process::Output| -> f64 {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["test_accuracy"].as_f64().unwrap()
    };
    let data = s(&data);
    let eval = || acc(ok(&["eval", "--model", &m, "--data-dir", &data, "--json"]));
    let (e1, e2) = (eval(), eval());
    assert_eq!(e1, e2);
    assert_eq!(e1, reported);
}

#[test]
fn bad_settings_are_refused_naming_the_flag() {
    let (_d, data) = workdir(200, 50);
    let data = s(&data);
    for (flags, needle) in [
        (
            vec!["--dropout", "1.5"],
            "--dropout: a dropout rate is a number from 0 to 0.95",
        ),
        (vec!["--input-dropout", "-0.1"], "--input-dropout"),
        (
            vec!["--max-norm", "0"],
            "--max-norm must be a positive number",
        ),
        (
            vec!["--label-smoothing", "1"],
            "--label-smoothing must be in [0, 1)",
        ),
        (
            vec![
                "--label-smoothing",
                "0.1",
                "--loss",
                "mse",
                "--layers",
                "784,relu,16,sigmoid,10",
            ],
            "needs the cross-entropy loss",
        ),
        (vec!["--augment", "blur"], "unknown augmentation `blur`"),
        (vec!["--augment", "affine:rotate=400"], "out of range"),
        (vec!["--stop-at-accuracy", "98"], "(for 98% write 0.98)"),
        (
            vec!["--layers", "784,relu,16,10,dropout:0.5"],
            "after the output width",
        ),
    ] {
        let mut args = vec!["train", "--data-dir", &data, "--quiet"];
        args.extend_from_slice(&flags);
        let err = fails(&args);
        assert!(err.contains(needle), "{flags:?}: {err}");
    }
    // A flag's value the parser refuses: a usage error (exit 2), named.
    let out = common::bin()
        .args(["train", "--data-dir", &data, "--validation", "1.5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--validation")
            && err.contains("neither a whole number of samples nor a fraction"),
        "{err}"
    );
}

#[test]
fn stop_at_accuracy_stops_after_the_epoch_that_reaches_it() {
    let (d, data) = workdir(3000, 500);
    let m = s(&d.path().join("m.safetensors"));
    let out = train(
        &data,
        "32",
        20,
        &["--stop-at-accuracy", "0.5", "--save", &m],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reached test accuracy")
            && text.contains(">= 50.00% (--stop-at-accuracy) after epoch 1: stopping"),
        "{text}"
    );
    assert!(text.contains("after 1 epochs"), "{text}");
    assert!(
        d.path().join("m.safetensors").exists(),
        "the model is saved"
    );
    // With a validation set, it is the validation accuracy that counts.
    let out = train(
        &data,
        "32",
        20,
        &["--stop-at-accuracy", "0.5", "--validation", "500"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reached validation accuracy"));
    // A fraction of the training set, as Keras' validation_split (#22).
    let out = train(&data, "16", 1, &["--validation", "0.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("train 2700 x 784, test 500, validation 300"),
        "{text}"
    );
}

#[test]
fn the_preview_draws_one_row_per_class() {
    let (d, data) = workdir(500, 50);
    let png = d.path().join("grid.png");
    let out = ok(&[
        "augment-preview",
        "--data-dir",
        &s(&data),
        "--augment",
        "affine",
        "--augment",
        "elastic",
        "--variants",
        "5",
        "--out",
        &s(&png),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote"));
    let img = image::open(&png).unwrap().to_luma8();
    // 10 rows and 6 columns of 84-pixel cells with 2-pixel gaps (and a
    // wider one after the originals).
    assert_eq!(
        (img.width(), img.height()),
        (6 * 84 + 7 * 2 + 4, 10 * 84 + 11 * 2)
    );
    // The first column holds the originals (bright squares: ink), and the
    // augmented ones differ from them.
    let cell = |c: u32, r: u32| -> Vec<u8> {
        let x0 = 2 + c * 86 + if c > 0 { 4 } else { 0 };
        let y0 = 2 + r * 86;
        (0..84 * 84)
            .map(|k| img.get_pixel(x0 + k % 84, y0 + k / 84)[0])
            .collect()
    };
    assert!(cell(0, 0).iter().filter(|&&v| v > 128).count() > 400);
    assert_ne!(cell(0, 0), cell(1, 0));
    let err = fails(&[
        "augment-preview",
        "--data-dir",
        &s(&data),
        "--augment",
        "affine",
        "--out",
        &s(&d.path().join("g.svg")),
    ]);
    assert!(err.contains("name it .png"), "{err}");
}
