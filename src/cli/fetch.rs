//! `mnist-mlp fetch`: downloads MNIST from the public mirrors, verified
//! by SHA-256.

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;

use mnist_mlp::data::{self, fetch};

use super::DirArgs;

#[derive(Args)]
pub(crate) struct FetchArgs {
    #[command(flatten)]
    data: DirArgs,
    /// Mirror URL prefix to try (repeatable; replaces the defaults and $MNIST_MIRRORS).
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
}

pub(crate) fn run(a: FetchArgs) -> Result<()> {
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let mirrors = if a.mirror.is_empty() {
        fetch::mirrors_from_env()
    } else {
        a.mirror.clone()
    };
    let out = fetch::fetch(
        &dir,
        &fetch::MNIST_FILES,
        &mirrors,
        std::io::stderr().is_terminal(),
    )?;
    for o in out {
        match o {
            fetch::FetchOutcome::Present(p) => println!("{}: present, verified", p.display()),
            fetch::FetchOutcome::Downloaded { path, mirror } => {
                println!("{}: downloaded from {mirror}, verified", path.display())
            }
        }
    }
    Ok(())
}
