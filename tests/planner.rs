//! `--plan auto` as a user meets it: measured once and cached per machine
//! and shape, printed and recorded, reused by `--config`/`--plan FILE` with
//! the same bits, and a bad or unwritable cache costs a warning, not the
//! run.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{s, tensors, workdir};

/// The binary with its plan cache in `cache` and no `MNIST_MLP_PLAN`,
/// trusting every measurement however busy the machine (the tests beside
/// it keep it busy; `a_busy_machine_caches_nothing` is the one that
/// does not trust).
fn auto(cache: &Path) -> Command {
    let mut c = common::bin();
    c.env_remove("MNIST_MLP_PLAN")
        .env("XDG_CACHE_HOME", cache)
        .env("MNIST_MLP_PLAN_BUSY", "1");
    c
}

fn run(c: &mut Command, args: &[&str]) -> (String, String) {
    let out: Output = c.args(args).output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?} failed: {e}");
    (o, e)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(|a| a.as_str()).collect()
}

/// Held by each test for its whole length: the tests run one at a time,
/// since `a_busy_machine_caches_nothing` keeps every CPU busy, which would
/// leave the others' measurements undecided.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `MLP_*` overrides in the environment: the planner does not measure.
fn overrides_set() -> bool {
    let set = std::env::vars().any(|(k, _)| k.starts_with("MLP_"));
    if set {
        println!("MLP_* overrides set: the planner does not measure; skipped");
    }
    set
}

/// `train` of a 784-64-32-10 net at batch 8 for one epoch on `data`.
fn small_run(data: &Path, extra: &[&str]) -> Vec<String> {
    let d = s(data);
    let base = [
        "train",
        "--data-dir",
        &d,
        "--hidden",
        "64,32",
        "--batch-size",
        "8",
        "--epochs",
        "1",
    ];
    base.iter().chain(extra).map(|a| a.to_string()).collect()
}

/// [`small_run`] at batch `batch` on 2 threads, quiet, saving to `save`,
/// then `extra`.
fn saving_run(data: &Path, batch: &str, save: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = small_run(data, &["--threads", "2", "--quiet", "--save", &s(save)]);
    assert_eq!(v[5], "--batch-size");
    v[6] = batch.into();
    v.extend(extra.iter().map(|a| a.to_string()));
    v
}

/// The layers' tensors of a saved model (name, shape, bytes).
fn layer_weights(p: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    tensors(p)
        .into_iter()
        .filter(|t| t.0.starts_with("layers."))
        .collect()
}

fn plan_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("plan "))
        .unwrap_or_else(|| panic!("no plan line in {stdout}"))
}

#[test]
fn auto_measures_once_caches_records_and_repeats_bit_for_bit() {
    let _one = one_at_a_time();
    if overrides_set() {
        return;
    }
    let (d, data) = workdir(3000, 500);
    let cache = d.path().join("cache");
    let save = d.path().join("a.safetensors");
    let train = |save: &Path, extra: &[&str]| saving_run(&data, "8", save, extra);

    // First run: measured now, cached, recorded in model.toml.
    let first = train(&save, &[]);
    let (out, err) = run(&mut auto(&cache), &args(&first));
    let line = plan_line(&out);
    assert!(
        line.contains("measured now") && line.contains("candidates"),
        "{line}"
    );
    assert!(!err.contains("warning"), "{err}");
    let file = cache.join("mnist-mlp/plans.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let entries = json["entries"].as_object().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    let key = entries.keys().next().unwrap();
    assert!(
        key.contains("2 threads") && key.contains("784-64-32-10") && key.contains("rows 8"),
        "{key}"
    );
    let toml = std::fs::read_to_string(save.with_extension("toml")).unwrap();
    assert!(toml.contains("[plan]"), "{toml}");

    // A later run of the shape: the cached choice, nothing measured. (A
    // plan other than the built-in one is first measured once more,
    // against the built-in plan, by the run after the one that chose it.)
    let b = d.path().join("b.safetensors");
    let mut summary = serde_json::Value::Null;
    for _ in 0..3 {
        let (out, _) = run(
            &mut auto(&cache),
            &args(&train(&b, &["--json", "--overwrite"])),
        );
        summary = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "summary")
            .unwrap();
        if summary["planner"]["source"] == "cached" {
            break;
        }
        assert_ne!(
            entries[key]["plan"],
            serde_json::to_value(mnist_mlp::plan::Plan::default()).unwrap(),
            "the built-in plan is cached as it is: {summary}"
        );
    }
    assert_eq!(summary["planner"]["source"], "cached", "{summary}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        summary["plan"], json["entries"][key]["plan"],
        "the cached plan runs"
    );

    // The recorded plan, pinned by --plan FILE on a fresh cache (nothing
    // cached, nothing measured): the same bits as the measured run.
    let c = d.path().join("c.safetensors");
    let fresh = d.path().join("fresh-cache");
    let (out, _) = run(
        &mut auto(&fresh),
        &args(&train(&c, &["--plan", &s(&save.with_extension("toml"))])),
    );
    assert!(plan_line(&out).contains("(given)"), "{out}");
    assert!(!fresh.exists(), "a pinned plan measures and caches nothing");
    assert_eq!(
        layer_weights(&save),
        layer_weights(&c),
        "pinned = measured, bit for bit"
    );
    // And --config model.toml takes the [plan] table too.
    let e = d.path().join("e.safetensors");
    let (out, _) = run(
        &mut auto(&fresh),
        &[
            "train",
            "--config",
            &s(&save.with_extension("toml")),
            "--save",
            &s(&e),
        ],
    );
    assert!(plan_line(&out).contains("(given)"), "{out}");
    assert_eq!(
        layer_weights(&save),
        layer_weights(&e),
        "--config repeats the run's bits"
    );

    // A resumed run keeps the checkpoint's plan: nothing measured, even
    // with nothing cached.
    let (out, _) = run(
        &mut auto(&fresh),
        &["train", "--resume", &s(&save), "--epochs", "2", "--quiet"],
    );
    assert!(plan_line(&out).contains("(given)"), "{out}");
    assert!(!fresh.exists());
    let resumed_toml = std::fs::read_to_string(save.with_extension("toml")).unwrap();
    let plan_of = |t: &str| t[t.find("[plan]").unwrap()..].to_string();
    assert_eq!(
        plan_of(&resumed_toml),
        plan_of(&toml),
        "the same [plan] recorded"
    );

    // A corrupt cache: a warning, a new measurement, the file rewritten.
    std::fs::write(&file, "{\"program\": \"mnist-mlp\", \"entr").unwrap();
    let (out, err) = run(&mut auto(&cache), &args(&train(&b, &[])));
    assert!(err.contains("not a plan cache"), "{err}");
    assert!(plan_line(&out).contains("measured now"), "{out}");
    let (_, err) = run(&mut auto(&cache), &args(&train(&b, &[])));
    assert!(!err.contains("warning"), "rewritten: {err}");

    // An unwritable cache folder (a file stands where it should be).
    let blocked = d.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let (out, err) = run(&mut auto(&blocked), &args(&train(&b, &[])));
    assert!(err.contains("cannot write it"), "{err}");
    assert!(out.contains("done: test accuracy"), "{out}");

    // --plan default measures nothing; a bad --plan is an error naming it.
    let (out, _) = run(&mut auto(&fresh), &args(&train(&b, &["--plan", "default"])));
    assert!(
        plan_line(&out).contains("--plan default, not measured"),
        "{out}"
    );
    let err = common::fails(&args(&train(&b, &["--plan", "/no/such/plan.toml"])));
    assert!(
        err.contains("--plan /no/such/plan.toml") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn tune_prints_every_candidate_and_saves_a_plan_train_accepts() {
    let _one = one_at_a_time();
    if overrides_set() {
        return;
    }
    let (d, data) = workdir(2000, 200);
    let cache = d.path().join("cache");
    let plan = d.path().join("plan.toml");
    let (out, _) = run(
        &mut auto(&cache),
        &[
            "tune",
            "--layers",
            "784,relu,64,relu,32,softmax,10",
            "--batch-size",
            "8",
            "--threads",
            "2",
            "--budget",
            "0.5",
            "--data-dir",
            &s(&data),
            "--save",
            &s(&plan),
        ],
    );
    let rows = out
        .lines()
        .filter(|l| l.contains("col_split_rows="))
        .count();
    assert!(rows >= 3, "a row per candidate and the choice: {out}");
    assert!(
        out.contains("chosen #") && out.contains("cached in"),
        "{out}"
    );
    assert!(cache.join("mnist-mlp/plans.json").exists());
    let (out, _) = run(
        &mut common::bin(),
        &args(&small_run(&data, &["--quiet", "--plan", &s(&plan)])),
    );
    assert!(plan_line(&out).contains("(given)"), "{out}");
    let err = common::fails(&["tune", "--workload", "T9", "--synthetic"]);
    assert!(err.contains("--workload") && err.contains("T9"), "{err}");

    // A budget that cannot time one sample of each candidate is an error,
    // and caches nothing (it would pass off the built-in plan as measured).
    let empty = d.path().join("empty-cache");
    let err = common::fails_with(
        &mut auto(&empty),
        &[
            "tune",
            "--layers",
            "784,relu,64,relu,32,softmax,10",
            "--batch-size",
            "full",
            "--threads",
            "2",
            "--budget",
            "0.001",
            "--data-dir",
            &s(&data),
        ],
    );
    assert!(
        err.contains("too short to compare")
            && err.contains("--budget")
            && err.contains("nothing cached"),
        "{err}"
    );
    assert!(!empty.join("mnist-mlp/plans.json").exists());
}

/// The planner's OpenBLAS-threaded candidate is `--threading blas` for
/// one run: a plan file with `blas_threads = true` on the default (split)
/// pool gives the bits of `--threading blas`, is recorded in model.toml,
/// and a resume of that run keeps it.
#[test]
fn blas_threads_plan_runs_as_threading_blas_does() {
    let _one = one_at_a_time();
    if overrides_set() {
        return;
    }
    let (d, data) = workdir(2000, 300);
    let cache = d.path().join("cache");
    let plan = d.path().join("plan.toml");
    std::fs::write(&plan, "blas_threads = true\n").unwrap();
    let (a, b) = (
        d.path().join("a.safetensors"),
        d.path().join("b.safetensors"),
    );
    // Batch 64: products worth threading.
    let train = |save: &Path, extra: &[&str]| saving_run(&data, "64", save, extra);
    let (out, _) = run(&mut auto(&cache), &args(&train(&a, &["--plan", &s(&plan)])));
    assert!(plan_line(&out).contains("blas_threads=on"), "{out}");
    run(
        &mut auto(&cache),
        &args(&train(&b, &["--threading", "blas", "--plan", "default"])),
    );
    assert_eq!(
        layer_weights(&a),
        layer_weights(&b),
        "blas_threads = --threading blas"
    );
    let toml = std::fs::read_to_string(a.with_extension("toml")).unwrap();
    assert!(toml.contains("blas_threads = true"), "{toml}");
    let (out, _) = run(
        &mut auto(&cache),
        &["train", "--resume", &s(&a), "--epochs", "2", "--quiet"],
    );
    assert!(plan_line(&out).contains("blas_threads=on"), "{out}");
}

/// Threads of this (test) process that keep every CPU busy until dropped:
/// to the binary they are another program.
struct Spinners(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Spinners {
    /// Two per CPU.
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let n = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
        let handles = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Spinners(stop, handles)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for h in self.1.drain(..) {
            let _ = h.join();
        }
    }
}

/// With the other tests held back by the lock, this process goes quiet:
/// the wait that lets OpenBLAS's workers sleep before the planner times a
/// rayon-split plan against an OpenBLAS-threaded one ends.
#[test]
fn an_idle_process_is_quiet() {
    let _one = one_at_a_time();
    let t = std::time::Instant::now();
    assert!(mnist_mlp::plan::measure::wait_for_quiet(2.0));
    assert!(t.elapsed().as_secs_f64() < 2.0);
}

/// A plan measured while other programs hold the CPUs (one block instead
/// of two can win then and lose 1.5x once they stop) is not cached: the
/// built-in plan runs and the line says why. A bad `MNIST_MLP_PLAN_BUSY`
/// is an error before anything runs.
#[test]
fn a_busy_machine_caches_nothing() {
    let _one = one_at_a_time();
    if overrides_set() || !Path::new("/proc/stat").exists() {
        return;
    }
    let (d, data) = workdir(3000, 300);
    let cache = d.path().join("cache");
    let out = {
        let _busy = Spinners::start();
        run(
            auto(&cache).env_remove("MNIST_MLP_PLAN_BUSY"),
            &args(&small_run(&data, &["--threads", "2", "--quiet"])),
        )
        .0
    };
    let line = plan_line(&out);
    assert!(
        line.contains("other programs or the host took") && line.contains("nothing cached"),
        "{line}"
    );
    assert!(
        line.starts_with(&format!("plan {} ", mnist_mlp::plan::Plan::default())),
        "{line}"
    );
    assert!(!cache.join("mnist-mlp/plans.json").exists());

    let mut c = auto(&cache);
    c.env("MNIST_MLP_PLAN_BUSY", "lots");
    let err = common::fails_with(&mut c, &args(&small_run(&data, &[])));
    assert!(
        err.contains("MNIST_MLP_PLAN_BUSY=lots") && err.contains("0 to 1"),
        "{err}"
    );
}
