//! Memory: a run of many epochs holds what it holds after its first epochs
//! and nothing more (resident memory sampled after every epoch through
//! `--metrics-out`). Not timed; the figures are printed.

mod common;

use common::{s, workdir};

#[test]
fn resident_memory_does_not_grow_over_many_epochs() {
    let (d, data) = workdir(4000, 500);
    let m = d.path().join("m.jsonl");
    common::train(
        &data,
        "256,128",
        60,
        &[
            "--validation",
            "500",
            "--metrics-out",
            &s(&m),
            "--save",
            &s(&d.path().join("m.safetensors")),
            "--checkpoint-every",
            "5",
            "--plot",
            &s(&d.path().join("c.svg")),
        ],
    );
    let rss: Vec<f64> = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["rss_mib"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(rss.len(), 60);
    // The first checkpoints (after epochs 5 and 10) leave a few MiB of small
    // buffers in the allocator, reused by the next ones: steps, then flat.
    let settled = rss[9];
    let max_after = rss[10..].iter().cloned().fold(f64::MIN, f64::max);
    println!(
        "resident memory (MiB) after epochs 1, 5, 6, 10, 20, 40, 60: {:.2} {:.2} {:.2} {:.2} {:.2} {:.2} {:.2}; max after epoch 10: {max_after:.2}",
        rss[0], rss[4], rss[5], rss[9], rss[19], rss[39], rss[59]
    );
    // What stays must not grow: less than 0.5 MiB over the next 50 epochs
    // (the history that checkpoints and plots carry grows ~100 bytes an epoch).
    assert!(
        max_after - settled < 0.5,
        "resident memory grew from {settled:.2} to {max_after:.2} MiB: {rss:?}"
    );
}
