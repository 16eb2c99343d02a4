//! The planner's cache: one measured plan per machine and step shape, so
//! that a machine pays for measuring a shape once.
//!
//! The file is `$XDG_CACHE_HOME/mnist-mlp/plans.json`, else
//! `~/.cache/mnist-mlp/plans.json`: a JSON object with this program's name
//! and version and an `entries` map from a key to what was chosen. The key
//! names everything a plan's speed depends on: the CPU ([`cpu_model`]: its
//! model name, and on x86 its family, model and stepping, since a VM's
//! "AMD EPYC" names every Zen generation alike), OpenBLAS's version and
//! kernel set (its configuration string), the thread count and policy, the
//! precision, the layer widths and the rows of a step.
//!
//! What the key cannot name is where a VM runs: the same key on another
//! host, or on other cores of one, can make another plan the fastest
//! (session 23 measured T3 on two threads 1.5x faster than on one, and on
//! the next machine of the same key 1.14x slower). So an entry records the
//! boot it was measured in ([`boot_id`], Linux's
//! `/proc/sys/kernel/random/boot_id`), and [`super::choose`] measures a
//! shape again, once, on a later boot; where there is no boot id (other
//! systems) an entry stays until the cache's version changes.
//!
//! The entries of one machine's other shapes are hints too ([`hints`]): a
//! run that cannot time every candidate of a new shape times their plans
//! first. An entry whose search left candidates out for time records how
//! many and the plans it timed ([`Entry::left_out`], [`Entry::screened`]):
//! the next run of the shape carries the search on with the rest, until
//! none is left (an older version reads such an entry as a plain choice).
//!
//! A cache that cannot be read, does not parse or was written by another
//! version of mnist-mlp or of its candidate list ([`VERSION`]) is ignored with a
//! one-line warning and rewritten; one that cannot be written (a read-only
//! home) costs a warning and a measurement next time, never the run. The
//! file is replaced atomically (a temporary file renamed over it), so a
//! crash never leaves half a cache; two runs that measure at once may keep
//! only one's entry, which the other measures again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Plan, Shape};

/// The version a cache file must carry: mnist-mlp's, and the revision of
/// the candidate list and of what an entry means (a cache measured under
/// an older revision is measured again; revision 2 added OpenBLAS-threaded
/// products; revision 3 stores only choices made by comparing timed
/// candidates, where revision 2 also stored the built-in plan of a
/// measurement that timed none; revision 4 stores choices made round by
/// round, where revision 3's rested on each candidate's fastest sample,
/// which one lucky sample could decide; revision 5 replaces the built-in
/// plan only after a last level of at least
/// [`super::search::MIN_SWITCH_S`], where revision 4 let a few
/// milliseconds' rounds do it; revision 6 keys the CPU by family, model
/// and stepping too, records each entry's boot, and uses a plan other than
/// the built-in one for good only once a second measurement confirmed it;
/// revision 7 adds row chunks, [`Plan::row_chunk`], to the plans;
/// revision 8 adds [`Plan::small_bwd`]).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+paired.8");

/// The file's name inside the cache folder.
pub const FILE: &str = "plans.json";

/// What the cache remembers of one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The plan chosen.
    pub plan: Plan,
    /// Its fastest step over the default plan's (>= 1).
    pub speedup: f64,
    /// Candidates measured: at least two of them timed, or the shape's
    /// only one.
    pub candidates: usize,
    /// When it was measured (seconds since 1970).
    pub measured_at: u64,
    /// The boot it was measured in ([`boot_id`]; `None` where the system
    /// has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Whether the plan, if not the built-in one, won a second time: in a
    /// later run's measurement of the two, or in `tune`'s long one. Until
    /// then a run measures the pair again ([`super::choose`]).
    #[serde(default)]
    pub confirmed: bool,
    /// Candidates of the shape that the search left out for time (0: it
    /// timed them all, or carried on until it had). While some are left,
    /// a later run of the same boot carries the search on from here,
    /// timing those against the built-in plan and this entry's
    /// ([`super::choose`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_out: usize,
    /// The plans the search timed so far, in this run and the runs it
    /// carried on from (kept only while some are left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub screened: Vec<Plan>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Entry {
    /// What to remember of a measurement, stamped now.
    pub fn of(m: &super::measure::Measured) -> Self {
        Self {
            plan: m.plan(),
            speedup: m.speedup(),
            candidates: m.candidates.len(),
            measured_at: now(),
            boot: boot_id(),
            confirmed: false,
            left_out: m.left_out,
            screened: if m.left_out > 0 {
                m.candidates.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Whether the search behind it timed every candidate of the shape.
    pub fn complete(&self) -> bool {
        self.left_out == 0
    }

    /// Whether a run may use the plan as it is: the built-in plan (which
    /// needs no confirming), or another that won twice.
    pub fn settled(&self) -> bool {
        self.confirmed || self.plan == Plan::default()
    }

    /// Whether the entry was measured in another boot than `boot` (the
    /// current one): false when either is unknown.
    pub fn from_another_boot(&self, boot: Option<&str>) -> bool {
        matches!((self.boot.as_deref(), boot), (Some(a), Some(b)) if a != b)
    }
}

/// The cache file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// `mnist-mlp`.
    pub program: String,
    /// The version of mnist-mlp that wrote it ([`VERSION`]).
    pub version: String,
    /// Plans by key (machine, threads, precision, widths, rows).
    pub entries: BTreeMap<String, Entry>,
}

impl Default for CacheFile {
    fn default() -> Self {
        Self {
            program: "mnist-mlp".into(),
            version: VERSION.into(),
            entries: BTreeMap::new(),
        }
    }
}

/// The cache file's path from an environment (`XDG_CACHE_HOME`, `HOME`);
/// `None` when neither is set to an absolute path.
pub fn path_from(var: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let abs = |k: &str| var(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let dir = abs("XDG_CACHE_HOME").or_else(|| abs("HOME").map(|h| h.join(".cache")))?;
    Some(dir.join("mnist-mlp").join(FILE))
}

/// The cache file's path in this process's environment.
pub fn path() -> Option<PathBuf> {
    path_from(&|k| std::env::var_os(k))
}

/// The processor, as the cache key names it: `/proc/cpuinfo`'s model name
/// and its identity numbers: on x86 family, model and stepping (e.g.
/// `AMD EPYC (family 26 model 2 stepping 1)`), on Arm implementer, part
/// and variant; the architecture where there is no `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| cpu_from_cpuinfo(&s))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// [`cpu_model`] from the text of a `/proc/cpuinfo` (its first processor's
/// lines); `None` when it names no model.
pub fn cpu_from_cpuinfo(text: &str) -> Option<String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
            .filter(|v| !v.is_empty())
    };
    let name = field("model name").or_else(|| field("Model"));
    let ids = |keys: [(&str, &str); 3]| -> Option<String> {
        let parts: Option<Vec<String>> = keys
            .iter()
            .map(|(k, label)| field(k).map(|v| format!("{label} {v}")))
            .collect();
        parts.map(|p| p.join(" "))
    };
    let id = ids([
        ("cpu family", "family"),
        ("model", "model"),
        ("stepping", "stepping"),
    ])
    .or_else(|| {
        ids([
            ("CPU implementer", "implementer"),
            ("CPU part", "part"),
            ("CPU variant", "variant"),
        ])
    });
    match (name, id) {
        (Some(n), Some(i)) => Some(format!("{n} ({i})")),
        (Some(n), None) => Some(n),
        (None, Some(i)) => Some(format!("{} ({i})", std::env::consts::ARCH)),
        (None, None) => None,
    }
}

/// This boot's id (Linux's `/proc/sys/kernel/random/boot_id`), `None`
/// elsewhere.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The key of `shape` on this machine.
pub fn key(shape: &Shape) -> String {
    key_in(&machine(shape), shape)
}

/// [`machine_part`] of this machine for `shape`.
pub fn machine(shape: &Shape) -> String {
    machine_part(&cpu_model(), &crate::blas::config(), shape)
}

/// The key of `shape` on a machine with this CPU model and BLAS.
pub fn key_for(cpu: &str, blas: &str, shape: &Shape) -> String {
    key_in(&machine_part(cpu, blas, shape), shape)
}

/// The key of `shape` whose machine part ([`machine_part`]) is
/// `machine`: that part, then the network's widths and the rows of a step.
pub fn key_in(machine: &str, shape: &Shape) -> String {
    let widths: Vec<String> = shape.widths.iter().map(|w| w.to_string()).collect();
    format!("{machine} | {} | rows {}", widths.join("-"), shape.rows).to_lowercase()
}

/// What the keys of every shape run on this machine, with `shape`'s thread
/// count, policy and precision, begin with (lower case, without the
/// separator that follows).
pub fn machine_part(cpu: &str, blas: &str, shape: &Shape) -> String {
    format!(
        "{cpu} | {blas} | {} threads {:?} | f{}",
        shape.threads,
        shape.threading,
        shape.elem_bytes * 8
    )
    .to_lowercase()
}

/// The most plans [`hints`] offers.
pub const MAX_HINTS: usize = 3;

/// What this machine chose for other shapes, for a search that cannot time
/// every candidate of `key`'s shape to try first (FFTW's "wisdom"): the
/// plans other than the built-in one that `file` holds under keys of the
/// same machine part (`machine`: same CPU, BLAS, threads and precision)
/// but another shape, confirmed ones first, then by their speedup; at
/// most [`MAX_HINTS`], each once. On one machine the same choices tend to
/// win across shapes (on two Zen 5 cores, all products split by columns
/// won for T1 and for T5).
pub fn hints(file: &CacheFile, machine: &str, key: &str) -> Vec<Plan> {
    let prefix = format!("{machine} | ");
    let mut found: Vec<&Entry> = file
        .entries
        .iter()
        .filter(|(k, e)| k.as_str() != key && k.starts_with(&prefix) && e.plan != Plan::default())
        .map(|(_, e)| e)
        .collect();
    found.sort_by(|a, b| {
        b.confirmed
            .cmp(&a.confirmed)
            .then(b.speedup.total_cmp(&a.speedup))
            .then(b.measured_at.cmp(&a.measured_at))
    });
    let mut plans: Vec<Plan> = Vec::new();
    for e in found {
        if plans.len() < MAX_HINTS && !plans.contains(&e.plan) {
            plans.push(e.plan);
        }
    }
    plans
}

/// Reads the cache at `path`: an empty one when there is none, and with a
/// warning to show when the file is unreadable, corrupt or foreign.
pub fn load(path: &Path) -> (CacheFile, Option<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (CacheFile::default(), None),
        Err(e) => {
            return (
                CacheFile::default(),
                Some(format!(
                    "warning: plan cache {}: cannot read it ({e}); measuring again",
                    path.display()
                )),
            )
        }
    };
    match serde_json::from_str::<CacheFile>(&text) {
        Ok(f) if f.program == "mnist-mlp" && f.version == VERSION => (f, None),
        Ok(f) => (
            CacheFile::default(),
            Some(format!(
                "warning: plan cache {}: written by {} {}, this is mnist-mlp {}; measuring again",
                path.display(),
                f.program,
                f.version,
                VERSION
            )),
        ),
        Err(e) => (
            CacheFile::default(),
            Some(format!(
                "warning: plan cache {}: not a plan cache ({e}); measuring again and replacing it",
                path.display()
            )),
        ),
    }
}

crate::error::message_error!(
    /// A plan cache that cannot be written (the message is the warning to
    /// show).
    CacheError
);

/// Adds `entry` under `key` to the cache at `path` (re-read first, so that
/// entries others wrote meanwhile are kept) and writes it atomically,
/// creating its folder. Errors: a message for a warning.
pub fn store(path: &Path, key: &str, entry: Entry) -> Result<(), CacheError> {
    store_entry(path, key, entry).map_err(CacheError)
}

fn store_entry(path: &Path, key: &str, entry: Entry) -> Result<(), String> {
    let (mut file, _) = load(path);
    file.entries.insert(key.to_string(), entry);
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "warning: plan cache {}: cannot write it ({e}); the plan will be measured again next time",
            path.display()
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let text = serde_json::to_string_pretty(&file).expect("a cache serializes");
    crate::checkpoint::write_atomic(path, text.as_bytes()).map_err(|e| fail(&e))
}

/// Seconds since 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::GemmThreading;

    fn shape(rows: usize) -> Shape {
        Shape {
            widths: vec![784, 512, 10],
            rows,
            blocks: 2,
            threads: 2,
            threading: GemmThreading::Split,
            elem_bytes: 4,
        }
    }

    fn entry() -> Entry {
        Entry {
            plan: Plan {
                tiles: true,
                ..Plan::default()
            },
            speedup: 1.2,
            candidates: 12,
            measured_at: 1,
            boot: Some("b1".into()),
            confirmed: false,
            left_out: 0,
            screened: Vec::new(),
        }
    }

    #[test]
    fn the_cpu_is_named_by_model_and_numbers() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 99\n";
        assert_eq!(
            cpu_from_cpuinfo(x86).as_deref(),
            Some("AMD EPYC (family 26 model 2 stepping 1)")
        );
        let zen3 = x86.replace(": 26", ": 25").replace(": 2\n", ": 1\n");
        assert_ne!(
            cpu_from_cpuinfo(&zen3),
            cpu_from_cpuinfo(x86),
            "same name, another generation"
        );
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\n";
        assert_eq!(
            cpu_from_cpuinfo(arm),
            Some(format!(
                "{} (implementer 0x41 part 0xd0c variant 0x3)",
                std::env::consts::ARCH
            ))
        );
        assert_eq!(
            cpu_from_cpuinfo("model name\t: Some CPU\n").as_deref(),
            Some("Some CPU")
        );
        assert_eq!(cpu_from_cpuinfo("processor : 0\n"), None);
        assert!(!cpu_model().is_empty());
    }

    #[test]
    fn entries_of_another_boot_are_told_apart() {
        let e = entry();
        assert!(e.from_another_boot(Some("b2")));
        assert!(!e.from_another_boot(Some("b1")));
        assert!(
            !e.from_another_boot(None),
            "no boot id now: nothing to compare"
        );
        let none = Entry {
            boot: None,
            ..entry()
        };
        assert!(!none.from_another_boot(Some("b2")));
        // An entry written without a boot reads back as one.
        let text = r#"{"plan": {}, "speedup": 1.0, "candidates": 2, "measured_at": 5}"#;
        let read: Entry = serde_json::from_str(text).unwrap();
        assert_eq!(read.boot, None);
    }

    #[test]
    fn the_path_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
        };
        let p = |pairs| path_from(&env(pairs));
        assert_eq!(
            p(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")]),
            Some(PathBuf::from("/c/mnist-mlp/plans.json"))
        );
        assert_eq!(
            p(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/mnist-mlp/plans.json")),
            "a relative XDG_CACHE_HOME is ignored, as the spec says"
        );
        assert_eq!(p(&[]), None);
    }

    #[test]
    fn keys_name_machine_and_shape() {
        let a = key_for("AMD EPYC", "OpenBLAS 0.3.21 Haswell", &shape(128));
        assert_eq!(
            a,
            "amd epyc | openblas 0.3.21 haswell | 2 threads split | f32 | 784-512-10 | rows 128"
        );
        assert_ne!(a, key_for("AMD EPYC", "OpenBLAS 0.3.21 Zen", &shape(128)));
        assert_ne!(
            a,
            key_for("AMD EPYC", "OpenBLAS 0.3.21 Haswell", &shape(64))
        );
    }

    #[test]
    fn hints_are_other_shapes_choices_on_the_same_machine() {
        let (cpu, blas) = ("AMD EPYC", "OpenBLAS 0.3.21 Zen");
        let here = shape(128);
        let machine = machine_part(cpu, blas, &here);
        assert!(key_for(cpu, blas, &here).starts_with(&format!("{machine} | ")));
        let plan = |col_split_rows| Plan {
            col_split_rows,
            ..Plan::default()
        };
        let at = |e: Entry, plan, speedup, confirmed| Entry {
            plan,
            speedup,
            confirmed,
            ..e
        };
        let mut file = CacheFile::default();
        let mut put = |s: &Shape, cpu: &str, e: Entry| {
            file.entries.insert(key_for(cpu, blas, s), e);
        };
        // This shape's own entry, another machine's, another thread
        // count's and the built-in plan are no hints.
        put(&here, cpu, at(entry(), plan(1), 9.0, true));
        put(&shape(64), "Intel Xeon", at(entry(), plan(2), 9.0, true));
        let one_thread = Shape {
            threads: 1,
            blocks: 1,
            ..shape(64)
        };
        put(&one_thread, cpu, at(entry(), plan(3), 9.0, true));
        put(&shape(32), cpu, at(entry(), Plan::default(), 9.0, true));
        // Confirmed first, then the larger speedup; a plan once.
        put(&shape(64), cpu, at(entry(), plan(4), 1.1, false));
        put(&shape(16), cpu, at(entry(), plan(5), 1.05, true));
        put(&shape(8), cpu, at(entry(), plan(6), 1.3, false));
        put(&shape(4), cpu, at(entry(), plan(6), 1.2, false));
        put(&shape(2), cpu, at(entry(), plan(7), 1.01, false));
        let key = key_for(cpu, blas, &here);
        assert_eq!(
            hints(&file, &machine, &key),
            vec![plan(5), plan(6), plan(4)]
        );
        assert!(hints(&CacheFile::default(), &machine, &key).is_empty());
    }

    #[test]
    fn store_then_load_and_refuse_what_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/mnist-mlp/plans.json");
        assert_eq!(load(&path), (CacheFile::default(), None), "none yet");
        store(&path, "k1", entry()).unwrap();
        store(&path, "k2", entry()).unwrap();
        let (f, w) = load(&path);
        assert_eq!(w, None);
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.entries["k1"], entry());
        // Corrupt: ignored with a warning, then replaced.
        std::fs::write(&path, "{\"program\": \"mnist-mlp\", \"vers").unwrap();
        let (f, w) = load(&path);
        assert!(f.entries.is_empty());
        assert!(w.unwrap().contains("not a plan cache"));
        store(&path, "k3", entry()).unwrap();
        assert_eq!(load(&path).0.entries.len(), 1);
        // Another version's: ignored.
        let other = CacheFile {
            version: "0.0.1".into(),
            ..load(&path).0
        };
        std::fs::write(&path, serde_json::to_string(&other).unwrap()).unwrap();
        let (f, w) = load(&path);
        assert!(f.entries.is_empty());
        assert!(w.unwrap().contains("written by mnist-mlp 0.0.1"));
        // A path whose folder cannot be made: a warning, not a panic.
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "x").unwrap();
        let e = store(&blocked.join("plans.json"), "k", entry()).unwrap_err();
        assert!(e.message().contains("cannot write it"), "{e}");
    }
}
