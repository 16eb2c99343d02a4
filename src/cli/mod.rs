//! The subcommands of the `mnist-mlp` binary, one per file: each holds
//! its flags (clap) and the code that wires them to the library and
//! prints the result. Here: the flags several commands share.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use mnist_mlp::config;
use mnist_mlp::data::{self, LoadOptions};
use mnist_mlp::parallel::{GemmThreading, Threads};
use mnist_mlp::workloads;

pub(crate) mod bench;
pub(crate) mod eval;
pub(crate) mod fetch;
pub(crate) mod gradcheck;
pub(crate) mod info;
pub(crate) mod predict;
pub(crate) mod preview;
pub(crate) mod train;
pub(crate) mod tune;

#[derive(Args, Clone)]
pub(crate) struct DataArgs {
    /// Directory with the four IDX files (raw or .gz) [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// When the directory holds several datasets, the one whose file names start with NAME (EMNIST's folder: --subset letters reads emnist-letters-*).
    #[arg(long, value_name = "NAME")]
    pub(crate) subset: Option<String>,
}

impl DataArgs {
    pub(crate) fn options(&self) -> LoadOptions {
        LoadOptions {
            subset: self.subset.clone(),
            ..LoadOptions::default()
        }
    }
}

#[derive(Args, Clone)]
pub(crate) struct DirArgs {
    /// Directory to download into [default: $MNIST_DIR, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub(crate) struct ThreadArgs {
    /// Threads for rayon and OpenBLAS together [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// How matrix products use the threads: `split` (rayon blocks of single-threaded OpenBLAS calls, or, where the plan measures it faster, OpenBLAS's own threads: `blas_threads=on`) or `blas` (OpenBLAS threads every product, always).
    #[arg(long, default_value = "split", value_name = "POLICY")]
    threading: GemmThreading,
}

impl ThreadArgs {
    pub(crate) fn pool(&self) -> Result<Threads> {
        thread_pool(self.threads, self.threading)
    }
}

/// The pool for `--threads` (None: all cores).
pub(crate) fn thread_pool(n: Option<usize>, policy: GemmThreading) -> Result<Threads> {
    let (threads, warning) = Threads::for_flag(n, policy)?;
    if let Some(w) = warning {
        eprintln!("{w}");
    }
    Ok(threads)
}

/// The ids of the arguments given on the command line (not defaulted).
pub(crate) fn explicit_ids(m: &clap::ArgMatches) -> Vec<String> {
    config::flag_keys()
        .into_iter()
        .filter(|id| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .collect()
}

/// The training set `bench` and `tune` run on: MNIST-shaped synthetic
/// data (`--synthetic`, from `seed`), else the data directory's; `verb`
/// says what --synthetic would do instead.
pub(crate) fn training_set(
    synthetic: bool,
    data: &DataArgs,
    seed: u64,
    verb: &str,
) -> Result<mnist_mlp::data::Dataset> {
    if synthetic {
        return Ok(workloads::synthetic(60_000, seed));
    }
    let dir = data::resolve_data_dir(data.data_dir.as_deref());
    Ok(data::load_dir(&dir, &data.options())
        .with_context(|| {
            format!("cannot load the data (use --synthetic to {verb} on synthetic data)")
        })?
        .train)
}
