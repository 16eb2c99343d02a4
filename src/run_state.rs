//! What a training checkpoint carries besides the model, so that a run can
//! be resumed bit for bit: the [`Trainer`]'s counters, RNG position and
//! optimizer moments, early stopping's counters and best weights, and the
//! per-epoch history (see [`crate::checkpoint`] for the layout).

use std::path::Path;

use crate::checkpoint::{CheckpointError, Extras, StateError};
use crate::early_stop::{EarlyStopState, EarlyStopping};
use crate::nn::Mlp;
use crate::train::{EpochReport, Trainer, TrainerState};

/// The `run_state` metadata entry of a training checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Epochs and steps done, the shuffling RNG, the optimizer's step count.
    pub trainer: TrainerState,
    /// Early stopping's counters, with `--patience`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopState>,
    /// True when the run ended by early stopping; it cannot be resumed.
    #[serde(default)]
    pub finished: bool,
    /// Every epoch's figures so far (for plots after a resume).
    #[serde(default)]
    pub history: Vec<EpochReport>,
}

/// The extras of a checkpoint of `model` trained by `trainer`.
pub fn capture(
    model: &Mlp<f32>,
    trainer: &Trainer,
    early: Option<&EarlyStopping>,
    history: &[EpochReport],
    finished: bool,
) -> Extras {
    let (ts, mut tensors) = trainer.snapshot(model);
    if let Some(es) = early {
        tensors.extend(es.tensors());
    }
    let st = RunState {
        trainer: ts,
        early_stopping: early.map(|e| e.state.clone()),
        finished,
        history: history.to_vec(),
    };
    Extras {
        run_state: Some(serde_json::to_value(&st).expect("a run state serializes")),
        tensors,
        data: None,
    }
}

/// The run state of a checkpoint's extras, or why it cannot be resumed.
pub fn read(extras: &Extras) -> Result<RunState, StateError> {
    let v = extras.run_state.clone().ok_or_else(|| {
        StateError::from(
            "the checkpoint holds a model only, without the training state (optimizer moments, \
             epoch, RNG position); it can be evaluated, not resumed (checkpoints from `train --save` can be)",
        )
    })?;
    serde_json::from_value(v).map_err(|e| {
        StateError(format!(
            "its training state (metadata `run_state`) is damaged: {e}"
        ))
    })
}

/// Restores `trainer` (and `early`) from the extras of a checkpoint of
/// `model` so that training continues from epoch `trainer.epoch + 1` of
/// `total_epochs`; returns the history so far.
pub fn restore(
    extras: &Extras,
    model: &Mlp<f32>,
    trainer: &mut Trainer,
    early: Option<&mut EarlyStopping>,
    total_epochs: usize,
) -> Result<Vec<EpochReport>, StateError> {
    let st = read(extras)?;
    if st.finished {
        return Err(StateError(format!(
            "that run already ended (early stopping at epoch {}); start a new run instead",
            st.trainer.epoch
        )));
    }
    if st.trainer.epoch >= total_epochs {
        return Err(StateError(format!(
            "the checkpoint has already trained {} epoch(s); --epochs is the total, so ask for more (e.g. --epochs {})",
            st.trainer.epoch,
            st.trainer.epoch + 1
        )));
    }
    match (&early, &st.early_stopping) {
        (Some(_), None) => {
            return Err(
                "the run had no early stopping; --patience cannot be added when resuming".into(),
            )
        }
        (None, Some(_)) => {
            return Err("the run used early stopping; keep --patience when resuming".into())
        }
        _ => {}
    }
    let tensors = &extras.tensors;
    trainer.restore(model, &st.trainer, tensors)?;
    if let (Some(es), Some(s)) = (early, st.early_stopping) {
        es.restore(s, model, tensors)?;
    }
    let mut history = st.history;
    history.truncate(trainer.epoch);
    Ok(history)
}

/// Keeps only the lines of a metrics file (`--metrics-out`) whose epoch is
/// at most `done`, so that a resumed run appends each later epoch once.
/// Written atomically; a missing file is fine.
pub fn trim_metrics(path: &Path, done: usize) -> Result<(), CheckpointError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(CheckpointError::Read {
                path: path.to_path_buf(),
                err,
            })
        }
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e as usize <= done)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::checkpoint::write_atomic(path, kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{from_bytes, to_bytes_with};
    use crate::nn::{Init, Loss, NetSpec};
    use crate::optim::{OptConfig, OptKind};
    use crate::parallel::{GemmThreading, Threads};
    use crate::train::BatchSize;

    #[test]
    fn a_restored_trainer_continues_bit_for_bit() {
        let data = crate::workloads::synthetic(600, 3);
        let threads = Threads::new(2, GemmThreading::Split).unwrap();
        let spec = NetSpec::parse("784,relu,16,softmax,10").unwrap();
        let fresh = || {
            let m = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 5).unwrap();
            let mut t = Trainer::new(
                &m,
                data.len(),
                BatchSize::N(50),
                OptConfig::new(OptKind::Adam, 1e-3),
                5,
                &threads,
            )
            .unwrap();
            t.total_epochs = 3;
            t.schedule = crate::schedule::Schedule::Cosine { warmup: 0.5 };
            (m, t)
        };
        let (mut a, mut ta) = fresh();
        for _ in 0..3 {
            ta.train_epoch(&mut a, &data, &|_, _| {}).unwrap();
        }
        let (mut b, mut tb) = fresh();
        tb.train_epoch(&mut b, &data, &|_, _| {}).unwrap();
        let bytes = to_bytes_with(
            &b,
            &serde_json::Value::Null,
            &capture(&b, &tb, None, &[], false),
        )
        .unwrap();
        let loaded = from_bytes(Path::new("ck"), &bytes).unwrap();
        let (_, mut tc) = fresh();
        let mut c = loaded.model.clone();
        let e = restore(&loaded.extras, &c, &mut tc, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already trained 1 epoch(s)"), "{e}");
        restore(&loaded.extras, &c, &mut tc, None, 3).unwrap();
        for _ in 0..2 {
            tc.train_epoch(&mut c, &data, &|_, _| {}).unwrap();
        }
        for (x, y) in a.layers.iter().zip(&c.layers) {
            assert_eq!(x.w, y.w);
            assert_eq!(x.b, y.b);
        }
        let mut es = EarlyStopping::new(2, 0.0);
        let e = restore(&loaded.extras, &c, &mut tc, Some(&mut es), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no early stopping"), "{e}");

        // The RNG position is a decimal string in the JSON; a damaged one
        // (or a missing state) is refused by name, not read as a model only.
        let json = loaded.extras.run_state.clone().unwrap();
        assert!(json["trainer"]["rng_word_pos"].is_string(), "{json}");
        let mut bad = loaded.extras.clone();
        bad.run_state.as_mut().unwrap()["trainer"]["rng_word_pos"] = "12x".into();
        let e = read(&bad).unwrap_err().to_string();
        assert!(
            e.contains("damaged") && e.contains("bad RNG position `12x`"),
            "{e}"
        );
        bad.run_state = None;
        let e = read(&bad).unwrap_err().to_string();
        assert!(e.contains("model only"), "{e}");
    }

    #[test]
    fn metrics_are_trimmed_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(&p, "{\"epoch\":1}\n{\"epoch\":2}\n{\"epoch\":3}\n").unwrap();
        trim_metrics(&p, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"epoch\":1}\n{\"epoch\":2}\n"
        );
        trim_metrics(&dir.path().join("none.jsonl"), 1).unwrap();
    }
}
