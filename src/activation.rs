//! Activation functions `a = f(z)` and their derivatives.
//!
//! The derivative is written in terms of the stored output `a`, which is what
//! the forward pass keeps for the backward pass (no recomputation):
//!
//! | activation | `f(z)`                | `f'(z)` from `a = f(z)` |
//! |------------|-----------------------|-------------------------|
//! | identity   | `z`                   | `1`                     |
//! | ReLU       | `max(0, z)`           | `1 if a > 0 else 0`     |
//! | sigmoid    | `1 / (1 + e^-z)`      | `a (1 - a)`             |
//! | tanh       | `tanh z`              | `1 - a²`                |

use std::fmt;
use std::str::FromStr;

/// A hidden-layer activation. (Softmax belongs to the loss: see `nn::loss`.)
///
/// ```
/// use simdnet::activation::Activation;
/// let relu: Activation = "relu".parse().unwrap(); // the names the CLI takes
/// assert_eq!(relu, Activation::Relu);
/// assert_eq!(relu.f(-2.0), 0.0);
/// let a = Activation::Tanh.f(0.5);
/// assert!((Activation::Tanh.df_from_output(a) - (1.0 - a * a)).abs() < 1e-7); // f'(z) from a = f(z)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// `f(z) = z` (the output layer's, before the softmax).
    Identity,
    /// `max(0, z)`.
    Relu,
    /// `1 / (1 + e^-z)`.
    Sigmoid,
    /// `tanh z`.
    Tanh,
}

impl Activation {
    /// Every activation, in model-file code order.
    pub const ALL: [Activation; 4] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// `f(z)`.
    #[inline(always)]
    pub fn f(self, z: f32) -> f32 {
        match self {
            Activation::Identity => z,
            Activation::Relu => z.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
            Activation::Tanh => z.tanh(),
        }
    }

    /// `f'(z)`, computed from the output `a = f(z)`.
    #[inline(always)]
    pub fn df_from_output(self, a: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => a * (1.0 - a),
            Activation::Tanh => 1.0 - a * a,
        }
    }

    /// The lowercase name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// A stable one-byte code for the model file.
    pub fn code(self) -> u8 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
        }
    }

    /// The activation with model-file code `c`.
    pub fn from_code(c: u8) -> Option<Activation> {
        Activation::ALL.get(c as usize).copied()
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Activation, String> {
        match s.to_ascii_lowercase().as_str() {
            "identity" | "linear" => Ok(Activation::Identity),
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            _ => Err(format!(
                "unknown activation '{s}': expected one of relu, sigmoid, tanh, identity"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivative_from_output_matches_finite_difference() {
        for act in Activation::ALL {
            for &z in &[-2.5f32, -0.3, 0.4, 1.7] {
                let h = 1e-3f64;
                let f = |x: f64| act.f(x as f32) as f64;
                let numeric = (f(z as f64 + h) - f(z as f64 - h)) / (2.0 * h);
                let analytic = act.df_from_output(act.f(z)) as f64;
                assert!(
                    (numeric - analytic).abs() < 1e-3,
                    "{act} at {z}: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn names_and_codes_round_trip() {
        for act in Activation::ALL {
            assert_eq!(act.name().parse::<Activation>().unwrap(), act);
            assert_eq!(Activation::from_code(act.code()), Some(act));
        }
        assert!("softplus"
            .parse::<Activation>()
            .unwrap_err()
            .contains("relu, sigmoid, tanh"));
    }
}
