//! The planner's cache: one measured plan per machine and step shape, so
//! that a machine pays for measuring a shape once.
//!
//! The file is `$XDG_CACHE_HOME/mnist-mlp/plans.json`, else
//! `~/.cache/mnist-mlp/plans.json`: a JSON object with this program's name
//! and version and an `entries` map from a key to what was chosen. The key
//! names everything a plan's speed depends on: the CPU model, OpenBLAS's
//! version and kernel set (its configuration string), the thread count and
//! policy, the precision, the layer widths and the rows of a step.
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
/// milliseconds' rounds do it).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+paired.5");

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
}

impl Entry {
    /// What to remember of a measurement, stamped now.
    pub fn of(m: &super::measure::Measured) -> Self {
        Self {
            plan: m.plan(),
            speedup: m.outcome.speedup(),
            candidates: m.candidates.len(),
            measured_at: now(),
        }
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

/// The processor's model name (`/proc/cpuinfo`'s `model name`, else the
/// architecture).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The key of `shape` on this machine.
pub fn key(shape: &Shape) -> String {
    key_for(&cpu_model(), &crate::blas::config(), shape)
}

/// The key of `shape` on a machine with this CPU model and BLAS.
pub fn key_for(cpu: &str, blas: &str, shape: &Shape) -> String {
    let widths: Vec<String> = shape.widths.iter().map(|w| w.to_string()).collect();
    format!(
        "{cpu} | {blas} | {} threads {:?} | f{} | {} | rows {}",
        shape.threads,
        shape.threading,
        shape.elem_bytes * 8,
        widths.join("-"),
        shape.rows
    )
    .to_lowercase()
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
        }
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
