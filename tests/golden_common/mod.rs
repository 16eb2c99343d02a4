//! Shared by `tests/golden.rs` and `tests/golden_tiles.rs`. Golden results: the exact bits of trained weights, evaluation losses and
//! f64 gradient-check errors, compared with values recorded earlier on the
//! same OpenBLAS build.
//!
//! This is the guard of every change that only moves code (issue #19): a
//! refactor must not change one bit of any result. Each case trains a net
//! shaped like a standard workload (T1..T5: their layer lists and batch
//! sizes) for two epochs on 300 synthetic samples with SGD and with Adam,
//! on 1 and 2 threads split by the trainer and on 2 threads inside OpenBLAS,
//! then hashes (SHA-256) every weight and bias and the loss and accuracy of
//! an evaluation pass. One more case per thread setting trains with every
//! regularizer at once (input and hidden dropout, max-norm, label
//! smoothing, AdamW's weight decay, affine and elastic augmentation,
//! flips and random erasing), whose bits the workloads' cases do not
//! reach.
//!
//! The bits depend on the BLAS kernels (another processor or OpenBLAS build
//! rounds differently), so `tests/golden.txt` holds values per OpenBLAS
//! configuration string (`openblas_get_config`). On a build with no values
//! the test prints the hashes and says so; `GOLDEN_BLESS=1 cargo test
//! --release --test golden` records them (run it before a refactor, then
//! the refactor is checked at every commit).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mnist_mlp::data::augment::{Augment, Augmenter};
use mnist_mlp::data::dataset::Dataset;
use mnist_mlp::nn::init::Init;
use mnist_mlp::nn::mlp::{Mlp, Regularizers};
use mnist_mlp::nn::{Loss, NetSpec};
use mnist_mlp::optim::{OptConfig, OptKind};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::train::{BatchSize, Trainer};
use mnist_mlp::workloads::{synthetic, WORKLOADS};
use sha2::{Digest, Sha256};

/// The OpenBLAS build and the kernel set it chose (`OpenBLAS 0.3.21
/// DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64`), read once
/// ([`mnist_mlp::blas::config`]: OpenBLAS's own call is not thread-safe).
fn blas_config() -> String {
    mnist_mlp::blas::config()
}

/// Trains two epochs (of two planned) and hashes each epoch's loss sum and
/// correct count, then every weight and bias.
fn two_epochs(tr: &mut Trainer, model: &mut Mlp<f32>, data: &Dataset) -> Sha256 {
    tr.total_epochs = 2;
    let mut h = Sha256::new();
    for _ in 0..2 {
        let st = tr.train_epoch(model, data, &|_, _| {}).unwrap();
        h.update(st.loss_sum.to_le_bytes());
        h.update((st.correct as u64).to_le_bytes());
    }
    for l in &model.layers {
        for v in l.w.iter().chain(l.b.iter()) {
            h.update(v.to_le_bytes());
        }
    }
    h
}

/// Every case's hash, by case name.
fn compute(variant: &str) -> BTreeMap<String, String> {
    let data = synthetic(300, 11);
    let mut out = BTreeMap::new();
    for (policy, n) in [
        (GemmThreading::Split, 1),
        (GemmThreading::Split, 2),
        (GemmThreading::Blas, 2),
    ] {
        let threads = Threads::new(n, policy).unwrap();
        // Each network and batch once (T6 is T3's with Adam, run below).
        let mut shapes = Vec::new();
        for w in &WORKLOADS {
            if shapes.contains(&(w.layers, w.batch)) {
                continue;
            }
            shapes.push((w.layers, w.batch));
            for (opt, lr) in [(OptKind::Sgd, 0.01), (OptKind::Adam, 1e-3)] {
                let mut model = w.model(5);
                let mut tr = Trainer::new(
                    &model,
                    data.len(),
                    w.batch,
                    OptConfig::new(opt, lr),
                    3,
                    &threads,
                )
                .unwrap();
                let mut h = two_epochs(&mut tr, &mut model, &data);
                let ev = tr.evaluate(&mut model, &data);
                h.update(ev.loss_sum.to_le_bytes());
                h.update((ev.correct as u64).to_le_bytes());
                let batch = match w.batch {
                    BatchSize::N(b) => b.to_string(),
                    BatchSize::Full => "full".into(),
                };
                let name = format!("{}-b{batch}-{}-{policy:?}x{n}{variant}", w.id, opt.name());
                out.insert(name, format!("{:x}", h.finalize()));
            }
        }
        // Every regularizer at once: input and hidden dropout, max-norm,
        // label smoothing, decoupled weight decay (AdamW), affine and
        // elastic augmentation, flips and random erasing (2 epochs).
        // Max-norm 1.2 lies below He's initial column norms (about 1.4), so it
        // clips from the first step; changing any one setting changes the bits.
        let spec =
            NetSpec::parse("784,dropout:0.1,relu,48,dropout:0.3,relu,24,softmax,10").unwrap();
        let mut model = Mlp::new(spec, Loss::CrossEntropy, Init::He, 5).unwrap();
        model.reg = Regularizers {
            label_smoothing: 0.1,
            max_norm: Some(1.2),
        };
        let mut tr = Trainer::new(
            &model,
            data.len(),
            BatchSize::N(32),
            OptConfig {
                weight_decay: 0.05,
                ..OptConfig::new(OptKind::AdamW, 1e-3)
            },
            3,
            &threads,
        )
        .unwrap();
        let aug = Augment::parse(&[
            "affine:rotate=10,shift=1,scale=0.1".to_string(),
            "elastic:sigma=3,alpha=20".to_string(),
            "flip".to_string(),
            "erase:p=0.5".to_string(),
        ])
        .unwrap();
        tr.set_augment(Augmenter::new(aug, 28, 28));
        let h = two_epochs(&mut tr, &mut model, &data);
        let name = format!("regularized-b32-adamw-{policy:?}x{n}{variant}");
        out.insert(name, format!("{:x}", h.finalize()));
    }
    // f64 gradient checks through the column- and row-split paths.
    let spec = NetSpec::parse("12,relu,40,leaky_relu,35,softmax,5").unwrap();
    for (batch, blocks) in [(7, 1), (7, 2), (70, 3)] {
        let r = mnist_mlp::gradcheck::check(&spec, Loss::CrossEntropy, batch, blocks, 42).unwrap();
        let mut s = String::new();
        for t in &r.tensors {
            write!(s, "{:016x}", t.max_rel_err.to_bits()).unwrap();
        }
        out.insert(format!("gradcheck-b{batch}x{blocks}{variant}"), s);
    }
    out
}

/// Computes every case (names suffixed with `variant`) and compares with
/// (or, under `GOLDEN_BLESS`, records into) `tests/golden.txt`.
pub fn check(variant: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden.txt");
    let key = blas_config();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut others = Vec::new();
    let mut want = BTreeMap::new();
    for line in text.lines() {
        match line.split('\t').collect::<Vec<_>>()[..] {
            [k, case, hash]
                if k == key
                    && case.ends_with(variant)
                    && (variant.is_empty() != case.ends_with("-tiles")) =>
            {
                want.insert(case.to_string(), hash.to_string());
            }
            _ => others.push(line.to_string()),
        }
    }
    let got = compute(variant);
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        let mut s = others.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        for (case, hash) in &got {
            writeln!(s, "{key}\t{case}\t{hash}").unwrap();
        }
        std::fs::write(&path, s).unwrap();
        eprintln!("recorded {} golden values for `{key}`", got.len());
        return;
    }
    if want.is_empty() {
        eprintln!(
            "no golden values for `{key}` in {}: nothing to compare (record them with GOLDEN_BLESS=1); this build gives:",
            path.display()
        );
        for (case, hash) in &got {
            eprintln!("  {case} {hash}");
        }
        return;
    }
    let diff: Vec<_> = got
        .iter()
        .filter(|(c, h)| want.get(*c) != Some(h))
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(
        want.len(),
        got.len(),
        "the recorded cases differ from the computed ones"
    );
    assert!(
        diff.is_empty(),
        "{} of {} results changed bits on `{key}`: {diff:?}",
        diff.len(),
        got.len()
    );
}
