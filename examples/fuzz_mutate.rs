//! A fuzzer without libFuzzer, for machines without `cargo fuzz`: random
//! stacked mutations (bytes overwritten, flipped, inserted, deleted,
//! spliced from another seed, runs duplicated, interesting values) of a
//! target's corpus, each input checked by the target's properties
//! (`mnist_mlp::fuzzing`), for a given time. No coverage guidance: it
//! finds shallow bugs, `cargo fuzz run` finds deep ones.
//!
//!     cargo run --release --example fuzz_mutate -- TARGET SECONDS [SEED]
//!
//! TARGET: idx_reader, checkpoint_loader, config_toml, mapping_file,
//! picture. Prints executions and the crashes found (each input saved
//! under target/fuzz-crash-TARGET-N).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fuzz_mutate TARGET SECONDS [SEED]");
        std::process::exit(2);
    }
    let check: fn(&[u8]) = match args[1].as_str() {
        "idx_reader" => mnist_mlp::fuzzing::idx_reader,
        "checkpoint_loader" => mnist_mlp::fuzzing::checkpoint_loader,
        "config_toml" => mnist_mlp::fuzzing::config_toml,
        "mapping_file" => mnist_mlp::fuzzing::mapping_file,
        "picture" => mnist_mlp::fuzzing::picture,
        t => {
            eprintln!("unknown target `{t}`");
            std::process::exit(2);
        }
    };
    let secs: u64 = args[2].parse().expect("SECONDS");
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(&args[1]);
    let corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .collect();
    assert!(!corpus.is_empty(), "{}: empty corpus", dir.display());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    std::panic::set_hook(Box::new(|_| {}));
    let (t, mut runs, mut crashes) = (Instant::now(), 0u64, 0u64);
    let interesting: [&[u8]; 6] = [
        &[0],
        &[0xff],
        &[0x7f, 0xff, 0xff, 0xff],
        &[0x80, 0, 0, 0],
        &[0, 0, 0xc0, 0x7f],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ];
    while t.elapsed() < Duration::from_secs(secs) {
        let mut v = corpus[rng.random_range(0..corpus.len())].clone();
        for _ in 0..rng.random_range(1..8) {
            let n = v.len();
            match rng.random_range(0..7) {
                0 if n > 0 => {
                    let i = rng.random_range(0..n);
                    v[i] = rng.random();
                }
                1 if n > 0 => {
                    let i = rng.random_range(0..n);
                    v[i] ^= 1 << rng.random_range(0..8);
                }
                2 => {
                    let i = rng.random_range(0..=n);
                    v.insert(i, rng.random());
                }
                3 if n > 0 => {
                    let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
                    v.drain(a.min(b)..a.max(b));
                }
                4 => {
                    let o = &corpus[rng.random_range(0..corpus.len())];
                    if !o.is_empty() {
                        let a = rng.random_range(0..o.len());
                        let b = rng.random_range(a..o.len().min(a + 64) + 1).min(o.len());
                        let i = rng.random_range(0..=n);
                        v.splice(i..i, o[a..b].iter().copied());
                    }
                }
                5 if n > 0 => {
                    let a = rng.random_range(0..n);
                    let b = (a + rng.random_range(1..32)).min(n);
                    let run = v[a..b].to_vec();
                    v.splice(b..b, run);
                }
                _ => {
                    let x = interesting[rng.random_range(0..interesting.len())];
                    let i = rng.random_range(0..=n);
                    for (k, &b) in x.iter().enumerate() {
                        match v.get_mut(i + k) {
                            Some(p) => *p = b,
                            None => v.push(b),
                        }
                    }
                }
            }
        }
        runs += 1;
        if std::panic::catch_unwind(|| check(&v)).is_err() {
            let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join(format!("fuzz-crash-{}-{crashes}", args[1]));
            let _ = std::fs::write(&out, &v);
            crashes += 1;
            eprintln!("crash: input saved as {}", out.display());
        }
    }
    println!(
        "{}: {runs} executions in {secs} s, {crashes} crashes, corpus of {}",
        args[1],
        corpus.len()
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}
