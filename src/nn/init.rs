//! Weight initialization, seeded with a portable RNG (ChaCha8): the same seed
//! gives the same weights on every platform. Biases start at zero.

use ndarray::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::nn::activation::Activation;
use crate::real::Real;

/// How weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// He for ReLU-family layers, Xavier for the others.
    Auto,
    /// He (Kaiming) normal: `N(0, 2 / fan_in)`.
    He,
    /// Xavier (Glorot) normal: `N(0, 2 / (fan_in + fan_out))`.
    Xavier,
    /// `N(0, std^2)`, as some of the notebooks did.
    Normal(f64),
}

crate::error::message_error!(
    /// An `--init` value that is not an initialization.
    InitError
);

impl Init {
    /// `auto`, `he` (`kaiming`), `xavier` (`glorot`) or `normal:STD`.
    pub fn parse(s: &str) -> Result<Self, InitError> {
        Self::parse_str(s).map_err(InitError)
    }

    fn parse_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase();
        Ok(match s.as_str() {
            "auto" => Init::Auto,
            "he" | "kaiming" => Init::He,
            "xavier" | "glorot" => Init::Xavier,
            _ => {
                let std = s
                    .strip_prefix("normal:")
                    .or_else(|| s.strip_prefix("normal="))
                    .ok_or_else(|| {
                        format!("unknown init `{s}` (expected auto, he, xavier or normal:STD)")
                    })?;
                let std: f64 = std
                    .parse()
                    .map_err(|_| format!("init `{s}`: `{std}` is not a number"))?;
                if !(std.is_finite() && std > 0.0) {
                    return Err(format!(
                        "init `{s}`: the standard deviation must be positive and finite"
                    ));
                }
                Init::Normal(std)
            }
        })
    }

    /// Standard deviation for a layer whose output goes through `act`
    /// (`None` for the output layer: it follows the previous hidden one).
    pub fn std(self, fan_in: usize, fan_out: usize, act: Option<Activation>) -> f64 {
        let he = (2.0 / fan_in as f64).sqrt();
        let xavier = (2.0 / (fan_in + fan_out) as f64).sqrt();
        match self {
            Init::He => he,
            Init::Xavier => xavier,
            Init::Normal(s) => s,
            Init::Auto => match act {
                Some(Activation::Relu | Activation::LeakyRelu) | None => he,
                _ => xavier,
            },
        }
    }

    /// A `[fan_in, fan_out]` weight matrix.
    pub fn weights<T: Real>(
        self,
        fan_in: usize,
        fan_out: usize,
        act: Option<Activation>,
        rng: &mut ChaCha8Rng,
    ) -> Array2<T> {
        let std = self.std(fan_in, fan_out, act);
        Array2::from_shape_simple_fn((fan_in, fan_out), || {
            let z: f64 = rng.sample(StandardNormal);
            T::of(z * std)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn seeded_and_scaled() {
        let a: Array2<f32> = Init::He.weights(400, 300, None, &mut ChaCha8Rng::seed_from_u64(1));
        let b: Array2<f32> = Init::He.weights(400, 300, None, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        let var = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / a.len() as f64;
        assert!((var / (2.0 / 400.0) - 1.0).abs() < 0.05, "variance {var}");
        assert_eq!(Init::parse("normal:0.01").unwrap(), Init::Normal(0.01));
        assert!(Init::parse("normal:-1").is_err());
        assert!(Init::parse("uniform").is_err());
        assert_eq!(
            Init::Auto.std(10, 10, Some(Activation::Sigmoid)),
            Init::Xavier.std(10, 10, None)
        );
    }
}
