//! The files a run reads: regular files only. A FIFO given as `--model`
//! would block the open forever, `/dev/zero` would be read without end,
//! and a folder has no content: each is refused by its type (from `stat`,
//! which never blocks) before anything opens it, with a message that says
//! what the path is.

use std::io;
use std::path::Path;

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
    let meta = std::fs::metadata(path)?;
    match kind_of(&meta) {
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
}
