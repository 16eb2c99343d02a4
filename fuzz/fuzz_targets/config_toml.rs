//! The configuration layer on arbitrary text (`--config` files, stored
//! configurations).
//! The properties: `mnist_mlp::fuzzing::config_toml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mnist_mlp::fuzzing::config_toml(data));
