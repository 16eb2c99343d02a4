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

    /// The report `eval` prints: a line per class with its precision,
    /// recall and (when `names` has one) name, then the matrix.
    pub fn table(&self, names: &[Option<String>]) -> String {
        use std::fmt::Write;
        let (precision, recall) = (self.precision(), self.recall());
        let named = names.iter().any(Option::is_some);
        let pct = |v: Option<f64>, w: usize| match v {
            Some(v) => format!("{:>w$.2}%", v * 100.0, w = w),
            None => format!("{:>w$} ", "-", w = w),
        };
        let mut t = format!(
            "class  precision  recall{}\n",
            if named { "  name" } else { "" }
        );
        for c in 0..self.classes() {
            let name = names
                .get(c)
                .and_then(|n| n.as_deref())
                .map_or(String::new(), |n| format!("  {n}"));
            let _ = writeln!(
                t,
                "{c:>5}  {}  {}{name}",
                pct(precision[c], 8),
                pct(recall[c], 6)
            );
        }
        t.push_str("confusion matrix (rows: true class, columns: predicted)\n     ");
        for c in 0..self.classes() {
            let _ = write!(t, "{c:>6}");
        }
        t.push('\n');
        for (r, row) in self.0.iter().enumerate() {
            let _ = write!(t, "{r:>5}");
            for v in row {
                let _ = write!(t, "{v:>6}");
            }
            t.push('\n');
        }
        t
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

    #[test]
    fn the_table_has_a_line_per_class_and_the_matrix() {
        let out = array![[0.9f32, 0.1], [0.2, 0.8], [0.6, 0.4]];
        let c = Confusion::from_outputs(out.view(), &[0, 1, 1]);
        let t = c.table(&[Some("zero".into()), None]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "class  precision  recall  name");
        assert_eq!(lines[1], "    0     50.00%  100.00%  zero");
        assert_eq!(lines[2], "    1    100.00%   50.00%");
        assert_eq!(lines[4], "          0     1");
        assert_eq!(lines[5], "    0     1     0");
        assert_eq!(lines[6], "    1     1     1");
        assert!(!c
            .table(&[None, None])
            .starts_with("class  precision  recall  name"));
    }
}
