//! Pictures (floor 4): standalone SVG charts that open in any browser, with
//! no dependency: the figures `train --plot`, `sweep --plot` and
//! `evaluate --confusion` write.
//!
//! - [`svg`]: the writer (elements, escaping of every text and attribute).
//! - [`axis`]: linear scales with nice 1-2-5 ticks.
//! - [`line`](mod@line): a line chart with several series, axes, ticks and a legend.
//! - [`history`]: a run's loss and accuracy per epoch, two panels.
//! - [`bars`]: a horizontal bar chart with error bars (a sweep's accuracy per row).
//! - [`heatmap`]: a confusion matrix as a heat map.
//!
//! Every figure is a `String` holding the whole document; the caller saves it
//! with [`crate::safe_file::write_atomic`].

pub mod axis;
pub mod bars;
pub mod heatmap;
pub mod history;
pub mod line;
pub mod svg;

pub use bars::{bars_svg, Bar};
pub use heatmap::confusion_svg;
pub use history::{history_svg, EpochPoint};
pub use line::{LineChart, Series};
