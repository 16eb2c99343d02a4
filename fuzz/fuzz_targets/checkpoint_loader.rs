//! The checkpoint loader on arbitrary bytes: a safetensors header, metadata
//! and tensors that may be anything. It must return Ok or Err, never panic;
//! what it accepts is a finite model whose shapes match its layer list.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mnist_mlp::checkpoint::from_bytes;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = from_bytes(Path::new("fuzz.safetensors"), data) {
        assert!(l.model.is_finite());
        let w = &l.model.spec.widths;
        assert_eq!(l.model.layers.len() + 1, w.len());
        for (layer, io) in l.model.layers.iter().zip(w.windows(2)) {
            assert_eq!(layer.w.dim(), (io[0], io[1]));
            assert_eq!(layer.b.len(), io[1]);
        }
    }
});
