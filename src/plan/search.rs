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
//! - ranks for the halving by the fastest sample (a fast quantile: the
//!   least disturbed);
//! - halves: after each level the slower half is dropped (the base plan,
//!   candidate 0, always stays, in place of the slowest kept), until two
//!   remain, which get a last level of at least [`ROUNDS`] rounds (as many
//!   as half the budget left allows); levels grow from one round (a screen:
//!   a candidate twice as slow goes at once, one a disturbance slowed
//!   survives in the faster half) to [`ROUNDS`] rounds;
//! - stays in budget, keeping the last pair's [`ROUNDS`] rounds (and at
//!   least [`MIN_SWITCH_S`]) in reserve (each candidate's sample priced at
//!   its own median so far):
//!   a middle level that would not fit beside the reserve is skipped for
//!   the last pair at once (the base and the fastest other so far); a
//!   screen that would not fit times only the nearest candidates that do;
//!   a last level that would not fit is shortened to the rounds that fit;
//! - decides on the last pair's rounds, side by side: the base stays unless
//!   the other candidate's sample is faster than the base's in the same
//!   round by more than [`TIE`], in the median over at least [`ROUNDS`]
//!   rounds. A machine's slow and fast spells last longer than a round
//!   (four steps) but come and go within the search, so one candidate may
//!   get a fast spell's sample the other never did: fastest samples rank
//!   the screen, but a choice rests on rounds both played. A new plan
//!   changes the last bits of the results, so it must earn its keep.
//!   The last level takes half of what is left of the budget (at least
//!   [`ROUNDS`] rounds), and replaces the base only if it spanned
//!   [`MIN_SWITCH_S`]: a neighbour that takes a core for a tenth of a
//!   second makes a plan with fewer threads win every round of a short
//!   level (seen: T2 on two threads chose one block, 1.3x slower in whole
//!   epochs);
//! - says when it could not decide: a last pair cut below [`ROUNDS`] rounds
//!   by the budget, or one whose challenger won in too short a level,
//!   keeps the base, undecided ([`Outcome::decided`]), so that nothing is
//!   cached from it.
//!
//! The clock is a parameter ([`Clock`]), so the tests drive the search with
//! a fake one whose candidates have known speeds and noise.

use std::time::Instant;

/// Rounds per level from the second level on (the first has one, the
/// second two).
pub const ROUNDS: usize = 3;

/// Rounds of the last level (the last two candidates), at most.
pub const FINAL_ROUNDS: usize = 1000;

/// Seconds the last level must span for the base to be replaced: a
/// neighbour that takes a core for a fraction of a second makes a plan
/// with fewer threads look faster for as long, and a choice is cached for
/// good. A shorter last level can keep the base, never replace it.
pub const MIN_SWITCH_S: f64 = 0.25;

/// Rounds of level `level` (0 first).
fn rounds_of(level: usize) -> usize {
    (level + 1).min(ROUNDS)
}

/// A sample lasts at least this long (seconds): timer resolution and the
/// shortest disturbances are small against it.
pub const MIN_SAMPLE_S: f64 = 0.002;

/// A candidate replaces the base plan only when its samples are more than
/// this fraction faster than the base's, round by round (the median ratio).
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
    /// The candidate the base met in the last pair (0 when no last level
    /// ran).
    pub challenger: usize,
    /// The last pair's rounds: the challenger's sample over the base's,
    /// round by round (empty when no last level ran).
    pub paired: Vec<f64>,
    /// Seconds the last level took (0 when none ran).
    pub last_s: f64,
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
            challenger: 0,
            paired: Vec::new(),
            last_s: 0.0,
        }
    }

    /// Whether the search decided: one candidate (nothing to decide), or a
    /// last pair that played at least [`ROUNDS`] rounds side by side and
    /// either kept the base or, to replace it, spanned [`MIN_SWITCH_S`].
    pub fn decided(&self) -> bool {
        self.timings.len() == 1
            || (self.paired.len() >= ROUNDS
                && (!self.challenger_wins() || self.last_s >= MIN_SWITCH_S))
    }

    /// Whether the challenger beat the base round by round by more than
    /// [`TIE`].
    fn challenger_wins(&self) -> bool {
        self.paired_speedup() * (1.0 - TIE) > 1.0
    }

    /// The base's step over the challenger's, the median of their rounds
    /// (1.0 without a last level): above 1, the challenger is faster.
    pub fn paired_speedup(&self) -> f64 {
        crate::workloads::quantile(&self.paired, 0.5)
            .filter(|r| *r > 0.0)
            .map_or(1.0, |r| 1.0 / r)
    }

    /// How much faster the chosen plan's step is than the base's, round by
    /// round (1.0 when the base is chosen).
    pub fn speedup(&self) -> f64 {
        if self.chosen == 0 {
            1.0
        } else {
            self.paired_speedup()
        }
    }
}

/// Samples a full search of `n` candidates takes: every level as
/// [`search`] plays it, the last pair with [`ROUNDS`] rounds (the fewest
/// that decide).
fn samples_of_search(n: usize) -> usize {
    let (mut alive, mut level, mut samples) = (n, 0, 0);
    while alive > 1 {
        let rounds = if alive <= 2 { ROUNDS } else { rounds_of(level) };
        samples += alive * rounds;
        if alive <= 2 {
            break;
        }
        alive = alive.div_ceil(2).max(2);
        level += 1;
    }
    samples
}

/// Steps per sample for steps of `step_s` seconds: enough for
/// [`MIN_SAMPLE_S`].
pub fn steps_per_sample(step_s: f64) -> usize {
    ((MIN_SAMPLE_S / step_s.max(1e-9)).ceil() as usize).max(1)
}

/// Steps a full search of `n` candidates runs with `k` steps per sample:
/// the warm-up (one step each), then every level as [`search`] plays it
/// (each sample an untimed step and `k` timed ones), the last pair with
/// [`ROUNDS`] rounds.
pub fn steps_of_search(n: usize, k: usize) -> usize {
    if n <= 1 {
        return n;
    }
    n + samples_of_search(n) * (k + 1)
}

/// [`steps_of_search`] when a step is long (one step per sample).
pub fn steps_of_long_search(n: usize) -> usize {
    steps_of_search(n, 1)
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
    let k = steps_per_sample(est);
    let budget = budget(est);
    let mut alive: Vec<usize> = (0..n).collect();
    // Seconds a sample of a candidate takes, its untimed step included:
    // k + 1 times its median sample so far (else the warm-up's median
    // step), times how much longer the last level's samples took in all
    // than their own figures say (the untimed steps after a switch).
    let mut scale = 1.0;
    let sample_s = |t: &Timing, scale: f64| scale * (k + 1) as f64 * t.median().unwrap_or(est);
    let mut rotation = 0;
    let mut level = 0;
    let (mut challenger, mut paired, mut last_s) = (0, Vec::new(), 0.0);
    while alive.len() > 1 {
        let left = budget - (clock.seconds() - start);
        let round_s = |set: &[usize]| {
            set.iter()
                .map(|&i| sample_s(&timings[i], scale))
                .sum::<f64>()
        };
        if alive.len() > 2 {
            // The last pair's ROUNDS rounds, and at least MIN_SWITCH_S,
            // stay in reserve: the base and the fastest other so far (the
            // nearest, before any sample).
            let other = alive[1..]
                .iter()
                .copied()
                .min_by(|&a, &b| timings[a].best().total_cmp(&timings[b].best()))
                .unwrap_or(alive[1]);
            let reserve = (ROUNDS as f64 * round_s(&[0, other])).max(MIN_SWITCH_S);
            let fits = |set: &[usize]| rounds_of(level) as f64 * round_s(set) + reserve <= left;
            if !fits(&alive) {
                if level > 0 {
                    // Ranked already: straight to the last pair.
                    alive = vec![0, other];
                } else {
                    // No ranking yet: the nearest candidates that fit.
                    while alive.len() > 2 && !fits(&alive) {
                        alive.pop();
                    }
                }
            }
        }
        // The last pair gets at least ROUNDS rounds, then goes on, a round
        // at a time while one fits, until it has spanned half of what is
        // left (at least MIN_SWITCH_S where the budget allows): the longer
        // it spans, the less a passing disturbance decides.
        let last = alive.len() <= 2;
        let one = round_s(&alive);
        let mut rounds = if last { ROUNDS } else { rounds_of(level) };
        if rounds as f64 * one > left {
            // Shortened to fit, or not started.
            rounds = (left / one).floor() as usize;
            if rounds == 0 {
                break;
            }
        }
        let span = if last {
            (0.5 * left).max(MIN_SWITCH_S.min(left))
        } else {
            0.0
        };
        let t_level = clock.seconds();
        let mut played = 0;
        loop {
            let t_round = clock.seconds();
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
            played += 1;
            let now = clock.seconds();
            let more = last
                && played < FINAL_ROUNDS
                && now - t_level < span
                && now - t_round <= budget - (now - start);
            if played >= rounds && !more {
                break;
            }
        }
        let rounds = played;
        for &i in &alive {
            timings[i].levels += 1;
        }
        let figures: f64 = alive
            .iter()
            .flat_map(|&i| &timings[i].samples[timings[i].samples.len() - rounds..])
            .sum();
        scale = (clock.seconds() - t_level) / ((k + 1) as f64 * figures).max(1e-12);
        level += 1;
        if alive.len() <= 2 {
            // The last pair (the base, candidate 0, and one other): this
            // level's rounds side by side.
            let (base, other) = (&timings[alive[0]].samples, &timings[alive[1]].samples);
            let (b, o) = (&base[base.len() - rounds..], &other[other.len() - rounds..]);
            paired = o.iter().zip(b).map(|(o, b)| o / b).collect();
            challenger = alive[1];
            last_s = clock.seconds() - t_level;
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
    let mut outcome = Outcome {
        timings,
        chosen: 0,
        steps_per_sample: k,
        steps,
        seconds: clock.seconds() - start,
        challenger,
        paired,
        last_s,
    };
    if outcome.decided() && outcome.challenger_wins() {
        outcome.chosen = challenger;
    }
    outcome
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

    /// Candidates with the given step costs (seconds); one call in `spike`
    /// (chosen by a fixed hash of the call's number: no period for the
    /// rounds to fall into) is slowed by `factor` (a noisy neighbour), and
    /// each candidate's first step costs 3x (cold caches).
    fn run(costs: &[f64], spike: u64, factor: f64, budget: f64) -> (Outcome, f64) {
        let clock = Fake(Cell::new(100.0));
        let mut calls = 0u64;
        let mut warmed = vec![false; costs.len()];
        let mut step = |i: usize, k: usize| {
            calls += 1;
            let mut t = costs[i] * k as f64;
            if !warmed[i] {
                warmed[i] = true;
                t *= 3.0;
            }
            if spike > 0 && mix(calls) % spike == 0 {
                t *= factor;
            }
            clock.0.set(clock.0.get() + t);
        };
        let o = search(costs.len(), &|_| budget, &clock, &mut step);
        let spent = clock.seconds() - 100.0;
        (o, spent)
    }

    /// SplitMix64's finalizer: a fixed, well-mixed hash.
    fn mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
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
        // The other wins its rounds, but a last level inside 0.05 s is too
        // short to replace the base: undecided.
        assert_eq!((o.challenger, o.chosen), (1, 0));
        assert!(o.paired.len() >= ROUNDS && o.last_s < MIN_SWITCH_S);
        assert!(!o.decided());
        let (o, _) = run(&costs, 0, 1.0, 1.0);
        assert!(o.last_s >= MIN_SWITCH_S && o.decided());
        assert_eq!(o.chosen, 1);
        // A budget too small for the screen and the last pair's reserve
        // keeps the nearest two. (Warm-up 1.05 s from cold steps: a sample
        // is estimated at 0.6 s, the reserve at 3.6 s, and one round said
        // to fit; rounds take 0.3 s, so the last level goes on while one
        // fits, and decides.)
        let (o, spent) = run(&[0.1, 0.05, 0.2], 0, 1.0, 3.0);
        assert!(spent <= 3.0, "{spent}");
        assert!(o.timings[2].samples.is_empty(), "{o:?}");
        assert_eq!((o.challenger, o.paired.len()), (1, 4), "{o:?}");
        assert!(o.decided());
        assert_eq!(o.chosen, 1);
        let (o, _) = run(&[0.1, 0.05], 0, 1.0, 0.5);
        assert_eq!((o.chosen, o.timings[1].samples.len()), (0, 0));
        assert!(!o.decided());
    }

    #[test]
    fn a_budget_short_of_the_middle_levels_goes_from_the_screen_to_the_last_pair() {
        // Steps of 27-90 ms, no cold first steps: the warm-up takes
        // 306 ms; the screen (414 ms estimated from the warm-up's median,
        // 612 ms taken) fits beside the last pair's reserve (414 ms), but
        // after it the second level (360 ms) and the reserve (342 ms) do
        // not both fit in the 366 ms left: the base and the screen's
        // fastest other play the last level.
        let costs = [30e-3, 27e-3, 33e-3, 36e-3, 90e-3, 90e-3];
        let clock = Fake(Cell::new(0.0));
        let mut step = |i: usize, k: usize| clock.0.set(clock.0.get() + costs[i] * k as f64);
        let budget = 1.284;
        let o = search(costs.len(), &|_| budget, &clock, &mut step);
        assert!(o.seconds <= budget, "{}", o.seconds);
        assert_eq!(o.timings[2].levels, 1, "{o:?}");
        assert_eq!((o.challenger, o.paired.len()), (1, ROUNDS), "{o:?}");
        assert!(o.decided());
        assert_eq!(o.chosen, 1);
        assert!((o.speedup() - 30.0 / 27.0).abs() < 1e-9);
    }

    #[test]
    fn a_fast_spell_one_candidate_had_alone_does_not_choose_it() {
        // Two plans equally fast; the other's first timed sample falls in
        // a spell at twice the machine's speed, which the base never gets.
        // By fastest samples it would win 2x; round by round it ties.
        let clock = Fake(Cell::new(0.0));
        let mut timed = 0;
        let mut step = |i: usize, k: usize| {
            // 4 ms steps: one per sample.
            let mut t = 4e-3 * k as f64;
            if i == 1 {
                timed += 1;
                // Calls of candidate 1: warm-up, then untimed and timed
                // steps in turn; its second call of k steps is its first
                // timed sample.
                if timed == 3 {
                    t *= 0.5;
                }
            }
            clock.0.set(clock.0.get() + t);
        };
        let o = search(2, &|_| 1.0, &clock, &mut step);
        assert_eq!(o.steps_per_sample, 1);
        assert!((o.timings[1].best() - 2e-3).abs() < 1e-12, "{o:?}");
        assert!(o.decided());
        assert_eq!(o.chosen, 0, "{o:?}");
        assert_eq!(o.speedup(), 1.0);
        assert!((o.paired_speedup() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_slow_spell_that_both_of_a_round_share_does_not_hide_a_faster_plan() {
        // The other plan is 5% faster; the machine runs at half speed for
        // the first half of the search, over whole rounds at a time.
        let clock = Fake(Cell::new(0.0));
        let mut step = |i: usize, k: usize| {
            let slow = if clock.0.get() < 0.02 { 2.0 } else { 1.0 };
            let cost = if i == 1 { 0.95e-3 } else { 1e-3 };
            clock.0.set(clock.0.get() + cost * k as f64 * slow);
        };
        let o = search(2, &|_| 1.0, &clock, &mut step);
        assert_eq!(o.chosen, 1, "{o:?}");
        assert!((o.speedup() - 1.0 / 0.95).abs() < 1e-6, "{}", o.speedup());
    }

    #[test]
    fn a_pair_gets_a_full_last_level() {
        // Two candidates go straight to the last level: at least ROUNDS
        // samples each, more while they take at most half of what is left.
        let (o, spent) = run(&[1e-3, 0.9e-3], 0, 1.0, 1.0);
        assert_eq!(o.chosen, 1);
        let n = o.timings[0].samples.len();
        assert!(n > ROUNDS && n <= FINAL_ROUNDS, "{n}");
        assert!(o.last_s <= 0.5 && o.last_s > 0.4, "{}", o.last_s);
        assert!(spent <= 1.0);
        // A tight budget: the last level spans MIN_SWITCH_S, and decides.
        let (o, spent) = run(&[1e-2, 0.9e-2], 0, 1.0, 0.45);
        assert!(spent <= 0.45 && o.last_s >= MIN_SWITCH_S, "{o:?}");
        assert_eq!(o.chosen, 1);
        // Tighter: ROUNDS fit but not MIN_SWITCH_S, so the faster other
        // cannot replace the base.
        let (o, spent) = run(&[1e-2, 0.9e-2], 0, 1.0, 0.25);
        assert!(spent <= 0.25 && o.paired.len() >= ROUNDS, "{o:?}");
        assert!(!o.decided());
        assert_eq!(o.chosen, 0);
    }

    #[test]
    fn one_candidate_is_chosen_without_timing() {
        let (o, _) = run(&[1e-3], 0, 1.0, 1.0);
        assert_eq!((o.chosen, o.steps), (0, 1));
    }
}
