//! Bad data through the real binary: every case gets a clear error that
//! names the file and what is wrong, a non-zero exit (1, not a panic's 101),
//! and no huge allocation or long stall.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flate2::{write::GzEncoder, Compression};
use mnist_mlp::checkpoint;
use mnist_mlp::data::idx::encode_idx;
use mnist_mlp::nn::{Init, Loss, Mlp, NetSpec};

const TRAIN_IMG: &str = "train-images-idx3-ubyte";
const TRAIN_LAB: &str = "train-labels-idx1-ubyte";
const TEST_IMG: &str = "t10k-images-idx3-ubyte";
const TEST_LAB: &str = "t10k-labels-idx1-ubyte";

/// A valid tiny dataset: 10 train and 5 test images of 2x2.
fn good_dir() -> tempfile::TempDir {
    dir_of(10, 5, 2, 2)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn run(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mnist-mlp"));
    // `--plan auto` meets the bad data too, with a cache of its own.
    cmd.env_remove("MNIST_MLP_PLAN").env(
        "XDG_CACHE_HOME",
        std::env::temp_dir().join("mnist-mlp-bad-inputs-cache"),
    );
    if extra.is_empty() {
        cmd.arg("info");
    } else {
        cmd.args(extra);
    }
    let out = cmd
        .arg("--data-dir")
        .arg(dir)
        .env_remove("MNIST_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_error(case: &str, dir: &Path, extra: &[&str], file: &str, needle: &str) {
    let t = Instant::now();
    let (code, err) = run(dir, extra);
    let took = t.elapsed();
    println!(
        "| {case} | `{}` |",
        err.trim().replace(&dir.display().to_string(), "DIR")
    );
    assert_eq!(code, 1, "{case}: exit code {code}, stderr: {err}");
    assert!(!err.contains("panicked"), "{case}: panicked: {err}");
    assert!(
        err.contains(file),
        "{case}: error does not name {file}: {err}"
    );
    assert!(
        err.contains(needle),
        "{case}: error does not say `{needle}`: {err}"
    );
    assert!(took < Duration::from_secs(20), "{case}: took {took:?}");
}

#[test]
fn the_good_dataset_is_accepted() {
    let d = good_dir();
    let out = common::ok(&["info", "--data-dir", &common::s(d.path())]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("train: 10 images of 2x2"), "{s}");
    assert!(s.contains("per class: 1 1 1 1 1 1 1 1 1 1"), "{s}");
}

#[test]
fn bad_inputs_table() {
    type Case = (&'static str, &'static str, Vec<u8>, &'static str);
    let mut img = encode_idx(&[10, 2, 2], &[7; 40]);
    let trailing = {
        let mut v = img.clone();
        v.extend_from_slice(&[1, 2, 3]);
        v
    };
    img.truncate(img.len() - 1);
    let truncated = img;
    let cases: Vec<Case> = vec![
        (
            "truncated images",
            TRAIN_IMG,
            truncated.clone(),
            "header declares 10 items but the file holds 9 whole items and 3 bytes",
        ),
        (
            "truncated images (gzip)",
            TRAIN_IMG,
            gz(&truncated),
            "header declares 10 items but the file holds 9",
        ),
        ("trailing bytes", TRAIN_IMG, trailing, "3 trailing byte(s)"),
        (
            "wrong magic",
            TRAIN_IMG,
            {
                let mut v = encode_idx(&[10, 2, 2], &[7; 40]);
                v[0] = 0x12;
                v
            },
            "bad magic",
        ),
        (
            "wrong type code (f32)",
            TRAIN_IMG,
            {
                let mut v = encode_idx(&[10, 2, 2], &[7; 40]);
                v[2] = 0x0D;
                v
            },
            "type code 0x0d (32-bit float) is not supported",
        ),
        (
            "3-D labels",
            TRAIN_LAB,
            encode_idx(&[10, 1, 1], &[0; 10]),
            "must have 1 dimension(s), the header declares 3",
        ),
        (
            "count mismatch",
            TRAIN_LAB,
            encode_idx(&[11], &[0; 11]),
            "holds 10 images but",
        ),
        (
            "header declares 2^32-1 items",
            TRAIN_LAB,
            encode_idx(&[u32::MAX], &[0; 10]),
            "header declares 4294967295 items but the file holds 10",
        ),
        (
            "header declares 2^32-1 images (gzip)",
            TRAIN_IMG,
            gz(&encode_idx(&[u32::MAX, 28, 28], &[0; 100])),
            "more than the limit",
        ),
        ("empty file", TEST_IMG, vec![], "file is empty"),
        (
            "truncated header",
            TEST_IMG,
            vec![0, 0, 8, 3, 0, 0],
            "truncated header",
        ),
        (
            "truncated gzip",
            TEST_IMG,
            {
                let mut v = gz(&encode_idx(&[5, 2, 2], &[9; 20]));
                v.truncate(v.len() - 6);
                v
            },
            "gzip stream is corrupt or truncated",
        ),
        (
            "gzip with a bad CRC",
            TEST_IMG,
            {
                let mut v = gz(&encode_idx(&[5, 2, 2], &[9; 20]));
                let n = v.len();
                v[n - 8] ^= 0xff;
                v
            },
            "gzip stream is corrupt or truncated",
        ),
        (
            "test images 2x3 vs train 2x2",
            TEST_IMG,
            encode_idx(&[5, 2, 3], &[9; 30]),
            "must have the same size",
        ),
    ];
    println!("| case | error |\n| --- | --- |");
    for (case, file, bytes, needle) in cases {
        let d = good_dir();
        std::fs::write(d.path().join(file), bytes).unwrap();
        expect_error(case, d.path(), &[], file, needle);
    }

    // Label 10 in a 10-class set: `train` checks labels against the output width.
    let d = good_dir();
    std::fs::write(d.path().join(TEST_LAB), encode_idx(&[5], &[0, 1, 10, 3, 4])).unwrap();
    expect_error(
        "label 10 of 10 classes",
        d.path(),
        &["train", "--layers", "4,relu,3,softmax,10", "--epochs", "1"],
        TEST_LAB,
        "label 10 at index 2 is out of range for 10 classes",
    );

    // A directory where a file should be.
    let d = good_dir();
    std::fs::remove_file(d.path().join(TRAIN_IMG)).unwrap();
    std::fs::create_dir(d.path().join(TRAIN_IMG)).unwrap();
    expect_error(
        "directory instead of file",
        d.path(),
        &[],
        TRAIN_IMG,
        "is a directory",
    );

    // A missing file.
    let d = good_dir();
    std::fs::remove_file(d.path().join(TEST_LAB)).unwrap();
    expect_error(
        "missing file",
        d.path(),
        &[],
        "t10k-labels",
        "no test labels file",
    );

    // A missing directory.
    let d = good_dir();
    expect_error(
        "missing directory",
        &d.path().join("nope"),
        &[],
        "nope",
        "data directory not found",
    );
}

#[test]
fn gzip_bomb_is_refused_quickly() {
    // A valid header for 10 labels, then 512 MiB of zeros: about 0.5 MB of gzip.
    let d = good_dir();
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&encode_idx(&[10], &[0; 10])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 4 << 20);
    std::fs::write(d.path().join(TRAIN_LAB), bomb).unwrap();
    expect_error("gzip bomb", d.path(), &[], TRAIN_LAB, "trailing byte(s)");

    // A header that claims far more than a small gzip can inflate to.
    std::fs::write(
        d.path().join(TRAIN_LAB),
        gz(&encode_idx(&[2_000_000_000], &[0; 64])),
    )
    .unwrap();
    expect_error(
        "gzip claiming 2 GB",
        d.path(),
        &[],
        TRAIN_LAB,
        "more than the limit",
    );
}

#[test]
fn cli_values_out_of_range_are_refused() {
    let d = good_dir();
    for (args, needle) in [
        (
            vec!["train", "--batch-size", "0"],
            "--batch-size must be at least 1",
        ),
        (
            vec!["train", "--lr", "-1"],
            "--lr must be a positive finite number",
        ),
        (
            vec!["train", "--lr", "NaN"],
            "--lr must be a positive finite number",
        ),
        (
            vec!["train", "--layers", "4,relu,0,softmax,10"],
            "at least 1",
        ),
        (
            vec!["train", "--layers", "4,relu,1000000000000,softmax,10"],
            "too large",
        ),
        (
            vec!["train", "--layers", "4,swish,3,softmax,10"],
            "unknown activation `swish`",
        ),
        (
            vec!["train", "--layers", "784,relu,3,softmax,10"],
            "input width is 784 but the images in",
        ),
        (
            vec!["train", "--optimizer", "adagrad"],
            "unknown optimizer `adagrad`",
        ),
        (
            vec!["train", "--epochs", "0"],
            "--epochs must be at least 1",
        ),
        (
            vec!["train", "--threads", "100000"],
            "--threads 100000 is out of range",
        ),
        (
            vec!["train", "--threads", "0"],
            "--threads 0 is out of range",
        ),
        (
            vec!["eval", "--model", "x", "--threads", "0"],
            "--threads 0 is out of range",
        ),
        (
            vec!["train", "--lr", "inf"],
            "--lr must be a positive finite number",
        ),
        (
            vec!["train", "--patience", "3"],
            "--patience needs a validation set",
        ),
        (
            vec!["train", "--plot", "curves.pdf"],
            "must end in .svg or .png",
        ),
        (
            vec!["train", "--save", "m.toml"],
            "give the model another extension",
        ),
        (
            vec!["train", "--layers", "4,relu,3,sigmoid,10", "--loss", "ce"],
            "cross-entropy needs a softmax output",
        ),
        (
            vec!["bench", "--workload", "T1", "--epochs", "0"],
            "--epochs must be at least 1",
        ),
        (
            vec!["bench", "--workload", "T7"],
            "unknown workload `T7` (expected one of T1, T2, T3, T4, T5, T6)",
        ),
        (
            vec!["tune", "--workload", "T0"],
            "unknown workload `T0` (expected one of T1",
        ),
        (
            vec!["train", "--schedule", "cosine:10", "--epochs", "6"],
            "must be shorter than the run (--epochs 6)",
        ),
        (
            vec!["train", "--schedule", "cosine:1e308"],
            "must be shorter than the run",
        ),
        (
            vec!["train", "--schedule", "step:2.5:0.5"],
            "not a whole number of epochs",
        ),
    ] {
        let (code, err) = run(d.path(), &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Integers a TOML file cannot hold (a run's settings are saved as
    // TOML): a usage error naming the flag, never a panic.
    let big = "9223372036854775808";
    for args in [
        vec!["train", "--seed", big],
        vec!["train", "--threads", big],
        vec!["train", "--validation", big],
        vec!["train", "--patience", big],
        vec!["train", "--epochs", big],
        vec![
            "train",
            "--save",
            "m.safetensors",
            "--checkpoint-every",
            big,
        ],
    ] {
        let (code, err) = run(d.path(), &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("too large") && err.contains(args[args.len() - 2]),
            "{args:?}: {err}"
        );
    }
    // A step interval beyond any run: the base rate throughout, no panic.
    let step = [
        "train",
        "--schedule",
        "step:9223372036854775808:0.5",
        "--batch-size",
        "1000",
        "--epochs",
        "1",
        "--hidden",
        "8",
    ];
    let (code, err) = run(d.path(), &step);
    assert_eq!(code, 0, "{err}");
    // A tolerance no error can exceed (NaN) or every error exceeds.
    for t in [
        "--tolerance=nan",
        "--tolerance=-1",
        "--tolerance=0",
        "--tolerance=inf",
    ] {
        let err = common::fails(&["gradcheck", t]);
        assert!(
            err.contains("--tolerance must be a positive finite number"),
            "{t}: {err}"
        );
    }
    // More threads than cores: allowed, with a warning.
    let n = (mnist_mlp::parallel::num_cores() + 1).to_string();
    let dir = common::s(d.path());
    let out = common::ok(&[
        "train",
        "--data-dir",
        &dir,
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--quiet",
        "--threads",
        &n,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: --threads {n} is more than this machine's"
        )),
        "{err}"
    );
}

#[test]
fn output_folders_are_made_or_refused_before_training() {
    let d = good_dir();
    let file = d.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for flag in ["--save", "--plot", "--metrics-out"] {
        let target = file.join("run").join(match flag {
            "--plot" => "c.svg",
            "--metrics-out" => "m.jsonl",
            _ => "m.safetensors",
        });
        let (code, err) = run(
            d.path(),
            &[
                "train",
                "--epochs",
                "1",
                flag,
                &target.display().to_string(),
            ],
        );
        assert_eq!(code, 1, "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{flag} {}: cannot create the folder",
                target.display()
            )),
            "{flag}: {err}"
        );
        assert!(err.contains("a-file"), "{flag}: {err}");
        assert!(
            !err.contains("epoch"),
            "{flag}: refused only after training: {err}"
        );
    }
}

/// A dataset of `n_train`/`n_test` images of `rows` x `cols` (labels 0..9).
fn dir_of(n_train: u32, n_test: u32, rows: u32, cols: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let w = |name: &str, bytes: Vec<u8>| std::fs::write(d.path().join(name), bytes).unwrap();
    let px = |n: u32| vec![3u8; (n * rows * cols) as usize];
    let lab = |n: u32| (0..n).map(|i| (i % 10) as u8).collect::<Vec<u8>>();
    w(TRAIN_IMG, encode_idx(&[n_train, rows, cols], &px(n_train)));
    w(TRAIN_LAB, encode_idx(&[n_train], &lab(n_train)));
    w(TEST_IMG, encode_idx(&[n_test, rows, cols], &px(n_test)));
    w(TEST_LAB, encode_idx(&[n_test], &lab(n_test)));
    d
}

#[test]
fn shapes_counts_permissions_and_checkpoints() {
    // Images of 27x28 where a network for 28x28 is asked for.
    let d = dir_of(20, 10, 27, 28);
    expect_error(
        "images 27x28 for a 784-input network",
        d.path(),
        &["train", "--layers", "784,relu,8,softmax,10"],
        TRAIN_IMG,
        "input width is 784 but the images in",
    );
    // ... and train 28x28 with test 27x28.
    let d = dir_of(20, 10, 28, 28);
    std::fs::write(
        d.path().join(TEST_IMG),
        encode_idx(&[10, 27, 28], &[3; 10 * 27 * 28]),
    )
    .unwrap();
    expect_error(
        "test images 27x28, train 28x28",
        d.path(),
        &[],
        TEST_IMG,
        "must have the same size",
    );

    // The standard workloads on data of another shape or with more classes
    // (EMNIST letters go up to 26): an error naming the data, no panic.
    let d = dir_of(20, 10, 2, 2);
    let bench = ["bench", "--workload", "T2", "--epochs", "1"];
    expect_error(
        "bench on 2x2 images",
        d.path(),
        &bench,
        "--workload T2 on",
        "samples have 4 features (2x2 images), but the network's input layer takes 784",
    );
    let d = dir_of(300, 10, 28, 28);
    let labels: Vec<u8> = (0..300).map(|i| (i % 27) as u8).collect();
    std::fs::write(d.path().join(TRAIN_LAB), encode_idx(&[300], &labels)).unwrap();
    expect_error(
        "bench with labels up to 26",
        d.path(),
        &bench,
        "--workload T2 on",
        "sample 10 has label 10, but the network has 10 outputs",
    );

    // 10001 labels for 10000 images.
    let d = dir_of(10, 10000, 2, 2);
    let labels: Vec<u8> = (0..10001).map(|i| (i % 10) as u8).collect();
    std::fs::write(d.path().join(TEST_LAB), encode_idx(&[10001], &labels)).unwrap();
    expect_error(
        "10001 labels for 10000 images",
        d.path(),
        &[],
        TEST_LAB,
        "holds 10000 images but",
    );

    // An unreadable file. Root ignores permissions, so as root the binary
    // runs as `nobody` (setpriv); otherwise the file is simply chmod 000.
    {
        use std::os::unix::fs::PermissionsExt;
        let d = dir_of(10, 5, 2, 2);
        let f = d.path().join(TRAIN_IMG);
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        let mut cmd = if root {
            // A copy of the binary where `nobody` may run it, wherever the
            // checkout lives.
            let bin = d.path().join("mnist-mlp");
            std::fs::copy(env!("CARGO_BIN_EXE_mnist-mlp"), &bin).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_mnist-mlp"))
        };
        match cmd.arg("info").arg("--data-dir").arg(d.path()).output() {
            Ok(out) if !(root && String::from_utf8_lossy(&out.stderr).contains("setpriv:")) => {
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                println!(
                    "| unreadable file | `{}` |",
                    err.trim().replace(&d.path().display().to_string(), "DIR")
                );
                assert_eq!(out.status.code(), Some(1), "{err}");
                assert!(
                    err.contains(TRAIN_IMG) && err.contains("Permission denied"),
                    "{err}"
                );
            }
            other => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot drop root privileges for the unreadable-file case: {other:?}"
                );
                eprintln!("setpriv unavailable: unreadable-file case skipped");
            }
        }
    }

    // Checkpoints: another architecture, truncated, NaN inside, not a checkpoint.
    let d = dir_of(20, 10, 2, 2);
    let ck = tempfile::tempdir().unwrap();
    let spec = NetSpec::parse("784,relu,8,softmax,10").unwrap();
    let m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 1).unwrap();
    let good = ck.path().join("m784.safetensors");
    checkpoint::save(&good, &m, &serde_json::Value::Null).unwrap();
    let model_arg = |p: &Path| p.display().to_string();
    expect_error(
        "checkpoint of another architecture (784 inputs, data 2x2)",
        d.path(),
        &["eval", "--model", &model_arg(&good)],
        "m784.safetensors",
        "the model's input width is 784 but the images",
    );
    let bytes = std::fs::read(&good).unwrap();
    let trunc = ck.path().join("truncated.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(
        "truncated checkpoint",
        d.path(),
        &["eval", "--model", &model_arg(&trunc)],
        "truncated.safetensors",
        "not a valid safetensors file",
    );
    let mut bad = m.clone();
    bad.layers[0].w[[3, 2]] = f32::NAN;
    let nan = ck.path().join("nan.safetensors");
    std::fs::write(
        &nan,
        checkpoint::to_bytes(&bad, &serde_json::Value::Null).unwrap(),
    )
    .unwrap();
    expect_error(
        "checkpoint containing NaN",
        d.path(),
        &["eval", "--model", &model_arg(&nan)],
        "nan.safetensors",
        "tensor `layers.0.weight` holds a non-finite value (NaN) at index 26",
    );
    let junk = ck.path().join("junk.safetensors");
    std::fs::write(&junk, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk").unwrap();
    expect_error(
        "not a checkpoint",
        d.path(),
        &["eval", "--model", &model_arg(&junk)],
        "junk.safetensors",
        "not a valid safetensors file",
    );
    expect_error(
        "resuming a model-only checkpoint",
        d.path(),
        &["train", "--resume", &model_arg(&good)],
        "m784.safetensors",
        "it can be evaluated, not resumed",
    );
    let missing = ck.path().join("missing.safetensors");
    expect_error(
        "missing checkpoint",
        d.path(),
        &["eval", "--model", &model_arg(&missing)],
        "missing.safetensors",
        "No such file",
    );
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_before_they_are_opened() {
    // (#23) A FIFO as --model, --resume, --config, --mapping or a predict
    // input used to hang forever (opening it blocks); `eval --model
    // /dev/zero` read without end. Each is now refused by its type.
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let data = good_dir();
    let model = d.path().join("m.safetensors");
    let (f, m, dd) = (common::s(&fifo), common::s(&model), common::s(data.path()));
    common::ok(&[
        "train",
        "--data-dir",
        &dd,
        "--hidden",
        "3",
        "--epochs",
        "1",
        "--quiet",
        "--save",
        &m,
    ]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["eval", "--model", &f, "--data-dir", &dd],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["eval", "--model", "/dev/zero", "--data-dir", &dd],
            "is a device, not a regular file",
        ),
        (
            vec!["train", "--resume", &f],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["train", "--config", &f, "--data-dir", &dd],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["predict", "--model", &m, &f],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["predict", "--model", &m, "--mapping", &f, &f],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["eval", "--model", &m, "--images", &f, "--labels", &f],
            "is a FIFO (named pipe), not a regular file",
        ),
    ];
    for (args, needle) in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnist-mlp"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("{args:?}: still running after 20 s (blocked on the FIFO?)");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_model_whose_outputs_overflow_is_refused_by_eval_and_predict() {
    // (#23) Weights of 3e38 are finite, so the checkpoint loads; before,
    // `eval` printed "loss NaN" and `predict` class 0 with NaN
    // probabilities, both with exit 0.
    let d = good_dir();
    let ck = tempfile::tempdir().unwrap();
    let spec = NetSpec::parse("4,relu,3,softmax,10").unwrap();
    let mut m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 1).unwrap();
    m.layers[0].w.fill(3e38);
    m.layers[1].w.fill(3e38);
    let p = ck.path().join("huge.safetensors");
    checkpoint::save(&p, &m, &serde_json::Value::Null).unwrap();
    let model_arg = p.display().to_string();
    expect_error(
        "a checkpoint whose outputs overflow",
        d.path(),
        &["eval", "--model", &model_arg],
        "huge.safetensors",
        "the model's outputs are not finite",
    );
    let imgs = common::s(&d.path().join(TEST_IMG));
    let out = Command::new(env!("CARGO_BIN_EXE_mnist-mlp"))
        .args(["predict", "--model", &model_arg, &imgs])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the model's outputs are not finite"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "printed classes: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn what_cannot_fit_in_memory_is_refused_with_the_figure() {
    // (#23) An oversized network, a gradient check of a huge batch, an IDX
    // file and a picture that would not fit: each refused before
    // allocating, with the figures. MNIST_MLP_MEMORY caps the memory the
    // program believes it has, so that the refusals show on any machine.
    let d = good_dir();
    let run = |args: &[&str], cap: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_mnist-mlp"))
            .args(args)
            .env(mnist_mlp::memory::MEMORY_ENV, cap)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dd = common::s(d.path());
    let (code, err) = run(
        &[
            "train",
            "--data-dir",
            &dd,
            "--hidden",
            "300000",
            "--epochs",
            "1",
        ],
        "1G",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the run needs about")
            && err.contains("more than the 1.0 GiB of memory available"),
        "{err}"
    );
    let (code, err) = run(&["gradcheck", "--batch", "100000000"], "1G");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--batch 100000000: the check needs about"),
        "{err}"
    );
    // A gzip IDX file of 1000 images of 100x100 (10 MB once read): fine
    // with 1 GiB, refused with 20 MiB.
    let big = tempfile::tempdir().unwrap();
    let px = vec![0u8; 1000 * 100 * 100];
    std::fs::write(
        big.path().join("x-images-idx3-ubyte.gz"),
        gz(&encode_idx(&[1000, 100, 100], &px)),
    )
    .unwrap();
    let f = common::s(&big.path().join("x-images-idx3-ubyte.gz"));
    let spec = NetSpec::parse("10000,relu,3,softmax,10").unwrap();
    let m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 1).unwrap();
    let mp = big.path().join("m.safetensors");
    checkpoint::save(&mp, &m, &serde_json::Value::Null).unwrap();
    let (code, err) = run(&["predict", "--model", &common::s(&mp), &f], "20M");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("more than the 20 MiB of memory available"),
        "{err}"
    );
    let (code, err) = run(
        &["predict", "--model", &common::s(&mp), "--top", "1", &f],
        "1G",
    );
    assert_eq!(code, Some(0), "{err}");
    // A picture's size is read from its header before it is decoded.
    let pic = big.path().join("wide.png");
    image::GrayImage::new(4000, 3000).save(&pic).unwrap();
    let (code, err) = run(
        &["predict", "--model", &common::s(&mp), &common::s(&pic)],
        "100M",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("a picture of 4000x3000 pixels needs about"),
        "{err}"
    );
}
