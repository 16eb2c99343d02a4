//! The identity of a run's data, recorded in its checkpoints (metadata key
//! `data`), so that `eval` can tell when it is handed other data than the
//! model was trained on (a Fashion-MNIST model evaluated on MNIST scores
//! about 10%, which without a word looks like a bad model).
//!
//! Identity = the folder and the four file names (as a person reads them),
//! the input width and number of classes, and the SHA-256 of the test
//! labels as loaded (one byte per label, in file order) with their count.
//! Two copies of the same dataset in different folders are the same data;
//! MNIST and Fashion-MNIST, both 10 classes of 784 pixels, are not (their
//! test labels differ).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fetch::sha256_hex;

use super::{Dataset, Splits};

/// What a checkpoint records of the data its model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// The data folder as the run resolved it.
    pub dir: String,
    /// File names (without folder): train images, train labels, test
    /// images, test labels.
    pub files: [String; 4],
    /// Pixels per image.
    pub input: usize,
    /// Number of classes.
    pub classes: usize,
    /// Test samples.
    pub test_samples: usize,
    /// SHA-256 of the test labels (hex), one byte per label.
    pub test_labels_sha256: String,
    /// SHA-256 of the test images (hex), one byte per pixel as stored in
    /// the IDX file; `predict` on an IDX file of the same name compares it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub test_images_sha256: String,
}

/// Hex SHA-256 of labels, one byte each.
pub fn labels_sha256(labels: &[u8]) -> String {
    sha256_hex(labels)
}

/// Hex SHA-256 of images in [0, 1] as the bytes they were read from
/// (`round(v * 255)`: exact for data read from IDX files).
pub fn images_sha256(images: &[f32]) -> String {
    let mut h = Sha256::new();
    for chunk in images.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().map(|&v| (v * 255.0).round() as u8).collect();
        h.update(&bytes);
    }
    format!("{:x}", h.finalize())
}

fn name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

impl DataIdentity {
    /// The identity of `splits`, read from `dir`.
    pub fn of(dir: &Path, splits: &Splits) -> Self {
        let f = &splits.files;
        Self {
            dir: dir.display().to_string(),
            files: [
                name(&f.train_images),
                name(&f.train_labels),
                name(&f.test_images),
                name(&f.test_labels),
            ],
            input: splits.train.features(),
            classes: splits.classes,
            test_samples: splits.test.len(),
            test_labels_sha256: labels_sha256(&splits.test.labels),
            test_images_sha256: splits
                .test
                .images
                .as_slice()
                .map_or(String::new(), images_sha256),
        }
    }

    /// A warning when `file`, an IDX image file given to `predict` with the
    /// name of the training data's test images, holds other images (`bytes`:
    /// its pixels as stored); `None` when it is that file, or another name.
    pub fn predict_mismatch(&self, file: &Path, bytes: &[u8]) -> Option<String> {
        if self.test_images_sha256.is_empty() || name(file) != self.files[2] {
            return None;
        }
        let hash = sha256_hex(bytes);
        (hash != self.test_images_sha256).then(|| {
            format!(
                "warning: {}: the model was trained on the data in {}, whose {} holds other images (SHA-256 {} instead of {}): is this the dataset the model is for?",
                file.display(),
                self.dir,
                self.files[2],
                &hash[..12],
                &self.test_images_sha256[..12]
            )
        })
    }

    /// A warning when `test` (read from `dir`) is not the test set this
    /// identity describes; `None` when it is.
    pub fn mismatch(&self, dir: &Path, test: &Dataset) -> Option<String> {
        let (n, hash) = (test.len(), labels_sha256(&test.labels));
        if n == self.test_samples && hash == self.test_labels_sha256 {
            return None;
        }
        Some(format!(
            "warning: the model was trained on the data in {} ({}, {} test samples); the test set in {} is other data ({n} samples, labels' SHA-256 {} instead of {}): its accuracy says little about this model; evaluate with --data-dir {}",
            self.dir,
            self.files[2],
            self.test_samples,
            dir.display(),
            &hash[..12],
            &self.test_labels_sha256[..12],
            self.dir
        ))
    }

    /// One line for `info --model`.
    pub fn describe(&self) -> String {
        format!(
            "trained on {} ({}, {}, {}, {}): {} pixels, {} classes, {} test samples, test labels SHA-256 {}",
            self.dir,
            self.files[0],
            self.files[1],
            self.files[2],
            self.files[3],
            self.input,
            self.classes,
            self.test_samples,
            self.test_labels_sha256
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::SplitFiles;

    fn set(labels: Vec<u8>) -> Dataset {
        let n = labels.len();
        Dataset::from_u8(n, 2, 2, &vec![0u8; n * 4], labels)
    }

    fn splits(test: Vec<u8>) -> Splits {
        Splits {
            train: set(vec![0, 1, 2]),
            validation: None,
            test: set(test),
            classes: 3,
            files: SplitFiles {
                train_images: "/d/train-images-idx3-ubyte.gz".into(),
                train_labels: "/d/train-labels-idx1-ubyte.gz".into(),
                test_images: "/d/t10k-images-idx3-ubyte.gz".into(),
                test_labels: "/d/t10k-labels-idx1-ubyte.gz".into(),
            },
        }
    }

    #[test]
    fn the_same_labels_match_from_any_folder_and_other_labels_do_not() {
        let id = DataIdentity::of(Path::new("/d"), &splits(vec![2, 0, 1, 1]));
        assert_eq!(id.files[2], "t10k-images-idx3-ubyte.gz");
        assert_eq!((id.input, id.classes, id.test_samples), (4, 3, 4));
        assert_eq!(
            id.mismatch(Path::new("/copy"), &set(vec![2, 0, 1, 1])),
            None
        );
        let w = id
            .mismatch(Path::new("/other"), &set(vec![2, 0, 1, 0]))
            .expect("other labels");
        assert!(w.contains("/other") && w.contains("--data-dir /d"), "{w}");
        assert!(id.mismatch(Path::new("/d"), &set(vec![2, 0, 1])).is_some());
        // predict on an IDX file named like the test images: same bytes
        // say nothing, others warn; other names are not compared.
        let t10k = Path::new("/x/t10k-images-idx3-ubyte.gz");
        assert_eq!(id.predict_mismatch(t10k, &[0u8; 16]), None);
        assert!(id.predict_mismatch(t10k, &[1u8; 16]).is_some());
        assert_eq!(
            id.predict_mismatch(Path::new("/x/mine.idx"), &[1u8; 16]),
            None
        );
        // Round trip through the checkpoint's JSON.
        let back: DataIdentity =
            serde_json::from_str(&serde_json::to_string(&id).unwrap()).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn labels_hash_is_sha256() {
        assert_eq!(
            labels_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
