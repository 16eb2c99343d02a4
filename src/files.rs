//! The files a run reads and writes.
//!
//! Inputs are regular files only. A FIFO given as `--model` would block
//! the open forever, `/dev/zero` would be read without end, and a folder
//! has no content: each is refused by its type (from `stat`, which never
//! blocks) before anything opens it, with a message that says what the
//! path is.
//!
//! Outputs are checked before a run starts ([`check_output`]): never a
//! device, FIFO, socket or folder; never a read-only file; never a file
//! that mnist-mlp did not write unless `--overwrite` says so; the folder
//! exists (or is made) and is writable. A symlink is written through: the
//! file it names is replaced atomically and the link stays ([`target`]).
//! Each output is locked for the run ([`OutputLock`]), so a second run on
//! the same path is refused instead of racing the first.

use std::io;
use std::path::{Path, PathBuf};

/// What a path that is not a regular file is, in words (`None`: a
/// regular file).
pub fn kind_of(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Checks that `path` is a regular file (following symlinks) and returns
/// its size; anything else is an error of kind `InvalidInput` whose message
/// names what it is ("is a FIFO (named pipe), not a regular file").
pub fn regular(path: &Path) -> io::Result<u64> {
    regular_meta(&std::fs::metadata(path)?)
}

/// [`regular`] on metadata already read: the size, or the error that says
/// what the path is instead.
pub fn regular_meta(meta: &std::fs::Metadata) -> io::Result<u64> {
    match kind_of(meta) {
        None => Ok(meta.len()),
        Some(what) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a regular file"),
        )),
    }
}

/// Reads a regular file whole ([`regular`] first).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    regular(path)?;
    std::fs::read(path)
}

/// Reads a regular text file whole ([`regular`] first).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    regular(path)?;
    std::fs::read_to_string(path)
}

/// Where writing `path` goes: the file a symlink names (followed to the
/// end; a dangling link's target, relative to the link's folder), else
/// `path` itself.
pub fn target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(_) => match std::fs::read_link(path) {
                Ok(t) if t.is_absolute() => t,
                Ok(t) => path.parent().unwrap_or(Path::new(".")).join(t),
                Err(_) => path.to_path_buf(),
            },
        },
        _ => path.to_path_buf(),
    }
}

/// A name for the file `path` denotes, equal for two paths of one file
/// (links followed, the folder made absolute) whether it exists or not.
pub fn same_file_key(path: &Path) -> PathBuf {
    let t = target(path);
    if let Ok(c) = std::fs::canonicalize(&t) {
        return c;
    }
    let parent = t
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    match t.file_name() {
        Some(n) => base.join(n),
        None => base,
    }
}

/// The metadata of `target` (an output's file, links followed) if it
/// exists, or why a file must not replace it (a device, FIFO, socket or
/// folder): what both the check before a run and every atomic write ask.
pub fn existing_output(target: &Path) -> Result<Option<std::fs::Metadata>, String> {
    match std::fs::metadata(target) {
        Ok(meta) => match kind_of(&meta) {
            Some(what) => Err(format!("is {what}; refusing to replace it with a file")),
            None => Ok(Some(meta)),
        },
        Err(_) => Ok(None),
    }
}

/// Checks an output path before a run writes it; `ours` says whether an
/// existing file was written by mnist-mlp (then it may be replaced), and
/// `overwrite` allows replacing any regular, writable file. Creates the
/// folder. The message does not name the flag (the caller does).
pub fn check_output(
    path: &Path,
    ours: &dyn Fn(&Path) -> bool,
    overwrite: bool,
) -> Result<(), String> {
    let text = path.to_string_lossy();
    if text.ends_with('/') || path.file_name().is_none() {
        return Err(format!(
            "{text}: is a folder; name a file in it (for example {}/model.safetensors)",
            text.trim_end_matches('/')
        ));
    }
    let t = target(path);
    let shown = if t == path {
        text.to_string()
    } else {
        format!("{text} (a link to {})", t.display())
    };
    if let Some(meta) = existing_output(&t).map_err(|e| format!("{shown}: {e}"))? {
        if meta.permissions().readonly() {
            return Err(format!(
                "{shown}: is read-only; refusing to replace it (make it writable, or name another file)"
            ));
        }
        if !overwrite && !ours(&t) {
            return Err(format!(
                "{shown}: exists and was not written by mnist-mlp; refusing to replace it (--overwrite replaces it; or name another file)"
            ));
        }
    }
    let dir = t
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{shown}: cannot create the folder {}: {e}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".mnist-mlp-probe.")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("{shown}: the folder {} is not writable: {e}", dir.display()))
}

/// An advisory lock on one output for the length of a run: a lock file
/// `.NAME.lock` beside the output (holding the owner's PID), locked with
/// `flock`, released when dropped or when the process dies. A second run
/// on the same output is refused with the first's PID.
#[derive(Debug)]
pub struct OutputLock {
    _file: std::fs::File,
}

impl OutputLock {
    /// Locks `path`'s lock file; the error names the process holding it.
    pub fn take(path: &Path) -> Result<Self, String> {
        let t = target(path);
        let name = t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock = t.with_file_name(format!(".{name}.lock"));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|e| {
                format!(
                    "{}: cannot open its lock file {}: {e}",
                    path.display(),
                    lock.display()
                )
            })?;
        #[cfg(unix)]
        {
            use std::io::{Read, Seek, Write};
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a file descriptor this function owns.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                return Err(format!(
                    "{}: another mnist-mlp run (PID {}) is writing it; wait for it to end, or name another file",
                    path.display(),
                    pid.trim()
                ));
            }
            let _ = f.set_len(0);
            let _ = f.seek(std::io::SeekFrom::Start(0));
            let _ = write!(f, "{}", std::process::id());
            let _ = f.flush();
        }
        Ok(Self { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_pass() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.txt");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(regular(&f).unwrap(), 3);
        assert_eq!(read_to_string(&f).unwrap(), "abc");
        let e = regular(d.path()).unwrap_err();
        assert_eq!(e.to_string(), "is a folder, not a regular file");
        #[cfg(unix)]
        {
            let e = read(Path::new("/dev/zero")).unwrap_err();
            assert_eq!(e.to_string(), "is a device, not a regular file");
            // A FIFO: refused at once, where opening it would block.
            let fifo = d.path().join("pipe");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let e = read(&fifo).unwrap_err();
            assert_eq!(e.to_string(), "is a FIFO (named pipe), not a regular file");
            // A symlink to a regular file is that file.
            let l = d.path().join("link");
            std::os::unix::fs::symlink(&f, &l).unwrap();
            assert_eq!(regular(&l).unwrap(), 3);
        }
        assert_eq!(
            regular(&d.path().join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn outputs_refuse_what_must_not_be_replaced() {
        let d = tempfile::tempdir().unwrap();
        let yes = |_: &Path| true;
        let no = |_: &Path| false;
        // A new file in a new folder: fine, the folder is made.
        let new = d.path().join("run/model.safetensors");
        check_output(&new, &no, false).unwrap();
        assert!(d.path().join("run").is_dir());
        // A folder, with or without the slash.
        let e = check_output(d.path(), &yes, true).unwrap_err();
        assert!(e.contains("is a folder"), "{e}");
        let slash = PathBuf::from(format!("{}/", d.path().display()));
        assert!(check_output(&slash, &yes, true)
            .unwrap_err()
            .contains("is a folder"));
        // A device, even with --overwrite.
        #[cfg(unix)]
        {
            let e = check_output(Path::new("/dev/null"), &yes, true).unwrap_err();
            assert!(e.contains("is a device; refusing to replace it"), "{e}");
        }
        // Someone else's file: only with --overwrite.
        let theirs = d.path().join("notes.toml");
        std::fs::write(&theirs, "# mine").unwrap();
        let e = check_output(&theirs, &no, false).unwrap_err();
        assert!(e.contains("was not written by mnist-mlp"), "{e}");
        check_output(&theirs, &no, true).unwrap();
        check_output(&theirs, &yes, false).unwrap();
        // Read-only: never.
        let mut p = std::fs::metadata(&theirs).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(&theirs, p).unwrap();
        let e = check_output(&theirs, &yes, true).unwrap_err();
        assert!(e.contains("is read-only"), "{e}");
        // A link is written through: it is checked as the file it names.
        #[cfg(unix)]
        {
            let l = d.path().join("link.toml");
            std::os::unix::fs::symlink(&theirs, &l).unwrap();
            assert_eq!(target(&l), std::fs::canonicalize(&theirs).unwrap());
            let e = check_output(&l, &yes, true).unwrap_err();
            assert!(e.contains("a link to") && e.contains("is read-only"), "{e}");
            assert_eq!(same_file_key(&l), same_file_key(&theirs));
        }
        assert_eq!(
            same_file_key(&d.path().join("run/../run/x")),
            same_file_key(&d.path().join("run/x"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_second_lock_on_one_output_names_the_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        let first = OutputLock::take(&p).unwrap();
        let e = OutputLock::take(&p).unwrap_err();
        assert!(
            e.contains(&format!(
                "another mnist-mlp run (PID {})",
                std::process::id()
            )),
            "{e}"
        );
        drop(first);
        OutputLock::take(&p).unwrap();
    }
}
