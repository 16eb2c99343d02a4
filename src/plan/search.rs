//! The planner's search: which of several candidates runs a step fastest,
//! found by timing them in turn within a time budget.
//!
//! A shared machine's other tenants only ever add time, and they come and
//! go within seconds, so the search
//! - warms every candidate up with one step (first touches of its buffers,
//!   caches), whose time also estimates a step's;
//! - times *samples*: `k` consecutive steps of one candidate, `k` chosen so
//!   that a sample lasts at least [`MIN_SAMPLE_S`], after one untimed step
//!   (switching candidates leaves the previous one's buffers in the
//!   caches); a sample's figure is its time over `k`;
//! - interleaves: in each round every surviving candidate takes one sample,
//!   in an order rotated from round to round, so a slow spell of the machine
//!   falls on each candidate in turn;
//! - ranks by the fastest sample (a fast quantile: the least disturbed);
//! - halves: after each level the slower half is dropped (the base plan,
//!   candidate 0, always stays, in place of the slowest kept), until two
//!   remain, which get a last level of [`ROUNDS`] to [`FINAL_ROUNDS`]
//!   rounds (as many as half the budget left allows); levels grow from one round (a screen:
//!   a candidate twice as slow goes at once, one a disturbance slowed
//!   survives in the faster half) to [`ROUNDS`] rounds;
//! - stays in budget: a level that would not fit in what is left of the
//!   budget is shortened to the rounds that fit, or not started;
//! - keeps the base unless a candidate beats it by more than [`TIE`]: a new
//!   plan changes the last bits of the results, so it must earn its keep.
//!
//! The clock is a parameter ([`Clock`]), so the tests drive the search with
//! a fake one whose candidates have known speeds and noise.

use std::time::Instant;

/// Rounds per level from the second level on (the first has one, the
/// second two).
pub const ROUNDS: usize = 3;

/// Rounds of the last level (the last two candidates), at most.
pub const FINAL_ROUNDS: usize = 8;

/// Rounds of level `level` (0 first).
fn rounds_of(level: usize) -> usize {
    (level + 1).min(ROUNDS)
}

/// A sample lasts at least this long (seconds): timer resolution and the
/// shortest disturbances are small against it.
pub const MIN_SAMPLE_S: f64 = 0.002;

/// A candidate replaces the base plan only when its fastest sample is more
/// than this fraction faster than the base's.
pub const TIE: f64 = 0.01;

/// A source of time in seconds.
pub trait Clock {
    /// Seconds since some fixed origin.
    fn seconds(&self) -> f64;
}

/// The real clock.
pub struct Wall(Instant);

impl Wall {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl Default for Wall {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for Wall {
    fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// One candidate's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    /// Seconds per step of each sample, in the order taken.
    pub samples: Vec<f64>,
    /// Levels the candidate took part in (0: only warmed up).
    pub levels: usize,
}

impl Timing {
    /// The fastest sample (seconds per step; infinite without samples).
    pub fn best(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }
    /// The median sample (seconds per step), if any.
    pub fn median(&self) -> Option<f64> {
        crate::workloads::quantile(&self.samples, 0.5)
    }
}

/// What a search found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Per candidate, in the order given.
    pub timings: Vec<Timing>,
    /// The index of the chosen candidate (0: the base).
    pub chosen: usize,
    /// Steps per sample.
    pub steps_per_sample: usize,
    /// Steps run in all, the warm-up included.
    pub steps: usize,
    /// Seconds the search took.
    pub seconds: f64,
}

impl Outcome {
    /// Nothing timed: the base (candidate 0) of `n`.
    pub fn unmeasured(n: usize) -> Self {
        Self {
            timings: vec![
                Timing {
                    samples: Vec::new(),
                    levels: 0,
                };
                n
            ],
            chosen: 0,
            steps_per_sample: 0,
            steps: 0,
            seconds: 0.0,
        }
    }

    /// How much faster the chosen candidate's fastest sample is than the
    /// base's (1.0 when the base is chosen, or nothing was timed).
    pub fn speedup(&self) -> f64 {
        let (b, c) = (self.timings[0].best(), self.timings[self.chosen].best());
        if b.is_finite() && c.is_finite() && c > 0.0 {
            b / c
        } else {
            1.0
        }
    }
}

/// Steps a full search of `n` candidates runs when a step is long (one
/// step per sample): the warm-up, then every level as [`search`] plays it
/// (each sample an untimed step and a timed one), the last pair with
/// [`ROUNDS`] rounds.
pub fn steps_of_long_search(n: usize) -> usize {
    let (mut alive, mut level, mut steps) = (n, 0, n);
    while alive > 1 {
        let rounds = if alive <= 2 { ROUNDS } else { rounds_of(level) };
        steps += alive * rounds * 2;
        if alive <= 2 {
            break;
        }
        alive = alive.div_ceil(2).max(2);
        level += 1;
    }
    steps
}

/// Times `n` candidates with `step(i, k)`, which runs `k` steps of
/// candidate `i`, and chooses one. `budget` maps the estimated seconds of a
/// step to the seconds the search may take.
pub fn search(
    n: usize,
    budget: &dyn Fn(f64) -> f64,
    clock: &dyn Clock,
    step: &mut dyn FnMut(usize, usize),
) -> Outcome {
    assert!(n > 0, "at least one candidate");
    let start = clock.seconds();
    let mut timings = vec![
        Timing {
            samples: Vec::new(),
            levels: 0,
        };
        n
    ];
    let mut steps = 0;
    // Warm-up: one step each; the median estimates a step.
    let mut warm = Vec::with_capacity(n);
    for i in 0..n {
        let t = clock.seconds();
        step(i, 1);
        warm.push(clock.seconds() - t);
    }
    steps += n;
    let est = crate::workloads::quantile(&warm, 0.5)
        .unwrap_or(0.0)
        .max(1e-9);
    let k = ((MIN_SAMPLE_S / est).ceil() as usize).max(1);
    let budget = budget(est);
    let mut alive: Vec<usize> = (0..n).collect();
    // Seconds a sample takes, its untimed step included.
    let mut per_sample = est * (k + 1) as f64;
    let mut rotation = 0;
    let mut level = 0;
    while alive.len() > 1 {
        let left = budget - (clock.seconds() - start);
        let cost = |r: usize| (alive.len() * r) as f64 * per_sample;
        // The last pair gets at least ROUNDS rounds, and up to FINAL_ROUNDS
        // while they take no more than half of what is left.
        let last = alive.len() <= 2;
        let mut rounds = if last {
            ((0.5 * left / cost(1)).floor() as usize).clamp(ROUNDS, FINAL_ROUNDS)
        } else {
            rounds_of(level)
        };
        if cost(rounds) > left {
            // Shortened to fit, or not started.
            rounds = (left / cost(1)).floor() as usize;
            if rounds == 0 {
                break;
            }
        }
        let t_level = clock.seconds();
        for _ in 0..rounds {
            for j in 0..alive.len() {
                let i = alive[(j + rotation) % alive.len()];
                // One untimed step first: the candidate before this one
                // left its own buffers in the caches.
                step(i, 1);
                let t = clock.seconds();
                step(i, k);
                timings[i].samples.push((clock.seconds() - t) / k as f64);
            }
            rotation += 1;
            steps += alive.len() * (k + 1);
        }
        for &i in &alive {
            timings[i].levels += 1;
        }
        per_sample = (clock.seconds() - t_level) / (alive.len() * rounds) as f64;
        level += 1;
        if alive.len() <= 2 {
            break;
        }
        // Keep the faster half, the base among them.
        let mut ranked = alive.clone();
        ranked.sort_by(|&a, &b| timings[a].best().total_cmp(&timings[b].best()));
        let keep = alive.len().div_ceil(2).max(2);
        ranked.truncate(keep);
        if !ranked.contains(&0) {
            ranked[keep - 1] = 0;
        }
        ranked.sort_unstable();
        alive = ranked;
    }
    let fastest = alive
        .iter()
        .copied()
        .min_by(|&a, &b| timings[a].best().total_cmp(&timings[b].best()))
        .unwrap_or(0);
    let chosen = if timings[fastest].best() < timings[0].best() * (1.0 - TIE) {
        fastest
    } else {
        0
    };
    Outcome {
        timings,
        chosen,
        steps_per_sample: k,
        steps,
        seconds: clock.seconds() - start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that moves only when a fake step says so.
    struct Fake(Cell<f64>);
    impl Clock for Fake {
        fn seconds(&self) -> f64 {
            self.0.get()
        }
    }

    /// Candidates with the given step costs (seconds); every `spike`th
    /// sample is slowed by `factor` (a noisy neighbour), and each
    /// candidate's first step costs 3x (cold caches).
    fn run(costs: &[f64], spike: usize, factor: f64, budget: f64) -> (Outcome, f64) {
        let clock = Fake(Cell::new(100.0));
        let mut calls = 0;
        let mut warmed = vec![false; costs.len()];
        let mut step = |i: usize, k: usize| {
            calls += 1;
            let mut t = costs[i] * k as f64;
            if !warmed[i] {
                warmed[i] = true;
                t *= 3.0;
            }
            if spike > 0 && calls % spike == 0 {
                t *= factor;
            }
            clock.0.set(clock.0.get() + t);
        };
        let o = search(costs.len(), &|_| budget, &clock, &mut step);
        let spent = clock.seconds() - 100.0;
        (o, spent)
    }

    #[test]
    fn finds_the_fastest_through_noise() {
        // The fastest is 8% faster than the base; every third sample of
        // the machine is 40% slower.
        let costs = [1e-3, 1.2e-3, 0.92e-3, 1.5e-3, 0.97e-3, 2e-3, 1.1e-3];
        let (o, spent) = run(&costs, 3, 1.4, 1.0);
        assert_eq!(o.chosen, 2, "{o:?}");
        assert!((o.speedup() - 1.0 / 0.92).abs() < 1e-9, "{}", o.speedup());
        assert_eq!(
            o.steps_per_sample, 1,
            "3 ms warm-up steps: one step per sample"
        );
        assert!(spent <= 1.0 && (o.seconds - spent).abs() < 1e-12);
        // The slowest went out after the first level; the last pair ran
        // every level.
        assert_eq!(o.timings[5].levels, 1);
        assert!(o.timings[2].levels >= 3, "{o:?}");
        assert!(o.timings.iter().all(|t| t.levels >= 1));
    }

    #[test]
    fn a_budget_of_steps_of_long_search_plays_every_level() {
        // One-second steps, cold or not: the budget the count gives (and
        // no more) lets every candidate take a sample and the last pair
        // its full last level.
        let clock = Fake(Cell::new(0.0));
        for n in [2, 3, 6, 15] {
            let mut step = |_: usize, k: usize| clock.0.set(clock.0.get() + k as f64);
            let budget = steps_of_long_search(n) as f64;
            let o = search(n, &|_| budget, &clock, &mut step);
            assert_eq!(o.steps, steps_of_long_search(n), "n={n}");
            assert!(o.timings.iter().all(|t| !t.samples.is_empty()), "n={n}");
            let last = o
                .timings
                .iter()
                .filter(|t| t.samples.len() >= ROUNDS)
                .count();
            assert!(last >= 2, "n={n}: {o:?}");
            // A step less, and the last level is cut short.
            let o = search(n, &|_| budget - 1.0, &clock, &mut step);
            assert!(o.steps < steps_of_long_search(n), "n={n}");
        }
    }

    #[test]
    fn the_base_stays_unless_clearly_beaten() {
        // 0.5% faster is within the tie margin.
        let (o, _) = run(&[1e-3, 0.995e-3, 1.3e-3], 0, 1.0, 1.0);
        assert_eq!(o.chosen, 0);
        assert_eq!(o.speedup(), 1.0);
        // The base is kept to the end even when it is among the slow half.
        let (o, _) = run(&[1.9e-3, 1e-3, 1.1e-3, 1.2e-3, 1.3e-3, 1.4e-3], 0, 1.0, 1.0);
        assert_eq!(o.chosen, 1);
        assert_eq!(o.timings[0].levels, o.timings[1].levels);
    }

    #[test]
    fn short_steps_are_sampled_in_groups_and_the_budget_holds() {
        // 10 us steps: 200 per 2 ms sample.
        let costs = [1e-5, 0.8e-5, 1.2e-5];
        let (o, spent) = run(&costs, 0, 1.0, 0.05);
        assert_eq!(o.steps_per_sample, 67, "ceil(2 ms / 30 us warm-up)");
        assert!(spent <= 0.05, "{spent}");
        assert_eq!(o.chosen, 1);
        // A budget too small for a full level shortens the first one; too
        // small for one round leaves the base.
        // (Warm-up 1.05 s; a round, untimed steps included, is estimated
        // at 1.8 s and takes 0.7 s.)
        let (o, spent) = run(&[0.1, 0.05, 0.2], 0, 1.0, 3.0);
        assert!(spent <= 3.0, "{spent}");
        assert_eq!(
            o.timings[1].samples.len(),
            3,
            "a one-round screen fits after the warm-up, then two rounds of the last two"
        );
        assert_eq!(
            o.timings[2].samples.len(),
            1,
            "the slowest went after the screen"
        );
        assert_eq!(o.chosen, 1);
        let (o, _) = run(&[0.1, 0.05], 0, 1.0, 0.5);
        assert_eq!((o.chosen, o.timings[1].samples.len()), (0, 0));
    }

    #[test]
    fn a_pair_gets_a_full_last_level() {
        // Two candidates go straight to the last level: at least ROUNDS
        // samples each, more while the budget allows (here all 8).
        let (o, spent) = run(&[1e-3, 0.9e-3], 0, 1.0, 1.0);
        assert_eq!(o.chosen, 1);
        assert_eq!(o.timings[0].samples.len(), FINAL_ROUNDS);
        assert!(spent <= 1.0);
        // A tight budget: ROUNDS if they fit.
        let (o, _) = run(&[1e-2, 0.9e-2], 0, 1.0, 0.45);
        assert_eq!(o.timings[1].samples.len(), ROUNDS, "{o:?}");
    }

    #[test]
    fn one_candidate_is_chosen_without_timing() {
        let (o, _) = run(&[1e-3], 0, 1.0, 1.0);
        assert_eq!((o.chosen, o.steps), (0, 1));
    }
}
