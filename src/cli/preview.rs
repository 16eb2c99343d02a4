//! `mnist-mlp augment-preview`: draws what `--augment` does to training
//! digits, as a PNG grid.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use mnist_mlp::config;
use mnist_mlp::data;

use super::DataArgs;

#[derive(Args)]
#[command(
    after_help = "Each row is a training sample (the first of each class), the original on the left, then augmented versions as the steps of a run with --seed would draw them.\n\n\
Example:\n  mnist-mlp augment-preview --augment affine:rotate=12,shift=2,scale=0.1 --augment elastic:sigma=4,alpha=34 --out grid.png"
)]
pub(crate) struct PreviewArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The augmentation to draw, as for `train --augment` (repeat to combine).
    #[arg(long, value_name = "KIND[:K=V,...]", required = true)]
    augment: Vec<String>,
    /// The PNG file to write (atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Rows: samples, one per class.
    #[arg(long, default_value_t = 10, value_parser = config::int_flag::<usize>)]
    samples: usize,
    /// Augmented versions per sample.
    #[arg(long, default_value_t = 8, value_parser = config::int_flag::<usize>)]
    variants: usize,
    /// The run's seed.
    #[arg(long, default_value_t = 0, value_parser = config::int_flag::<u64>)]
    seed: u64,
}

pub(crate) fn run(a: PreviewArgs) -> Result<()> {
    use mnist_mlp::data::augment::{self, Augment, Augmenter};
    let cfg = Augment::parse(&a.augment)?;
    if a.out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "--out {}: the preview is a PNG picture; name it .png",
            a.out.display()
        );
    }
    if a.samples == 0 || a.samples > 64 || a.variants > 32 {
        bail!("--samples must be 1..=64 and --variants at most 32");
    }
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let s = data::load_dir(&dir, &a.data.options())?;
    let aug = Augmenter::new(cfg, s.train.rows, s.train.cols);
    let img = augment::preview(&s.train, &aug, a.samples, a.variants, a.seed);
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the PNG")?;
    mnist_mlp::checkpoint::write_atomic(&a.out, &png)?;
    println!(
        "wrote {} ({}x{} pixels): training samples of {}, one per class, each with {} augmented versions",
        a.out.display(),
        img.width(),
        img.height(),
        dir.display(),
        a.variants
    );
    Ok(())
}
