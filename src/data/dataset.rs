//! A dataset in memory: images as one contiguous row-major `f32` matrix
//! `[n, rows*cols]` scaled to `[0, 1]`, labels as `u8`.
//!
//! [`load_dir`] reads the four standard IDX files (train/test images/labels,
//! raw or gzip) of MNIST or any dataset laid out the same way (Fashion-MNIST,
//! KMNIST, EMNIST), and can carve a seeded validation split from the training
//! set.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use thiserror::Error;

use super::idx::{self, IdxError};

/// Environment variable that names the data directory.
pub const DATA_DIR_ENV: &str = "MNIST_DIR";
/// Directory used when neither `--data-dir` nor `MNIST_DIR` is given.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// Errors of dataset assembly (each names the file or directory concerned).
#[derive(Debug, Error)]
pub enum DataError {
    /// An IDX file that cannot be read or is malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// The data folder does not exist.
    #[error("{}: data directory not found{hint}", dir.display())]
    NoDir {
        /// The folder.
        dir: PathBuf,
        /// What to do about it (how to fetch MNIST), or empty.
        hint: &'static str,
    },
    /// The data path is a file, not a folder.
    #[error("{}: is not a directory", dir.display())]
    NotADir {
        /// The path.
        dir: PathBuf,
    },
    /// No file in the folder looks like this split's file.
    #[error("{}: no {what} file (looked for names containing `{pattern}`){hint}", dir.display())]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// Which file (`training images`, ...).
        what: &'static str,
        /// The name fragment looked for.
        pattern: String,
        /// What to do about it, or empty.
        hint: &'static str,
    },
    /// Several files could be this split's file.
    #[error("{}: several files could be the {what} file: {}{}", dir.display(), names.join(", "), subset_hint(names))]
    Ambiguous {
        /// The folder.
        dir: PathBuf,
        /// Which file (`training images`, ...).
        what: &'static str,
        /// The candidates' names.
        names: Vec<String>,
    },
    /// An image file and its label file disagree on the number of samples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: String,
        /// Images it holds.
        n_images: usize,
        /// The label file.
        labels: String,
        /// Labels it holds.
        n_labels: usize,
    },
    /// Training and test images differ in size.
    #[error("{train} has {train_shape:?} images but {test} has {test_shape:?}: train and test images must have the same size")]
    ShapeMismatch {
        /// The training image file.
        train: String,
        /// Its image size (rows, columns).
        train_shape: (usize, usize),
        /// The test image file.
        test: String,
        /// Its image size (rows, columns).
        test_shape: (usize, usize),
    },
    /// A validation split as large as the training set or larger.
    #[error("validation split of {requested} samples leaves no training data ({available} training samples)")]
    BadValidation {
        /// Samples asked for.
        requested: usize,
        /// Training samples there are.
        available: usize,
    },
}

const FETCH_HINT: &str =
    " (run `mnist-mlp fetch` to download MNIST, or point --data-dir / MNIST_DIR at a directory holding the IDX files)";

/// One split (train, validation or test).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `[n, rows*cols]`, row-major, one sample per row, values in `[0, 1]`.
    pub images: Array2<f32>,
    /// `[n]` class indices.
    pub labels: Vec<u8>,
    /// Image height and width (28 x 28 for the MNIST family).
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// The same pixels as bytes, `[n, rows*cols]` (`images = pixels / 255`),
    /// when the dataset came from bytes: shuffled mini-batches are gathered
    /// from these, a quarter of the memory traffic of the f32 rows.
    pub pixels: Option<Array2<u8>>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Features per sample (`rows * cols`).
    pub fn features(&self) -> usize {
        self.images.ncols()
    }
    /// Per-class sample counts, for `classes` classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes.max(self.max_label().map_or(0, |m| m as usize + 1))];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
    /// The largest label, `None` for an empty set.
    pub fn max_label(&self) -> Option<u8> {
        self.labels.iter().copied().max()
    }

    /// Builds a dataset from raw IDX contents (`images` `[n, rows, cols]`).
    pub fn from_u8(n: usize, rows: usize, cols: usize, pixels: &[u8], labels: Vec<u8>) -> Self {
        assert_eq!(pixels.len(), n * rows * cols);
        assert_eq!(labels.len(), n);
        let mut images = Array2::<f32>::zeros((n, rows * cols));
        let dst = images.as_slice_mut().expect("fresh array is contiguous");
        dst.par_chunks_mut(1 << 16)
            .zip(pixels.par_chunks(1 << 16))
            .for_each(|(d, s)| {
                for (d, &s) in d.iter_mut().zip(s) {
                    *d = s as f32 / 255.0;
                }
            });
        Self {
            images,
            labels,
            rows,
            cols,
            pixels: Some(
                Array2::from_shape_vec((n, rows * cols), pixels.to_vec()).expect("length checked"),
            ),
        }
    }

    /// The samples at `idx`, in that order (a copy).
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let images = self.images.select(ndarray::Axis(0), idx);
        Dataset {
            images,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            rows: self.rows,
            cols: self.cols,
            pixels: self
                .pixels
                .as_ref()
                .map(|p| p.select(ndarray::Axis(0), idx)),
        }
    }
}

/// Train and test splits, and a validation split when one was requested.
#[derive(Debug, Clone)]
pub struct Splits {
    /// The training split (without the validation samples).
    pub train: Dataset,
    /// Samples held out of the training file for validation, if asked for.
    pub validation: Option<Dataset>,
    /// The test split.
    pub test: Dataset,
    /// Number of classes: `max label + 1` over all splits unless given.
    pub classes: usize,
    /// The files each split was read from (images, labels).
    pub files: SplitFiles,
}

/// Paths of the four IDX files.
#[derive(Debug, Clone)]
pub struct SplitFiles {
    /// Training images.
    pub train_images: PathBuf,
    /// Training labels.
    pub train_labels: PathBuf,
    /// Test images.
    pub test_images: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
}

/// Where to look for data: the flag, else `$MNIST_DIR`, else `data/mnist`.
pub fn resolve_data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(data_dir_from_env)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// `$MNIST_DIR`, when set and not empty.
pub fn data_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The dataset prefix of a file name: what comes before its split stem,
/// without the joining `-`/`.`/`_` (`emnist-letters` for
/// `emnist-letters-train-images-idx3-ubyte.gz`, empty for MNIST's names).
pub fn subset_of(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let at = ["train-", "t10k-", "test-"]
        .iter()
        .filter_map(|s| lower.find(s))
        .min()
        .unwrap_or(0);
    lower[..at].trim_end_matches(['-', '.', '_']).to_string()
}

/// Whether a file of dataset prefix `prefix` ([`subset_of`]) belongs to the
/// subset `want`: the whole prefix, or its last `-`-separated part(s)
/// (`letters` and `emnist-letters` both select `emnist-letters`).
fn in_subset(prefix: &str, want: &str) -> bool {
    let want = want.to_ascii_lowercase();
    prefix == want || prefix.ends_with(&format!("-{want}"))
}

/// The end of the ambiguity error: how to choose, when the names differ in
/// their dataset prefix.
fn subset_hint(names: &[String]) -> String {
    let mut subsets: Vec<String> = names.iter().map(|n| subset_of(n)).collect();
    subsets.sort();
    subsets.dedup();
    if subsets.len() > 1 && subsets.iter().all(|s| !s.is_empty()) {
        format!("; choose one with --subset ({})", subsets.join(", "))
    } else {
        "; keep one of them in the directory".to_string()
    }
}

/// Finds the one file in `dir` whose name contains `stem` and `kind`
/// (`train-images` and `idx3`, say), compressed or not. Accepts the usual
/// spellings: `train-images-idx3-ubyte(.gz)`, `train-images.idx3-ubyte`,
/// `emnist-letters-train-images-idx3-ubyte.gz`. With `subset`, only files of
/// that dataset prefix count (EMNIST ships all its splits in one folder).
pub fn find_split_file(
    dir: &Path,
    stems: &[&str],
    kind: &str,
    what: &'static str,
    subset: Option<&str>,
) -> Result<PathBuf, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|_| DataError::NoDir {
        dir: dir.to_path_buf(),
        hint: FETCH_HINT,
    })?;
    let mut found: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let lower = name.to_ascii_lowercase();
            let ok = stems.iter().any(|s| lower.contains(s))
                && lower.contains(kind)
                && !lower.starts_with('.')
                && !lower.ends_with(".tmp")
                && !lower.contains(".part")
                && subset.is_none_or(|want| in_subset(&subset_of(&name), want));
            ok.then(|| (name, e.path()))
        })
        .collect();
    found.sort();
    // A raw file and its gzip twin are the same data: prefer the raw one.
    if found.len() == 2 && format!("{}.gz", found[0].0) == found[1].0 {
        found.truncate(1);
    }
    match found.len() {
        0 => Err(DataError::Missing {
            dir: dir.to_path_buf(),
            what,
            pattern: stems
                .iter()
                .map(|s| match subset {
                    Some(want) => format!("{want}-{s}*{kind}"),
                    None => format!("{s}*{kind}"),
                })
                .collect::<Vec<_>>()
                .join("` or `"),
            hint: FETCH_HINT,
        }),
        1 => Ok(found.remove(0).1),
        _ => Err(DataError::Ambiguous {
            dir: dir.to_path_buf(),
            what,
            names: found.into_iter().map(|f| f.0).collect(),
        }),
    }
}

/// Locates the four standard files in `dir`.
pub fn locate(dir: &Path) -> Result<SplitFiles, DataError> {
    locate_subset(dir, None)
}

/// Locates the four files of dataset prefix `subset` ([`subset_of`]) in
/// `dir`, or of the only dataset there when `None`.
pub fn locate_subset(dir: &Path, subset: Option<&str>) -> Result<SplitFiles, DataError> {
    check_dir(dir)?;
    let train_images = find_split_file(dir, &["train-images"], "idx3", "training images", subset)?;
    let train_labels = find_split_file(dir, &["train-labels"], "idx1", "training labels", subset)?;
    let (test_images, test_labels) = find_test(dir, subset)?;
    Ok(SplitFiles {
        train_images,
        train_labels,
        test_images,
        test_labels,
    })
}

/// The test images and labels files alone (what evaluation needs).
pub fn locate_test(dir: &Path, subset: Option<&str>) -> Result<(PathBuf, PathBuf), DataError> {
    check_dir(dir)?;
    find_test(dir, subset)
}

/// [`locate_test`] in a directory already checked.
fn find_test(dir: &Path, subset: Option<&str>) -> Result<(PathBuf, PathBuf), DataError> {
    Ok((
        find_split_file(
            dir,
            &["t10k-images", "test-images"],
            "idx3",
            "test images",
            subset,
        )?,
        find_split_file(
            dir,
            &["t10k-labels", "test-labels"],
            "idx1",
            "test labels",
            subset,
        )?,
    ))
}

fn check_dir(dir: &Path) -> Result<(), DataError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::NotADir {
            dir: dir.to_path_buf(),
        });
    }
    if !dir.exists() {
        return Err(DataError::NoDir {
            dir: dir.to_path_buf(),
            hint: FETCH_HINT,
        });
    }
    Ok(())
}

/// Reads one split (an image file and its label file), checking that they agree.
pub fn load_split(
    images: &Path,
    labels: &Path,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let (img, lab) = rayon::join(
        || idx::read_images(images),
        || idx::read_labels(labels, classes),
    );
    let (img, lab) = (img?, lab?);
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if lab.dims[0] != n {
        return Err(DataError::CountMismatch {
            images: images.display().to_string(),
            n_images: n,
            labels: labels.display().to_string(),
            n_labels: lab.dims[0],
        });
    }
    Ok(Dataset::from_u8(n, rows, cols, &img.data, lab.data))
}

/// How much of the training set to hold out for validation: a count of
/// samples (`--validation 5000`), or a fraction of them
/// (`--validation 0.1`, Keras' `validation_split`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Validation {
    /// This many samples.
    Count(u64),
    /// This share of the training samples, in (0, 1).
    Fraction(f64),
}

impl Default for Validation {
    fn default() -> Self {
        Validation::Count(0)
    }
}

crate::error::message_error!(
    /// A `--validation` value that is neither a count nor a fraction in
    /// (0, 1).
    ValidationError
);

impl Validation {
    /// Parses a count (`5000`) or a fraction in (0, 1) (`0.1`).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::parse_str(s).map_err(ValidationError)
    }

    fn parse_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Validation::Count(n));
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(Validation::Fraction(f)),
            Ok(f) if f.is_finite() && f >= 1.0 && f.fract() != 0.0 => Err(format!(
                "`{s}` is neither a whole number of samples nor a fraction below 1"
            )),
            _ => Err(format!(
                "`{s}` is neither a number of samples (e.g. 5000) nor a fraction of the training set in (0, 1) (e.g. 0.1)"
            )),
        }
    }
    /// Samples held out of a training set of `n`.
    pub fn samples(self, n: usize) -> usize {
        match self {
            Validation::Count(c) => usize::try_from(c).unwrap_or(usize::MAX),
            Validation::Fraction(f) => (f * n as f64).round() as usize,
        }
    }
    /// Whether no samples are held out.
    pub fn is_none(self) -> bool {
        self == Validation::Count(0)
    }
}

impl std::fmt::Display for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validation::Count(c) => write!(f, "{c}"),
            Validation::Fraction(x) => write!(f, "{x}"),
        }
    }
}

/// Options for [`load_dir`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Number of classes labels must be below; `None`: `max label + 1`.
    pub classes: Option<usize>,
    /// Samples to move from the training set into a validation set.
    pub validation: Validation,
    /// Seed of the validation split.
    pub seed: u64,
    /// The dataset prefix to load when the directory holds several
    /// ([`locate_subset`]).
    pub subset: Option<String>,
}

/// Loads train and test (and optionally validation) from a directory.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Splits, DataError> {
    let files = locate_subset(dir, opts.subset.as_deref())?;
    let (train, test) = rayon::join(
        || load_split(&files.train_images, &files.train_labels, opts.classes),
        || load_split(&files.test_images, &files.test_labels, opts.classes),
    );
    let (train, test) = (train?, test?);
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::ShapeMismatch {
            train: files.train_images.display().to_string(),
            train_shape: (train.rows, train.cols),
            test: files.test_images.display().to_string(),
            test_shape: (test.rows, test.cols),
        });
    }
    let classes = opts.classes.unwrap_or_else(|| {
        train
            .max_label()
            .max(test.max_label())
            .map_or(0, |m| m as usize + 1)
    });
    let held = opts.validation.samples(train.len());
    let (train, validation) = split_validation(train, held, opts.seed)?;
    Ok(Splits {
        train,
        validation,
        test,
        classes,
        files,
    })
}

/// Moves `n` randomly chosen samples (seeded) out of `data` into a validation set.
pub fn split_validation(
    data: Dataset,
    n: usize,
    seed: u64,
) -> Result<(Dataset, Option<Dataset>), DataError> {
    if n == 0 {
        return Ok((data, None));
    }
    if n >= data.len() {
        return Err(DataError::BadValidation {
            requested: n,
            available: data.len(),
        });
    }
    let mut idx: Vec<usize> = (0..data.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0f7_a11d));
    let (val, train) = idx.split_at(n);
    let (mut train, mut val) = (train.to_vec(), val.to_vec());
    train.sort_unstable();
    val.sort_unstable();
    Ok((data.select(&train), Some(data.select(&val))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_a_count_or_a_fraction() {
        assert_eq!(Validation::parse("5000").unwrap(), Validation::Count(5000));
        assert_eq!(Validation::parse("0.1").unwrap(), Validation::Fraction(0.1));
        assert_eq!(Validation::parse("0.1").unwrap().samples(60000), 6000);
        assert_eq!(Validation::parse("5000").unwrap().samples(60000), 5000);
        assert!(Validation::parse("0").unwrap().is_none());
        for bad in ["1.5", "-0.1", "x", "1e400", "0.0"] {
            let e = Validation::parse(bad).unwrap_err();
            assert!(e.message().contains(bad), "{bad}: {e}");
        }
        // Config files hold either form.
        #[derive(serde::Deserialize)]
        struct C {
            v: Validation,
        }
        let c: C = toml::from_str("v = 0.2").unwrap();
        assert_eq!(c.v, Validation::Fraction(0.2));
        let c: C = toml::from_str("v = 300").unwrap();
        assert_eq!(c.v, Validation::Count(300));
    }

    fn tiny(n: usize) -> Dataset {
        let px: Vec<u8> = (0..n * 4).map(|i| (i % 256) as u8).collect();
        Dataset::from_u8(n, 2, 2, &px, (0..n).map(|i| (i % 3) as u8).collect())
    }

    #[test]
    fn subsets_pick_one_dataset_of_a_shared_folder() {
        assert_eq!(
            subset_of("emnist-letters-train-images-idx3-ubyte.gz"),
            "emnist-letters"
        );
        assert_eq!(subset_of("t10k-labels-idx1-ubyte"), "");
        assert_eq!(subset_of("train-images.idx3-ubyte"), "");
        let dir = tempfile::tempdir().unwrap();
        for set in ["emnist-letters", "emnist-mnist", "emnist-digits"] {
            for f in ["train-images-idx3", "train-labels-idx1", "test-images-idx3"] {
                std::fs::write(dir.path().join(format!("{set}-{f}-ubyte.gz")), b"").unwrap();
            }
        }
        let e = locate(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("several files could be the training images file")
                && e.contains(
                    "choose one with --subset (emnist-digits, emnist-letters, emnist-mnist)"
                ),
            "{e}"
        );
        for (want, got) in [
            ("letters", "emnist-letters"),
            ("emnist-letters", "emnist-letters"),
            ("MNIST", "emnist-mnist"),
        ] {
            let f =
                find_split_file(dir.path(), &["train-images"], "idx3", "x", Some(want)).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(name, format!("{got}-train-images-idx3-ubyte.gz"));
        }
        // No test labels in this folder, and no such subset at all: the
        // error says which names were looked for.
        for (subset, missing, pattern) in [
            ("letters", "no test labels file", "letters-t10k-labels*idx1"),
            (
                "balanced",
                "no training images file",
                "balanced-train-images*idx3",
            ),
        ] {
            let e = locate_subset(dir.path(), Some(subset))
                .unwrap_err()
                .to_string();
            assert!(e.contains(missing) && e.contains(pattern), "{e}");
        }
        // Same prefix (a raw file beside an unrelated copy): no --subset hint.
        let dir = tempfile::tempdir().unwrap();
        for f in ["train-images-idx3-ubyte", "train-images.idx3-ubyte.gz"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let e = locate(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("; keep one of them in the directory"), "{e}");
    }

    #[test]
    fn pixels_scaled_to_unit_interval() {
        let d = Dataset::from_u8(1, 1, 3, &[0, 51, 255], vec![0]);
        assert_eq!(d.images.row(0).to_vec(), vec![0.0, 0.2, 1.0]);
        // Gathering from the bytes gives exactly the f32 rows.
        let all: Vec<u8> = (0..=255).collect();
        let d = Dataset::from_u8(1, 16, 16, &all, vec![0]);
        let mut row = vec![0f32; 256];
        crate::real::Real::copy_from_u8(
            &mut row,
            d.pixels.as_ref().unwrap().row(0).as_slice().unwrap(),
        );
        assert_eq!(row, d.images.row(0).to_vec());
    }

    #[test]
    fn validation_split_is_seeded_disjoint_and_complete() {
        let d = tiny(100);
        let (t1, v1) = split_validation(d.clone(), 10, 7).unwrap();
        let (t2, v2) = split_validation(d.clone(), 10, 7).unwrap();
        let (_, v3) = split_validation(d.clone(), 10, 8).unwrap();
        let (v1, v2, v3) = (v1.unwrap(), v2.unwrap(), v3.unwrap());
        assert_eq!((t1.len(), v1.len()), (90, 10));
        assert_eq!(v1.images, v2.images);
        assert_eq!(t1.images, t2.images);
        assert_ne!(v1.images, v3.images);
        let mut firsts: Vec<u32> = t1
            .images
            .rows()
            .into_iter()
            .chain(v1.images.rows())
            .map(|r| (r[0] * 255.0).round() as u32)
            .collect();
        firsts.sort();
        let mut all: Vec<u32> = d
            .images
            .rows()
            .into_iter()
            .map(|r| (r[0] * 255.0).round() as u32)
            .collect();
        all.sort();
        assert_eq!(firsts, all);
        assert!(split_validation(d, 100, 0).is_err());
    }
}
