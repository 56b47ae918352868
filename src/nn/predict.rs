//! Prediction on typed inputs: [`Network::predict`] takes a data set or a
//! matrix whose element type says how it is scaled (`u8` pixels by the
//! network's input scale, `f32` values as they are), so no caller passes a
//! scale and none can forget one.

use crate::data::Input;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::nn::network::Network;

impl Network {
    /// Class probabilities for every example of `x`: a `(rows, outputs)`
    /// matrix whose rows sum to 1.
    ///
    /// `x` is a [`Dataset`](crate::data::Dataset) (`&data`), a
    /// `MatRef<u8>` of raw pixels (scaled by [`input_scale`](Self::input_scale),
    /// `1/255` unless set otherwise) or a `MatRef<f32>` / `&Matrix` of values
    /// (used as they are). An error if the examples are not
    /// [`inputs`](Self::inputs) wide.
    ///
    /// ```
    /// use simdnet::matrix::MatRef;
    /// use simdnet::nn::{argmax, Activation, Network};
    /// let net = Network::mlp(4, &[8], 3, Activation::Relu, 1)?;
    /// let pixels: [u8; 8] = [0, 255, 128, 7, 255, 255, 0, 0]; // two examples
    /// let probs = net.predict(MatRef::from_slice(&pixels, 2, 4))?; // scaled by 1/255
    /// assert_eq!((probs.rows(), probs.cols()), (2, 3));
    /// assert!((probs.row(0).iter().sum::<f32>() - 1.0).abs() < 1e-5);
    /// // The same pixels as values already scaled to 0..1 give the same probabilities.
    /// let values: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    /// let same = net.predict(MatRef::from_slice(&values, 2, 4))?;
    /// assert_eq!(argmax(same.row(1)), argmax(probs.row(1)));
    /// # Ok::<(), simdnet::Error>(())
    /// ```
    pub fn predict<'a>(&self, x: impl Into<Input<'a>>) -> Result<Matrix> {
        match x.into() {
            Input::Pixels(x) => self.predict_scaled(x, self.input_scale()),
            Input::Values(x) => self.predict_scaled(x, 1.0),
        }
    }

    /// The most probable class of every example of `x` (see [`predict`](Self::predict)).
    ///
    /// ```
    /// # use simdnet::nn::{Activation, Network};
    /// # use simdnet::Matrix;
    /// let net = Network::mlp(2, &[], 3, Activation::Relu, 1)?;
    /// let classes = net.classify(&Matrix::from_slice(2, 2, &[0.5, -1.0, 2.0, 0.0]))?;
    /// assert_eq!(classes.len(), 2);
    /// assert!(classes.iter().all(|&c| c < 3));
    /// # Ok::<(), simdnet::Error>(())
    /// ```
    pub fn classify<'a>(&self, x: impl Into<Input<'a>>) -> Result<Vec<usize>> {
        let probs = self.predict(x)?;
        Ok((0..probs.rows())
            .map(|r| crate::matrix::argmax(probs.row(r)))
            .collect())
    }
}
