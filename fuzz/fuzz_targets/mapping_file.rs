//! Class-name mapping files on arbitrary text.
//! The properties: `mnist_mlp::fuzzing::mapping_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mnist_mlp::fuzzing::mapping_file(data));
