//! The planner's measurement: every candidate plan of a run's step timed on
//! the run's own network, batch size, optimizer, thread pool and training
//! data, with [`super::search::search`] choosing among them.
//!
//! What is timed is a real training step (gather, forward, loss,
//! back-propagation, weight gradients, optimizer update) on a *copy* of the
//! model with an optimizer of its own, so the run itself starts from exactly
//! the state it would have had without the planner (measuring changes which
//! plan runs, never the model or the random streams). Batches are taken in
//! turn from a fixed shuffle of the training rows (contiguous rows in place
//! for full-batch runs), as the training loop takes them. One workspace is
//! kept per distinct row padding, so switching candidates costs no
//! allocation inside the timed samples.
//!
//! Cost: the warm-up (one step per candidate) and the timed levels stay
//! within the budget the caller gives. The base warms up for [`WARM_S`]
//! and its last steps estimate a step; when the whole search of every candidate
//! ([`super::search::steps_of_search`]) would not fit in what is left, the
//! candidates at the end of the list are left out until it does, so that
//! the search can decide rather than run out of time halfway: the list is
//! ordered nearest the base first by [`super::candidates`], after the plans
//! this machine chose for other shapes when a run passes them as hints
//! ([`measure_hinted`], [`super::with_hints`]).

use std::collections::BTreeMap;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::search::{search, steps_of_search, Outcome, Wall};
use super::{candidates, Plan, Shape};
use crate::data::Dataset;
use crate::nn::{Batch, Mlp, Rows, Update, Workspace};
use crate::optim::{OptConfig, Optimizer};
use crate::parallel::Threads;

/// What the planner measured for one shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    /// The candidates, the base first.
    pub candidates: Vec<Plan>,
    /// The search's figures (per candidate, the choice).
    pub outcome: Outcome,
    /// Wall seconds of the whole measurement, setting up included.
    pub seconds: f64,
    /// Candidates left out because the search of all would not fit the
    /// budget.
    pub left_out: usize,
    /// Seconds of one step of the base plan, warm (the median of its last
    /// three warm-up steps).
    pub step_s: f64,
    /// Candidates that follow the base because this machine chose them
    /// for other shapes ([`super::with_hints`]), timed before the rest.
    pub hinted: usize,
    /// Plans that earlier runs' searches of this shape timed, which this
    /// one, carrying their search on, left out (0: a search of its own).
    pub carried: usize,
    /// How busy other programs and the host kept the machine while the
    /// candidates were timed ([`Busy`]); `None` where the system does not
    /// say (not Linux) or the measurement was too short to tell.
    pub busy: Option<Busy>,
    /// Where the search chose a plan that threads the products by
    /// OpenBLAS over a base that does not, the two timed apart ([`Apart`]);
    /// `None` otherwise.
    pub apart: Option<Apart>,
}

/// Samples of each plan in [`Apart`]'s check, at least ...
pub const APART_SAMPLES: usize = 3;

/// ... and at most (as many as what is left of the budget holds).
pub const APART_SAMPLES_MAX: usize = 15;

/// The check of a plan that threads the products by OpenBLAS
/// (`blas_threads`) against a base of rayon blocks, after the search chose
/// it. OpenBLAS 0.3's workers keep spinning after each threaded call (for
/// 2^28 clock cycles, about 0.1 s) before they sleep, and a block that
/// shares its CPU with one runs up to twice as long: in the search, the
/// base's samples that follow the other plan's are slowed, and the other
/// plan wins by a margin it does not have (T5 on two Zen 5 threads: chosen
/// at "1.67x" where whole epochs are even; `examples/step_ab T5 2 300
/// blas=1`, steps alternating: a quarter of the base's steps 1.7-1.9x its
/// neighbours', none with `OPENBLAS_THREAD_TIMEOUT=4`; BENCHMARKS.md,
/// session 26). So once the search picks it, the process waits until it
/// uses no CPU (the workers asleep, [`wait_for_quiet`]), warms the base up
/// again for [`WARM_S`] (cores that slept run slow for tens of
/// milliseconds), times it ([`APART_SAMPLES`] to [`APART_SAMPLES_MAX`] samples, as the budget
/// left allows), then the other plan as often; the other plan stays only
/// if its median step is more than [`super::search::TIE`] faster.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Apart {
    /// Timed apart: the base's median step over the chosen plan's.
    Timed(f64),
    /// What was left of the budget could not hold the check: the base
    /// stays, and the measurement decided nothing.
    NoRoom,
}

/// This process's CPU seconds so far (user and system, every thread).
fn own_cpu_seconds() -> Option<f64> {
    let u = crate::memory::own_usage()?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(secs(u.ru_utime) + secs(u.ru_stime))
}

/// Sleeps in slices of 10 ms until this process used less than a fifth of
/// a CPU over one (its other threads, OpenBLAS's spinning workers among
/// them, have gone to sleep), for at most `max_s` seconds; whether it got
/// there. Where the system cannot say, it sleeps 0.15 s (longer than
/// OpenBLAS's spin on any clock above 1.8 GHz) if `max_s` allows.
pub fn wait_for_quiet(max_s: f64) -> bool {
    const SLICE: f64 = 0.01;
    let t0 = Instant::now();
    let Some(mut last) = own_cpu_seconds() else {
        if max_s < 0.15 {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(0.15));
        return true;
    };
    while t0.elapsed().as_secs_f64() + SLICE <= max_s {
        std::thread::sleep(std::time::Duration::from_secs_f64(SLICE));
        let now = own_cpu_seconds().unwrap_or(last);
        if now - last < 0.2 * SLICE {
            return true;
        }
        last = now;
    }
    false
}

impl Measured {
    /// The plan chosen.
    pub fn plan(&self) -> Plan {
        self.candidates[self.outcome.chosen]
    }
    /// The shape's candidates: those measured, those left out for time and
    /// those an earlier run's search timed ([`Measured::carried`]).
    pub fn shape_candidates(&self) -> usize {
        self.candidates.len() + self.left_out + self.carried
    }
    /// How much faster the chosen plan's step is than the base's: round
    /// by round ([`Outcome::speedup`]), or as timed apart where [`Apart`]
    /// checked the choice (the rounds overstate it then).
    pub fn speedup(&self) -> f64 {
        match self.apart {
            Some(Apart::Timed(r)) if self.outcome.chosen != 0 => r,
            _ => self.outcome.speedup(),
        }
    }
    /// Whether the shape had a choice to make (more than one candidate).
    fn had_choice(&self) -> bool {
        self.shape_candidates() > 1
    }
    /// Whether the shape had a choice to make but the search did not
    /// decide it: no choice to keep, so nothing is cached (a run keeps the
    /// built-in plan, `tune` fails).
    pub fn undecided(&self) -> bool {
        self.had_choice() && !self.decided()
    }
    /// Whether the search decided between at least two candidates
    /// ([`Outcome::decided`]: its last pair played its rounds). Not so when
    /// the budget fitted only the base, or when the steps ran slower than
    /// the base's warm-up said (as under an emulator) and the budget ran
    /// out before the last pair's rounds.
    pub fn decided(&self) -> bool {
        self.candidates.len() >= 2
            && self.outcome.decided()
            && !matches!(self.apart, Some(Apart::NoRoom))
    }
}

/// What the planner times: a training step of `model`'s network with
/// `rows` rows of `train` per step, optimizer `opt`, on `threads`.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The model (copied, never changed).
    pub model: &'a Mlp<f32>,
    /// The run's optimizer.
    pub opt: &'a OptConfig,
    /// Rows of a step.
    pub rows: usize,
    /// The training data.
    pub train: &'a Dataset,
    /// The run's thread pool.
    pub threads: &'a Threads,
}

impl Target<'_> {
    /// The step's shape.
    pub fn shape(&self) -> Shape {
        shape_of(self.model, self.rows, self.threads)
    }
}

/// The shape a run with `model`, `rows` rows per step and `threads` has.
pub fn shape_of(model: &Mlp<f32>, rows: usize, threads: &Threads) -> Shape {
    Shape {
        widths: model.spec.widths.clone(),
        rows,
        blocks: threads.blocks(),
        threads: threads.n(),
        threading: threads.policy(),
        elem_bytes: 4,
    }
}

/// Seconds the base plan runs before anything is timed (at least two
/// steps): on two Zen 3 cores, the default network's first 3-7 steps
/// after loading took 1.5-3x the steps after them (about 40 ms in all).
pub const WARM_S: f64 = 0.05;

/// The share of a run's estimated training time its measurement may take
/// (within [`run_budget`]'s bounds).
pub const RUN_SHARE: f64 = 0.05;

/// The least budget a run's measurement gets (seconds): room for the
/// warm-up, a screen, and a last level that spans
/// [`super::search::MIN_SWITCH_S`] (half of what is left), without which
/// it could keep the built-in plan but never replace it.
pub const MIN_RUN_BUDGET: f64 = 0.6;

/// The share of a long run's estimated training time its measurement may
/// take where that is more than the second a short run gets (up to
/// [`MAX_RUN_BUDGET`]).
pub const LONG_RUN_SHARE: f64 = 0.02;

/// The most a run's measurement takes (seconds): `tune`'s own default
/// budget, in which T5's whole search of 30 candidates fits on two Zen 5
/// cores (about 1.9 s).
pub const MAX_RUN_BUDGET: f64 = 5.0;

/// The default budget of a run's measurement (seconds), for a step of
/// `step_s` seconds in a run of `steps` steps: [`RUN_SHARE`] of the run's
/// estimated training time, at least [`MIN_RUN_BUDGET`] and under a
/// second; a run so long that [`LONG_RUN_SHARE`] of it is more gets that,
/// up to [`MAX_RUN_BUDGET`] (a 100 s run 2 s). Paid once per machine and
/// shape (the choice is cached). A budget too small for the whole search
/// times fewer candidates, the nearest the base: T5 on two Zen 5 cores
/// timed 8 of its 30 in a second, and `tune` found a plan 1.08x faster
/// among the rest.
pub fn run_budget(step_s: f64, steps: usize) -> f64 {
    let run = step_s * steps as f64;
    (RUN_SHARE * run)
        .clamp(MIN_RUN_BUDGET, 0.9)
        .max((LONG_RUN_SHARE * run).min(MAX_RUN_BUDGET))
}

/// The default budget of `mnist-mlp tune` (seconds), for a step of
/// `step_s` seconds and `n` candidates: 5 s, or, where steps are long,
/// enough for the whole search ([`super::search::steps_of_long_search`]:
/// every candidate timed, the last two [`super::search::ROUNDS`] rounds
/// more); at most 600 s.
pub fn tune_budget(step_s: f64, n: usize) -> f64 {
    // The base's two steps before the search, 10% for the untimed work.
    let steps = 2 + super::search::steps_of_long_search(n);
    (step_s * steps as f64 * 1.1).clamp(5.0, 600.0)
}

/// Times every candidate of [`candidates`]`(base, shape)` on `target`
/// (a copy of its model) within `budget(step_seconds)` seconds, and
/// chooses one.
pub fn measure(target: Target, base: Plan, budget: &(dyn Fn(f64) -> f64 + Sync)) -> Measured {
    measure_hinted(target, base, &[], budget)
}

/// [`measure`], with the candidates that do what `hints` do timed first
/// after the base ([`super::with_hints`]): when the budget cannot time
/// every candidate, those are kept before the ones merely nearest the base.
pub fn measure_hinted(
    target: Target,
    base: Plan,
    hints: &[Plan],
    budget: &(dyn Fn(f64) -> f64 + Sync),
) -> Measured {
    measure_carried(target, base, hints, &[], budget)
}

/// [`measure_hinted`] carrying on an earlier search of the same shape:
/// the candidates that do what a plan of `screened` does (timed by that
/// search) are left out, but for the base and the hints (the earlier
/// search's choice among them).
pub fn measure_carried(
    target: Target,
    base: Plan,
    hints: &[Plan],
    screened: &[Plan],
    budget: &(dyn Fn(f64) -> f64 + Sync),
) -> Measured {
    let shape = target.shape();
    let all = candidates(base, &shape);
    let cands = super::unscreened(all.clone(), &shape, screened);
    let (cands, hinted) = super::with_hints(cands, &shape, hints);
    // The shape's candidates timed before and not again now (only those
    // were taken out; the hints may have put some back).
    let carried = all
        .iter()
        .filter(|p| !cands.iter().any(|c| c.effect(&shape) == p.effect(&shape)))
        .count();
    let mut m = measure_among(target, cands, budget);
    m.hinted = hinted.min(m.candidates.len() - 1);
    m.carried = carried;
    m
}

/// [`measure`] over the given candidates (the base first, then nearest
/// first: those at the end are left out when the budget is short).
pub fn measure_among(
    target: Target,
    mut cands: Vec<Plan>,
    budget: &(dyn Fn(f64) -> f64 + Sync),
) -> Measured {
    assert!(!cands.is_empty(), "at least the base");
    let base = cands[0];
    let t0 = Instant::now();
    let cpu0 = cpu_reading();
    let Target {
        model,
        opt,
        rows,
        train,
        threads,
    } = target;
    let n = train.len();
    let rows = rows.clamp(1, n.max(1));
    let mut model = model.clone();
    let mut optim = Optimizer::new(opt.clone(), &model.param_shapes());
    // A fixed shuffle (timing only: no run's random stream is touched).
    let mut perm: Vec<u32> = (0..n as u32).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0x91a2));
    let mut spaces: BTreeMap<usize, Workspace<f32>> = BTreeMap::new();
    let data = train.images.view();
    let pixels = train.pixels.as_ref().map(|p| p.view());
    let labels = &train.labels[..];
    let full = rows == n;
    let blocks = threads.blocks();
    let mut left_out = 0;
    let mut step_s = 0.0;
    let mut apart = None;
    let outcome = threads.install(|| {
        let mut next = 0usize;
        let mut step = |plan: Plan, k: usize, spaces: &mut BTreeMap<usize, Workspace<f32>>| {
            let ws = spaces
                .entry(plan.pad_bytes)
                .or_insert_with(|| Workspace::with_plan(&model.spec, rows, blocks, plan));
            ws.set_plan(plan);
            for _ in 0..k {
                let sel = if full {
                    Rows::Range(0, n)
                } else {
                    if next + rows > n {
                        next = 0;
                    }
                    next += rows;
                    Rows::Indices(&perm[next - rows..next])
                };
                optim.begin_step();
                model.train_step(
                    ws,
                    &Batch {
                        data,
                        pixels,
                        labels,
                        rows: sel,
                        augment: None,
                        key: 0,
                    },
                    Update::Apply(&optim),
                );
            }
        };
        // The base warms up: its first step touches the data, the weights
        // and the buffers, and a core that sat idle (while the data
        // loaded on one) takes tens of milliseconds to come up to speed.
        // It runs for WARM_S (two steps at least); the median of its last
        // three steps estimates a step, which sizes the budget and the
        // candidate list.
        let t = Instant::now();
        let mut times = Vec::new();
        while times.len() < 2 || t.elapsed().as_secs_f64() < WARM_S {
            let s = Instant::now();
            step(base, 1, &mut spaces);
            times.push(s.elapsed().as_secs_f64());
        }
        let last = &times[times.len().saturating_sub(3).max(1)..];
        let est = crate::workloads::quantile(last, 0.5)
            .unwrap_or(0.0)
            .max(1e-9);
        step_s = est;
        let limit = budget(est);
        let spent = t.elapsed().as_secs_f64();
        // As many candidates, nearest the base first, as a whole search
        // at this step's pace fits in what is left.
        let k = super::search::steps_per_sample(est);
        let fits = |n: usize| steps_of_search(n, k) as f64 * est <= limit - spent;
        let fit = (1..=cands.len()).rev().find(|&n| fits(n)).unwrap_or(1);
        left_out = cands.len() - fit;
        cands.truncate(fit);
        if cands.len() == 1 {
            return super::search::Outcome::unmeasured(1);
        }
        let clock = Wall::new();
        let cands = &cands;
        let mut outcome = search(cands.len(), &|_| limit - spent, &clock, &mut |i, k| {
            step(cands[i], k, &mut spaces)
        });
        // A plan that threads the products by OpenBLAS won against a base
        // that does not: time the two apart, after OpenBLAS's workers have
        // gone to sleep (see `Apart`).
        let c = outcome.chosen;
        if c != 0 && cands[c].blas_threads && !cands[0].blas_threads {
            // As many samples each as what is left allows once quiet, from
            // APART_SAMPLES to APART_SAMPLES_MAX (an untimed step each first).
            let sample_s = (2 * k) as f64 * est;
            // The base first warms up again for WARM_S: the cores slept.
            let warm = WARM_S.max(2.0 * est);
            let need = APART_SAMPLES as f64 * sample_s + warm + 2.0 * est;
            let left = || limit - t.elapsed().as_secs_f64();
            let quiet = left() > need && wait_for_quiet(left() - need);
            let n = (((left() - warm - 2.0 * est) / sample_s).floor().max(0.0) as usize)
                .min(APART_SAMPLES_MAX);
            let mut time = |plan: Plan, warm_s: f64| {
                let w = Instant::now();
                step(plan, 1, &mut spaces);
                while w.elapsed().as_secs_f64() < warm_s {
                    step(plan, 1, &mut spaces);
                }
                let per_step: Vec<f64> = (0..n)
                    .map(|_| {
                        let s = Instant::now();
                        step(plan, k, &mut spaces);
                        s.elapsed().as_secs_f64() / k as f64
                    })
                    .collect();
                crate::workloads::quantile(&per_step, 0.5).unwrap_or(f64::INFINITY)
            };
            let check = if quiet && n >= APART_SAMPLES {
                let base = time(cands[0], warm);
                Apart::Timed(base / time(cands[c], 0.0))
            } else {
                Apart::NoRoom
            };
            if !matches!(check, Apart::Timed(r) if r * (1.0 - super::search::TIE) > 1.0) {
                outcome.chosen = 0;
            }
            apart = Some(check);
        }
        outcome
    });
    Measured {
        candidates: cands,
        outcome,
        seconds: t0.elapsed().as_secs_f64(),
        left_out,
        step_s,
        hinted: 0,
        carried: 0,
        apart,
        busy: cpu0
            .zip(cpu_reading())
            .and_then(|(a, b)| Busy::between(&a, &b)),
    }
}

/// The CPU counters of the CPUs this process may run on (`/proc/stat`)
/// with this process's own CPU time, at one moment: two readings give
/// [`Busy`].
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    /// The counters.
    pub stat: StatCounters,
    /// This process's CPU seconds so far (user and system, every thread).
    pub own_s: f64,
    /// Clock ticks a second of `/proc/stat` (`USER_HZ`).
    pub hz: f64,
}

/// Clock ticks of a set of CPUs together, from `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatCounters {
    /// Busy: all but idle and iowait (user, nice, system, irq, softirq and
    /// steal), as NumPy's reference counts a machine's busy time.
    pub busy: u64,
    /// Stolen by the hypervisor (the vCPU wanted to run and did not).
    pub steal: u64,
    /// All (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// CPUs the counters cover (the `cpuN` lines).
    pub cpus: usize,
}

/// A reading now; `None` where the system has no `/proc/stat` (not Linux).
pub fn cpu_reading() -> Option<CpuReading> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let stat = stat_counters(&text, allowed_cpus().as_deref())?;
    // SAFETY: sysconf only reads.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(CpuReading {
        stat,
        own_s: own_cpu_seconds()?,
        hz: (hz > 0).then_some(hz as f64)?,
    })
}

/// [`StatCounters`] from the text of `/proc/stat`: the `cpuN` lines of
/// the CPUs in `allowed` summed (this process's affinity: under `taskset`
/// or a cpuset, the load on the other CPUs takes nothing from it), else,
/// where `allowed` is `None` or names no CPU the file lists, the first
/// line (all CPUs). `None` where the lines are not the 8-counter lines of
/// Linux 2.6.11 and later.
pub fn stat_counters(text: &str, allowed: Option<&[usize]>) -> Option<StatCounters> {
    // The 8 counters of a line that starts with `name`.
    let counters = |line: &str| -> Option<(String, [u64; 8])> {
        let mut fields = line.split_whitespace();
        let name = fields.next()?.to_string();
        let t: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        Some((name, t.try_into().ok()?))
    };
    let of = |t: [u64; 8], cpus: usize| {
        let total: u64 = t.iter().sum();
        StatCounters {
            busy: total - t[3] - t[4],
            steal: t[7],
            total,
            cpus: cpus.max(1),
        }
    };
    let mut lines = text.lines();
    let (name, all) = counters(lines.next()?)?;
    if name != "cpu" {
        return None;
    }
    let mut listed = 0;
    let mut sum = [0u64; 8];
    let mut mine = 0;
    for line in lines.take_while(|l| l.starts_with("cpu")) {
        let (name, t) = counters(line)?;
        let Some(n) = name
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        listed += 1;
        if allowed.is_some_and(|a| a.contains(&n)) {
            mine += 1;
            for (s, v) in sum.iter_mut().zip(t) {
                *s += v;
            }
        }
    }
    Some(if mine > 0 {
        of(sum, mine)
    } else {
        of(all, listed)
    })
}

/// The CPUs this process may run on (its affinity mask); `None` where the
/// system does not say.
pub fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: sched_getaffinity writes the set it is given, of the size
    // given; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

/// How busy the machine was with work other than this process's while
/// the planner measured: other programs, and the hypervisor's steal.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Busy {
    /// CPUs this process may run on (all of the machine's, unless an
    /// affinity mask says otherwise).
    pub cpus: usize,
    /// Cores' worth of CPU time other programs and the host took, on
    /// average (NumPy's reference calls it `other_cores`).
    pub others: f64,
    /// The share of all CPU time the hypervisor took (steal).
    pub steal: f64,
}

/// The least number of clock ticks (of all CPUs together) two readings
/// must span to say anything: a fifth of a second of one CPU at Linux's
/// usual 100 ticks a second.
pub const MIN_TICKS: u64 = 20;

impl Busy {
    /// Between two readings; `None` when they span fewer than
    /// [`MIN_TICKS`] or a counter went back.
    pub fn between(a: &CpuReading, b: &CpuReading) -> Option<Busy> {
        let total = b.stat.total.checked_sub(a.stat.total)?;
        let busy = b.stat.busy.checked_sub(a.stat.busy)?;
        let steal = b.stat.steal.checked_sub(a.stat.steal)?;
        if total < MIN_TICKS || b.own_s < a.own_s {
            return None;
        }
        let cpus = b.stat.cpus;
        // Ticks of one CPU meanwhile: the readings' wall time.
        let per_cpu = total as f64 / cpus as f64;
        let own = (b.own_s - a.own_s) * b.hz;
        Some(Busy {
            cpus,
            others: ((busy as f64 - own) / per_cpu).clamp(0.0, cpus as f64),
            steal: steal as f64 / total as f64,
        })
    }

    /// "0.51 of the 2 CPUs this process may use": what the others took.
    pub fn taken(&self) -> String {
        format!(
            "{:.2} of the {} CPU{} this process may use",
            self.others,
            self.cpus,
            if self.cpus == 1 { "" } else { "s" }
        )
    }

    /// "49% of the CPU time 2 threads wanted": [`Busy::short`] in words.
    pub fn lacked(&self, threads: usize) -> String {
        format!(
            "{:.0}% of the CPU time {threads} thread{} wanted",
            self.short(threads) * 100.0,
            if threads == 1 { "" } else { "s" }
        )
    }

    /// The share of the CPU time a run of `threads` threads wanted that
    /// was not there for it: the cores it lacked (its threads, at most one
    /// per CPU, beyond the CPUs the others left free) over those, 0 to 1.
    /// On two CPUs a two-thread run lacks what the others took; on sixteen
    /// the others must take more than fourteen before it lacks anything;
    /// four threads on two CPUs want the two (what they lack beyond that
    /// they lack on a quiet machine too).
    pub fn short(&self, threads: usize) -> f64 {
        let wanted = threads.clamp(1, self.cpus.max(1)) as f64;
        let free = self.cpus as f64 - self.others;
        ((wanted - free) / wanted).clamp(0.0, 1.0)
    }
}

/// What the planner's tests time: a small network on synthetic data, a
/// two-thread pool.
#[cfg(test)]
pub(crate) struct Fixture {
    data: Dataset,
    threads: Threads,
    model: Mlp<f32>,
    opt: OptConfig,
}

#[cfg(test)]
impl Fixture {
    /// `layers` (softmax output) trained by `opt` on `n` synthetic samples.
    pub fn new(layers: &str, opt: OptConfig, n: usize) -> Self {
        use crate::nn::{Init, Loss, NetSpec};
        let spec = NetSpec::parse(layers).unwrap();
        Self {
            data: crate::workloads::synthetic(n, 3),
            threads: Threads::new(2, crate::parallel::GemmThreading::Split).unwrap(),
            model: Mlp::new(spec, Loss::CrossEntropy, Init::He, 1).unwrap(),
            opt,
        }
    }
    /// Its steps of `rows` rows.
    pub fn target(&self, rows: usize) -> Target<'_> {
        Target {
            model: &self.model,
            opt: &self.opt,
            rows,
            train: &self.data,
            threads: &self.threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptKind;

    #[test]
    fn busy_is_read_from_proc_stat_and_this_process() {
        let stat = "cpu  100 5 50 800 10 1 2 32 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 10 0 0 50 0 0 0 40 0 0\nintr 5\n";
        let c = stat_counters(stat, None).unwrap();
        assert_eq!(
            c,
            StatCounters {
                busy: 1000 - 800 - 10,
                steal: 32,
                total: 1000,
                cpus: 2
            }
        );
        // Allowed only on CPU 1 (taskset): its line alone.
        assert_eq!(
            stat_counters(stat, Some(&[1])).unwrap(),
            StatCounters {
                busy: 50,
                steal: 40,
                total: 100,
                cpus: 1
            }
        );
        assert_eq!(stat_counters(stat, Some(&[0, 1])).unwrap().cpus, 2);
        assert_eq!(
            stat_counters(stat, Some(&[7])),
            Some(c),
            "no listed CPU allowed: all of them"
        );
        assert_eq!(stat_counters("cpu0 1 2 3 4 5 6 7 8\n", None), None);
        assert_eq!(
            stat_counters("cpu  1 2 3\n", None),
            None,
            "an old kernel without steal"
        );
        assert_eq!(stat_counters("cpu  1 2 x 4 5 6 7 8\n", None), None);
        assert_eq!(stat_counters("", None), None);

        // Two CPUs for 1 s at 100 ticks a second: 200 ticks, 150 of them
        // busy, 20 stolen; this process used 1.1 s of CPU (110 ticks).
        let at = |busy, steal, total, own_s| CpuReading {
            stat: StatCounters {
                busy,
                steal,
                total,
                cpus: 2,
            },
            own_s,
            hz: 100.0,
        };
        let b = Busy::between(&at(0, 0, 0, 5.0), &at(150, 20, 200, 6.1)).unwrap();
        assert_eq!(b.cpus, 2);
        assert!((b.others - 0.4).abs() < 1e-9, "{b:?}");
        assert!((b.steal - 0.1).abs() < 1e-9, "{b:?}");
        // A two-thread run lacked 0.4 of its 2 cores; a one-thread run
        // had a CPU to itself.
        assert!((b.short(2) - 0.2).abs() < 1e-9);
        assert_eq!(b.short(1), 0.0);
        // A quiet machine; a busy one on 16 CPUs leaves a 2-thread run
        // alone until it takes more than 14.
        let quiet = Busy::between(&at(0, 0, 0, 0.0), &at(200, 0, 200, 2.0)).unwrap();
        assert_eq!((quiet.others, quiet.short(2)), (0.0, 0.0));
        let sixteen = |others| Busy {
            cpus: 16,
            others,
            steal: 0.0,
        };
        assert_eq!(sixteen(13.0).short(2), 0.0);
        assert!((sixteen(15.0).short(2) - 0.5).abs() < 1e-9);
        assert_eq!(sixteen(16.0).short(2), 1.0);
        // More threads than CPUs: they want the CPUs there are.
        assert_eq!(quiet.short(4), 0.0);
        assert!((b.short(4) - 0.2).abs() < 1e-9, "as two threads");
        assert_eq!(
            Busy::between(&at(0, 0, 0, 0.0), &at(10, 0, 10, 0.1)),
            None,
            "too few ticks"
        );
        assert_eq!(
            Busy::between(&at(150, 20, 200, 6.1), &at(0, 0, 0, 5.0)),
            None,
            "counters went back"
        );
        if std::path::Path::new("/proc/stat").exists() {
            let r = cpu_reading().unwrap();
            assert!(r.stat.steal <= r.stat.busy && r.stat.busy <= r.stat.total);
            assert!(r.stat.cpus >= 1 && r.own_s > 0.0 && r.hz > 0.0);
            let allowed = allowed_cpus().unwrap();
            assert!(r.stat.cpus <= allowed.len(), "{allowed:?} {r:?}");
        }
    }

    #[test]
    fn a_check_apart_sets_the_speedup_and_no_room_decides_nothing() {
        let blas = Plan {
            blas_threads: true,
            ..Plan::default()
        };
        let mut outcome = Outcome::unmeasured(2);
        // The OpenBLAS-threaded plan won 3 rounds at twice the speed.
        (outcome.challenger, outcome.paired, outcome.last_s) = (1, vec![0.5; 3], 1.0);
        outcome.chosen = 1;
        let mut m = Measured {
            candidates: vec![Plan::default(), blas],
            outcome,
            seconds: 1.0,
            left_out: 0,
            step_s: 0.01,
            hinted: 0,
            carried: 0,
            busy: None,
            apart: None,
        };
        assert!(m.decided());
        assert_eq!(m.speedup(), 2.0, "round by round");
        m.apart = Some(Apart::Timed(1.05));
        assert_eq!((m.speedup(), m.plan()), (1.05, blas), "as timed apart");
        m.apart = Some(Apart::NoRoom);
        m.outcome.chosen = 0;
        assert!(!m.decided() && m.undecided(), "no room: nothing decided");
        assert_eq!((m.speedup(), m.plan()), (1.0, Plan::default()));
    }

    #[test]
    fn a_process_with_a_spinning_thread_is_not_quiet() {
        if own_cpu_seconds().is_none() {
            return;
        }
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
            let t = Instant::now();
            assert!(!wait_for_quiet(0.1), "a thread spins");
            let took = t.elapsed().as_secs_f64();
            assert!((0.09..0.5).contains(&took), "{took}");
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert!(!wait_for_quiet(0.0), "no time to look");
    }

    #[test]
    fn tune_budgets_fit_the_whole_search_of_long_steps() {
        assert_eq!(tune_budget(1e-3, 15), 5.0, "short steps: 5 s");
        let steps = 2 + crate::plan::search::steps_of_long_search(6);
        assert!((tune_budget(0.5, 6) - 0.5 * steps as f64 * 1.1).abs() < 1e-9);
        assert!(tune_budget(0.5, 6) > 5.0);
        assert_eq!(tune_budget(100.0, 6), 600.0, "at most 600 s");
    }

    #[test]
    fn run_budgets_grow_with_long_runs_only() {
        let b = |run_s: f64| run_budget(run_s / 1000.0, 1000);
        assert_eq!(b(1.0), MIN_RUN_BUDGET, "a short run: the floor");
        assert!((b(15.0) - 0.75).abs() < 1e-9, "5% of a 15 s run");
        assert_eq!(b(30.0), 0.9, "under a second");
        assert_eq!(b(40.0), 0.9, "2% of 40 s is less than 0.9 s");
        assert!((b(100.0) - 2.0).abs() < 1e-9, "2% of a 100 s run");
        assert_eq!(b(1000.0), MAX_RUN_BUDGET);
    }

    #[test]
    fn measures_the_nearest_candidates_within_the_budget_and_leaves_the_model_alone() {
        let f = Fixture::new(
            "784,relu,64,relu,32,softmax,10",
            OptConfig::new(OptKind::Adam, 1e-3),
            600,
        );
        let target = f.target(8);
        let (model, before) = (target.model, target.model.clone());
        let m = measure(target, Plan::default(), &|_| 0.3);
        // (How many are timed depends on the machine's pace: the
        // candidates the shape has do not.)
        assert!(m.shape_candidates() > 1, "batch 8 on 2 threads has choices");
        assert_eq!(m.candidates[0], Plan::default());
        assert!(m.seconds < 1.0, "{}", m.seconds);
        // The candidates timed are the nearest the base: a screen that
        // does not fit beside the last pair's reserve times the first few.
        // (How many fit 0.3 s depends on the machine: under an emulator
        // the warm-up alone takes it, and `decided` says so.)
        let timed = m.outcome.timings.iter().filter(|t| t.levels >= 1).count();
        assert!(
            m.outcome.timings[..timed].iter().all(|t| t.levels >= 1),
            "{:?}",
            m.outcome.timings
        );
        assert!(!m.decided() || timed >= 2);
        assert!(m.decided() || m.plan() == Plan::default());
        let w = |m: &Mlp<f32>| m.layers.iter().map(|l| l.w.sum()).collect::<Vec<_>>();
        assert_eq!(w(model), w(&before), "the run's model is not touched");
        // A budget too small for one step each keeps the nearest candidates.
        let m = measure(target, Plan::default(), &|e| e * 3.5);
        assert_eq!(m.candidates.len(), 1, "{:?}", m.candidates);
        assert!(m.left_out > 0);
        assert_eq!(m.plan(), Plan::default());
    }
}
