//! What a newcomer hit (issue #22): a test class the training set never
//! has is warned about; `--version` names the build. On the small dataset
//! of `common`.

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
            && err.contains("the run had finished its schedule"),
        "{err}"
    );
    // Going on at a fixed rate instead says nothing.
    let c = common::s(&d.path().join("c.safetensors"));
    train(&data, "16", 2, &["--schedule", "constant", "--save", &c]);
    let out = ok(&["train", "--resume", &c, "--epochs", "4", "--quiet"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("stretched"));
}
