//! The IDX reader on arbitrary bytes, raw and as a gzip stream: it must
//! return Ok or Err, never panic, and never allocate beyond what the input
//! can justify (libFuzzer's -rss_limit_mb / -malloc_limit_mb catch that).
#![no_main]

use flate2::bufread::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use mnist_mlp::data::idx::parse_idx;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the interpretation, the rest is the file.
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
        // Whatever is accepted is self-consistent and no larger than the
        // input can hold (raw) or decompress to (gzip).
        let n: usize = a.dims.iter().product();
        assert_eq!(n, a.data.len());
        let cap = if mode & 1 == 0 { body.len() } else { body.len() * 1100 };
        assert!(a.data.len() <= cap);
    }
});
