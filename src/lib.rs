//! mnist-mlp: a BLAS-accelerated, high-throughput trainer for multilayer
//! perceptrons on MNIST and every dataset in IDX format.
//!
//! The modules follow the data's path: [`data`] (IDX files, datasets,
//! download) -> [`nn`] (layers, losses, networks) -> [`optim`] ->
//! [`train`] (the training loop) -> the CLI in `main.rs` and the benches.

// Links the system OpenBLAS (cblas_sgemm and friends) into every binary.
extern crate blas_src;

pub mod blas;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod early_stop;
pub mod fuzzing;
pub mod gradcheck;
pub mod hugepages;
pub mod memory;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod plan;
pub mod plot;
pub mod predict;
pub mod real;
pub mod run;
pub mod run_state;
pub mod schedule;
pub mod train;
pub mod workloads;
