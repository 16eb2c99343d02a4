//! The IDX reader on arbitrary bytes, raw and as a gzip stream: it must
//! return Ok or Err, never panic, and never allocate beyond what the input
//! can justify (libFuzzer's -rss_limit_mb / -malloc_limit_mb catch that).
//! The properties: `mnist_mlp::fuzzing::idx_reader`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mnist_mlp::fuzzing::idx_reader(data));
