//! The properties the fuzz targets in `fuzz/` check, as plain functions: the
//! targets call them under libFuzzer, and `tests/fuzz_corpus.rs` replays the
//! corpus (and byte-level mutations of it) through them in every test run.
//! Each panics when a property fails, which is what a fuzzer reports.

use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use crate::checkpoint::from_bytes;
use crate::data::idx::parse_idx;

/// The IDX reader on arbitrary bytes, raw and as a gzip stream: it must
/// return Ok or Err, never panic, and what it accepts is self-consistent and
/// no larger than the input can hold (raw) or decompress to (gzip). The
/// first byte picks the interpretation (bit 0: gzip; bits 1-2: no expected
/// rank, images of rank 3, labels of rank 1), the rest is the file.
pub fn idx_reader(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let rank = match mode >> 1 & 3 {
        1 => Some(("images", 3)),
        2 => Some(("labels", 1)),
        _ => None,
    };
    let r = if mode & 1 == 0 {
        parse_idx(body, body.len() as u64, false, rank)
    } else {
        parse_idx(MultiGzDecoder::new(body), body.len() as u64, true, rank)
    };
    if let Ok(a) = r {
        let n: usize = a.dims.iter().product();
        assert_eq!(n, a.data.len(), "dims {:?}", a.dims);
        let cap = if mode & 1 == 0 {
            body.len()
        } else {
            body.len() * 1100
        };
        assert!(
            a.data.len() <= cap,
            "{} bytes from {}",
            a.data.len(),
            body.len()
        );
    }
}

/// The checkpoint loader on arbitrary bytes: it must return Ok or Err, never
/// panic; what it accepts is a finite model whose shapes match its layer
/// list.
pub fn checkpoint_loader(data: &[u8]) {
    if let Ok(l) = from_bytes(Path::new("fuzz.safetensors"), data) {
        assert!(l.model.is_finite());
        let w = &l.model.spec.widths;
        assert_eq!(l.model.layers.len() + 1, w.len());
        for (layer, io) in l.model.layers.iter().zip(w.windows(2)) {
            assert_eq!(layer.w.dim(), (io[0], io[1]));
            assert_eq!(layer.b.len(), io[1]);
        }
    }
}

/// The configuration layer on arbitrary text (a `--config` file, or a
/// checkpoint's stored configuration): parsing, the integer and settings
/// checks, and layering must return Ok or Err, never panic; a file that
/// parses and checks out survives a round trip through the TOML the run
/// saves beside its checkpoint.
pub fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(cfg) = crate::config::RunConfig::from_toml(&text) else {
        return;
    };
    if cfg.check_integers().is_err() {
        return;
    }
    let settings = cfg.settings();
    let _ = crate::config::RunConfig::default().overlay(&cfg, &crate::config::flag_keys());
    if settings.is_ok() {
        let back = crate::config::RunConfig::from_toml(&cfg.to_toml())
            .unwrap_or_else(|e| panic!("the saved TOML does not parse: {e}"));
        assert!(back.settings().is_ok(), "the saved TOML's settings fail");
    }
}

/// Class-name mappings (`predict --mapping`, `eval --mapping`) on arbitrary
/// text, for models of 1 to 64 classes (the first byte): Ok or Err, never
/// a panic; what is accepted has one entry per class.
pub fn mapping_file(data: &[u8]) {
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let classes = 1 + (k as usize % 64);
    let text = String::from_utf8_lossy(body);
    if let Ok(names) = crate::predict::parse_mapping(&text, Path::new("fuzz.txt"), classes) {
        assert_eq!(names.len(), classes);
    }
}

/// Picture preprocessing on arbitrary bytes (a PNG or JPEG as `predict`
/// reads it, every invert and fit mode: the first byte picks them): Ok or
/// Err, never a panic; what comes out is a 28x28 frame of values in
/// [0, 1].
pub fn picture(data: &[u8]) {
    use crate::predict::{picture_from_bytes, Invert, Preprocess};
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let invert = [Invert::Auto, Invert::Yes, Invert::No][mode as usize % 3];
    let pre = if mode & 4 == 0 {
        Preprocess::Mnist
    } else {
        Preprocess::Resize
    };
    if let Ok(v) = picture_from_bytes(body, Path::new("fuzz.png"), 28, invert, pre) {
        assert_eq!(v.len(), 28 * 28);
        assert!(
            v.iter().all(|x| (0.0..=1.0).contains(x)),
            "values outside [0, 1]"
        );
    }
}
