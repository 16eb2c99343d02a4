//! Classification metrics over a labeled set: the confusion matrix and the
//! per-class precision, recall, F1 and support it gives (scikit-learn's
//! `classification_report`), and top-k accuracy.
//!
//! `confusion[t][p]` counts the samples of true class `t` predicted as `p`
//! (the argmax of the model's output). Recall of class `c` is
//! `confusion[c][c] / sum_p confusion[c][p]`, precision
//! `confusion[c][c] / sum_t confusion[t][c]`; each is `None` where its
//! denominator is zero (a class without samples, or never predicted:
//! EMNIST letters never use class 0). F1 is `2 tp / (support + predicted)`
//! (the harmonic mean of the two), `None` for a class neither present nor
//! predicted. The macro average is the mean over the classes present or
//! predicted, the weighted average weighs each by its support; an
//! undefined precision or recall counts as 0 in both (as scikit-learn's
//! `zero_division=0`).

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

    /// Number of classes.
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

    /// Samples of every class (the row sums).
    pub fn support(&self) -> Vec<usize> {
        self.0.iter().map(|r| r.iter().sum()).collect()
    }

    /// F1 of every class (`None`: neither present nor predicted).
    pub fn f1(&self) -> Vec<Option<f64>> {
        let support = self.support();
        (0..self.classes())
            .map(|c| {
                let predicted: usize = self.0.iter().map(|r| r[c]).sum();
                ratio(2 * self.0[c][c], support[c] + predicted)
            })
            .collect()
    }

    /// Macro and weighted averages of (precision, recall, F1), over the
    /// classes present or predicted (undefined values count as 0).
    pub fn averages(&self) -> Averages {
        let (p, r, f, support) = (self.precision(), self.recall(), self.f1(), self.support());
        let used: Vec<usize> = (0..self.classes()).filter(|&c| f[c].is_some()).collect();
        let total: usize = support.iter().sum();
        let avg = |weight: &dyn Fn(usize) -> f64, norm: f64| {
            let mean = |v: &[Option<f64>]| {
                used.iter()
                    .map(|&c| weight(c) * v[c].unwrap_or(0.0))
                    .sum::<f64>()
                    / norm
            };
            [mean(&p), mean(&r), mean(&f)]
        };
        Averages {
            macro_avg: avg(&|_| 1.0, used.len().max(1) as f64),
            weighted: avg(&|c| support[c] as f64, total.max(1) as f64),
        }
    }

    /// The report `eval` prints: a line per class with its precision,
    /// recall, F1, support and (when `names` has one) name, the macro and
    /// weighted averages, then the matrix.
    pub fn table(&self, names: &[Option<String>]) -> String {
        use std::fmt::Write;
        let (precision, recall, f1) = (self.precision(), self.recall(), self.f1());
        let support = self.support();
        let named = names.iter().any(Option::is_some);
        let pct = |v: Option<f64>, w: usize| match v {
            Some(v) => format!("{:>w$.2}%", v * 100.0, w = w),
            None => format!("{:>w$} ", "-", w = w),
        };
        let mut t = format!(
            "       class  precision   recall       f1  support{}\n",
            if named { "  name" } else { "" }
        );
        for c in 0..self.classes() {
            let name = names
                .get(c)
                .and_then(|n| n.as_deref())
                .map_or(String::new(), |n| format!("  {n}"));
            let _ = writeln!(
                t,
                "{c:>12}  {}  {}  {}  {:>7}{name}",
                pct(precision[c], 8),
                pct(recall[c], 6),
                pct(f1[c], 6),
                support[c]
            );
        }
        let a = self.averages();
        let total: usize = support.iter().sum();
        for (label, v) in [("macro avg", a.macro_avg), ("weighted avg", a.weighted)] {
            let _ = writeln!(
                t,
                "{label:>12}  {}  {}  {}  {total:>7}",
                pct(Some(v[0]), 8),
                pct(Some(v[1]), 6),
                pct(Some(v[2]), 6)
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

/// Averages of (precision, recall, F1) over classes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Averages {
    /// Unweighted mean over the classes present or predicted.
    pub macro_avg: [f64; 3],
    /// Mean weighted by each class's support.
    pub weighted: [f64; 3],
}

/// The share of samples whose label is among the `k` largest outputs of
/// its row (`out`: `[n, classes]`; ties broken towards lower classes, as
/// argmax breaks them). `k = 1` is the accuracy.
pub fn top_k_accuracy(out: ArrayView2<f32>, labels: &[u8], k: usize) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let hits = out
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, &y)| {
            let py = row[y as usize];
            // Classes ranked above y: larger output, or equal and lower.
            let above = row
                .iter()
                .enumerate()
                .filter(|&(c, &v)| v > py || (v == py && c < y as usize))
                .count();
            above < k
        })
        .count();
    hits as f64 / labels.len() as f64
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
        // F1 = 2PR/(P+R) where both exist; 0 for class 2 (predicted, no
        // sample); support = samples per class.
        assert_eq!(c.support(), vec![1, 3, 0]);
        let f1 = c.f1();
        assert!((f1[0].unwrap() - 2.0 * 0.5 * 1.0 / 1.5).abs() < 1e-12);
        assert!((f1[1].unwrap() - 2.0 * 1.0 * (1.0 / 3.0) / (4.0 / 3.0)).abs() < 1e-12);
        assert_eq!(f1[2], Some(0.0));
        assert_eq!(never.f1(), vec![Some(1.0), None]);
    }

    #[test]
    fn averages_match_scikit_learn() {
        // As sklearn.metrics.precision_recall_fscore_support defines them
        // (worked by hand; scikit-learn is not installed here):
        //   [0,1,1,1], [0,1,0,2], average=..., zero_division=0):
        // macro (0.5, 4/9, 7/18), weighted (0.875, 0.5, 13/24).
        let out = ndarray::array![
            [0.9f32, 0.1, 0.0],
            [0.2, 0.7, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.2, 0.7],
        ];
        let a = Confusion::from_outputs(out.view(), &[0, 1, 1, 1]).averages();
        let close = |x: [f64; 3], y: [f64; 3]| x.iter().zip(y).all(|(a, b)| (a - b).abs() < 1e-12);
        assert!(close(a.macro_avg, [0.5, 4.0 / 9.0, 7.0 / 18.0]), "{a:?}");
        assert!(close(a.weighted, [0.875, 0.5, 13.0 / 24.0]), "{a:?}");
    }

    #[test]
    fn top_k_counts_the_label_among_the_k_largest() {
        let out = ndarray::array![[0.5f32, 0.3, 0.2], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2]];
        let y = [1u8, 0, 1];
        assert_eq!(top_k_accuracy(out.view(), &y, 1), 0.0);
        assert!((top_k_accuracy(out.view(), &y, 2) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(top_k_accuracy(out.view(), &y, 3), 1.0);
        // k = 1 is the argmax accuracy (ties towards the lower class).
        let c = Confusion::from_outputs(out.view(), &y);
        let acc = (0..3).map(|i| c.0[i][i]).sum::<usize>() as f64 / 3.0;
        assert_eq!(top_k_accuracy(out.view(), &y, 1), acc);
    }

    #[test]
    fn the_table_has_a_line_per_class_and_the_matrix() {
        let out = array![[0.9f32, 0.1], [0.2, 0.8], [0.6, 0.4]];
        let c = Confusion::from_outputs(out.view(), &[0, 1, 1]);
        let t = c.table(&[Some("zero".into()), None]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "       class  precision   recall       f1  support  name"
        );
        assert_eq!(
            lines[1],
            "           0     50.00%  100.00%   66.67%        1  zero"
        );
        assert_eq!(
            lines[2],
            "           1    100.00%   50.00%   66.67%        2"
        );
        assert_eq!(
            lines[3],
            "   macro avg     75.00%   75.00%   66.67%        3"
        );
        assert_eq!(
            lines[4],
            "weighted avg     83.33%   66.67%   66.67%        3"
        );
        assert_eq!(lines[6], "          0     1");
        assert_eq!(lines[7], "    0     1     0");
        assert_eq!(lines[8], "    1     1     1");
        assert!(!c
            .table(&[None, None])
            .lines()
            .next()
            .unwrap()
            .ends_with("name"));
    }
}
