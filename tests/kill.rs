//! SIGKILL at random moments, many times, including while checkpoints are
//! being written: the last checkpoint is always intact and loadable, no
//! finished epoch is ever lost, and resuming always works.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{ok, s, workdir};
use rand::{Rng, SeedableRng};

#[test]
fn sigkill_at_random_moments_never_loses_the_last_checkpoint() {
    let (d, data) = workdir(500, 100);
    let ck = d.path().join("ck.safetensors");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        std::env::var("KILL_TEST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
    );
    let kills = 40;
    let (mut resumes, mut mid_write, mut before_first) = (0, 0, 0);
    let mut last_done = 0u64;
    for _ in 0..kills {
        // Big layers and tiny epochs: much of the time goes to writing the
        // checkpoint (2.5 MB with Adam's moments, fsync'd) every epoch.
        let mut args: Vec<String> = [
            "train",
            "--data-dir",
            &s(&data),
            "--hidden",
            "256",
            "--epochs",
            "100000",
            "--threads",
            "2",
            "--quiet",
            "--save",
            &s(&ck),
            "--checkpoint-every",
            "1",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if ck.exists() {
            args = vec!["train".into(), "--resume".into(), s(&ck), "--quiet".into()];
            resumes += 1;
        }
        let mut child = common::bin()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(30..400)));
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the run ended by itself ({st}): {err}");
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let temps = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        if temps > 0 {
            mid_write += 1;
        }
        if !ck.exists() {
            before_first += 1;
            continue;
        }
        // The checkpoint on disk is always whole and holds the run state.
        let l = mnist_mlp::checkpoint::load(&ck).expect("the last checkpoint loads");
        assert!(l.model.is_finite());
        let done = l.extras.run_state.as_ref().unwrap()["trainer"]["epoch"]
            .as_u64()
            .unwrap();
        assert!(
            done >= last_done,
            "epochs went back from {last_done} to {done}"
        );
        last_done = done;
    }
    println!(
        "{kills} kills: {mid_write} while a checkpoint was being written (temporary file left), \
         {before_first} before the first checkpoint, {resumes} resumed runs; last checkpoint after epoch {last_done}"
    );
    assert!(last_done > 0, "no checkpoint was ever written");
    assert!(
        mid_write > 0,
        "no kill landed during a write: the test did not test that"
    );
    // A final resume runs to its end and leaves no temporary files.
    ok(&[
        "train",
        "--resume",
        &s(&ck),
        "--epochs",
        &(last_done + 1).to_string(),
        "--quiet",
    ]);
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let out = ok(&[
        "eval",
        "--model",
        &s(&ck),
        "--data-dir",
        &s(&data),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.5);
}
