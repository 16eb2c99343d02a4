//! The checkpoint loader on arbitrary bytes: a safetensors header, metadata
//! and tensors that may be anything. The properties:
//! `mnist_mlp::fuzzing::checkpoint_loader`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mnist_mlp::fuzzing::checkpoint_loader(data));
