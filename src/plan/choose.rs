//! How a run's plan is chosen: `--plan auto` (the default: the cached
//! choice for this machine and shape, else measured and cached), `--plan
//! default` ([`Plan::default`], nothing measured), or `--plan FILE` (a plan
//! saved before: a `model.toml` with a `[plan]` table, or a file holding
//! only the plan's keys). `MNIST_MLP_PLAN` gives the same choice when the
//! flag is absent; `MLP_*` overrides in the environment (measurement work)
//! also skip measuring.
//!
//! A plan never changes what a step computes, only how fast and in which
//! order it sums; a measured choice can therefore differ from one machine
//! (or one first run) to the next, and is recorded wherever a run is
//! recorded so that a resume or a `--config model.toml` repeats its bits.

use std::path::{Path, PathBuf};

use super::cache::{self, Entry};
use super::measure::{
    measure_among, measure_carried, measure_hinted, run_budget, Busy, Measured, Target,
};
use super::Plan;

/// The environment variable read when `--plan` is not given.
pub const ENV: &str = "MNIST_MLP_PLAN";

/// The environment variable that sets how busy the machine may be while
/// the planner measures ([`busy_limit`]).
pub const BUSY_ENV: &str = "MNIST_MLP_PLAN_BUSY";

/// The share of a run's CPU time other programs and the host (steal) may
/// take while its candidates are timed before the measurement decides
/// nothing ([`Busy::short`]): a tenth. A plan that wins while another
/// program holds a core (one block instead of two, OpenBLAS's threads) can
/// run 1.5-2x slower once it stops (T2 on two Zen 5 cores: BENCHMARKS.md,
/// session 26), and a cached choice would outlive the disturbance.
pub const DEFAULT_BUSY: f64 = 0.1;

/// The busy share [`BUSY_ENV`] sets (a number from 0 to 1; 1: a
/// measurement is trusted however busy the machine was), else
/// [`DEFAULT_BUSY`].
pub fn busy_limit() -> Result<f64, PlanError> {
    parse_busy_limit(std::env::var(BUSY_ENV).ok().as_deref())
}

/// [`busy_limit`] from the variable's value (`None`: not set).
pub fn parse_busy_limit(value: Option<&str>) -> Result<f64, PlanError> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_BUSY),
        Some(v) => match v.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(PlanError(format!(
                "{BUSY_ENV}={v}: expected the share of a run's CPU time other programs may take while the planner measures, a number from 0 to 1 (default {DEFAULT_BUSY}; 1 trusts every measurement)"
            ))),
        },
    }
}

crate::error::message_error!(
    /// A `--plan` value that is neither `auto`, `default` nor a readable plan file.
    PlanError
);

/// What `--plan` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The cached or measured fastest plan.
    Auto,
    /// [`Plan::default`] (with `MLP_*` overrides), nothing measured.
    Default,
    /// This plan (from a file or a run's recorded configuration).
    Pinned(Plan),
}

impl Choice {
    /// `auto`, `default` or the path of a plan file.
    pub fn parse(s: &str) -> Result<Self, PlanError> {
        match s {
            "auto" => Ok(Choice::Auto),
            "default" => Ok(Choice::Default),
            path => Ok(Choice::Pinned(read_file(Path::new(path))?)),
        }
    }

    /// The choice of `flag` (the `--plan` value), else of `MNIST_MLP_PLAN`,
    /// else `auto`. A bad [`BUSY_ENV`] is an error here too, before a run
    /// starts.
    pub fn from_flag(flag: Option<&str>) -> Result<Self, PlanError> {
        busy_limit()?;
        match flag {
            Some(s) => Self::parse(s),
            None => match std::env::var(ENV) {
                Ok(s) if !s.is_empty() => {
                    Self::parse(&s).map_err(|e| PlanError(format!("{ENV}: {e}")))
                }
                _ => Ok(Choice::Auto),
            },
        }
    }
}

/// Reads a plan file: TOML with a `[plan]` table (a run's `model.toml`) or
/// with the plan's keys at the top level (`tiles = true`, ...; missing
/// keys take [`Plan::default`]'s values).
pub fn read_file(path: &Path) -> Result<Plan, PlanError> {
    let ctx = |msg: String| PlanError(format!("--plan {}: {msg}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| {
        ctx(format!(
            "cannot read it ({e}); --plan takes `auto`, `default` or a plan file (a run's model.toml, or the output of `mnist-mlp tune --save`)"
        ))
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ctx(format!("not TOML: {}", e.message())))?;
    let plan = match table.get("plan") {
        Some(t) => t.clone(),
        None => toml::Value::Table(table),
    };
    plan.try_into()
        .map_err(|e: toml::de::Error| ctx(format!("not a plan: {}", e.message())))
}

/// Where a run's plan came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Given (`--plan FILE`, a `[plan]` table, a checkpoint's).
    Pinned,
    /// `--plan default`.
    Default,
    /// `MLP_*` overrides in the environment.
    Env,
    /// The cache's entry for this machine and shape.
    Cached {
        /// The cache file.
        path: PathBuf,
        /// The entry.
        entry: Entry,
    },
    /// Not measured: a step (at least `step_s` seconds) is too long to
    /// time the candidates within this run's budget; `mnist-mlp tune`
    /// measures it with a budget of its own and caches the choice.
    TooLong {
        /// Seconds of one step.
        step_s: f64,
    },
    /// Not chosen: the shape has candidates, but the search could not
    /// decide within the run's budget (a whole search of two would not
    /// fit, the steps ran slower than the warm-up said and the budget
    /// ran out first, or another plan won a last level too short to
    /// replace the built-in one). The built-in plan runs; nothing is
    /// cached, so a later run measures again.
    Undecided {
        /// Candidates the shape has (those left out for time included).
        candidates: usize,
        /// Seconds spent trying.
        seconds: f64,
    },
    /// Measured, but not chosen: other programs or the host took more of
    /// the CPU time the run's threads wanted than [`busy_limit`] allows
    /// while the candidates were timed. A plan that wins then (fewer
    /// blocks than threads, say) can lose once the machine is quiet, so
    /// the built-in plan runs (or an earlier boot's cached one), nothing is
    /// cached, and a later run measures again.
    Busy {
        /// How busy the machine was.
        busy: Busy,
        /// The run's threads.
        threads: usize,
        /// The plan that won meanwhile and its speedup over the built-in
        /// plan (`None`: the search decided nothing).
        winner: Option<(Plan, f64)>,
        /// Seconds spent measuring.
        seconds: f64,
    },
    /// Measured now (and cached at `cached`, if it could be written).
    Measured {
        /// The measurement.
        measured: Box<Measured>,
        /// The cache file it went to.
        cached: Option<PathBuf>,
    },
}

/// A chosen plan, how it was chosen, and the warnings to show.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The plan.
    pub plan: Plan,
    /// How it was chosen.
    pub source: Source,
    /// Warnings to show (a bad or unwritable cache).
    pub warnings: Vec<String>,
}

impl Chosen {
    /// The one line a run prints about its plan.
    pub fn line(&self) -> String {
        let how = match &self.source {
            Source::Pinned => "given".to_string(),
            Source::Default => "--plan default, not measured".to_string(),
            Source::Env => "MLP_* overrides from the environment, not measured".to_string(),
            Source::Cached { path, entry } => format!(
                "measured before on this machine: {:.2}x the default plan's step, {} candidates; cache {}",
                entry.speedup,
                entry.candidates,
                path.display()
            ),
            Source::TooLong { step_s } => format!(
                "the built-in plan: a step takes {step_s:.2} s or more, too long to time the candidates within this run's budget; `mnist-mlp tune` measures it once and caches the choice"
            ),
            Source::Undecided { candidates, seconds } => format!(
                "the built-in plan: {candidates} candidates, not decided within this run's budget ({seconds:.2} s spent); nothing cached, a later run measures again, `mnist-mlp tune` with a budget of its own"
            ),
            Source::Busy {
                busy,
                threads,
                winner,
                seconds,
            } => format!(
                "the built-in plan: measured in {seconds:.2} s while other programs or the host took {} ({}){}; a plan that wins on a busy machine can lose on a quiet one: nothing cached, a later run measures again ({BUSY_ENV} sets how busy is tolerated)",
                busy.taken(),
                busy.lacked(*threads),
                match winner {
                    None => ", and decided nothing".to_string(),
                    Some((p, _)) if *p == Plan::default() => ", and it won".to_string(),
                    Some((p, x)) => format!(", and {p} won ({x:.2}x)"),
                },
            ),
            Source::Measured { measured, cached } => format!(
                "measured now: {} candidates{}{} in {:.2} s, {:.2}x the default plan's step{}{}{}",
                measured.candidates.len(),
                match (measured.left_out, measured.hinted) {
                    (0, _) => String::new(),
                    (out, 0) => format!(" ({out} left out for time, for a later run)"),
                    (out, h) => format!(
                        " ({out} left out for time, for a later run; {h} first for what this machine chose before)"
                    ),
                },
                match measured.carried {
                    0 => String::new(),
                    n => format!(", carrying on an earlier run's search of {n} others"),
                },
                measured.seconds,
                measured.speedup(),
                match measured.apart {
                    Some(super::measure::Apart::Timed(r)) => format!(
                        "; OpenBLAS's threads, timed apart once its workers slept: {r:.2}x{}",
                        if measured.outcome.chosen == 0 { ", not kept" } else { "" }
                    ),
                    _ => String::new(),
                },
                measured.busy.filter(|b| b.others >= 0.05).map_or(String::new(), |b| format!(
                    " (other programs and the host took {} meanwhile{})",
                    b.taken(),
                    if b.steal >= 0.01 {
                        format!(", the host's steal {:.0}% of all CPU time", b.steal * 100.0)
                    } else {
                        String::new()
                    }
                )),
                cached.as_ref().map_or(String::new(), |p| format!(
                    "; cached in {}",
                    p.display()
                ))
            ),
        };
        format!("plan {} ({how})", self.plan)
    }

    /// As JSON: the plan, where it came from, and the measurement's cost.
    pub fn to_json(&self) -> serde_json::Value {
        let (source, seconds, speedup) = match &self.source {
            Source::Pinned => ("given", 0.0, None),
            Source::Default => ("default", 0.0, None),
            Source::Env => ("environment", 0.0, None),
            Source::Cached { entry, .. } => ("cached", 0.0, Some(entry.speedup)),
            Source::TooLong { .. } => ("default (step too long to measure)", 0.0, None),
            Source::Undecided { seconds, .. } => {
                ("default (not decided within the budget)", *seconds, None)
            }
            Source::Busy { seconds, .. } => ("default (measured while busy)", *seconds, None),
            Source::Measured { measured, .. } => {
                ("measured", measured.seconds, Some(measured.speedup()))
            }
        };
        let busy = match &self.source {
            Source::Measured { measured, .. } => measured.busy,
            Source::Busy { busy, .. } => Some(*busy),
            _ => None,
        };
        serde_json::json!({
            "plan": self.plan,
            "source": source,
            "seconds": seconds,
            "speedup_over_default": speedup,
            "steal": busy.map(|b| b.steal),
            "others_cores": busy.map(|b| b.others),
        })
    }
}

/// A per-core f32 rate above what current CPUs sustain (FLOP/s), for the
/// lower bound of a step's time that decides whether measuring can fit.
pub const OPTIMISTIC_FLOPS_PER_CORE: f64 = 250e9;

/// What the cache held for a shape that [`choose`] measures now.
enum Earlier {
    /// No entry.
    Nothing,
    /// A plan measured on an earlier boot: it runs where the new
    /// measurement decides nothing.
    Stale(Chosen),
    /// A plan other than the built-in one that won once: measured again
    /// against the built-in plan.
    Unconfirmed(Entry),
    /// A settled plan whose search left candidates out for time: the
    /// search carries on with those (the plan runs where it decides
    /// nothing).
    Partial(Chosen, Entry),
}

/// Whether some candidate of `shape` other than the built-in plan does
/// what no plan `entry`'s search timed does (an entry that says it left
/// candidates out, of a candidate list that has since changed, may have
/// none left).
fn left_to_time(entry: &Entry, shape: &super::Shape) -> bool {
    let all = super::candidates(Plan::default(), shape);
    super::unscreened(all, shape, &entry.screened).len() > 1
}

/// The plan of a run with `choice`: for `auto`, the cache's entry for this
/// machine and `target`'s shape, else a measurement of `target` within
/// `budget(step_seconds)` seconds, then cached. A settled entry whose
/// search left candidates out for time ([`Entry::complete`]) is carried on:
/// the run times the candidates left out against the built-in plan, the
/// entry's plan first among them, and caches the outcome with what is
/// still left, so that repeated short runs of a large network time every
/// candidate in the end; where it decides nothing the entry's plan runs. An entry from an earlier
/// boot is measured again; an entry whose plan is not the built-in one and
/// won only once is measured again against the built-in plan, and the
/// winner cached as settled ([`Entry::settled`]). A measurement during
/// which other programs or the host took more than `busy_limit` of the
/// CPU time the run's threads wanted ([`Busy::short`]) decides nothing
/// ([`Source::Busy`]). `cache_path`: the cache file (`None`: no cache).
pub fn choose(
    choice: &Choice,
    target: Target,
    cache_path: Option<&Path>,
    budget: &(dyn Fn(f64) -> f64 + Sync),
    busy_limit: f64,
) -> Chosen {
    let Target {
        model,
        rows,
        train,
        threads,
        ..
    } = target;
    let done = |plan, source| Chosen {
        plan,
        source,
        warnings: Vec::new(),
    };
    match choice {
        Choice::Pinned(p) => return done(*p, Source::Pinned),
        Choice::Default if Plan::env_overridden() => return done(Plan::from_env(), Source::Env),
        Choice::Default => return done(Plan::default(), Source::Default),
        Choice::Auto if Plan::env_overridden() => return done(Plan::from_env(), Source::Env),
        Choice::Auto => {}
    }
    // Data that does not fit the network is the run's error to report;
    // there is nothing to time.
    if crate::train::check_dataset(model, train, "training set").is_err() || train.is_empty() {
        return done(Plan::default(), Source::Default);
    }
    let shape = target.shape();
    // The machine's part of the key, read once: it names other shapes'
    // entries for the hints too.
    let machine = cache::machine(&shape);
    let key = cache::key_in(&machine, &shape);
    let mut warnings = Vec::new();
    let unmeasured = |source: Source, warnings: Vec<String>| -> Chosen {
        Chosen {
            plan: Plan::default(),
            source,
            warnings,
        }
    };
    let mut earlier = Earlier::Nothing;
    // Plans timed first when the budget cannot time every candidate.
    let mut hints = Vec::new();
    if let Some(path) = cache_path {
        let (file, warning) = cache::load(path);
        warnings.extend(warning);
        if let Some(entry) = file.entries.get(&key) {
            let cached = Chosen {
                plan: entry.plan,
                source: Source::Cached {
                    path: path.to_path_buf(),
                    entry: entry.clone(),
                },
                warnings: Vec::new(),
            };
            // Where a VM runs can change which plan is fastest, and the
            // key cannot see it.
            if entry.from_another_boot(cache::boot_id().as_deref()) {
                warnings.push(format!(
                    "note: plan cache {}: this shape's plan was measured on an earlier boot (a VM may since run on another host); measuring it again",
                    path.display()
                ));
                // The earlier boot's plan first of all.
                hints.push(entry.plan);
                earlier = Earlier::Stale(cached);
            } else if entry.settled() {
                if entry.complete() || !left_to_time(entry, &shape) {
                    return Chosen { warnings, ..cached };
                }
                // Its search left candidates out for time: this run times
                // them against the built-in plan and the plan kept so far,
                // until none is left (a short run of a large network
                // times a few of its candidates each time).
                hints.push(entry.plan);
                earlier = Earlier::Partial(cached, entry.clone());
            } else {
                // A neighbour busy through one whole measurement can make a
                // plan win that runs slower once it is gone (T3 on two Zen 5
                // threads cached one block, 1.7x slower than two): a plan
                // other than the built-in one must win twice.
                earlier = Earlier::Unconfirmed(entry.clone());
            }
        }
        // Then what this machine chose for other shapes (a confirming
        // measurement times only the built-in plan and the cached one).
        if !matches!(earlier, Earlier::Unconfirmed(_)) {
            hints.extend(cache::hints(&file, &machine, &key));
        }
    }
    // Why a measurement decides nothing: the budget, or a busy machine.
    let why = |source: &Source| match source {
        Source::Busy { .. } => "while the machine was busy",
        _ => "within this run's budget",
    };
    let fallback = |source: Source, mut warnings: Vec<String>| -> Chosen {
        match &earlier {
            Earlier::Stale(c) => {
                warnings.push(format!(
                    "note: not decided again {}; the earlier boot's plan runs",
                    why(&source)
                ));
                Chosen {
                    warnings,
                    ..c.clone()
                }
            }
            Earlier::Partial(c, e) => {
                warnings.push(format!(
                    "note: the search of the {} candidates left out before decided nothing {}; the plan it kept runs",
                    e.left_out,
                    why(&source)
                ));
                Chosen {
                    warnings,
                    ..c.clone()
                }
            }
            Earlier::Unconfirmed(e) => {
                warnings.push(format!(
                    "note: the plan cached before ({}, {:.2}x) was not confirmed {}; the built-in plan runs, and a later run measures the two again",
                    e.plan,
                    e.speedup,
                    why(&source)
                ));
                unmeasured(source, warnings)
            }
            Earlier::Nothing => unmeasured(source, warnings),
        }
    };
    // A step's time at a rate few CPUs reach per core: when even two
    // candidates could not be timed within the budget at that rate (a
    // full-batch run of a few steps), nothing is measured.
    let optimistic = rows as f64 * model.spec.train_flops_per_sample() as f64
        / (threads.n() as f64 * OPTIMISTIC_FLOPS_PER_CORE);
    if 2.0 * (2.0 + super::search::ROUNDS as f64) * optimistic > budget(optimistic) {
        return fallback(Source::TooLong { step_s: optimistic }, warnings);
    }
    let measured = match &earlier {
        Earlier::Unconfirmed(e) => measure_among(target, vec![Plan::default(), e.plan], budget),
        Earlier::Partial(_, e) => {
            measure_carried(target, Plan::default(), &hints, &e.screened, budget)
        }
        _ => measure_hinted(target, Plan::default(), &hints, budget),
    };
    // Timed while other programs or the host took the CPU time the run's
    // threads wanted: what won then may lose on a quiet machine, and a
    // cached choice would outlive the disturbance.
    if let Some(busy) = measured.busy.filter(|b| b.short(threads.n()) > busy_limit) {
        return fallback(
            Source::Busy {
                busy,
                threads: threads.n(),
                winner: measured
                    .decided()
                    .then(|| (measured.plan(), measured.speedup())),
                seconds: measured.seconds,
            },
            warnings,
        );
    }
    if matches!(measured.apart, Some(super::measure::Apart::NoRoom)) {
        warnings.push(
            "note: a plan with OpenBLAS's threads won the search, but the budget left no room to time it apart from the built-in plan (OpenBLAS's spinning workers slow what runs right after them)"
                .to_string(),
        );
    }
    // A plan kept without a decision is no choice, and caching it would
    // stop every later run from measuring.
    if measured.undecided() {
        return fallback(
            Source::Undecided {
                candidates: measured.shape_candidates(),
                seconds: measured.seconds,
            },
            warnings,
        );
    }
    if let Earlier::Unconfirmed(e) = &earlier {
        warnings.push(if measured.outcome.chosen == 0 {
            format!(
                "note: the plan cached before ({}, {:.2}x) lost to the built-in plan when measured again; the built-in plan runs from now on",
                e.plan, e.speedup
            )
        } else {
            format!(
                "note: the plan cached before won again ({:.2}x, {:.2}x before): confirmed",
                measured.speedup(),
                e.speedup
            )
        });
    }
    let entry = match &earlier {
        // A confirming run times two plans only: what the search behind the
        // entry left out is still left.
        Earlier::Unconfirmed(e) => Entry {
            confirmed: measured.outcome.chosen != 0,
            left_out: e.left_out,
            screened: e.screened.clone(),
            ..Entry::of(&measured)
        },
        // Carried on: what the earlier runs timed counts as timed, and the
        // plan they kept stays confirmed if it won again.
        Earlier::Partial(_, e) => {
            let mut screened = e.screened.clone();
            screened.extend(
                measured
                    .candidates
                    .iter()
                    .filter(|p| !e.screened.contains(p)),
            );
            let plan = measured.plan();
            Entry {
                confirmed: e.confirmed && plan == e.plan,
                candidates: measured.candidates.len() + measured.carried,
                screened: if measured.left_out > 0 {
                    screened
                } else {
                    Vec::new()
                },
                ..Entry::of(&measured)
            }
        }
        _ => Entry::of(&measured),
    };
    let cached = cache_path.and_then(|path| match cache::store(path, &key, entry) {
        Ok(()) => Some(path.to_path_buf()),
        Err(w) => {
            warnings.push(w.into());
            None
        }
    });
    Chosen {
        plan: measured.plan(),
        source: Source::Measured {
            measured: Box::new(measured),
            cached,
        },
        warnings,
    }
}

/// [`choose`] for a training run of `steps` steps, with the cache of this
/// user ([`cache::path`]), the run budget ([`run_budget`]) and the busy
/// limit of [`busy_limit`] ([`DEFAULT_BUSY`] where [`BUSY_ENV`] is bad:
/// [`Choice::from_flag`] has reported it before a run gets here).
pub fn for_run(choice: &Choice, target: Target, steps: usize) -> Chosen {
    let path = cache::path();
    choose(
        choice,
        target,
        path.as_deref(),
        &|e| run_budget(e, steps),
        busy_limit().unwrap_or(DEFAULT_BUSY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{OptConfig, OptKind};
    use crate::plan::measure::Fixture;

    /// A busy limit that trusts every measurement, however busy the
    /// machine (other tests run beside these).
    const TRUSTED: f64 = 1.0;

    /// A busy limit below any reading: every measurement with a reading
    /// counts as taken on a busy machine.
    const ALWAYS_BUSY: f64 = -1.0;

    /// That `c` was measured now and cached.
    #[track_caller]
    fn assert_cached(c: &Chosen) {
        assert!(
            matches!(
                c.source,
                Source::Measured {
                    cached: Some(_),
                    ..
                }
            ),
            "{c:?}"
        );
    }

    /// A network of one small hidden layer trained by SGD: what `choose`'s
    /// tests measure.
    fn small_sgd() -> Fixture {
        Fixture::new(
            "784,relu,32,softmax,10",
            OptConfig::new(OptKind::Sgd, 0.1),
            400,
        )
    }

    #[test]
    fn plan_files_take_a_plan_table_or_bare_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("model.toml");
        std::fs::write(&a, "epochs = 3\n[plan]\ntiles = true\npad_bytes = 0\n").unwrap();
        let p = read_file(&a).unwrap();
        assert!(p.tiles && p.pad_bytes == 0);
        assert_eq!(p.col_split_rows, Plan::default().col_split_rows);
        let b = dir.path().join("plan.toml");
        std::fs::write(&b, "weight_grad_split = \"cols\"\n").unwrap();
        assert_eq!(
            Choice::parse(b.to_str().unwrap()).unwrap(),
            Choice::Pinned(Plan {
                weight_grad_split: super::super::WeightGradSplit::Cols,
                row_chunk: 0,
                small_bwd: false,
                ..Plan::default()
            })
        );
        std::fs::write(&b, "tile = true\n").unwrap();
        let e = read_file(&b).unwrap_err().to_string();
        assert!(
            e.contains("--plan") && e.contains("plan.toml") && e.contains("tile"),
            "{e}"
        );
        let e = Choice::parse("/no/such/plan.toml").unwrap_err().to_string();
        assert!(e.contains("auto") && e.contains("cannot read"), "{e}");
        assert_eq!(Choice::parse("auto").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse("default").unwrap(), Choice::Default);
    }

    #[test]
    fn auto_measures_once_then_reads_the_cache_and_survives_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnist-mlp/plans.json");
        let f = small_sgd();
        let target = f.target(8);
        let go = |p: Option<&Path>| choose(&Choice::Auto, target, p, &|_| 0.8, TRUSTED);
        if Plan::env_overridden() {
            assert!(matches!(go(Some(&path)).source, Source::Env));
            return;
        }
        let first = go(Some(&path));
        assert_cached(&first);
        assert!(first.warnings.is_empty());
        assert!(first.line().contains("measured now"), "{}", first.line());
        // A plan other than the built-in one is measured once more (against
        // the built-in plan) before it is read from the cache as it is.
        let mut second = go(Some(&path));
        for _ in 0..3 {
            if matches!(second.source, Source::Cached { .. }) {
                break;
            }
            assert_ne!(first.plan, Plan::default(), "{second:?}");
            assert!(second.warnings[0].contains("cached before"), "{second:?}");
            second = go(Some(&path));
        }
        assert!(matches!(second.source, Source::Cached { .. }), "{second:?}");
        assert!(
            first.plan == Plan::default()
                || second.plan == Plan::default()
                || second.plan == first.plan
        );
        // Corrupt: a warning, a new measurement, the cache rewritten.
        std::fs::write(&path, "not json").unwrap();
        // (Tried again while undecided, as every other test's measurement
        // with room: a run that decides nothing leaves the file as it is.)
        let third = measured_with_room(target, &path);
        assert_cached(&third);
        assert!(
            third.warnings[0].contains("not a plan cache"),
            "{:?}",
            third.warnings
        );
        assert!(
            !go(Some(&path))
                .warnings
                .iter()
                .any(|w| w.contains("not a plan cache")),
            "rewritten"
        );
        // Unwritable (the folder is a file): a warning, still a plan.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        let fourth = go(Some(&blocked.join("plans.json")));
        assert!(matches!(
            fourth.source,
            Source::Measured { cached: None, .. }
        ));
        assert!(
            fourth.warnings.iter().any(|w| w.contains("cannot write")),
            "{:?}",
            fourth.warnings
        );
        // Pinned and default measure nothing.
        let pinned = Plan {
            tiles: true,
            ..Plan::default()
        };
        let with = |c: &Choice| choose(c, target, None, &|_| 0.8, TRUSTED);
        assert_eq!(with(&Choice::Pinned(pinned)).plan, pinned);
        let c = with(&Choice::Default);
        assert_eq!(c.plan, Plan::default());
    }

    /// An empty cache's folder and file, the small network, and how many
    /// candidates its steps of 8 rows have; `None` when `MLP_*` overrides
    /// in the environment pin the plan (nothing is measured then).
    fn empty_cache() -> Option<(tempfile::TempDir, PathBuf, Fixture, usize)> {
        if Plan::env_overridden() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.json");
        let f = small_sgd();
        let n = super::super::candidates(Plan::default(), &f.target(8).shape()).len();
        Some((dir, path, f, n))
    }

    /// A plan that is not the built-in one (one block, tiles).
    fn other_plan() -> Plan {
        Plan {
            tiles: true,
            blocks: 1,
            ..Plan::default()
        }
    }

    /// Writes an entry for `plan` under `key`.
    fn plant(path: &Path, key: &str, plan: Plan, boot: Option<String>, confirmed: bool) {
        let entry = Entry {
            plan,
            speedup: 1.5,
            candidates: 3,
            measured_at: 1,
            boot,
            confirmed,
            left_out: 0,
            screened: Vec::new(),
        };
        cache::store(path, key, entry).unwrap();
    }

    #[test]
    fn a_plan_that_won_once_must_win_again() {
        let Some((_dir, path, f, _)) = empty_cache() else {
            return;
        };
        let target = f.target(8);
        let key = cache::key(&target.shape());
        let once = other_plan();
        plant(&path, &key, once, cache::boot_id(), false);
        // No room to measure the two: the built-in plan runs, the entry
        // waits for a later run.
        let c = choose(&Choice::Auto, target, Some(&path), &undecidable(2), TRUSTED);
        assert_eq!(c.plan, Plan::default(), "{c:?}");
        assert!(
            matches!(
                c.source,
                Source::Undecided { candidates: 2, .. } | Source::TooLong { .. }
            ),
            "{c:?}"
        );
        assert!(c.warnings[0].contains("not confirmed"), "{:?}", c.warnings);
        assert_eq!(cache::load(&path).0.entries[&key].plan, once);
        // Room: the built-in plan and the cached one, measured again; the
        // entry is settled either way (confirmed, or the built-in plan).
        let c = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        let Source::Measured { measured, cached } = &c.source else {
            panic!("{c:?}")
        };
        assert_eq!(measured.candidates, vec![Plan::default(), once]);
        assert!(cached.is_some());
        assert!(c.warnings[0].contains("cached before"), "{:?}", c.warnings);
        let entry = &cache::load(&path).0.entries[&key];
        assert!(entry.settled(), "{entry:?}");
        assert_eq!(entry.plan, c.plan);
        assert_eq!(entry.confirmed, c.plan == once);
        let again = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        assert!(matches!(again.source, Source::Cached { .. }), "{again:?}");
        assert_eq!(again.plan, c.plan);
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    }

    #[test]
    fn what_this_machine_chose_for_other_shapes_is_timed_first() {
        let Some((_dir, path, f, _)) = empty_cache() else {
            return;
        };
        let target = f.target(8);
        let shape = target.shape();
        let far = Plan {
            col_split_rows: 0,
            weight_grad_split: super::super::WeightGradSplit::Cols,
            pad_bytes: 0,
            ..Plan::default()
        };
        let at = |c: &[Plan]| {
            c.iter()
                .position(|p| p.effect(&shape) == far.effect(&shape))
        };
        let plain = super::super::candidates(Plan::default(), &shape);
        assert!(at(&plain).unwrap() > 2, "far from the base");
        // Another shape's choice on this machine (and one of another
        // machine, ignored): timed right after the base.
        plant(
            &path,
            &cache::key(&f.target(16).shape()),
            far,
            cache::boot_id(),
            true,
        );
        plant(
            &path,
            "another machine | f32 | 784-32-10 | rows 8",
            other_plan(),
            None,
            true,
        );
        let c = measured_with_room(target, &path);
        let Source::Measured { measured, .. } = &c.source else {
            panic!("{c:?}")
        };
        assert_eq!(measured.hinted, 1);
        assert_eq!(
            at(&measured.candidates),
            Some(1),
            "{:?}",
            measured.candidates
        );
        assert_eq!(measured.candidates.len() + measured.left_out, plain.len());
    }

    /// `choose` with room to decide (0.8 s), tried again, up to three
    /// times in all, while it comes back undecided: tests run side by side
    /// on a machine of two cores, whose other tenants can keep a last pair
    /// from playing its rounds.
    fn measured_with_room(target: Target, path: &Path) -> Chosen {
        let go = || choose(&Choice::Auto, target, Some(path), &|_| 0.8, TRUSTED);
        for _ in 0..2 {
            let c = go();
            if matches!(c.source, Source::Measured { .. }) {
                return c;
            }
        }
        go()
    }

    /// Three steps per candidate of `n`: the warm-up would fit, the search
    /// of two (each sample at least 2 ms of steps, plus an untimed one,
    /// three rounds) does not.
    fn undecidable(n: usize) -> impl Fn(f64) -> f64 + Sync {
        move |e| e * 3.0 * n as f64
    }

    #[test]
    fn a_measurement_that_cannot_decide_is_not_cached() {
        let Some((_dir, path, f, n)) = empty_cache() else {
            return;
        };
        let target = f.target(8);
        assert!(n > 1);
        let c = choose(&Choice::Auto, target, Some(&path), &undecidable(n), TRUSTED);
        assert_eq!(c.plan, Plan::default());
        assert!(
            matches!(c.source, Source::Undecided { candidates, .. } if candidates == n),
            "{c:?}"
        );
        assert!(c.line().contains("nothing cached"), "{}", c.line());
        assert!(!path.exists(), "nothing cached");
        // With room for the search, the same shape is measured and cached.
        let c = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        assert_cached(&c);
        assert!(path.exists());
    }

    #[test]
    fn a_search_that_left_candidates_out_is_carried_on_by_the_next_run() {
        let Some((_dir, path, f, n)) = empty_cache() else {
            return;
        };
        let target = f.target(8);
        let shape = target.shape();
        let key = cache::key(&shape);
        let plain = super::super::candidates(Plan::default(), &shape);
        assert!(n >= 4, "{plain:?}");
        // An earlier run timed the built-in plan and two others, kept the
        // built-in plan and left the rest out for time.
        let entry = Entry {
            plan: Plan::default(),
            speedup: 1.0,
            candidates: 3,
            measured_at: 1,
            boot: cache::boot_id(),
            confirmed: false,
            left_out: n - 3,
            screened: plain[..3].to_vec(),
        };
        assert!(entry.settled() && !entry.complete());
        cache::store(&path, &key, entry).unwrap();
        // With room: the base and the candidates left out, not the two
        // timed before.
        let c = measured_with_room(target, &path);
        let Source::Measured { measured, cached } = &c.source else {
            panic!("{c:?}")
        };
        assert!(cached.is_some());
        assert_eq!(measured.candidates[0], Plan::default());
        assert!(
            !measured.candidates.contains(&plain[1]) && !measured.candidates.contains(&plain[2]),
            "{:?}",
            measured.candidates
        );
        assert_eq!(measured.carried, 2);
        assert_eq!(measured.shape_candidates(), n);
        assert!(c.line().contains("carrying on"), "{}", c.line());
        let after = &cache::load(&path).0.entries[&key];
        assert_eq!(after.plan, c.plan);
        assert_eq!(after.left_out, measured.left_out);
        if after.complete() {
            assert!(after.screened.is_empty(), "{after:?}");
        } else {
            // Still some left: what was timed now counts as timed too.
            assert!(after.screened.contains(&plain[1]), "{after:?}");
            assert!(
                after.screened.contains(&measured.candidates[1]),
                "{after:?}"
            );
        }
        // A search that cannot decide keeps the (settled) plan the entry
        // holds.
        let mut partial = after.clone();
        partial.confirmed = true;
        partial.left_out = 1;
        partial.screened = plain[..n - 1].to_vec();
        cache::store(&path, &key, partial.clone()).unwrap();
        let c = choose(&Choice::Auto, target, Some(&path), &undecidable(n), TRUSTED);
        assert_eq!(c.plan, partial.plan, "{c:?}");
        assert!(matches!(c.source, Source::Cached { .. }), "{c:?}");
        assert!(
            c.warnings[0].contains("decided nothing"),
            "{:?}",
            c.warnings
        );
        // One that says it left some out, but whose screened plans do what
        // every candidate does, has nothing left to time.
        let covered = Entry {
            screened: plain.clone(),
            ..partial.clone()
        };
        cache::store(&path, &key, covered).unwrap();
        let c = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        assert!(matches!(c.source, Source::Cached { .. }), "{c:?}");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // A complete entry is read as it is.
        let done = Entry {
            left_out: 0,
            screened: Vec::new(),
            ..partial
        };
        cache::store(&path, &key, done).unwrap();
        let c = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        assert!(matches!(c.source, Source::Cached { .. }), "{c:?}");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_choice_from_an_earlier_boot_is_measured_again() {
        let Some(boot) = cache::boot_id() else {
            return; // no boot id here: entries never go stale
        };
        let Some((_dir, path, f, n)) = empty_cache() else {
            return;
        };
        let target = f.target(8);
        let key = cache::key(&target.shape());
        let old_plan = other_plan();
        let stale = |boot: &str| plant(&path, &key, old_plan, Some(boot.to_string()), true);
        // A budget too small to decide: the earlier boot's plan runs, and
        // stays cached for the next run to try again.
        stale("an-earlier-boot");
        let c = choose(&Choice::Auto, target, Some(&path), &undecidable(n), TRUSTED);
        assert_eq!(c.plan, old_plan, "{c:?}");
        assert!(matches!(c.source, Source::Cached { .. }), "{c:?}");
        assert!(
            c.warnings[0].contains("earlier boot")
                && c.warnings[1].contains("earlier boot's plan runs"),
            "{:?}",
            c.warnings
        );
        // Room to decide: measured again and replaced, stamped with this
        // boot, and read from the cache after that.
        let c = measured_with_room(target, &path);
        assert_cached(&c);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        // The earlier boot's plan was timed first after the built-in one.
        let Source::Measured { measured, .. } = &c.source else {
            unreachable!()
        };
        let shape = target.shape();
        assert_eq!(
            measured.candidates[1].effect(&shape),
            old_plan.effect(&shape)
        );
        let entry = &cache::load(&path).0.entries[&key];
        assert_eq!(entry.boot.as_deref(), Some(boot.as_str()));
        assert_eq!(entry.plan, c.plan);
        // An entry of this boot is used as it is (a confirmed one: see
        // `a_plan_that_won_once_must_win_again`).
        stale(&boot);
        let c = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        assert_eq!(c.plan, old_plan);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_measurement_on_a_busy_machine_decides_nothing_and_caches_nothing() {
        let Some((_dir, path, f, _)) = empty_cache() else {
            return;
        };
        if crate::plan::measure::cpu_reading().is_none() {
            return; // no /proc/stat: nothing says how busy the machine is
        }
        let target = f.target(8);
        let key = cache::key(&target.shape());
        // `choose` with every reading counting as busy, after `setup`; again
        // (up to three tries, `setup` first each time) where the measurement
        // came back without a reading (`Busy::between`: too few ticks, or a
        // counter of /proc/stat went back), which `seen` tells.
        let busy = |setup: &dyn Fn(), seen: &dyn Fn(&Chosen) -> bool| {
            let mut c = None;
            for _ in 0..3 {
                setup();
                let now = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, ALWAYS_BUSY);
                let done = seen(&now);
                c = Some(now);
                if done {
                    break;
                }
            }
            c.expect("tried")
        };
        let said = |c: &Chosen, note: &str| c.warnings.iter().any(|w| w.contains(note));
        // Nothing cached: the built-in plan runs, the file is not written.
        let c = busy(
            &|| {
                let _ = std::fs::remove_file(&path);
            },
            &|c| matches!(c.source, Source::Busy { .. }),
        );
        let Source::Busy {
            busy: b, threads, ..
        } = &c.source
        else {
            panic!("{c:?}");
        };
        assert_eq!((*threads, b.cpus >= 1), (2, true), "{c:?}");
        assert_eq!(c.plan, Plan::default());
        assert!(c.line().contains("nothing cached"), "{}", c.line());
        assert_eq!(c.to_json()["source"], "default (measured while busy)");
        assert!(!path.exists(), "nothing cached");
        // A plan that won once is neither confirmed nor dropped.
        let unconfirmed = "not confirmed while the machine was busy";
        let c = busy(
            &|| plant(&path, &key, other_plan(), cache::boot_id(), false),
            &|c| said(c, unconfirmed),
        );
        assert_eq!(c.plan, Plan::default(), "{c:?}");
        assert!(c.warnings[0].contains(unconfirmed), "{:?}", c.warnings);
        let kept = &cache::load(&path).0.entries[&key];
        assert_eq!((kept.plan, kept.confirmed), (other_plan(), false));
        // An earlier boot's plan keeps running, its entry as it was.
        let stale = "not decided again while the machine was busy";
        let c = busy(
            &|| plant(&path, &key, other_plan(), Some("another boot".into()), true),
            &|c| said(c, stale),
        );
        assert_eq!(c.plan, other_plan(), "{c:?}");
        assert!(said(&c, stale), "{:?}", c.warnings);
        let kept = &cache::load(&path).0.entries[&key];
        assert_eq!(kept.boot.as_deref(), Some("another boot"));
        // The same measurement, trusted, is cached.
        let c = choose(&Choice::Auto, target, Some(&path), &|_| 0.8, TRUSTED);
        assert_cached(&c);
    }

    #[test]
    fn the_busy_limit_is_a_share_from_zero_to_one() {
        assert_eq!(parse_busy_limit(Some("0.25")).unwrap(), 0.25);
        assert_eq!(parse_busy_limit(Some(" 1 ")).unwrap(), 1.0);
        assert_eq!(parse_busy_limit(None).unwrap(), DEFAULT_BUSY);
        assert_eq!(parse_busy_limit(Some("")).unwrap(), DEFAULT_BUSY);
        for bad in ["2", "-0.1", "lots", "NaN"] {
            let e = parse_busy_limit(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains(BUSY_ENV) && e.contains(bad) && e.contains("0 to 1"),
                "{e}"
            );
        }
    }
}
