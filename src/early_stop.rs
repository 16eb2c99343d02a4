//! Early stopping on the validation loss: stop when it has not improved (by
//! more than `min_delta`) for `patience` epochs, and go back to the weights
//! of the best epoch.

use crate::checkpoint::{NamedTensor, StateError};
use crate::nn::Mlp;

/// What to do after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: its weights were kept.
    Improved,
    /// No improvement yet; `left` more epochs without one stop the run.
    Wait {
        /// Epochs without improvement still allowed.
        left: usize,
    },
    /// Patience exhausted: restore the best weights and stop.
    Stop,
}

/// The counters, as checkpoints store them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStopState {
    /// The best validation loss so far.
    pub best_loss: f64,
    /// The epoch that reached it.
    pub best_epoch: usize,
    /// Epochs since then without an improvement of more than `min_delta`.
    pub bad_epochs: usize,
}

/// Early stopping with the best weights kept in memory.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The least decrease of the validation loss that counts as an improvement.
    pub min_delta: f64,
    /// The counters.
    pub state: EarlyStopState,
    best: Option<Mlp<f32>>,
}

impl EarlyStopping {
    /// Early stopping after `patience` epochs without an improvement of more than `min_delta`.
    pub fn new(patience: usize, min_delta: f64) -> Self {
        Self {
            patience,
            min_delta,
            state: EarlyStopState {
                best_loss: f64::INFINITY,
                best_epoch: 0,
                bad_epochs: 0,
            },
            best: None,
        }
    }

    /// Records epoch `epoch`'s validation loss for `model`'s current weights.
    pub fn observe(&mut self, epoch: usize, val_loss: f64, model: &Mlp<f32>) -> Verdict {
        let s = &mut self.state;
        if val_loss.is_finite() && val_loss < s.best_loss - self.min_delta {
            s.best_loss = val_loss;
            s.best_epoch = epoch;
            s.bad_epochs = 0;
            match &mut self.best {
                Some(b) => copy_params(b, model),
                None => self.best = Some(model.clone()),
            }
            return Verdict::Improved;
        }
        s.bad_epochs += 1;
        if s.bad_epochs >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Wait {
                left: self.patience - s.bad_epochs,
            }
        }
    }

    /// Copies the best weights into `model` (no-op before the first epoch).
    pub fn restore_best(&self, model: &mut Mlp<f32>) {
        if let Some(b) = &self.best {
            copy_params(model, b);
        }
    }

    /// The best weights as tensors `best.layers.{i}.{weight,bias}`.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        let Some(b) = &self.best else {
            return Vec::new();
        };
        b.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                [
                    NamedTensor {
                        name: format!("best.layers.{i}.weight"),
                        shape: vec![l.fan_in(), l.fan_out()],
                        data: l.w.iter().copied().collect(),
                    },
                    NamedTensor {
                        name: format!("best.layers.{i}.bias"),
                        shape: vec![l.fan_out()],
                        data: l.b.to_vec(),
                    },
                ]
            })
            .collect()
    }

    /// Restores counters and best weights saved by a checkpoint.
    pub fn restore(
        &mut self,
        state: EarlyStopState,
        model: &Mlp<f32>,
        tensors: &[NamedTensor],
    ) -> Result<(), StateError> {
        self.state = state;
        if self.state.best_epoch == 0 {
            self.best = None;
            return Ok(());
        }
        let mut best = model.clone();
        for (i, l) in best.layers.iter_mut().enumerate() {
            for (suffix, dst) in [("weight", l.w.as_slice_mut()), ("bias", l.b.as_slice_mut())] {
                let name = format!("best.layers.{i}.{suffix}");
                let dst = dst.expect("contiguous parameters");
                let t = tensors
                    .iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| format!("missing tensor `{name}` (early stopping)"))?;
                if t.data.len() != dst.len() {
                    return Err(StateError(format!(
                        "tensor `{name}` has shape {:?}",
                        t.shape
                    )));
                }
                dst.copy_from_slice(&t.data);
            }
        }
        self.best = Some(best);
        Ok(())
    }
}

/// `dst`'s weights and biases := `src`'s (same architecture), in place.
fn copy_params(dst: &mut Mlp<f32>, src: &Mlp<f32>) {
    for (d, l) in dst.layers.iter_mut().zip(&src.layers) {
        d.w.assign(&l.w);
        d.b.assign(&l.b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Loss, NetSpec};

    #[test]
    fn stops_after_patience_and_restores_the_best() {
        let spec = NetSpec::parse("3,relu,2,softmax,2").unwrap();
        let mut m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 1).unwrap();
        let mut es = EarlyStopping::new(2, 0.0);
        assert_eq!(es.observe(1, 1.0, &m), Verdict::Improved);
        let best_w = m.layers[0].w.clone();
        m.layers[0].w.fill(7.0);
        assert_eq!(es.observe(2, 0.9, &m), Verdict::Improved);
        m.layers[0].w.fill(8.0);
        assert_eq!(es.observe(3, 0.95, &m), Verdict::Wait { left: 1 });
        // A checkpoint taken here restores to the same decisions.
        let mut es2 = EarlyStopping::new(2, 0.0);
        es2.restore(es.state.clone(), &m, &es.tensors()).unwrap();
        assert_eq!(es.observe(4, f64::NAN, &m), Verdict::Stop);
        assert_eq!(es2.observe(4, f64::NAN, &m), Verdict::Stop);
        es.restore_best(&mut m);
        assert!(m.layers[0].w.iter().all(|&v| v == 7.0));
        assert_eq!(es.state.best_epoch, 2);
        assert_ne!(m.layers[0].w, best_w);
        // min_delta: a tiny improvement does not count.
        let mut es = EarlyStopping::new(1, 0.1);
        es.observe(1, 1.0, &m);
        assert_eq!(es.observe(2, 0.95, &m), Verdict::Stop);
    }
}
