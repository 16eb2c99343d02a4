//! Where a training step's time goes: per kind of work (gather, forward,
//! output and loss, back-propagation, weight gradients, optimizer), the
//! thread-time spent in it, and the thread-time the parallel regions hold
//! the threads without work (waiting at the joins), summed over every
//! thread of every step.
//!
//! Off by default, and then a span costs one relaxed atomic load; on
//! ([`enable`]), each block's work is timed with [`std::time::Instant`]
//! (two clock reads per span, a few dozen per step). With `nb` blocks and a
//! step of wall time `S`, the threads have `nb x S` thread-time: the spans'
//! sums, plus the waits inside regions (`nb x region wall - busy`), plus
//! the serial part outside regions (`nb x (S - region wall)`: the loop,
//! the schedule, statistics, with the other threads idle). The waits are
//! split by when they fall: before a block starts (its thread was still
//! being woken, or busy elsewhere) or after it ends (the thread waits for
//! the region's slowest block).
//! `examples/profile.rs` prints it for a workload at several thread counts;
//! `tests/profile.rs` checks the accounting (in a test binary of its own:
//! the timers are global).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The kinds of work of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Gathering the batch's rows from the training set.
    Gather,
    /// Hidden layers' products, bias and activation.
    Forward,
    /// The output layer's product and the fused loss and its gradient.
    Output,
    /// Back-propagation products and activation derivatives.
    Backprop,
    /// Weight and bias gradients (with SGD, the update folded in).
    WeightGrad,
    /// The optimizer's update (momentum, RMSprop, Adam).
    Optimizer,
}

/// Every kind, in the order of a step.
pub const WORK: [Work; 6] = [
    Work::Gather,
    Work::Forward,
    Work::Output,
    Work::Backprop,
    Work::WeightGrad,
    Work::Optimizer,
];

impl Work {
    /// The kind's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Work::Gather => "gather",
            Work::Forward => "forward",
            Work::Output => "output+loss",
            Work::Backprop => "back-propagation",
            Work::WeightGrad => "weight gradient",
            Work::Optimizer => "optimizer",
        }
    }
}

static ON: AtomicBool = AtomicBool::new(false);
static BUSY: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
/// Thread-nanoseconds the regions held (wall x blocks), and wall ns.
static HELD: AtomicU64 = AtomicU64::new(0);
static REGION_WALL: AtomicU64 = AtomicU64::new(0);
static REGIONS: AtomicU64 = AtomicU64::new(0);
/// Sums over blocks of the time from their region's start to theirs, and
/// to their end (ns).
static STARTS: AtomicU64 = AtomicU64::new(0);
static ENDS: AtomicU64 = AtomicU64::new(0);

/// Turns the timers on or off (and clears them when turning on).
pub fn enable(on: bool) {
    if on {
        reset();
    }
    ON.store(on, Relaxed);
}

/// Clears the sums.
pub fn reset() {
    for b in &BUSY {
        b.store(0, Relaxed);
    }
    for a in [&HELD, &REGION_WALL, &REGIONS, &STARTS, &ENDS] {
        a.store(0, Relaxed);
    }
}

/// A span of work of one kind on one thread; timed while the profiler is
/// on, recorded when dropped.
pub struct Span(Option<(Work, Instant)>);

/// Starts a span of `work`.
#[inline]
pub fn span(work: Work) -> Span {
    Span(ON.load(Relaxed).then(|| (work, Instant::now())))
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if let Some((w, t)) = self.0 {
            BUSY[w as usize].fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        }
    }
}

/// [`crate::parallel::par_for`] over `nb` blocks, its wall time recorded,
/// and for each block when it started and ended within the region.
#[inline]
pub fn region<F: Fn(usize) + Sync>(nb: usize, f: &F) {
    if !ON.load(Relaxed) {
        return crate::parallel::par_for(nb, f);
    }
    let t = Instant::now();
    crate::parallel::par_for(nb, &|b| {
        STARTS.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        f(b);
        ENDS.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
    });
    let ns = t.elapsed().as_nanos() as u64;
    REGION_WALL.fetch_add(ns, Relaxed);
    HELD.fetch_add(ns * nb as u64, Relaxed);
    REGIONS.fetch_add(1, Relaxed);
}

/// The sums since the last [`reset`] (seconds of thread-time).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    /// Per kind of work ([`WORK`]'s order).
    pub busy: Vec<(&'static str, f64)>,
    /// Thread-time the parallel regions held the threads.
    pub held: f64,
    /// Wall time inside parallel regions.
    pub region_wall: f64,
    /// Parallel regions run.
    pub regions: u64,
    /// Thread-time from each region's start to the start of each of its
    /// blocks: a block waiting for a thread to take it up (a thread that
    /// went to sleep since the last region must be woken first).
    pub start_wait: f64,
    /// Thread-time from the end of each block to the end of its region:
    /// the thread waiting for the slowest block (imbalance).
    pub end_wait: f64,
}

impl Profile {
    /// Busy thread-time in all kinds of work.
    pub fn busy_total(&self) -> f64 {
        self.busy.iter().map(|(_, s)| s).sum()
    }
    /// Thread-time held inside regions without work: waiting at the
    /// joins (and the scheduling of the blocks): [`Profile::start_wait`] +
    /// [`Profile::end_wait`] + whatever a block did outside the spans.
    pub fn waiting(&self) -> f64 {
        (self.held - self.busy_total()).max(0.0)
    }
}

/// The sums since the last [`reset`].
pub fn snapshot() -> Profile {
    let s = |a: &AtomicU64| a.load(Relaxed) as f64 / 1e9;
    Profile {
        busy: WORK
            .iter()
            .map(|w| (w.name(), s(&BUSY[*w as usize])))
            .collect(),
        held: s(&HELD),
        region_wall: s(&REGION_WALL),
        regions: REGIONS.load(Relaxed),
        start_wait: s(&STARTS),
        end_wait: (s(&HELD) - s(&ENDS)).max(0.0),
    }
}

/// Runs `f` with the timers on (cleared first, off again after), and
/// returns what it returned, what the timers recorded, and its wall time
/// in seconds.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Profile, f64) {
    enable(true);
    let t = Instant::now();
    let r = f();
    let wall = t.elapsed().as_secs_f64();
    let p = snapshot();
    enable(false);
    (r, p, wall)
}

/// A [`Profile`] of whole epochs per step: thread-milliseconds per step of
/// each kind of work, of the waits at the joins and of the serial part.
/// With `n` blocks per region the kinds, the waiting and the serial part
/// add up to `n x` the step's wall time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepProfile {
    /// Blocks per region: the threads whose time is accounted for (fewer
    /// than the pool's under a plan of fewer blocks; one under OpenBLAS's
    /// threads, whose own threads are not seen).
    pub blocks: usize,
    /// Steps profiled.
    pub steps: usize,
    /// Wall time per step (ms).
    pub step_ms: f64,
    /// Thread-ms per step in each kind of work ([`WORK`]'s order, by name).
    pub work_ms: Vec<(&'static str, f64)>,
    /// Thread-ms per step held inside regions without work
    /// ([`Profile::waiting`]) ...
    pub waiting_ms: f64,
    /// ... of which before a block started ([`Profile::start_wait`]) ...
    pub start_wait_ms: f64,
    /// ... and after it ended ([`Profile::end_wait`]).
    pub end_wait_ms: f64,
    /// Thread-ms per step outside the regions (the loop, with the other
    /// threads idle).
    pub serial_ms: f64,
}

impl StepProfile {
    /// The profile `p` of `steps` steps that took `wall` seconds (the
    /// blocks per region are the regions' held thread-time over their wall
    /// time: every region of a step has the same number).
    pub fn of(p: &Profile, wall: f64, steps: usize) -> Self {
        let ms = |s: f64| s / steps.max(1) as f64 * 1e3;
        let blocks = if p.region_wall > 0.0 {
            ((p.held / p.region_wall).round() as usize).max(1)
        } else {
            1
        };
        Self {
            blocks,
            steps,
            step_ms: ms(wall),
            work_ms: p.busy.iter().map(|&(k, s)| (k, ms(s))).collect(),
            waiting_ms: ms(p.waiting()),
            start_wait_ms: ms(p.start_wait),
            end_wait_ms: ms(p.end_wait),
            serial_ms: ms((wall - p.region_wall).max(0.0) * blocks as f64),
        }
    }

    /// One line: `step 1.001 ms (2.002 thread-ms): gather 0.022, ...,
    /// waiting at joins 0.092 (0.022 before blocks + 0.068 after), serial
    /// 0.006`.
    pub fn line(&self) -> String {
        let work: Vec<String> = self
            .work_ms
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        format!(
            "step {:.3} ms ({:.3} thread-ms): {}, waiting at joins {:.3} ({:.3} before blocks + {:.3} after), serial {:.3}",
            self.step_ms,
            self.step_ms * self.blocks as f64,
            work.join(", "),
            self.waiting_ms,
            self.start_wait_ms,
            self.end_wait_ms,
            self.serial_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_profile_is_per_step_and_adds_up() {
        // Two threads, 4 steps in 0.010 s, 0.008 s of it in regions.
        let p = Profile {
            busy: WORK.iter().map(|w| (w.name(), 0.002)).collect(),
            held: 0.016,
            region_wall: 0.008,
            regions: 8,
            start_wait: 0.001,
            end_wait: 0.002,
        };
        let s = StepProfile::of(&p, 0.010, 4);
        assert_eq!(s.blocks, 2);
        assert_eq!(s.step_ms, 2.5);
        assert!(s.work_ms.iter().all(|&(_, v)| (v - 0.5).abs() < 1e-12));
        assert!((s.waiting_ms - 1.0).abs() < 1e-12, "{s:?}");
        assert!((s.start_wait_ms - 0.25).abs() < 1e-12);
        assert!((s.end_wait_ms - 0.5).abs() < 1e-12);
        assert!((s.serial_ms - 1.0).abs() < 1e-12);
        let total: f64 = s.work_ms.iter().map(|(_, v)| v).sum::<f64>() + s.waiting_ms + s.serial_ms;
        assert!((total - 2.0 * s.step_ms).abs() < 1e-9, "{total}");
        let line = s.line();
        assert!(
            line.starts_with("step 2.500 ms (5.000 thread-ms): gather 0.500"),
            "{line}"
        );
        assert!(
            line.contains(
                "waiting at joins 1.000 (0.250 before blocks + 0.500 after), serial 1.000"
            ),
            "{line}"
        );
    }
}
