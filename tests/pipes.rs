//! A closed or failing standard output never panics: the short commands
//! end quietly when their reader has gone (`mnist-mlp info | head`) and
//! with an error when the output cannot be written (`> /dev/full`);
//! `train` keeps training and saving either way.

mod common;

use std::process::{Output, Stdio};

use common::{s, workdir};

/// Runs the binary with `args`, its standard output a pipe whose reading
/// end is closed before the program writes anything.
fn with_closed_stdout(args: &[&str]) -> Output {
    let mut child = common::bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_or_full_stdout_never_panics_and_never_loses_a_run() {
    let (d, data) = workdir(600, 100);
    let data = s(&data);

    let out = with_closed_stdout(&["info", "--data-dir", &data]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "info into a closed pipe: {err}");
    assert!(!err.contains("panicked"), "{err}");

    if std::path::Path::new("/dev/full").exists() {
        let out = common::bin()
            .args(["info", "--data-dir", &data])
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot write to standard output"), "{err}");
    }

    // train: the console is gone from the first line on; the run is not.
    let save = d.path().join("m.safetensors");
    let metrics = d.path().join("m.jsonl");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data-dir",
            &data,
            "--hidden",
            "16",
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        with_closed_stdout(&args)
    };
    let out = train(&[
        "--epochs",
        "2",
        "--save",
        &s(&save),
        "--metrics-out",
        &s(&metrics),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("warning: standard output failed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(save.exists(), "the model is saved");
    let lines = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(lines.lines().count(), 2, "every epoch recorded: {lines}");
    // The same with --json (the epoch lines go to stdout too).
    let out = train(&["--epochs", "1", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
