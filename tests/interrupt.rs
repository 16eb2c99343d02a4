//! Ctrl-C (SIGINT) and SIGTERM during `train --save`: the epoch under way
//! finishes, a resumable checkpoint is written, the resume command is
//! printed and the exit status is 130; resuming ends bit-identical to an
//! uninterrupted run, with every epoch's metrics line exactly once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{s, tensors, workdir};

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn an_interrupted_run_saves_a_checkpoint_and_resumes_bit_for_bit() {
    let (d, data) = workdir(12000, 500);
    let args = |name: &str| -> Vec<String> {
        let p = |ext: &str| s(&d.path().join(format!("{name}.{ext}")));
        [
            "train",
            "--data-dir",
            &s(&data),
            "--hidden",
            "64,32",
            "--optimizer",
            "adam",
            "--epochs",
            "8",
            "--threads",
            "2",
            "--quiet",
            "--save",
            &p("safetensors"),
            "--metrics-out",
            &p("jsonl"),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    common::ok(&args("a").iter().map(|a| a.as_str()).collect::<Vec<_>>());

    for (name, signal) in [("b", libc::SIGINT), ("c", libc::SIGTERM)] {
        let jsonl = d.path().join(format!("{name}.jsonl"));
        let child = common::bin()
            .args(args(name))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while lines(&jsonl) == 0 {
            assert!(t.elapsed() < Duration::from_secs(60), "no epoch finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let done = lines(&jsonl);
        assert!(
            done < 8,
            "the run ended before the signal took effect; make it longer"
        );
        assert_eq!(out.status.code(), Some(130), "{name}: {err}");
        let ck = d.path().join(format!("{name}.safetensors"));
        // The run stops after the step under way (mid-epoch), or, when
        // the signal came as an epoch ended, after that epoch.
        let mid = err.contains(&format!("interrupted in epoch {} after step", done + 1));
        assert!(
            (mid || err.contains(&format!("interrupted after epoch {done}")))
                && err.contains(&format!("resume with: mnist-mlp train --resume {}", s(&ck))),
            "{err}"
        );
        // The checkpoint holds exactly the epochs the metrics say, and the
        // steps of the epoch under way.
        let out = common::ok(&["train", "--resume", &s(&ck), "--quiet"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let resumed = if mid {
            format!("resuming {} in epoch {} after its step", s(&ck), done + 1)
        } else {
            format!("resuming {} after epoch {done}", s(&ck))
        };
        assert!(text.contains(&resumed), "{text}");
        assert_eq!(lines(&jsonl), 8, "every epoch's line exactly once");
        let (ta, tb) = (tensors(&d.path().join("a.safetensors")), tensors(&ck));
        assert_eq!(ta.len(), tb.len());
        for (x, y) in ta.iter().zip(&tb) {
            assert!(x.0 == y.0 && x.2 == y.2, "{name}: tensor {} differs", x.0);
        }
    }
}
