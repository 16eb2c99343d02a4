//! mnist-mlp: a BLAS-accelerated, high-throughput trainer for multilayer
//! perceptrons on MNIST and every dataset in IDX format.
//!
//! The modules follow the data's path: [`data`] (IDX files, datasets,
//! download) -> [`nn`] (layers, losses, networks) -> [`optim`] ->
//! [`train`] (one epoch, the trainer) -> [`run`] (a whole training run, as
//! the CLI does it) -> the CLI in `main.rs` and the benches. Every choice
//! that changes speed is in [`plan`].
//!
//! A network, one training step and a prediction; every error is a typed
//! error, so `?` works with `Box<dyn Error>` or `anyhow`:
//!
//! ```
//! use mnist_mlp::nn::{Batch, Init, Loss, Mlp, NetSpec, Rows, Update, Workspace};
//! use mnist_mlp::optim::{OptConfig, OptKind, Optimizer};
//! use mnist_mlp::parallel::{GemmThreading, Threads};
//! use ndarray::Array2;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = NetSpec::parse("4,relu,8,softmax,3")?;
//! assert_eq!(spec.params(), 5 * 8 + 9 * 3);
//! let mut net = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::Auto, 42)?;
//! let mut opt = Optimizer::new(OptConfig::new(OptKind::Adam, 1e-2), &net.param_shapes());
//! let mut ws = Workspace::new(&net.spec, 2, 1); // 2 rows, 1 block
//! let x = Array2::from_shape_vec((2, 4), vec![0.0, 1.0, 0.5, 0.2, 1.0, 0.0, 0.3, 0.9])?;
//! let labels = [2u8, 0];
//! // A step runs inside the thread pool it was planned for.
//! let threads = Threads::new(1, GemmThreading::Split)?;
//! let stats = threads.install(|| {
//!     opt.begin_step();
//!     let batch = Batch { data: x.view(), pixels: None, labels: &labels, rows: Rows::Range(0, 2), key: 0, augment: None };
//!     net.train_step(&mut ws, &batch, Update::Apply(&opt))
//! });
//! assert_eq!(stats.samples, 2);
//! assert!(stats.loss_sum.is_finite());
//! # Ok(())
//! # }
//! ```
//!
//! Bad values are refused with a message that names what is wrong:
//!
//! ```
//! let e = mnist_mlp::nn::NetSpec::parse("784,relu,0,10").unwrap_err();
//! assert!(e.to_string().contains("at least 1"));
//! ```

#![deny(missing_docs)]

// Links the system OpenBLAS (cblas_sgemm and friends) into every binary.
extern crate blas_src;

pub mod blas;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod early_stop;
pub mod error;
pub mod files;
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
pub mod profile;
pub mod real;
pub mod run;
pub mod run_state;
pub mod schedule;
pub mod train;
pub mod workloads;
