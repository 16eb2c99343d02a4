//! `mnist-mlp bench`: times a standard workload (T1..T6) and prints
//! samples/s, optionally against the physical limit.

use anyhow::{bail, Context, Result};
use clap::Args;

use mnist_mlp::data;
use mnist_mlp::plan::Choice;
use mnist_mlp::workloads::{self, Workload};

use super::{training_set, DataArgs, ThreadArgs};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Workload: T1..T6 (see BENCHMARKS.md).
    #[arg(long)]
    workload: String,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Timed epochs after one warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use synthetic data of MNIST's shape instead of the real files.
    #[arg(long)]
    synthetic: bool,
    /// The step's plan: auto (cached or measured), default, or a plan FILE (see `train --help`) [default: $MNIST_MLP_PLAN, else auto].
    #[arg(long, value_name = "auto|default|FILE")]
    plan: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Also measure this machine's peak sgemm rate (2048^3 through the linked OpenBLAS, on the run's threads, before and after the timed epochs; the best counts) and print the run as a fraction of the physical limit: that peak over the FLOPs a trainer performs per sample. About a second per measurement on one thread.
    #[arg(long)]
    limit: bool,
    /// Also run one more epoch with the step's timers on, after the timed ones, and print where a step's thread-time went: each kind of work (gather, forward, output and loss, back-propagation, weight gradients, optimizer), waiting at the joins of the parallel regions (before a block started: a thread still being woken; after it ended: waiting for the slowest block) and the serial part between regions, in thread-ms per step (`profile` in --json).
    #[arg(long)]
    profile: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: BenchArgs) -> Result<()> {
    let w = Workload::named(&a.workload)?;
    if a.epochs == 0 {
        bail!("--epochs must be at least 1 (timed epochs after the warm-up)");
    }
    let threads = a.threads.pool()?;
    let dir = data::resolve_data_dir(a.data.data_dir.as_deref());
    let train = training_set(a.synthetic, &a.data, a.seed, "time")?;
    let choice = Choice::from_flag(a.plan.as_deref())?;
    let peak = || mnist_mlp::blas::sgemm_peak(threads.n(), 2048, 3);
    let before = a.limit.then(peak);
    let mut r = workloads::run(w, &train, &threads, a.epochs, a.seed, &choice, a.profile).with_context(|| {
        format!(
            "--workload {} on {}: the standard workloads are defined on MNIST's shape (784 inputs, 10 classes; --synthetic times them without data)",
            w.id,
            if a.synthetic { "synthetic data".to_string() } else { dir.display().to_string() }
        )
    })?;
    if let Some(before) = before {
        r.set_limit(vec![before, peak()]);
    }
    for w in r
        .plan_warnings
        .iter()
        .chain(&mnist_mlp::blas::coretype_note())
    {
        eprintln!("{w}");
    }
    if a.json {
        eprintln!("{}", r.plan_line);
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.plan_line);
        if let Some(c) = &r.opt_loop {
            println!("{}", c.line());
        }
        println!(
            "{} threads={} ({:?}): {:.0} samples/s ({:.3} s/epoch, median of {}), {:.1} GFLOP/s effective",
            r.workload, r.threads, r.threading, r.samples_per_s, r.sec_per_epoch, r.epoch_secs.len(), r.gflop_per_s_effective
        );
        println!(
            "memory: {:.0} MiB accounted for (data, parameters, buffers, moments); resident {} MiB after the run, peak {} MiB",
            r.accounted_mib,
            r.rss_mib.map_or("?".into(), |v| format!("{v:.0}")),
            r.peak_rss_mib.map_or("?".into(), |v| format!("{v:.0}")),
        );
        if let (Some(p10), Some(med)) = (r.step_ms_p10, r.step_ms_median) {
            println!("steps: median {med:.3} ms, fastest tenth under {p10:.3} ms");
        }
        if let Some(b) = &r.busy {
            println!(
                "other load during the timed epochs: other programs and the host took {} (steal {:.1}% of its CPU time){}",
                b.taken(),
                b.steal * 100.0,
                r.disturbed().map_or(String::new(), |_| format!(
                    "; this run lacked {}: its figures are disturbed, run it again on a quiet machine",
                    b.lacked(r.threads)
                ))
            );
        }
        if let Some(p) = &r.profile {
            println!("profile (one more epoch, timers on): {}", p.line());
        }
        if let Some(l) = &r.limit {
            let peaks: Vec<String> = l
                .sgemm_gflop_per_s
                .iter()
                .map(|g| format!("{g:.1}"))
                .collect();
            println!(
                "physical limit: {:.0} samples/s (sgemm 2048^3 {} GFLOP/s on {} thread{} with this OpenBLAS, the best counts; {} FLOPs performed per sample): this run {:.0}% of it{}",
                l.samples_per_s,
                peaks.join(" / "),
                r.threads,
                if r.threads == 1 { "" } else { "s" },
                r.performed_flops_per_sample,
                100.0 * l.fraction,
                l.fast_steps_fraction
                    .map_or(String::new(), |f| format!(", its fastest tenth of steps {:.0}%", 100.0 * f))
            );
        }
    }
    Ok(())
}
