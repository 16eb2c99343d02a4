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
