//! `mnist-mlp tune`: times every candidate plan of a shape on this
//! machine, prints them and caches the choice.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use mnist_mlp::nn::{Loss, NetSpec};
use mnist_mlp::workloads::Workload;

use super::{training_set, DataArgs, ThreadArgs};

#[derive(Args)]
#[command(
    after_help = "Every candidate is a plan that makes the step run different code for this shape \
(products split by rows or columns, weight gradients split by rows or columns, tiles, row padding, \
long blocks in row chunks or whole, back-propagation of few rows in small chunks or not, \
fewer blocks than threads, OpenBLAS's own threads instead of blocks); \
they are timed in interleaved rounds, the slower half dropped after each level, and the fastest \
is chosen unless it beats the default plan by less than 1% (a plan with OpenBLAS's threads that wins \
is timed again apart from the default, after OpenBLAS's workers stop spinning, and kept only if it still wins). The choice is stored in the plan cache \
($XDG_CACHE_HOME/mnist-mlp/plans.json, else ~/.cache/mnist-mlp/plans.json), which `train` and `bench` read; \
not when other programs or the host took more than a tenth of the CPU time the threads wanted meanwhile \
($MNIST_MLP_PLAN_BUSY sets that share, 0 to 1): a plan that wins on a busy machine can lose on a quiet one.\n\n\
Examples:\n  mnist-mlp tune --workload T5 --threads 2\n  mnist-mlp tune --layers 784,relu,1024,relu,1024,softmax,10 --batch-size 256 --optimizer adam --save plan.toml\n  mnist-mlp train --plan plan.toml"
)]
pub(crate) struct TuneArgs {
    /// A standard workload (T1..T6), instead of --layers/--batch-size/--optimizer.
    #[arg(long, conflicts_with_all = ["layers"])]
    workload: Option<String>,
    /// The network as a layer list (as `train --layers`).
    #[arg(long, value_name = "LIST")]
    layers: Option<String>,
    /// Mini-batch size, or `full`.
    #[arg(long, default_value = "128", value_name = "N|full")]
    batch_size: String,
    /// Optimizer: sgd, momentum, nesterov, rmsprop, adam, adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Seconds the measurement may take [default: 5, or more where steps are long: enough to time every candidate and the last two three rounds side by side] (a training run gives it 5% of its estimated time, under a second).
    #[arg(long, value_name = "SECONDS")]
    budget: Option<f64>,
    /// Write the chosen plan here (TOML), for `train --plan FILE`.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Use synthetic data of MNIST's shape instead of the real files.
    #[arg(long)]
    synthetic: bool,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: TuneArgs) -> Result<()> {
    use mnist_mlp::optim::{OptConfig, OptKind};
    use mnist_mlp::plan::{cache, measure};
    use mnist_mlp::train::BatchSize;
    if let Some(b) = a.budget.filter(|b| !(*b > 0.0 && *b <= 600.0)) {
        bail!("--budget must be more than 0 and at most 600 seconds, not {b}");
    }
    let (spec, batch, opt, what) = match &a.workload {
        Some(id) => {
            let w = Workload::named(id)?;
            (
                w.spec(),
                w.batch,
                OptConfig::new(w.opt, w.lr),
                format!("workload {}", w.id),
            )
        }
        None => {
            let layers = a
                .layers
                .as_deref()
                .unwrap_or("784,relu,512,relu,256,softmax,10");
            let spec = NetSpec::parse(layers).map_err(|e| anyhow::anyhow!("--layers: {e}"))?;
            let kind = OptKind::parse(&a.optimizer).with_context(|| {
                format!("--optimizer: unknown optimizer `{}` (sgd, momentum, nesterov, rmsprop, adam, adamw)", a.optimizer)
            })?;
            let batch = BatchSize::parse(&a.batch_size)?;
            (
                spec.clone(),
                batch,
                OptConfig::new(kind, 1e-3),
                format!("network {spec}"),
            )
        }
    };
    let threads = a.threads.pool()?;
    let busy_limit = mnist_mlp::plan::choose::busy_limit()?;
    if let Some(note) = mnist_mlp::blas::coretype_note() {
        eprintln!("{note}");
    }
    let train = training_set(a.synthetic, &a.data, 0, "tune")?;
    if train.features() != spec.input() {
        bail!(
            "--layers: the network's input width is {} but the images have {} pixels",
            spec.input(),
            train.features()
        );
    }
    let model =
        mnist_mlp::nn::Mlp::<f32>::new(spec, Loss::CrossEntropy, mnist_mlp::nn::Init::He, 0)?;
    let rows = batch.rows(train.len());
    let base = mnist_mlp::plan::Plan::default();
    let target = measure::Target {
        model: &model,
        opt: &opt,
        rows,
        train: &train,
        threads: &threads,
    };
    let shape = target.shape();
    let n = mnist_mlp::plan::candidates(base, &shape).len();
    eprintln!(
        "tuning {what}, batch {batch}, {} threads ({:?}), {n} candidates, budget {} ...",
        threads.n(),
        threads.policy(),
        a.budget
            .map_or("5 s or what long steps need".to_string(), |b| format!(
                "{b} s"
            ))
    );
    let budget = |step_s: f64| a.budget.unwrap_or_else(|| measure::tune_budget(step_s, n));
    let m = measure::measure(target, base, &budget);
    // A search that could not decide between two candidates (the rest
    // left out, or the last pair's rounds cut short) is no choice.
    if m.undecided() {
        let need = measure::tune_budget(m.step_s, n).ceil();
        bail!(
            "a budget of {} s is too short to compare two candidates (a step takes about {:.2} s; {}): nothing cached",
            (budget(m.step_s) * 1e3).round() / 1e3,
            m.step_s,
            match a.budget {
                Some(_) => format!("leave --budget out, or give at least {need}"),
                None => "a smaller network or batch, or more threads, would fit".to_string(),
            }
        );
    }
    let key = cache::key(&shape);
    // Timed while other programs or the host took the CPU time the
    // threads wanted: shown, saved if asked, never cached.
    let busy = m.busy.filter(|b| b.short(threads.n()) > busy_limit);
    if let Some(b) = busy {
        eprintln!(
            "note: other programs or the host took {} while the candidates were timed ({}): a plan that wins on a busy machine can lose on a quiet one, so this choice is not cached; run tune again when the machine is quiet ({} sets how busy is tolerated)",
            b.taken(),
            b.lacked(threads.n()),
            mnist_mlp::plan::choose::BUSY_ENV
        );
    }
    let stored = match cache::path().filter(|_| busy.is_none()) {
        // tune's last pair plays for seconds: its choice needs no second
        // run to confirm it.
        Some(p) => match cache::store(
            &p,
            &key,
            cache::Entry {
                confirmed: true,
                ..cache::Entry::of(&m)
            },
        ) {
            Ok(()) => Some(p),
            Err(w) => {
                eprintln!("{w}");
                None
            }
        },
        None => None,
    };
    if let Some(p) = &a.save {
        let text = format!("# mnist-mlp tune: {key}\n{}", toml::to_string(&m.plan())?);
        mnist_mlp::checkpoint::write_atomic(p, text.as_bytes())
            .with_context(|| format!("--save {}", p.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "key": key, "candidates": m.candidates, "outcome": m.outcome,
                "chosen": m.plan(), "seconds": m.seconds, "left_out": m.left_out, "apart": m.apart,
                "cache": stored.as_ref().map(|p| p.display().to_string()),
                "busy": m.busy, "busy_limit": busy_limit,
            })
        );
        return Ok(());
    }
    let base_best = m.outcome.timings[0].best();
    println!(
        "{:>3}  {:>9}  {:>9}  {:>7}  {:>6}  plan",
        "#", "best ms", "median ms", "vs base", "levels"
    );
    for (i, (p, t)) in m.candidates.iter().zip(&m.outcome.timings).enumerate() {
        let best = t.best();
        let med = t
            .median()
            .map_or("-".to_string(), |v| format!("{:.4}", v * 1e3));
        let rel = if best.is_finite() {
            format!("{:.3}", base_best / best)
        } else {
            "-".into()
        };
        let mark = if i == m.outcome.chosen { "*" } else { " " };
        println!(
            "{i:>2}{mark}  {:>9}  {med:>9}  {rel:>7}  {:>6}  {p}",
            if best.is_finite() {
                format!("{:.4}", best * 1e3)
            } else {
                "-".into()
            },
            t.levels
        );
    }
    println!(
        "(vs base: the base's fastest sample over this one's, which ranks the levels; the choice rests on the last pair's rounds side by side)"
    );
    // The decision: the last pair's rounds side by side.
    let versus = match m.outcome.challenger {
        0 => String::new(),
        i => format!(
            " (#{i} against #0 round by round: {:.3}x, median of {} rounds)",
            m.outcome.paired_speedup(),
            m.outcome.paired.len()
        ),
    };
    println!(
        "chosen #{}: {}{versus}; {} steps of {} per sample, {:.2} s{}",
        m.outcome.chosen,
        m.plan(),
        m.outcome.steps,
        m.outcome.steps_per_sample,
        m.seconds,
        if m.left_out > 0 {
            format!(", {} candidates left out for time", m.left_out)
        } else {
            String::new()
        }
    );
    match m.apart {
        Some(measure::Apart::Timed(r)) => println!(
            "#{} (OpenBLAS's threads) won the rounds; timed apart from #0 once OpenBLAS's workers slept (they spin for about 0.1 s after a threaded call and slow what runs next): {r:.3}x, {}",
            m.outcome.challenger,
            if m.outcome.chosen == 0 { "so #0 stays" } else { "kept" }
        ),
        Some(measure::Apart::NoRoom) => println!(
            "#{} (OpenBLAS's threads) won the rounds, but the budget left no room to time it apart from #0",
            m.outcome.challenger
        ),
        None => {}
    }
    match stored {
        Some(p) => println!("cached in {} for {key}", p.display()),
        None if busy.is_some() => println!("not cached (the machine was busy)"),
        None => println!("not cached (no writable cache folder)"),
    }
    if let Some(p) = &a.save {
        println!("saved {} (use with --plan {})", p.display(), p.display());
    }
    Ok(())
}
