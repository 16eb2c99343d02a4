//! `mnist-mlp gradcheck`: back-propagation against central differences
//! in f64 ([`mnist_mlp::gradcheck`]).

use anyhow::{bail, Context, Result};
use clap::Args;

use mnist_mlp::gradcheck;
use mnist_mlp::nn::{Loss, NetSpec};

#[derive(Args)]
pub(crate) struct GradArgs {
    /// Check only this layer list (default: every activation and loss on small networks).
    #[arg(long, value_name = "LIST")]
    layers: Option<String>,
    /// Loss for --layers: ce or mse.
    #[arg(long, default_value = "ce")]
    loss: String,
    /// Samples in the batch.
    #[arg(long, default_value_t = 7)]
    batch: usize,
    /// Blocks the batch is split into (as threads would).
    #[arg(long, default_value_t = 2)]
    blocks: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Largest relative error accepted.
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: GradArgs) -> Result<()> {
    if a.batch == 0 || a.blocks == 0 {
        bail!("--batch and --blocks must be at least 1");
    }
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        bail!(
            "--tolerance must be a positive finite number (a relative error), got {}",
            a.tolerance
        );
    }
    let cases = match &a.layers {
        Some(l) => {
            let spec = NetSpec::parse(l).map_err(|e| anyhow::anyhow!("--layers: {e}"))?;
            if spec.params() > 200_000 {
                bail!("--layers: {} parameters is too many for a finite-difference check (at most 200000)", spec.params());
            }
            let loss = Loss::parse(&a.loss)
                .with_context(|| format!("--loss: unknown loss `{}`", a.loss))?;
            vec![(spec, loss)]
        }
        None => gradcheck::standard_specs(),
    };
    // Refused before allocating what cannot fit.
    if let Some(available) = mnist_mlp::memory::available_bytes() {
        let need = cases
            .iter()
            .map(|(s, _)| gradcheck::memory_bytes(s, a.batch))
            .max()
            .unwrap_or(0);
        if need > available {
            bail!(
                "--batch {}: the check needs about {}, more than the {} of memory available",
                a.batch,
                mnist_mlp::memory::human(need),
                mnist_mlp::memory::human(available)
            );
        }
    }
    let mut worst: f64 = 0.0;
    let mut results = Vec::new();
    for (spec, loss) in cases {
        let r = gradcheck::check(&spec, loss, a.batch, a.blocks, a.seed)?;
        worst = worst.max(r.max_rel_err());
        if !a.json {
            println!(
                "{:<44} {:<14} max rel err {:.2e}  {}",
                r.spec,
                r.loss,
                r.max_rel_err(),
                if r.max_rel_err() < a.tolerance {
                    "ok"
                } else {
                    "FAIL"
                }
            );
            for t in &r.tensors {
                println!(
                    "    {:<18} {:>6} entries  rel {:.2e}  abs {:.2e}",
                    t.name, t.entries, t.max_rel_err, t.max_abs_err
                );
            }
        }
        results.push(r);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "max_rel_err": worst, "tolerance": a.tolerance, "passed": worst < a.tolerance, "checks": results })
        );
    } else {
        println!(
            "worst relative error {worst:.2e} (tolerance {:.0e}, f64, step {:.0e})",
            a.tolerance,
            gradcheck::STEP
        );
    }
    if worst >= a.tolerance {
        bail!(
            "gradient check failed: relative error {worst:.2e} >= {:.0e}",
            a.tolerance
        );
    }
    Ok(())
}
