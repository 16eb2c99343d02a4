//! Downloading MNIST from the standard public mirrors.
//!
//! Each file is streamed into a temporary file in the target directory, its
//! *decompressed* content is checked against the SHA-256 below (mirrors
//! recompress the gzip streams, so only the content is stable), and only then
//! is it renamed into place. A failed or corrupted download leaves nothing
//! behind; a dead mirror is skipped for the next one.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// One file of the dataset: its name on the mirrors and the SHA-256 of its
/// decompressed content.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    /// The file name (appended to a mirror's URL).
    pub name: &'static str,
    /// SHA-256 of the file's decompressed content (hex).
    pub sha256: &'static str,
    /// Decompressed size in bytes.
    pub size: u64,
}

/// The four MNIST files.
pub const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        size: 47_040_016,
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        size: 60_008,
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        size: 7_840_016,
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        size: 10_008,
    },
];

/// Public MNIST mirrors, tried in order.
pub const DEFAULT_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// Environment variable with a comma-separated list of mirrors that replaces
/// the defaults.
pub const MIRRORS_ENV: &str = "MNIST_MIRRORS";

/// Largest download accepted per file (the biggest MNIST file is ~10 MB gzip).
const MAX_DOWNLOAD: u64 = 256 << 20;

/// Why a download did not complete.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The data folder cannot be created.
    #[error("{}: cannot create the data directory: {err}", dir.display())]
    CreateDir {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        err: io::Error,
    },
    /// No mirror delivered a verified copy of a file.
    #[error("{name}: every mirror failed:\n{}", failures.join("\n"))]
    AllMirrorsFailed {
        /// The file.
        name: String,
        /// Each mirror's URL and error.
        failures: Vec<String>,
    },
    #[error("{} of {} files could not be downloaded; {}\n{}\nrun `mnist-mlp fetch` again for the rest",
        failed.len(), failed.len() + done.len(), done_line(done),
        failed.iter().map(|(n, f)| format!("{n}: every mirror failed:\n{}", f.join("\n"))).collect::<Vec<_>>().join("\n"))]
    /// Some files are in place, others failed (each with its mirrors' errors).
    Incomplete {
        /// The files that are in place (present or downloaded), verified.
        done: Vec<FetchOutcome>,
        /// Each file that failed, with every mirror's error.
        failed: Vec<(String, Vec<String>)>,
    },
    /// A downloaded file cannot be moved into place.
    #[error("{}: cannot write: {err}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: io::Error,
    },
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Already present with the right content.
    Present(PathBuf),
    /// Downloaded from this mirror.
    Downloaded {
        /// Where it is.
        path: PathBuf,
        /// The mirror it came from.
        mirror: String,
    },
}

fn done_line(done: &[FetchOutcome]) -> String {
    if done.is_empty() {
        return "none is in place".into();
    }
    let names: Vec<String> = done
        .iter()
        .map(|o| match o {
            FetchOutcome::Present(p) => format!("{} (present)", p.display()),
            FetchOutcome::Downloaded { path, .. } => format!("{} (downloaded)", path.display()),
        })
        .collect();
    format!("in place and verified: {}", names.join(", "))
}

/// The mirrors to use: `$MNIST_MIRRORS` (comma-separated) or the defaults.
pub fn mirrors_from_env() -> Vec<String> {
    match std::env::var(MIRRORS_ENV) {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => DEFAULT_MIRRORS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Hex SHA-256 of `bytes` (as the checksums here, in checkpoints and in a
/// dataset's identity are written).
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// SHA-256 (hex) and length of a file's content, decompressed if it is gzip.
pub fn content_sha256(path: &Path) -> io::Result<(String, u64)> {
    let (r, _) = crate::data::idx::open_content(path)?;
    // Bounded: a gzip bomb cannot make this run for long.
    let mut r = r.take(crate::data::idx::MAX_DATA_BYTES);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        total += k as u64;
        h.update(&buf[..k]);
    }
    Ok((format!("{:x}", h.finalize()), total))
}

crate::error::message_error!(
    /// A file whose content is not the expected one (or cannot be read).
    VerifyError
);

/// Does `path` hold the expected content?
pub fn verify(path: &Path, file: &RemoteFile) -> Result<(), VerifyError> {
    match content_sha256(path) {
        Ok((sum, len)) if sum == file.sha256 => {
            debug_assert_eq!(len, file.size);
            Ok(())
        }
        Ok((sum, len)) => Err(VerifyError(format!(
            "content SHA-256 {sum} ({len} bytes) does not match the expected {} ({} bytes)",
            file.sha256, file.size
        ))),
        Err(e) => Err(VerifyError(format!("cannot read the content: {e}"))),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// Why one download failed, and whether the mirror was out of reach.
struct Failure {
    msg: String,
    unreachable: bool,
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure {
            msg,
            unreachable: false,
        }
    }
}

/// Downloads one URL into a temporary file in `dir` and verifies it.
fn download_one(
    agent: &ureq::Agent,
    url: &str,
    dir: &Path,
    file: &RemoteFile,
    progress: bool,
) -> Result<tempfile::NamedTempFile, Failure> {
    let mut resp = agent.get(url).call().map_err(|e| {
        // A status (404) is the mirror's answer about this file; anything
        // else (no route, no name, refused, timed out) says the mirror is
        // out of reach, and later files skip it.
        let reached = matches!(e, ureq::Error::StatusCode(_));
        Failure {
            msg: e.to_string(),
            unreachable: !reached,
        }
    })?;
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file.name))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let pb = if progress {
        let pb = ProgressBar::new(len.unwrap_or(0));
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_message(file.name.to_string());
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut body = resp.body_mut().with_config().limit(MAX_DOWNLOAD).reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = body
            .read(&mut buf)
            .map_err(|e| format!("download interrupted: {e}"))?;
        if k == 0 {
            break;
        }
        tmp.write_all(&buf[..k])
            .map_err(|e| format!("cannot write {}: {e}", tmp.path().display()))?;
        pb.inc(k as u64);
    }
    pb.finish_and_clear();
    tmp.as_file()
        .sync_all()
        .map_err(|e| format!("cannot write {}: {e}", tmp.path().display()))?;
    verify(tmp.path(), file).map_err(|e| e.to_string())?;
    // tempfile creates 0600 files: a dataset is for every user of the
    // machine to read (0644, as a plain download would be).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("cannot set the mode of {}: {e}", tmp.path().display()))?;
    }
    Ok(tmp)
}

/// Makes sure `dir` holds `files`, downloading what is missing or wrong from
/// `mirrors` (each a URL prefix; the file name is appended).
pub fn fetch(
    dir: &Path,
    files: &[RemoteFile],
    mirrors: &[String],
    progress: bool,
) -> Result<Vec<FetchOutcome>, FetchError> {
    let existed = dir.exists();
    std::fs::create_dir_all(dir).map_err(|err| FetchError::CreateDir {
        dir: dir.to_path_buf(),
        err,
    })?;
    let r = fetch_into(dir, files, mirrors, progress);
    // A folder this call made and filled with nothing goes again (an
    // offline first run leaves no empty data/mnist behind).
    if r.is_err() && !existed {
        let _ = std::fs::remove_dir(dir);
    }
    r
}

fn fetch_into(
    dir: &Path,
    files: &[RemoteFile],
    mirrors: &[String],
    progress: bool,
) -> Result<Vec<FetchOutcome>, FetchError> {
    let agent = agent();
    let mut out = Vec::new();
    let mut failed = Vec::new();
    let mut unreachable: Vec<String> = Vec::new();
    for file in files {
        let dest = dir.join(file.name);
        if dest.is_file() && verify(&dest, file).is_ok() {
            out.push(FetchOutcome::Present(dest));
            continue;
        }
        let mut failures = Vec::new();
        let mut done = None;
        for m in mirrors {
            let url = format!("{}/{}", m.trim_end_matches('/'), file.name);
            if unreachable.contains(m) {
                failures.push(format!(
                    "  {url}: skipped (out of reach for an earlier file)"
                ));
                continue;
            }
            match download_one(&agent, &url, dir, file, progress) {
                Ok(tmp) => {
                    tmp.persist(&dest).map_err(|e| FetchError::Write {
                        path: dest.clone(),
                        err: e.error,
                    })?;
                    done = Some(m.clone());
                    break;
                }
                Err(Failure {
                    msg,
                    unreachable: out_of_reach,
                }) => {
                    if progress {
                        eprintln!("  {url}: {msg}");
                    }
                    if out_of_reach {
                        unreachable.push(m.clone());
                    }
                    failures.push(format!("  {url}: {msg}"));
                }
            }
        }
        match done {
            Some(mirror) => out.push(FetchOutcome::Downloaded { path: dest, mirror }),
            // The other files are still fetched: one bad file does not
            // cost the rest, and the error says what is in place.
            None => failed.push((file.name.to_string(), failures)),
        }
    }
    match (failed.len(), out.len()) {
        (0, _) => Ok(out),
        (1, 0) => {
            let (name, failures) = failed.remove(0);
            Err(FetchError::AllMirrorsFailed { name, failures })
        }
        _ => Err(FetchError::Incomplete { done: out, failed }),
    }
}
