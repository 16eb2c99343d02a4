//! Learning-rate schedules, evaluated per step from the step index and the
//! run's total steps (so a resumed run continues on the same curve).

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between two decays.
        every: usize,
        /// The factor.
        gamma: f64,
    },
    /// Linear warm-up over `warmup` epochs, then cosine decay to zero.
    Cosine {
        /// Epochs of linear warm-up (may be fractional).
        warmup: f64,
    },
    /// One-cycle: linear rise from lr/25 to lr over the first 30% of the
    /// steps, cosine fall to lr/10^4 over the rest.
    OneCycle,
}

/// What `train --resume` does to a cosine or one-cycle schedule when
/// `--epochs` changes the run's length (`--resume-schedule`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnResume {
    /// Stretch the schedule over the new total: the rate goes back up
    /// from where it had fallen to.
    #[default]
    Stretch,
    /// Keep the schedule's horizon: past it, the rate stays where the
    /// schedule ended (0 for cosine, lr/10^4 for one-cycle).
    Keep,
    /// Start the schedule again over the epochs still to run (warm-up
    /// included).
    Restart,
}

/// The epochs a schedule spans, `[start, end)`: `[0, epochs)` for a run
/// trained in one go; a resumed run may keep or restart it ([`OnResume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// The epoch (0-based count of epochs done) at which the schedule
    /// starts.
    pub start: usize,
    /// The epoch at which it ends.
    pub end: usize,
}

impl Window {
    /// All of a run of `epochs` epochs: `[0, epochs)`.
    pub fn whole(epochs: usize) -> Window {
        Window {
            start: 0,
            end: epochs,
        }
    }

    /// The learning rate at 0-based `step` of the run, under `schedule`
    /// spanning this window, `per_epoch` steps an epoch.
    pub fn lr(&self, schedule: &Schedule, base: f64, step: u64, per_epoch: u64) -> f64 {
        let first = per_epoch * self.start as u64;
        let total = per_epoch * self.end.saturating_sub(self.start) as u64;
        schedule.lr(base, step.saturating_sub(first), total, per_epoch)
    }

    /// The window of a resumed run: `saved` was the checkpoint's (for a
    /// run of `saved_epochs`), `done` epochs are done, `epochs` the new
    /// total.
    pub fn on_resume(
        saved: Window,
        saved_epochs: usize,
        done: usize,
        epochs: usize,
        how: OnResume,
    ) -> Window {
        if epochs == saved_epochs {
            return saved;
        }
        match how {
            OnResume::Stretch => Window {
                start: saved.start,
                end: epochs,
            },
            OnResume::Keep => saved,
            OnResume::Restart => Window {
                start: done,
                end: epochs,
            },
        }
    }
}

crate::error::message_error!(
    /// A `--schedule` value that is not a schedule.
    ScheduleError
);

impl Schedule {
    /// `constant`, `step:EVERY:GAMMA`, `cosine`, `cosine:WARMUP_EPOCHS`, `onecycle`.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        Self::parse_str(s).map_err(ScheduleError)
    }

    fn parse_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |t: &str, what: &str| -> Result<f64, String> {
            let v: f64 = t
                .parse()
                .map_err(|_| format!("--schedule {s}: `{t}` is not a number ({what})"))?;
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(format!("--schedule {s}: {what} must be finite and >= 0"))
            }
        };
        Ok(match parts.as_slice() {
            ["constant"] => Schedule::Constant,
            ["cosine"] => Schedule::Cosine { warmup: 0.0 },
            ["cosine", w] => Schedule::Cosine { warmup: num(w, "warm-up epochs")? },
            ["onecycle" | "one-cycle" | "one_cycle"] => Schedule::OneCycle,
            ["step", e, g] => {
                let every: usize = e.parse().map_err(|_| {
                    format!("--schedule {s}: `{e}` is not a whole number of epochs (epochs per step)")
                })?;
                if every == 0 {
                    return Err(format!("--schedule {s}: the step interval must be at least 1 epoch"));
                }
                Schedule::Step { every, gamma: num(g, "gamma")? }
            }
            _ => return Err(format!("unknown --schedule `{s}` (expected constant, step:EPOCHS:GAMMA, cosine, cosine:WARMUP_EPOCHS or onecycle)")),
        })
    }

    /// Refuses a schedule that cannot run as written in a run of `epochs`
    /// epochs: a warm-up as long as the run or longer (the rate would
    /// never reach its peak).
    pub fn check_run(&self, epochs: usize) -> Result<(), ScheduleError> {
        match *self {
            Schedule::Cosine { warmup } if warmup >= epochs as f64 => Err(ScheduleError(format!(
                "--schedule cosine:{warmup}: the warm-up ({warmup} epochs) must be shorter than the run (--epochs {epochs}), or the rate never reaches its peak"
            ))),
            _ => Ok(()),
        }
    }

    /// Learning rate for 0-based `step` of `total` steps, `per_epoch` steps an epoch.
    pub fn lr(&self, base: f64, step: u64, total: u64, per_epoch: u64) -> f64 {
        let total = total.max(1) as f64;
        let s = step as f64;
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                let interval = (every as u64).saturating_mul(per_epoch.max(1));
                base * gamma.powi((step / interval).min(i32::MAX as u64) as i32)
            }
            Schedule::Cosine { warmup } => {
                let w = warmup * per_epoch as f64;
                if s < w {
                    base * (s + 1.0) / w
                } else {
                    let p = ((s - w) / (total - w).max(1.0)).min(1.0);
                    base * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }
            Schedule::OneCycle => {
                let peak = 0.3 * total;
                let (lo, end) = (base / 25.0, base / 1e4);
                if s < peak {
                    lo + (base - lo) * s / peak
                } else {
                    let p = ((s - peak) / (total - peak).max(1.0)).min(1.0);
                    end + (base - end) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stretch_keep_and_restart() {
        let c = Schedule::Cosine { warmup: 0.0 };
        let w = Window { start: 0, end: 10 };
        // A run of 10 epochs resumed after 10 to go on to 20.
        let stretch = Window::on_resume(w, 10, 10, 20, OnResume::Stretch);
        let keep = Window::on_resume(w, 10, 10, 20, OnResume::Keep);
        let restart = Window::on_resume(w, 10, 10, 20, OnResume::Restart);
        assert_eq!(stretch, Window { start: 0, end: 20 });
        assert_eq!(keep, w);
        assert_eq!(restart, Window { start: 10, end: 20 });
        let per = 5;
        let at = |w: Window, epoch: u64| w.lr(&c, 1.0, epoch * per, per);
        // Stretched: halfway, the rate is back at half the peak.
        assert!((at(stretch, 10) - 0.5).abs() < 1e-12);
        // Kept: the schedule had ended at 0 and stays there.
        assert_eq!(at(keep, 10), 0.0);
        assert_eq!(at(keep, 15), 0.0);
        // Restarted: the peak again, then down to 0 at epoch 20.
        assert_eq!(at(restart, 10), 1.0);
        assert!(at(restart, 19) < at(restart, 11));
        // The same length changes nothing, whatever the choice.
        assert_eq!(
            Window::on_resume(restart, 20, 12, 20, OnResume::Stretch),
            restart
        );
        // A window from 0 is the plain schedule.
        assert_eq!(
            Window { start: 0, end: 20 }.lr(&c, 1.0, 37, per),
            c.lr(1.0, 37, 100, per)
        );
    }

    #[test]
    fn shapes() {
        let c = Schedule::parse("cosine").unwrap();
        assert_eq!(c.lr(1.0, 0, 100, 10), 1.0);
        assert!((c.lr(1.0, 50, 100, 10) - 0.5).abs() < 1e-12);
        assert!(c.lr(1.0, 99, 100, 10) < 0.001);
        let w = Schedule::parse("cosine:1").unwrap();
        assert!((w.lr(1.0, 4, 100, 10) - 0.5).abs() < 1e-12);
        let s = Schedule::parse("step:2:0.1").unwrap();
        assert_eq!(s.lr(1.0, 19, 100, 10), 1.0);
        assert!((s.lr(1.0, 20, 100, 10) - 0.1).abs() < 1e-12);
        let o = Schedule::OneCycle;
        assert!((o.lr(1.0, 0, 100, 10) - 0.04).abs() < 1e-12);
        assert!((o.lr(1.0, 30, 100, 10) - 1.0).abs() < 1e-12);
        assert!(o.lr(1.0, 100, 100, 10) < 1e-3);
        assert!(Schedule::parse("step:0:0.5").is_err());
        assert!(Schedule::parse("step:2.5:0.5").is_err(), "whole epochs");
        // A huge interval: the base rate, no overflow or division by zero.
        let h = Schedule::parse("step:9223372036854775808:0.5").unwrap();
        assert_eq!(h.lr(1.0, 1_000_000, 2_000_000, 60), 1.0);
        assert!(Schedule::parse("cosine:10").unwrap().check_run(6).is_err());
        assert!(Schedule::parse("cosine:1e308")
            .unwrap()
            .check_run(6)
            .is_err());
        assert!(Schedule::parse("cosine:1").unwrap().check_run(6).is_ok());
        assert!(Schedule::parse("linear").is_err());
    }
}
