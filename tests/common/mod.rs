//! Helpers shared by the CLI tests: a small learnable dataset written as
//! IDX files, and the binary.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::{write::GzEncoder, Compression};
use mnist_mlp::data::idx::encode_idx;
use rand::{Rng, SeedableRng};

/// The binary, without `MNIST_DIR`, and with the built-in plan
/// (`MNIST_MLP_PLAN=default`): runs whose bits are compared must not each
/// measure their own plan, and tests must not write the user's plan cache
/// (tests/planner.rs covers `--plan auto`).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mnist-mlp"));
    c.env_remove("MNIST_DIR");
    c.env("MNIST_MLP_PLAN", "default");
    c
}

/// Runs the binary, failing the test with its stderr when it fails.
pub fn ok(args: &[&str]) -> Output {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the binary expecting an error (exit status 1, not a panic's 101);
/// returns its stderr.
pub fn fails(args: &[&str]) -> String {
    fails_with(&mut bin(), args)
}

/// [`fails`] with the command `c` (the binary with its own environment).
pub fn fails_with(c: &mut Command, args: &[&str]) -> String {
    let out = c.args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    err
}

/// `train` on `data` with hidden widths `hidden` for `epochs` epochs, 2
/// threads, quietly, plus `extra` flags; fails the test if it fails.
pub fn train(data: &Path, hidden: &str, epochs: usize, extra: &[&str]) -> Output {
    let (data, epochs) = (s(data), epochs.to_string());
    let mut args = vec![
        "train",
        "--data-dir",
        &data,
        "--hidden",
        hidden,
        "--epochs",
        &epochs,
        "--threads",
        "2",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// The 28x28 picture of class `c`: a bright 8x8 square at a place of its
/// own (a 4x3 grid), plus noise.
pub fn picture(c: u8, rng: &mut impl Rng) -> Vec<u8> {
    let (gx, gy) = ((c % 4) as usize * 6 + 1, (c / 4) as usize * 8 + 2);
    let mut px = vec![0u8; 784];
    for (i, p) in px.iter_mut().enumerate() {
        let (y, x) = (i / 28, i % 28);
        let inside = (gx..gx + 8).contains(&x) && (gy..gy + 8).contains(&y);
        let noise: u8 = rng.random_range(0..60);
        *p = if inside { 255 - noise } else { noise };
    }
    px
}

/// Writes a learnable 10-class dataset of 28x28 images (gzip IDX) into `dir`.
pub fn write_dataset(dir: &Path, n_train: usize, n_test: usize, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let gz = |b: Vec<u8>| {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(&b).unwrap();
        e.finish().unwrap()
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..10)).collect();
        let px: Vec<u8> = labels.iter().flat_map(|&c| picture(c, &mut rng)).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gz(encode_idx(&[n as u32, 28, 28], &px)),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            gz(encode_idx(&[n as u32], &labels)),
        )
        .unwrap();
    }
}

/// A temporary directory with a dataset in `data/`.
pub fn workdir(n_train: usize, n_test: usize) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, n_train, n_test, 7);
    (d, data)
}

/// Every tensor of a safetensors file, by name.
pub fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}
