//! Which vector copy of the optimizers' update loop runs, timed once per
//! process on this processor (FFTW's way: measure, then keep the choice).
//!
//! The update loop of [`super::Optimizer::update_block`] is compiled three
//! times: for the baseline x86-64 (SSE2, four f32 lanes), with AVX2 (eight)
//! and with AVX-512 (sixteen), and a copy runs only where the processor
//! reports its instructions. Every copy does the same IEEE operations per element
//! (Rust never fuses a multiply and an add on its own, and square root and
//! division are correctly rounded at every width), so all give the same
//! bits: the choice changes speed only, and no run records it.
//!
//! Adam's and RMSprop's square root and division per element make the loop
//! partly compute-bound, so wider vectors pay where the processor executes
//! them at full width: on Zen 5 the AVX-512 copy made T6 (Adam, batch 8,
//! where the update is most of a step) 1.18x faster on one thread and
//! 1.23x on two than the AVX2 copy (BENCHMARKS.md, session 25). Where
//! AVX-512 runs at half width (Zen 4 splits each instruction in two) or at a
//! lower clock (some Intel Xeons), it gains nothing or loses, which no rule
//! from the processor's name could tell; so [`width`] times the two copies
//! on an Adam update of a block that stays in the L2 cache, alternately,
//! the fastest of [`ROUNDS`] each, and takes AVX-512 only when it is more
//! than [`MARGIN`] faster (0.7-1.3 ms once per process on Zen 5).

use std::sync::OnceLock;
use std::time::Instant;

use ndarray::Array2;

use super::{BlockUpdate, OptConfig, OptKind, Optimizer};
use crate::parallel::RawMat;
use crate::real::Real;

/// A compiled copy of the update loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Width {
    /// The baseline build (SSE2 on x86-64; whatever the target has elsewhere).
    Baseline,
    /// AVX2: eight f32 lanes.
    Avx2,
    /// AVX-512 (F): sixteen f32 lanes.
    Avx512,
}

impl Width {
    /// Whether this processor runs the copy.
    pub fn available(self) -> bool {
        match self {
            Width::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Width::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Width::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Its name, as `bench` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Width::Baseline => "baseline",
            Width::Avx2 => "AVX2",
            Width::Avx512 => "AVX-512",
        }
    }
}

/// Rounds of the timing: each copy updates the block this many times.
pub const ROUNDS: usize = 9;

/// AVX-512 is taken only when its fastest round beats AVX2's by more than
/// this fraction.
pub const MARGIN: f64 = 0.05;

/// What [`width`] chose, and the timing it rests on.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Choice {
    /// The copy that runs.
    pub width: Width,
    /// AVX2's fastest round over AVX-512's (above 1: AVX-512 faster);
    /// `None` where the two were not both available (nothing timed).
    pub avx512_speedup: Option<f64>,
}

impl Choice {
    /// One line for `bench` and `tune`.
    pub fn line(&self) -> String {
        match self.avx512_speedup {
            Some(s) => format!(
                "optimizer update loop: {} (AVX-512 timed {s:.2}x AVX2's speed on this processor)",
                self.width.name()
            ),
            None => format!("optimizer update loop: {}", self.width.name()),
        }
    }
}

/// The copy of the update loop this process runs, chosen on first use.
pub fn width() -> Width {
    choice().width
}

/// [`width`] with the timing that chose it.
pub fn choice() -> Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    *CHOICE.get_or_init(choose)
}

fn choose() -> Choice {
    if !Width::Avx2.available() || !Width::Avx512.available() {
        // Nothing to time: the widest copy this processor runs.
        let width = if Width::Avx2.available() {
            Width::Avx2
        } else {
            Width::Baseline
        };
        return Choice {
            width,
            avx512_speedup: None,
        };
    }
    let [t2, t512] = time_adam([Width::Avx2, Width::Avx512], ROUNDS);
    let speedup = t2 / t512;
    Choice {
        width: if speedup > 1.0 + MARGIN {
            Width::Avx512
        } else {
            Width::Avx2
        },
        avx512_speedup: Some(speedup),
    }
}

/// The fastest of `rounds` Adam updates of a 128 x 128 f32 block (the
/// parameters, gradient and two moments: 256 KiB, within an L2 cache) by
/// each copy, taken in turn (seconds). The gradient is written afresh
/// before every round (the update leaves zeros in it).
pub fn time_adam<const N: usize>(widths: [Width; N], rounds: usize) -> [f64; N] {
    const SIDE: usize = 128;
    let mut opt = Optimizer::<f32>::untimed(OptConfig::new(OptKind::Adam, 1e-3), &[(SIDE, SIDE)]);
    let mut p = Array2::<f32>::from_shape_fn((SIDE, SIDE), |(i, j)| {
        ((i * 31 + j * 17) % 97) as f32 * 0.01 - 0.48
    });
    let mut g = Array2::<f32>::zeros((SIDE, SIDE));
    let mut best = [f64::INFINITY; N];
    for round in 0..rounds + 1 {
        for (i, &w) in widths.iter().enumerate() {
            g.indexed_iter_mut()
                .for_each(|((r, c), x)| *x = ((r * 7 + c * 3 + round) % 23) as f32 * 1e-3 - 0.011);
            opt.begin_step();
            let t = Instant::now();
            update_whole(&opt, w, &mut p, &mut g);
            if round > 0 {
                best[i] = best[i].min(t.elapsed().as_secs_f64());
            }
        }
    }
    best
}

/// `opt`'s update of its first tensor, whole (`p` and `g` of that
/// tensor's shape), by the copy `w`, on this thread.
fn update_whole<T: Real>(opt: &Optimizer<T>, w: Width, p: &mut Array2<T>, g: &mut Array2<T>) {
    let (rows, cols) = p.dim();
    assert_eq!(
        g.dim(),
        (rows, cols),
        "the gradient has the parameter's shape"
    );
    for s in opt.state(0) {
        assert_eq!(
            s.dim(),
            (rows, cols),
            "the optimizer's state has the parameter's shape"
        );
    }
    // SAFETY: whole arrays of the tensor's shape (checked), one thread.
    unsafe { opt.update_block_as(w, 0, true, 0..rows, 0..cols, RawMat::of(p), RawMat::of(g)) }
}

/// Runs the update loop's copy `w` (the baseline where `w` is not
/// available).
///
/// # Safety
/// As for [`super::update_rows`].
pub(super) unsafe fn update<T: Real>(w: Width, u: BlockUpdate<T>) {
    #[cfg(target_arch = "x86_64")]
    match w {
        Width::Avx512 if Width::Avx512.available() => return update_avx512(u),
        Width::Avx2 | Width::Avx512 if Width::Avx2.available() => return update_avx2(u),
        _ => {}
    }
    let _ = w;
    super::update_rows(u)
}

/// [`super::update_rows`] compiled for AVX2.
///
/// # Safety
/// As for [`super::update_rows`]; the processor must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn update_avx2<T: Real>(u: BlockUpdate<T>) {
    super::update_rows(u)
}

/// [`super::update_rows`] compiled for AVX-512.
///
/// # Safety
/// As for [`super::update_rows`]; the processor must support AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn update_avx512<T: Real>(u: BlockUpdate<T>) {
    super::update_rows(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every optimizer, f32 and f64, from the same state: each available
    /// copy leaves the same bits as the baseline.
    fn same_bits<T: Real>() {
        let (rows, cols) = (37, 29);
        for kind in OptKind::ALL {
            let run = |w: Width| -> (Vec<T>, Vec<T>) {
                let mut cfg = OptConfig::new(kind, 1e-2);
                cfg.l2 = 1e-3;
                let mut opt = Optimizer::<T>::new(cfg, &[(rows, cols)]);
                let mut p = ndarray::Array2::<T>::from_shape_fn((rows, cols), |(i, j)| {
                    T::of(((i * 13 + j * 7) % 31) as f64 * 0.03 - 0.45)
                });
                for step in 0..5 {
                    let mut g = ndarray::Array2::<T>::from_shape_fn((rows, cols), |(i, j)| {
                        // Some exact zeros and tiny values: the flush's cases.
                        let x = ((i * 5 + j * 11 + step) % 17) as f64 - 8.0;
                        T::of(if x == 0.0 {
                            0.0
                        } else {
                            x * 1e-3 / (1.0 + (i % 3) as f64 * 1e20)
                        })
                    });
                    opt.begin_step();
                    update_whole(&opt, w, &mut p, &mut g);
                    assert!(
                        g.iter().all(|&x| x == T::zero()),
                        "the gradient is consumed"
                    );
                }
                let state = opt.state(0).iter().flatten().copied().collect();
                (p.iter().copied().collect(), state)
            };
            let base = run(Width::Baseline);
            for w in [Width::Avx2, Width::Avx512] {
                if w.available() {
                    let other = run(w);
                    let bits = |v: &[T]| v.iter().map(|x| x.f64().to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&other.0), bits(&base.0), "{kind:?} {w:?}: parameters");
                    assert_eq!(bits(&other.1), bits(&base.1), "{kind:?} {w:?}: state");
                }
            }
        }
    }

    #[test]
    fn every_copy_gives_the_baselines_bits() {
        same_bits::<f32>();
        same_bits::<f64>();
    }

    #[test]
    fn the_choice_is_a_copy_this_processor_runs() {
        let c = choice();
        assert!(c.width.available());
        assert_eq!(
            c.avx512_speedup.is_some(),
            Width::Avx512.available() && Width::Avx2.available()
        );
        if let Some(s) = c.avx512_speedup {
            assert!(s.is_finite() && s > 0.0);
            assert_eq!(c.width == Width::Avx512, s > 1.0 + MARGIN);
        }
        assert!(c.line().contains(c.width.name()));
        let [a, b] = time_adam([Width::Baseline, width()], 2);
        assert!(a > 0.0 && b > 0.0);
    }
}
