//! IDX files: the format of MNIST, Fashion-MNIST, KMNIST and EMNIST.
//!
//! An IDX file is a 4-byte magic `00 00 TT NN` (`TT` the element type code,
//! `NN` the number of dimensions), `NN` big-endian `u32` dimension sizes, then
//! the elements in row-major order.  Files may be gzip-compressed; that is
//! detected from the content (the gzip magic `1f 8b`), never from the name.
//!
//! The reader trusts nothing in the header: declared sizes are checked against
//! a hard upper bound and, for gzip, against what the compressed size can
//! possibly inflate to, *before* anything is allocated; the buffer then grows
//! only as real data arrives, so memory use is bounded by the input itself.
//! Truncated data and trailing bytes are both refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use thiserror::Error;

/// The largest data section accepted (4 GiB). EMNIST ByClass, the largest
/// member of the family, holds about 0.55 GB of training images.
pub const MAX_DATA_BYTES: u64 = 1 << 32;

/// Bytes a dataset holds per item of an IDX file once loaded: the byte
/// read and its f32 copy.
pub const BYTES_HELD_PER_ITEM: u64 = 5;

/// DEFLATE cannot compress better than about 1032:1; a gzip file that claims
/// to hold more than this many bytes per compressed byte is refused at once.
pub const MAX_GZIP_RATIO: u64 = 1100;

/// Type code of unsigned bytes, the only element type of the MNIST family.
pub const TYPE_U8: u8 = 0x08;

/// What is wrong with an IDX file. Always wrapped in an [`IdxError`] that
/// names the file.
#[derive(Debug, Error)]
pub enum IdxErrorKind {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Io(io::Error),
    /// The path is a folder.
    #[error("is a directory, expected an IDX file")]
    IsDirectory,
    /// The file has no bytes.
    #[error("file is empty")]
    Empty,
    /// The file ends inside its header.
    #[error("truncated header: the file ends after {got} bytes, the header needs {need}")]
    TruncatedHeader {
        /// Bytes there are.
        got: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// The first four bytes are not an IDX magic number.
    #[error("bad magic {found:02x?}: an IDX file starts with two zero bytes, then a type code and a dimension count")]
    BadMagic {
        /// The four bytes.
        found: [u8; 4],
    },
    /// An element type other than unsigned bytes.
    #[error("element type code {code:#04x} ({name}) is not supported: the MNIST family stores unsigned bytes (0x08)")]
    UnsupportedType {
        /// The type code.
        code: u8,
        /// Its name in the IDX format.
        name: &'static str,
    },
    /// Images need 3 dimensions, labels 1.
    #[error("{what} must have {expected} dimension(s), the header declares {found}")]
    WrongRank {
        /// `images` or `labels`.
        what: &'static str,
        /// Dimensions needed.
        expected: usize,
        /// Dimensions declared.
        found: usize,
    },
    /// A dimension of size 0.
    #[error("header declares a dimension of size 0 (dimensions {dims:?})")]
    ZeroDimension {
        /// The declared dimensions.
        dims: Vec<u32>,
    },
    /// The declared data is larger than the limit (a corrupt header).
    #[error("header declares dimensions {dims:?} = {declared} bytes of data, more than the limit of {limit} bytes")]
    TooLarge {
        /// The declared dimensions.
        dims: Vec<u32>,
        /// Their product in bytes.
        declared: u128,
        /// The limit in bytes.
        limit: u64,
    },
    /// The declared data, once loaded, would not fit in the memory there is.
    #[error("header declares {declared} bytes of data, which need about {} once loaded, more than the {} of memory available", crate::memory::human(*need), crate::memory::human(*available))]
    TooLargeForMemory {
        /// Bytes declared.
        declared: u64,
        /// Bytes loading them would take.
        need: u64,
        /// Bytes of memory available.
        available: u64,
    },
    /// The file holds fewer items than its header declares.
    #[error("header declares {declared} items but the file holds {actual}{partial}")]
    Truncated {
        /// Items declared.
        declared: u64,
        /// Items there are.
        actual: u64,
        /// What the partial data looks like (for the message).
        partial: String,
    },
    /// Bytes after the declared items.
    #[error("{extra} trailing byte(s) after the {declared} declared items")]
    TrailingBytes {
        /// Items declared.
        declared: u64,
        /// How many bytes follow them (a count, or `at least N`).
        extra: String,
    },
    /// The gzip stream is corrupt or truncated.
    #[error("gzip stream is corrupt or truncated: {0}")]
    Gzip(io::Error),
    /// A label not below the number of classes.
    #[error("label {label} at index {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// The label.
        label: u8,
        /// Its index in the file.
        index: usize,
        /// The number of classes.
        classes: usize,
    },
}

/// An error reading one IDX file: the file's path and what is wrong.
#[derive(Debug, Error)]
#[error("{}: {kind}", path.display())]
pub struct IdxError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: IdxErrorKind,
}

impl IdxError {
    /// The error `kind` of the file at `path`.
    pub fn new(path: impl Into<PathBuf>, kind: IdxErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }
}

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes, outermost first (`[n, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// The elements in row-major order; `data.len() == dims.iter().product()`.
    pub data: Vec<u8>,
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "unknown type",
    }
}

fn io_kind(e: io::Error, gz: bool) -> IdxErrorKind {
    if gz
        && matches!(
            e.kind(),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        )
    {
        IdxErrorKind::Gzip(e)
    } else {
        IdxErrorKind::Io(e)
    }
}

/// Reads exactly `buf.len()` bytes unless the stream ends first; returns how
/// many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Parses an IDX stream. `input_len` is the length of the underlying input
/// (compressed length when `gz`), used to refuse impossible headers before
/// allocating. `expected_rank`, when given, is checked against the header.
pub fn parse_idx(
    mut r: impl Read,
    input_len: u64,
    gz: bool,
    expected_rank: Option<(&'static str, usize)>,
) -> Result<IdxArray, IdxErrorKind> {
    let mut magic = [0u8; 4];
    let got = read_full(&mut r, &mut magic).map_err(|e| io_kind(e, gz))?;
    if got == 0 {
        return Err(IdxErrorKind::Empty);
    }
    if got < 4 {
        return Err(IdxErrorKind::TruncatedHeader { got, need: 4 });
    }
    if magic[0] != 0 || magic[1] != 0 || magic[3] == 0 {
        return Err(IdxErrorKind::BadMagic { found: magic });
    }
    if magic[2] != TYPE_U8 {
        return Err(IdxErrorKind::UnsupportedType {
            code: magic[2],
            name: type_name(magic[2]),
        });
    }
    let ndim = magic[3] as usize;
    if let Some((what, expected)) = expected_rank {
        if ndim != expected {
            return Err(IdxErrorKind::WrongRank {
                what,
                expected,
                found: ndim,
            });
        }
    }
    let header_len = 4 + 4 * ndim;
    let mut dim_bytes = vec![0u8; 4 * ndim];
    let got = read_full(&mut r, &mut dim_bytes).map_err(|e| io_kind(e, gz))?;
    if got < dim_bytes.len() {
        return Err(IdxErrorKind::TruncatedHeader {
            got: 4 + got,
            need: header_len,
        });
    }
    let dims: Vec<u32> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if dims.contains(&0) {
        return Err(IdxErrorKind::ZeroDimension { dims });
    }
    // Saturating: up to 255 dimensions of 2^32-1 overflow even u128 (found
    // by fuzz/idx_reader); a saturated product is refused as too large.
    let declared: u128 = dims.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
    let limit = if gz {
        MAX_DATA_BYTES.min(input_len.saturating_mul(MAX_GZIP_RATIO) + 65536)
    } else {
        MAX_DATA_BYTES
    };
    if declared > limit as u128 {
        return Err(IdxErrorKind::TooLarge {
            dims,
            declared,
            limit,
        });
    }
    // Read as bytes, then held as f32 (4 more per byte) beside them: refused
    // when that cannot fit in the memory there is.
    if let Some(available) = crate::memory::available_bytes() {
        let need = (declared as u64).saturating_mul(BYTES_HELD_PER_ITEM);
        if need > available {
            return Err(IdxErrorKind::TooLargeForMemory {
                declared: declared as u64,
                need,
                available,
            });
        }
    }
    // Both fit in u64 now: their product is `declared` <= `limit`.
    let item = dims[1..].iter().map(|&d| d as u64).product::<u64>();
    let n_items = dims[0] as u64;
    let declared = declared as u64;
    if !gz {
        // The exact size is known up front: check before reading anything.
        let have = input_len.saturating_sub(header_len as u64);
        if have < declared {
            return Err(truncated(n_items, item, have));
        }
        if have > declared {
            return Err(IdxErrorKind::TrailingBytes {
                declared: n_items,
                extra: (have - declared).to_string(),
            });
        }
    }
    // Grow with the data actually read, never with the header's claim alone:
    // a raw file's size was checked above; a gzip stream gets room for a
    // typical ratio (MNIST's is ~5x) and grows from there as it inflates.
    let initial = if gz {
        declared.min(input_len.saturating_mul(8))
    } else {
        declared
    };
    let mut data = Vec::with_capacity(initial.min(64 << 20) as usize);
    r.by_ref()
        .take(declared)
        .read_to_end(&mut data)
        .map_err(|e| io_kind(e, gz))?;
    if (data.len() as u64) < declared {
        return Err(truncated(n_items, item, data.len() as u64));
    }
    let mut probe = [0u8; 4096];
    let mut extra = 0u64;
    loop {
        let n = read_full(&mut r, &mut probe).map_err(|e| io_kind(e, gz))?;
        extra += n as u64;
        if n < probe.len() || extra >= 1 << 16 {
            break;
        }
    }
    if extra > 0 {
        let extra = if extra >= 1 << 16 {
            format!("at least {extra}")
        } else {
            extra.to_string()
        };
        return Err(IdxErrorKind::TrailingBytes {
            declared: n_items,
            extra,
        });
    }
    Ok(IdxArray {
        dims: dims.iter().map(|&d| d as usize).collect(),
        data,
    })
}

fn truncated(n_items: u64, item: u64, have: u64) -> IdxErrorKind {
    let actual = have / item;
    let rest = have % item;
    let partial = if rest > 0 {
        format!(" whole items and {rest} bytes of a partial one")
    } else {
        String::new()
    };
    IdxErrorKind::Truncated {
        declared: n_items,
        actual,
        partial,
    }
}

/// Reads an IDX file of unsigned bytes, raw or gzip-compressed.
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxError> {
    read_idx_rank(path, None)
}

fn read_idx_rank(
    path: &Path,
    expected_rank: Option<(&'static str, usize)>,
) -> Result<IdxArray, IdxError> {
    let err = |kind| IdxError::new(path, kind);
    let meta = std::fs::metadata(path).map_err(|e| err(IdxErrorKind::Io(e)))?;
    if meta.is_dir() {
        return Err(err(IdxErrorKind::IsDirectory));
    }
    // A FIFO or a device: never opened (a FIFO would block).
    crate::files::regular_meta(&meta).map_err(|e| err(IdxErrorKind::Io(e)))?;
    if meta.len() == 0 {
        return Err(err(IdxErrorKind::Empty));
    }
    let (r, gz) = open_content(path).map_err(|e| err(IdxErrorKind::Io(e)))?;
    parse_idx(r, meta.len(), gz, expected_rank).map_err(err)
}

/// Opens a file for reading its content: decompressed when it starts with
/// the gzip magic (`1f 8b`), as is otherwise. Returns whether it was gzip.
pub fn open_content(path: &Path) -> io::Result<(Box<dyn Read>, bool)> {
    let mut br = BufReader::with_capacity(1 << 16, File::open(path)?);
    let head = br.fill_buf()?;
    let gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    Ok(if gz {
        (Box::new(MultiGzDecoder::new(br)), true)
    } else {
        (Box::new(br), false)
    })
}

/// Images: a 3-dimensional IDX file `[n, rows, cols]` of unsigned bytes.
pub fn read_images(path: &Path) -> Result<IdxArray, IdxError> {
    read_idx_rank(path, Some(("an image file", 3)))
}

/// Labels: a 1-dimensional IDX file `[n]` of unsigned bytes, each below
/// `classes` when that is given.
pub fn read_labels(path: &Path, classes: Option<usize>) -> Result<IdxArray, IdxError> {
    let a = read_idx_rank(path, Some(("a label file", 1)))?;
    if let Some(classes) = classes {
        check_labels(&a.data, classes).map_err(|kind| IdxError::new(path, kind))?;
    }
    Ok(a)
}

/// Checks that every label is below `classes`.
pub fn check_labels(labels: &[u8], classes: usize) -> Result<(), IdxErrorKind> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(index) => Err(IdxErrorKind::LabelOutOfRange {
            label: labels[index],
            index,
            classes,
        }),
        None => Ok(()),
    }
}

/// Encodes an array as a raw IDX file of unsigned bytes (for tests, tools and
/// exporting subsets).
pub fn encode_idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, TYPE_U8, dims.len() as u8]);
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn parse(bytes: &[u8]) -> Result<IdxArray, IdxErrorKind> {
        parse_idx(bytes, bytes.len() as u64, false, None)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn parse_gz(bytes: &[u8]) -> Result<IdxArray, IdxErrorKind> {
        let gz = gzip(bytes);
        parse_idx(MultiGzDecoder::new(&gz[..]), gz.len() as u64, true, None)
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let bytes = encode_idx(&[2, 3, 4], &data);
        for a in [parse(&bytes).unwrap(), parse_gz(&bytes).unwrap()] {
            assert_eq!(a.dims, vec![2, 3, 4]);
            assert_eq!(a.data, data);
        }
    }

    #[test]
    fn truncated_and_trailing_are_refused_in_both_encodings() {
        let bytes = encode_idx(&[5], &[1, 2, 3, 4, 5]);
        let short = &bytes[..bytes.len() - 1];
        let mut long = bytes.clone();
        long.push(9);
        for r in [parse(short), parse_gz(short)] {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("declares 5 items but the file holds 4"), "{e}");
        }
        for r in [parse(&long), parse_gz(&long)] {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("1 trailing byte"), "{e}");
        }
    }

    #[test]
    fn header_faults() {
        assert!(matches!(parse(&[]), Err(IdxErrorKind::Empty)));
        assert!(matches!(
            parse(&[0, 0, 8]),
            Err(IdxErrorKind::TruncatedHeader { got: 3, need: 4 })
        ));
        assert!(matches!(
            parse(&[1, 0, 8, 1, 0, 0, 0, 1, 0]),
            Err(IdxErrorKind::BadMagic { .. })
        ));
        assert!(matches!(
            parse(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(IdxErrorKind::UnsupportedType { code: 0x0D, .. })
        ));
        assert!(matches!(
            parse(&[0, 0, 8, 2, 0, 0, 0, 1]),
            Err(IdxErrorKind::TruncatedHeader { got: 8, need: 12 })
        ));
        assert!(matches!(
            parse(&[0, 0, 8, 1, 0, 0, 0, 0]),
            Err(IdxErrorKind::ZeroDimension { .. })
        ));
    }

    #[test]
    fn huge_header_is_refused_without_allocating() {
        // 2^32-1 items of 28x28: far beyond any limit; must fail at once.
        let bytes = encode_idx(&[u32::MAX, 28, 28], &[0; 16]);
        assert!(matches!(parse(&bytes), Err(IdxErrorKind::TooLarge { .. })));
        assert!(matches!(
            parse_gz(&bytes),
            Err(IdxErrorKind::TooLarge { .. })
        ));
        // Inner dimensions whose product overflows 64 bits (found by
        // fuzz/idx_reader): refused as too large, no arithmetic overflow.
        for dims in [vec![1u32, u32::MAX, u32::MAX, u32::MAX], vec![u32::MAX; 6]] {
            let mut b = vec![0, 0, 8, dims.len() as u8];
            for d in dims {
                b.extend_from_slice(&d.to_be_bytes());
            }
            assert!(matches!(parse(&b), Err(IdxErrorKind::TooLarge { .. })));
            assert!(matches!(parse_gz(&b), Err(IdxErrorKind::TooLarge { .. })));
        }
        // Within the absolute limit but impossible for a tiny gzip file.
        let bytes = encode_idx(&[1 << 20, 28, 28], &[0; 16]);
        assert!(matches!(
            parse_gz(&bytes),
            Err(IdxErrorKind::TooLarge { .. })
        ));
    }

    #[test]
    fn labels_are_checked_against_classes() {
        let e = check_labels(&[0, 9, 10, 3], 10).unwrap_err().to_string();
        assert_eq!(e, "label 10 at index 2 is out of range for 10 classes");
        check_labels(&[0, 9], 10).unwrap();
    }
}
