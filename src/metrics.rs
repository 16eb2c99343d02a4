//! Classification metrics over a labeled set: the confusion matrix and the
//! per-class precision and recall it gives.
//!
//! `confusion[t][p]` counts the samples of true class `t` predicted as `p`
//! (the argmax of the model's output). Recall of class `c` is
//! `confusion[c][c] / sum_p confusion[c][p]`, precision
//! `confusion[c][c] / sum_t confusion[t][c]`; each is `None` where its
//! denominator is zero (a class without samples, or never predicted:
//! EMNIST letters never use class 0).

use ndarray::ArrayView2;

use crate::nn::loss::argmax;

/// A `classes x classes` confusion matrix (rows: true class, columns:
/// predicted).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Confusion(pub Vec<Vec<usize>>);

impl Confusion {
    /// From the model's outputs `out` (`[n, classes]`, one row per sample)
    /// and the true labels (each below `classes`).
    pub fn from_outputs(out: ArrayView2<f32>, labels: &[u8]) -> Self {
        let classes = out.ncols();
        let mut m = vec![vec![0usize; classes]; classes];
        for (row, &y) in out.rows().into_iter().zip(labels) {
            let p = match row.as_slice() {
                Some(s) => argmax(s),
                None => argmax(&row.to_vec()),
            };
            m[y as usize][p] += 1;
        }
        Self(m)
    }

    pub fn classes(&self) -> usize {
        self.0.len()
    }

    /// Recall of every class (`None`: no sample of it).
    pub fn recall(&self) -> Vec<Option<f64>> {
        (0..self.classes())
            .map(|c| ratio(self.0[c][c], self.0[c].iter().sum()))
            .collect()
    }

    /// Precision of every class (`None`: never predicted).
    pub fn precision(&self) -> Vec<Option<f64>> {
        (0..self.classes())
            .map(|c| ratio(self.0[c][c], self.0.iter().map(|r| r[c]).sum()))
            .collect()
    }
}

fn ratio(hits: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| hits as f64 / of as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn counts_and_ratios() {
        // Three classes; class 2 has no sample, and is predicted once.
        let out = array![
            [0.9f32, 0.1, 0.0],
            [0.2, 0.7, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.2, 0.7],
        ];
        let c = Confusion::from_outputs(out.view(), &[0, 1, 1, 1]);
        assert_eq!(c.0, vec![vec![1, 0, 0], vec![1, 1, 1], vec![0, 0, 0]]);
        assert_eq!(c.recall(), vec![Some(1.0), Some(1.0 / 3.0), None]);
        assert_eq!(c.precision(), vec![Some(0.5), Some(1.0), Some(0.0)]);
        let never = Confusion::from_outputs(array![[1.0f32, 0.0]].view(), &[0]);
        assert_eq!(never.precision(), vec![Some(1.0), None]);
    }
}
