//! Nothing clobbered (#23, part 1): outputs are checked and locked before
//! a run starts; devices, folders, read-only files and other programs'
//! files are never replaced; no output is another output or an input; a
//! symlink is written through; a resumed copy writes beside itself. On
//! the small dataset of `common`.

mod common;

use common::{s, workdir};

/// `train` on `data` for one epoch with `extra`; (exit code, stderr).
fn train(data: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let d = s(data);
    let mut args = vec![
        "train",
        "--data-dir",
        &d,
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let out = common::bin().args(&args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(data: &std::path::Path, extra: &[&str], needle: &str) {
    let (code, err) = train(data, extra);
    assert_eq!(code, 1, "{extra:?}: {err}");
    assert!(err.contains(needle), "{extra:?}: {err}");
    assert!(
        !err.contains("epoch 1/"),
        "{extra:?}: trained before refusing"
    );
}

#[test]
fn outputs_that_must_not_be_replaced_are_refused_before_training() {
    let (d, data) = workdir(300, 60);
    let p = |n: &str| s(&d.path().join(n));
    // A device (before: /dev/null became a 40 KB regular file, as root).
    #[cfg(unix)]
    {
        refused(
            &data,
            &["--save", "/dev/null"],
            "is a device; refusing to replace it",
        );
        refused(&data, &["--metrics-out", "/dev/full"], "is a device");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }
    // A folder.
    refused(
        &data,
        &["--save", &format!("{}/", d.path().display())],
        "is a folder",
    );
    // Two outputs on one file; an output on an input.
    refused(
        &data,
        &["--save", &p("x.svg"), "--plot", &p("x.svg")],
        "are one file",
    );
    refused(
        &data,
        &["--save", &p("a.safetensors"), "--metrics-out", &p("a.toml")],
        "are one file",
    );
    let labels = s(&data.join("train-labels-idx1-ubyte.gz"));
    refused(&data, &["--metrics-out", &labels], "is the training labels");
    std::fs::write(d.path().join("exp.toml"), "# my notes\nepochs = 1\n").unwrap();
    refused(
        &data,
        &["--config", &p("exp.toml"), "--save", &p("exp.safetensors")],
        "is --config",
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("exp.toml")).unwrap(),
        "# my notes\nepochs = 1\n"
    );
    // Another program's file: only with --overwrite.
    std::fs::write(d.path().join("theirs.safetensors"), "not ours").unwrap();
    refused(
        &data,
        &["--save", &p("theirs.safetensors")],
        "was not written by mnist-mlp",
    );
    let (code, err) = train(&data, &["--save", &p("theirs.safetensors"), "--overwrite"]);
    assert_eq!(code, 0, "{err}");
    // Ours: a run may replace what an earlier run wrote (the same command twice).
    for _ in 0..2 {
        let (code, err) = train(
            &data,
            &[
                "--save",
                &p("run/m.safetensors"),
                "--metrics-out",
                &p("run/m.jsonl"),
                "--plot",
                &p("run/m.svg"),
            ],
        );
        assert_eq!(code, 0, "{err}");
    }
    // A metrics file cut inside its first line (a run killed while
    // writing it) is still ours; a file of other lines is not.
    std::fs::write(d.path().join("cut.jsonl"), "{\"epo").unwrap();
    assert_eq!(train(&data, &["--metrics-out", &p("cut.jsonl")]).0, 0);
    std::fs::write(d.path().join("other.jsonl"), "{\"name\":1}\n").unwrap();
    refused(
        &data,
        &["--metrics-out", &p("other.jsonl")],
        "was not written by mnist-mlp",
    );
    // Read-only: never, even with --overwrite.
    let ro = d.path().join("run/m.safetensors");
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&ro, perm).unwrap();
    refused(&data, &["--save", &s(&ro), "--overwrite"], "is read-only");
}

#[cfg(unix)]
#[test]
fn a_symlinked_output_is_written_through() {
    let (d, data) = workdir(300, 60);
    let real = d.path().join("store/model.safetensors");
    std::fs::create_dir(d.path().join("store")).unwrap();
    let link = d.path().join("model.safetensors");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (code, err) = train(&data, &["--save", &s(&link)]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    mnist_mlp::checkpoint::load(&real).unwrap();
}

#[test]
fn a_second_run_on_one_output_is_refused_with_the_firsts_pid() {
    // (#23) Two runs on one --save raced: the second's temp cleanup deleted
    // the first's file in flight. The second is now refused.
    let (d, data) = workdir(300, 60);
    let m = d.path().join("m.safetensors");
    let held = mnist_mlp::files::OutputLock::take(&m).unwrap();
    refused(
        &data,
        &["--save", &s(&m)],
        &format!(
            "another mnist-mlp run (PID {}) is writing it",
            std::process::id()
        ),
    );
    drop(held);
    assert_eq!(train(&data, &["--save", &s(&m)]).0, 0);
}

#[test]
fn a_resumed_copy_writes_beside_itself_not_into_the_original() {
    // (#23) Before, resuming exp/copy.safetensors rewrote run1/'s files
    // (the paths came from the checkpoint's stored config).
    let (d, data) = workdir(300, 60);
    let run1 = d.path().join("run1");
    let (m, metrics) = (run1.join("model.safetensors"), run1.join("metrics.jsonl"));
    let (code, err) = train(
        &data,
        &[
            "--save",
            &s(&m),
            "--metrics-out",
            &s(&metrics),
            "--checkpoint-every",
            "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let before: Vec<Vec<u8>> = [&m, &metrics, &run1.join("model.toml")]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let exp = d.path().join("exp");
    std::fs::create_dir(&exp).unwrap();
    let copy = exp.join("copy.safetensors");
    std::fs::copy(&m, &copy).unwrap();
    let out = common::ok(&["train", "--resume", &s(&copy), "--epochs", "2", "--quiet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "writing --save {}, --metrics-out {}",
            copy.display(),
            exp.join("metrics.jsonl").display()
        )),
        "{text}"
    );
    let after: Vec<Vec<u8>> = [&m, &metrics, &run1.join("model.toml")]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "the original run's files changed");
    let resumed = mnist_mlp::checkpoint::load(&copy).unwrap();
    let st = mnist_mlp::run_state::read(&resumed.extras).unwrap();
    assert_eq!(st.trainer.epoch, 2);
    assert!(exp.join("copy.toml").is_file() && exp.join("metrics.jsonl").is_file());
}
