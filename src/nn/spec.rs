//! Network descriptions: the layer-list syntax of the original notebooks,
//! `784,relu,200,sigmoid,80,softmax,10` — the input width, then pairs of
//! (activation, width); the activation before the last width is the output
//! activation (`softmax`, `sigmoid` or `identity`; omitted means `softmax`).
//!
//! Dropout ([`crate::nn::dropout`]) is written after the width it acts on:
//! `784,dropout:0.2,relu,800,dropout:0.5,relu,800,dropout:0.5,softmax,10`
//! drops 20% of the inputs and half of each hidden layer's units in
//! training. The output width takes none; lists without `dropout:` parse as
//! before.

use crate::nn::activation::Activation;
use crate::nn::loss::{Loss, OutputAct};

/// The most layers a network may have.
pub const MAX_LAYERS: usize = 64;
/// The widest layer accepted.
pub const MAX_WIDTH: usize = 1 << 20;
/// The most parameters a network may have (2^31, i.e. 8 GiB of f32 weights).
pub const MAX_PARAMS: u128 = 1 << 31;

/// Why a network description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The layer list is malformed, or a width is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The network has too many layers or parameters.
    #[error("{0}")]
    TooLarge(String),
    /// The loss cannot be used with the output activation.
    #[error("{0}")]
    LossMismatch(String),
}

impl From<SpecError> for String {
    fn from(e: SpecError) -> String {
        e.to_string()
    }
}

/// The shape of a multilayer perceptron.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetSpec {
    /// Layer widths, input first: `[784, 200, 80, 10]`.
    pub widths: Vec<usize>,
    /// Activation after each hidden layer (`widths.len() - 2` of them).
    pub hidden: Vec<Activation>,
    /// Activation of the output layer.
    pub output: OutputAct,
    /// Dropout rate on the input (`[0]`) and on each hidden layer's output
    /// (`[i]`: on `A_i`, the output of layer `i - 1`), in training only;
    /// empty when there is none ([`NetSpec::dropout`] reads it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropout: Vec<f64>,
}

impl NetSpec {
    /// Parses the layer-list syntax.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let spec = Self::parse_list(s).map_err(SpecError::Invalid)?;
        spec.check_size()?;
        Ok(spec)
    }

    fn parse_list(s: &str) -> Result<Self, String> {
        let toks: Vec<&str> = s.split(',').map(str::trim).collect();
        if toks.iter().any(|t| t.is_empty()) {
            return Err(format!(
                "layer list `{s}` has an empty entry (expected e.g. `784,relu,200,softmax,10`)"
            ));
        }
        let width = |t: &str| -> Result<usize, String> {
            let w: u128 = t
                .parse()
                .map_err(|_| format!("layer list `{s}`: `{t}` is neither a width nor a known activation (relu, leaky_relu, sigmoid, tanh, identity; softmax for the output)"))?;
            if w == 0 {
                return Err(format!(
                    "layer list `{s}`: a layer width must be at least 1, got 0"
                ));
            }
            if w > MAX_WIDTH as u128 {
                return Err(format!(
                    "layer list `{s}`: width {t} is too large (at most {MAX_WIDTH})"
                ));
            }
            Ok(w as usize)
        };
        let mut it = toks.iter().peekable();
        let mut widths = vec![width(it.next().expect("split yields one item"))?];
        let mut acts: Vec<String> = Vec::new();
        // The rate written after each width, if any.
        let mut dropout: Vec<Option<f64>> = vec![None];
        while let Some(t) = it.next() {
            if let Some(rate) = t.strip_prefix("dropout:") {
                let last = dropout.last_mut().expect("one per width");
                if last.is_some() {
                    return Err(format!(
                        "layer list `{s}`: two dropout rates after width {}",
                        widths.last().expect("a width")
                    ));
                }
                *last =
                    Some(dropout_rate(rate).map_err(|e| format!("layer list `{s}`: `{t}`: {e}"))?);
                continue;
            }
            if t.parse::<u128>().is_ok() || t.starts_with('-') {
                acts.push(String::new());
                widths.push(width(t)?);
            } else {
                let next = it.next().ok_or_else(|| {
                    format!("layer list `{s}` ends with the activation `{t}`: it must end with the output width")
                })?;
                if next.starts_with("dropout:") {
                    return Err(format!(
                        "layer list `{s}`: `{next}` follows the activation `{t}`; dropout goes after a width (e.g. `{t},800,{next}`)"
                    ));
                }
                acts.push(t.to_string());
                widths.push(width(next)?);
            }
            dropout.push(None);
        }
        if dropout.pop().expect("one per width").is_some() {
            return Err(format!(
                "layer list `{s}`: dropout after the output width; it acts on the input and hidden layers only"
            ));
        }
        let dropout: Vec<f64> = dropout.iter().map(|p| p.unwrap_or(0.0)).collect();
        let dropout = if dropout.iter().all(|&p| p == 0.0) {
            Vec::new()
        } else {
            dropout
        };
        if widths.len() < 2 {
            return Err(format!("layer list `{s}` needs at least an input and an output width, e.g. `784,softmax,10`"));
        }
        let n = acts.len();
        let mut hidden = Vec::with_capacity(n - 1);
        for (i, a) in acts[..n - 1].iter().enumerate() {
            if a.is_empty() {
                return Err(format!(
                    "layer list `{s}`: no activation between widths {} and {} (e.g. `{},relu,{}`)",
                    widths[i],
                    widths[i + 1],
                    widths[i],
                    widths[i + 1]
                ));
            }
            if a == "softmax" {
                return Err(format!(
                    "layer list `{s}`: softmax is only allowed before the output width"
                ));
            }
            hidden.push(Activation::parse(a).ok_or_else(|| {
                format!("layer list `{s}`: unknown activation `{a}` (expected relu, leaky_relu, sigmoid, tanh or identity)")
            })?);
        }
        let output = match acts[n - 1].to_ascii_lowercase().as_str() {
            "" | "softmax" => OutputAct::Softmax,
            "sigmoid" | "logistic" => OutputAct::Sigmoid,
            "identity" | "linear" | "none" => OutputAct::Identity,
            a => {
                return Err(format!(
                    "layer list `{s}`: unknown output activation `{a}` (expected softmax, sigmoid or identity)"
                ))
            }
        };
        Ok(NetSpec {
            widths,
            hidden,
            output,
            dropout,
        })
    }

    /// Builds a spec from hidden widths and one activation for all of them.
    pub fn from_hidden(
        input: usize,
        hidden: &[usize],
        act: Activation,
        output: usize,
    ) -> Result<Self, SpecError> {
        let mut widths = vec![input];
        widths.extend_from_slice(hidden);
        widths.push(output);
        if let Some(w) = widths.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            return Err(SpecError::Invalid(format!(
                "layer width {w} is out of range (1..={MAX_WIDTH})"
            )));
        }
        let spec = NetSpec {
            widths,
            hidden: vec![act; hidden.len()],
            output: OutputAct::Softmax,
            dropout: Vec::new(),
        };
        spec.check_size()?;
        Ok(spec)
    }

    fn check_size(&self) -> Result<(), SpecError> {
        if self.layers() > MAX_LAYERS {
            return Err(SpecError::TooLarge(format!(
                "{} layers is too many (at most {MAX_LAYERS})",
                self.layers()
            )));
        }
        let p: u128 = self
            .widths
            .windows(2)
            .map(|w| (w[0] as u128 + 1) * w[1] as u128)
            .sum();
        if p > MAX_PARAMS {
            return Err(SpecError::TooLarge(format!(
                "network `{self}` would have {p} parameters, more than the limit of {MAX_PARAMS}"
            )));
        }
        Ok(())
    }

    /// The dropout rate on `A_i` (`i = 0`: the input), 0 when none.
    pub fn dropout(&self, i: usize) -> f64 {
        self.dropout.get(i).copied().unwrap_or(0.0)
    }

    /// Whether any layer drops units in training.
    pub fn has_dropout(&self) -> bool {
        self.dropout.iter().any(|&p| p > 0.0)
    }

    /// This network with dropout `input` on the input and `hidden` on every
    /// hidden layer, where given (replacing what the list said; rates
    /// checked, errors naming `--input-dropout` and `--dropout`).
    pub fn with_dropout(
        mut self,
        input: Option<f64>,
        hidden: Option<f64>,
    ) -> Result<Self, SpecError> {
        let check = |p: f64, flag: &str| {
            check_dropout_rate(p).map_err(|e| SpecError::Invalid(format!("{flag}: {e}")))
        };
        let mut d: Vec<f64> = (0..self.layers()).map(|i| self.dropout(i)).collect();
        if let Some(p) = input {
            d[0] = check(p, "--input-dropout")?;
        }
        if let Some(p) = hidden {
            let p = check(p, "--dropout")?;
            d[1..].iter_mut().for_each(|v| *v = p);
        }
        self.dropout = if d.iter().all(|&p| p == 0.0) {
            Vec::new()
        } else {
            d
        };
        Ok(self)
    }

    /// Number of dense layers.
    pub fn layers(&self) -> usize {
        self.widths.len() - 1
    }
    /// Width of the input (pixels per image).
    pub fn input(&self) -> usize {
        self.widths[0]
    }
    /// Width of the output (classes).
    pub fn output_width(&self) -> usize {
        *self.widths.last().expect("at least two widths")
    }
    /// Number of trainable parameters.
    pub fn params(&self) -> usize {
        self.widths.windows(2).map(|w| (w[0] + 1) * w[1]).sum()
    }
    /// Training FLOPs per sample, `6 * sum(fan_in * fan_out)`.
    pub fn train_flops_per_sample(&self) -> u64 {
        6 * self
            .widths
            .windows(2)
            .map(|w| (w[0] * w[1]) as u64)
            .sum::<u64>()
    }
    /// Training FLOPs a trainer performs per sample: [`Self::train_flops_per_sample`]
    /// less the first layer's input gradient (`2 x inputs x first width`),
    /// which nobody computes. The physical limit's denominator
    /// (`bound_samples_per_s_performed` of the NumPy reference).
    pub fn performed_flops_per_sample(&self) -> u64 {
        self.train_flops_per_sample() - 2 * (self.widths[0] * self.widths[1]) as u64
    }
    /// One row per dense layer: what a model summary shows.
    pub fn summary_rows(&self) -> Vec<LayerSummary> {
        (0..self.layers())
            .map(|i| LayerSummary {
                layer: i + 1,
                fan_in: self.widths[i],
                fan_out: self.widths[i + 1],
                activation: if i < self.hidden.len() {
                    self.hidden[i].name()
                } else {
                    self.output.name()
                },
                input_dropout: self.dropout(i),
                weights: self.widths[i] * self.widths[i + 1],
                biases: self.widths[i + 1],
            })
            .collect()
    }

    /// A model summary as a table (Keras' `model.summary()`): each dense
    /// layer's shape, activation, dropout on its input and parameters, then
    /// the total.
    ///
    /// ```
    /// let s = mnist_mlp::nn::NetSpec::parse("784,relu,100,softmax,10").unwrap();
    /// let t = s.summary();
    /// assert!(t.contains("784 -> 100") && t.contains("78,500") && t.contains("79,510"));
    /// ```
    pub fn summary(&self) -> String {
        let mut t = format!(
            "{:<7} {:<15} {:<10} {:>7} {:>11} {:>13}\n",
            "layer", "shape", "activation", "dropout", "weights", "parameters"
        );
        for r in self.summary_rows() {
            let drop = if r.input_dropout > 0.0 {
                format!("{}", r.input_dropout)
            } else {
                "-".into()
            };
            t += &format!(
                "{:<7} {:<15} {:<10} {:>7} {:>11} {:>13}\n",
                format!("dense{}", r.layer),
                format!("{} -> {}", r.fan_in, r.fan_out),
                r.activation,
                drop,
                thousands(r.weights),
                thousands(r.weights + r.biases)
            );
        }
        t += &format!(
            "{:<7} {:<15} {:<10} {:>7} {:>11} {:>13}\n",
            "total",
            format!("{} layers", self.layers()),
            "",
            "",
            "",
            thousands(self.params())
        );
        t
    }

    /// Checks that the loss can be used with the output activation.
    pub fn check_loss(&self, loss: Loss) -> Result<(), SpecError> {
        if loss == Loss::CrossEntropy && self.output != OutputAct::Softmax {
            return Err(SpecError::LossMismatch(format!(
                "cross-entropy needs a softmax output, but `{self}` ends with {}: use `softmax` before the output width or --loss mse",
                self.output.name()
            )));
        }
        Ok(())
    }
}

/// One dense layer of a [`NetSpec`], as [`NetSpec::summary`] shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerSummary {
    /// 1 for the first dense layer.
    pub layer: usize,
    /// Inputs of the layer (rows of its weight matrix).
    pub fan_in: usize,
    /// Units of the layer (columns of its weight matrix).
    pub fan_out: usize,
    /// The activation after the product (`softmax`/`identity`/... for the
    /// output layer).
    pub activation: &'static str,
    /// Dropout rate on the layer's input in training (0: none).
    pub input_dropout: f64,
    /// `fan_in * fan_out`.
    pub weights: usize,
    /// `fan_out`.
    pub biases: usize,
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A dropout rate: a number in `[0, MAX_RATE]`.
pub fn dropout_rate(s: &str) -> Result<f64, DropoutRateError> {
    match s.trim().parse::<f64>() {
        Ok(p) if valid_rate(p) => Ok(p),
        _ => Err(rate_error(&s)),
    }
}

/// A dropout rate given as a number (a flag or config key): in
/// `[0, MAX_RATE]`, with [`dropout_rate`]'s message.
pub fn check_dropout_rate(p: f64) -> Result<f64, DropoutRateError> {
    if valid_rate(p) {
        Ok(p)
    } else {
        Err(rate_error(&p))
    }
}

fn valid_rate(p: f64) -> bool {
    (0.0..=crate::nn::dropout::MAX_RATE).contains(&p)
}

crate::error::message_error!(
    /// A dropout rate outside [0, 0.95].
    DropoutRateError
);

fn rate_error(got: &dyn std::fmt::Display) -> DropoutRateError {
    DropoutRateError(format!(
        "a dropout rate is a number from 0 to {} (the share of units dropped), got `{got}`",
        crate::nn::dropout::MAX_RATE
    ))
}

impl std::fmt::Display for NetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.widths[0])?;
        if self.dropout(0) > 0.0 {
            write!(f, ",dropout:{}", self.dropout(0))?;
        }
        for (i, w) in self.widths[1..].iter().enumerate() {
            let a = if i < self.hidden.len() {
                self.hidden[i].name()
            } else {
                self.output.name()
            };
            write!(f, ",{a},{w}")?;
            if self.dropout(i + 1) > 0.0 && i + 1 < self.layers() {
                write!(f, ",dropout:{}", self.dropout(i + 1))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_each_layer_and_the_total() {
        let s =
            NetSpec::parse("784,dropout:0.2,relu,1024,dropout:0.5,relu,512,softmax,10").unwrap();
        let t = s.summary();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(
            lines[1].contains("784 -> 1024")
                && lines[1].contains("relu")
                && lines[1].contains("0.2")
        );
        assert!(
            lines[1].contains("802,816") && lines[1].contains("803,840"),
            "{t}"
        );
        assert!(lines[2].contains("1024 -> 512") && lines[2].contains("0.5"));
        assert!(
            lines[3].contains("512 -> 10")
                && lines[3].contains("softmax")
                && lines[3].contains(" - ")
        );
        assert!(lines[4].contains(&thousands(s.params())), "{t}");
        let rows = s.summary_rows();
        assert_eq!(
            rows.iter().map(|r| r.weights + r.biases).sum::<usize>(),
            s.params()
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1863690), "1,863,690");
    }

    #[test]
    fn parses_the_notebook_syntax() {
        let s = NetSpec::parse("784,relu,200,sigmoid,80,softmax,10").unwrap();
        assert_eq!(s.widths, vec![784, 200, 80, 10]);
        assert_eq!(s.hidden, vec![Activation::Relu, Activation::Sigmoid]);
        assert_eq!(s.output, OutputAct::Softmax);
        assert_eq!(s.to_string(), "784,relu,200,sigmoid,80,softmax,10");
        let s = NetSpec::parse("784, tanh, 300, sigmoid, 10").unwrap();
        assert_eq!(s.output, OutputAct::Sigmoid);
        let s = NetSpec::parse("784,relu,50,10").unwrap();
        assert_eq!(s.output, OutputAct::Softmax);
        assert_eq!(NetSpec::parse("784,10").unwrap().layers(), 1);
    }

    #[test]
    fn rejects_bad_lists_with_clear_messages() {
        for (bad, needle) in [
            ("784,relu,0,softmax,10", "at least 1"),
            ("784,relu,1000000000000,softmax,10", "too large"),
            ("784,swish,100,softmax,10", "unknown activation `swish`"),
            ("784,relu,100,softmax", "ends with the activation"),
            ("784,100,10", "no activation between widths 784 and 100"),
            ("784", "at least an input and an output"),
            ("784,,10", "empty entry"),
            (
                "784,softmax,100,softmax,10",
                "only allowed before the output",
            ),
            ("784,relu,-5,10", "neither a width"),
            ("784,relu,1048576,relu,1048576,10", "parameters"),
        ] {
            let e = NetSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn dropout_goes_after_the_width_it_acts_on() {
        let l = "784,dropout:0.2,relu,800,dropout:0.5,relu,800,dropout:0.5,softmax,10";
        let s = NetSpec::parse(l).unwrap();
        assert_eq!(s.widths, vec![784, 800, 800, 10]);
        assert_eq!(s.dropout, vec![0.2, 0.5, 0.5]);
        assert_eq!(s.to_string(), l);
        assert_eq!(NetSpec::parse(&s.to_string()).unwrap(), s);
        // Only on some layers; zero rates are no dropout at all.
        let s = NetSpec::parse("784,relu,100,dropout:0.3,tanh,50,10").unwrap();
        assert_eq!(s.dropout, vec![0.0, 0.3, 0.0]);
        assert_eq!(s.to_string(), "784,relu,100,dropout:0.3,tanh,50,softmax,10");
        let s = NetSpec::parse("784,dropout:0,relu,100,10").unwrap();
        assert!(s.dropout.is_empty() && !s.has_dropout());
        assert_eq!(s, NetSpec::parse("784,relu,100,10").unwrap());
        // Flags replace the list's rates.
        let s = NetSpec::parse(l)
            .unwrap()
            .with_dropout(Some(0.0), Some(0.25))
            .unwrap();
        assert_eq!(s.dropout, vec![0.0, 0.25, 0.25]);
        let s = NetSpec::parse(l).unwrap().with_dropout(None, Some(0.1));
        assert_eq!(s.unwrap().dropout, vec![0.2, 0.1, 0.1]);
        let s = NetSpec::parse(l)
            .unwrap()
            .with_dropout(Some(0.0), Some(0.0));
        assert!(s.unwrap().dropout.is_empty());
        let e = NetSpec::parse("784,relu,100,10")
            .unwrap()
            .with_dropout(Some(1.0), None);
        assert!(e.unwrap_err().to_string().contains("--input-dropout"));
        for (bad, needle) in [
            ("784,relu,100,10,dropout:0.5", "after the output width"),
            ("784,relu,dropout:0.5,100,10", "dropout goes after a width"),
            ("784,relu,100,dropout:1,10", "from 0 to 0.95"),
            ("784,relu,100,dropout:-0.1,10", "from 0 to 0.95"),
            ("784,relu,100,dropout:x,10", "got `x`"),
            (
                "784,relu,100,dropout:0.1,dropout:0.2,10",
                "two dropout rates",
            ),
        ] {
            let e = NetSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn counts() {
        let s = NetSpec::parse("784,relu,512,relu,512,relu,256,relu,128,softmax,10").unwrap();
        assert_eq!(s.train_flops_per_sample(), 4_972_032);
        assert_eq!(
            s.params(),
            784 * 512 + 512 + 512 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 1290
        );
    }
}
