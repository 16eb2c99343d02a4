//! Replays the fuzz corpus through the fuzz targets' properties
//! (`mnist_mlp::fuzzing`) without libFuzzer, in every test run: the files in
//! `fuzz/corpus/<target>/` (the committed seeds, plus whatever a local
//! `cargo fuzz run` added), and for each seed a deterministic set of
//! byte-level mutations (truncations, overwritten, inserted and deleted
//! bytes, non-finite floats). `make test` also runs this with overflow checks on.

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("corpus file"))
        })
        .collect()
}

/// Variants of `seed`: every truncation within the first 64 bytes and 16
/// more; the first 64 bytes and 32 random positions each set to 0x00, 0xff,
/// its high bit flipped and incremented; a NaN or an infinity written at 16
/// random places; 16 random insertions and deletions.
fn mutations(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let n = seed.len();
    if n == 0 {
        return out;
    }
    for len in (0..n.min(64)).chain((0..16).map(|_| rng.random_range(0..n))) {
        out.push(seed[..len].to_vec());
    }
    let positions: Vec<usize> = (0..n.min(64))
        .chain((0..32).map(|_| rng.random_range(0..n)))
        .collect();
    for &i in &positions {
        for f in [
            |_: u8| 0x00,
            |_: u8| 0xff,
            |b: u8| b ^ 0x80,
            |b: u8| b.wrapping_add(1),
        ] {
            let mut v = seed.to_vec();
            v[i] = f(v[i]);
            out.push(v);
        }
    }
    // A NaN and an infinity (f32, little-endian) written over the bytes at
    // 16 random places, at each of the 4 offsets, so that one of them lines
    // up with the floats of a tensor.
    for _ in 0..16 {
        let p = rng.random_range(0..n);
        for pattern in [[0x00, 0x00, 0xc0, 0x7f], [0x00, 0x00, 0x80, 0xff]] {
            for shift in 0..4 {
                let mut v = seed.to_vec();
                for (k, &b) in pattern.iter().enumerate() {
                    if let Some(x) = v.get_mut(p + shift + k) {
                        *x = b;
                    }
                }
                out.push(v);
            }
        }
    }
    for _ in 0..16 {
        let mut v = seed.to_vec();
        v.insert(rng.random_range(0..=n), rng.random());
        out.push(v);
        let mut v = seed.to_vec();
        v.remove(rng.random_range(0..n));
        out.push(v);
    }
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    let seeds = files.iter().filter(|(n, _)| n.starts_with("seed-")).count();
    assert!(seeds >= 4, "{target}: only {seeds} seed files");
    let mut rng = ChaCha8Rng::seed_from_u64(0xf022);
    let mut runs = 0;
    for (name, bytes) in &files {
        let r = std::panic::catch_unwind(|| check(bytes));
        assert!(
            r.is_ok(),
            "{target}: corpus file {name} fails its properties"
        );
        runs += 1;
        if name.starts_with("seed-") {
            for (k, v) in mutations(bytes, &mut rng).into_iter().enumerate() {
                if std::panic::catch_unwind(|| check(&v)).is_err() {
                    // Keep the input for `cargo fuzz run TARGET FILE`.
                    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
                    let out = dir.join(format!("fuzz-{target}-{name}-mutation-{k}"));
                    std::fs::write(&out, &v).expect("write the failing input");
                    panic!(
                        "{target}: mutation {k} of {name} fails its properties; input saved as {}",
                        out.display()
                    );
                }
                runs += 1;
            }
        }
    }
    eprintln!("{target}: {} corpus files, {runs} inputs", files.len());
}

#[test]
fn idx_reader_corpus_and_mutations_keep_their_properties() {
    replay("idx_reader", mnist_mlp::fuzzing::idx_reader);
}

#[test]
fn checkpoint_loader_corpus_and_mutations_keep_their_properties() {
    replay("checkpoint_loader", mnist_mlp::fuzzing::checkpoint_loader);
}

#[test]
fn config_toml_corpus_and_mutations_keep_their_properties() {
    replay("config_toml", mnist_mlp::fuzzing::config_toml);
}

#[test]
fn mapping_file_corpus_and_mutations_keep_their_properties() {
    replay("mapping_file", mnist_mlp::fuzzing::mapping_file);
}

#[test]
fn picture_corpus_and_mutations_keep_their_properties() {
    replay("picture", mnist_mlp::fuzzing::picture);
}
