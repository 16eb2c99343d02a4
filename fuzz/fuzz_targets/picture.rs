//! Picture decoding and preprocessing on arbitrary bytes.
//! The properties: `mnist_mlp::fuzzing::picture`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mnist_mlp::fuzzing::picture(data));
