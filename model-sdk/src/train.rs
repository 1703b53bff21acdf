//! Training support: a [`Trainable`] model can be fine-tuned by the enclave with DP-SGD.
//!
//! The model computes one privacy unit's gradient at the parameters it is given; the
//! enclave owns everything else (which units are sampled, clipping, noise, the optimizer)
//! and the model never sees more than one unit, nor noise, nor other units' gradients.
//! [`export_trainable!`](crate::export_trainable) adds to the exports of
//! [`export_model!`](crate::export_model) a `cleanroom_train` section with the parameter
//! layout and label kind, `cleanroom_initial_params` and `cleanroom_train_unit`; scoring
//! then uses whatever parameters the enclave gives (`read_params`), or the model's own.
//!
//! [`unit_gradient_native`] runs the same gradient code natively: the owner's
//! non-private reference and the benchmarks' native twin.

use crate::{Batch, Column, Kind, Model, Row};
use alloc::vec;
use alloc::vec::Vec;

/// Version of the `cleanroom_train` section this SDK writes.
pub const TRAIN_VERSION: u32 = 1;
/// Most parameters a model may declare.
pub const MAX_PARAMS: usize = 1 << 20;

/// A model whose parameters the enclave can fine-tune.
///
/// ```
/// use cleanroom_model_sdk::{export_trainable, Kind, Model, Row, Trainable};
///
/// /// y ≈ w·x + b, squared loss.
/// struct Line { w: f64, b: f64 }
/// impl Default for Line { fn default() -> Self { Line { w: 0.5, b: 0.0 } } }
/// impl Model for Line {
///     const INPUTS: &'static [Kind] = &[Kind::F64];
///     fn score(&self, row: &Row<'_>) -> f64 { self.w * row.f64(0) + self.b }
/// }
/// impl Trainable for Line {
///     const LAYOUT: &'static [(&'static str, usize)] = &[("w", 1), ("b", 1)];
///     const LABEL: Kind = Kind::F64;
///     fn params(&self, out: &mut [f64]) { out[0] = self.w; out[1] = self.b; }
///     fn set_params(&mut self, p: &[f64]) { self.w = p[0]; self.b = p[1]; }
///     fn loss_gradient(&self, row: &Row<'_>, y: f64, grad: &mut [f64]) -> f64 {
///         let r = self.score(row) - y;
///         grad[0] += r * row.f64(0);
///         grad[1] += r;
///         0.5 * r * r
///     }
/// }
/// export_trainable!(Line);
///
/// let x = [1.0, 2.0];
/// let (grad, loss) = cleanroom_model_sdk::unit_gradient_native(
///     &Line::default(), &[cleanroom_model_sdk::Column::F64(&x)], &[1.0, 1.0]).unwrap();
/// assert_eq!(grad, [-0.5, -0.5]);
/// assert_eq!(loss, 0.125);
/// ```
pub trait Trainable: Model {
    /// The parameters as named tensors `(name, length)`, in flattening order; names as for
    /// [`Model::OUTPUTS`]. Their lengths sum to the parameter count.
    const LAYOUT: &'static [(&'static str, usize)];
    /// Kind of the label column the model learns from (`F64`, `I64` or `Code`); the label
    /// reaches [`Trainable::loss_gradient`] as an `f64`.
    const LABEL: Kind;
    /// Write the current parameters, flattened in [`Trainable::LAYOUT`] order, to `out`
    /// (exactly [`param_count`] long). For a fresh model these are the pretrained ones.
    fn params(&self, out: &mut [f64]);
    /// Replace the parameters (`params` is exactly [`param_count`] long).
    fn set_params(&mut self, params: &[f64]);
    /// The loss of one row whose label is `label`; add its gradient with respect to the
    /// parameters into `grad` (do not overwrite: the unit's rows are summed).
    fn loss_gradient(&self, row: &Row<'_>, label: f64, grad: &mut [f64]) -> f64;
}

/// The number of parameters of a layout: the sum of its tensors' lengths.
pub const fn param_count(layout: &[(&str, usize)]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < layout.len() {
        n += layout[i].1;
        i += 1;
    }
    n
}

/// Length of the `cleanroom_train` section for this layout.
pub const fn train_section_len(layout: &[(&str, usize)]) -> usize {
    let mut len = 4 + 4 + 1 + 1;
    let mut i = 0;
    while i < layout.len() {
        len += 1 + layout[i].0.len() + 4;
        i += 1;
    }
    len
}

/// Content of the `cleanroom_train` section: `version u32le, n_params u32le, label kind
/// byte, n_tensors byte`, then per tensor its name (length byte and bytes) and its length
/// (u32le). Panics (a compile error in a constant) on a bad layout.
pub const fn train_section<const N: usize>(layout: &[(&str, usize)], label: Kind) -> [u8; N] {
    assert!(N == train_section_len(layout), "train section length");
    assert!(!layout.is_empty() && layout.len() <= 64, "Trainable::LAYOUT needs 1 to 64 tensors");
    assert!(!matches!(label, Kind::Token), "Trainable::LABEL cannot be a token");
    let n = param_count(layout);
    assert!(n >= 1 && n <= MAX_PARAMS, "Trainable::LAYOUT needs 1 to 2^20 parameters");
    let mut names = [""; 64];
    let mut i = 0;
    while i < layout.len() {
        assert!(layout[i].1 > 0, "a tensor of Trainable::LAYOUT is empty");
        names[i] = layout[i].0;
        i += 1;
    }
    // Tensor names follow the output-name rules (and must be distinct).
    let (names, _) = names.split_at(layout.len());
    crate::check_outputs(names);
    let mut out = [0u8; N];
    let mut at = 0;
    at = put(&mut out, at, &TRAIN_VERSION.to_le_bytes());
    at = put(&mut out, at, &(n as u32).to_le_bytes());
    out[at] = label as u8;
    out[at + 1] = layout.len() as u8;
    at += 2;
    let mut t = 0;
    while t < layout.len() {
        let name = layout[t].0.as_bytes();
        out[at] = name.len() as u8;
        at = put(&mut out, at + 1, name);
        at = put(&mut out, at, &(layout[t].1 as u32).to_le_bytes());
        t += 1;
    }
    out
}

const fn put<const N: usize>(out: &mut [u8; N], at: usize, bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        out[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

/// The label column as `f64`s, whatever its kind.
pub(crate) fn labels_of(column: &Column<'_>) -> Option<Vec<f64>> {
    match column {
        Column::F64(v) => Some(v.to_vec()),
        Column::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
        Column::Code(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
        Column::Token(_) => None,
    }
}

/// The gradient of a unit's summed loss and that loss: what `cleanroom_train_unit` emits.
pub(crate) fn unit_gradient<M: Trainable>(model: &M, batch: &Batch<'_>, labels: &[f64]) -> (Vec<f64>, f64) {
    let mut grad = vec![0.0; param_count(M::LAYOUT)];
    let mut loss = 0.0;
    for (i, &y) in labels.iter().enumerate().take(batch.rows()) {
        loss += model.loss_gradient(&batch.row(i), y, &mut grad);
    }
    (grad, loss)
}

/// One unit's gradient and summed loss natively, through the same code as the sandbox's
/// `cleanroom_train_unit`: `columns` are the model's inputs, `labels` one per row.
pub fn unit_gradient_native<M: Trainable>(
    model: &M,
    columns: &[Column<'_>],
    labels: &[f64],
) -> Result<(Vec<f64>, f64), crate::BatchError> {
    let batch = Batch::new(M::INPUTS, columns)?;
    let batch = Batch { nulls: crate::Nulls::NotRead, ..batch };
    if labels.len() != batch.rows() {
        return Err(crate::BatchError::Ragged { index: M::INPUTS.len(), rows: batch.rows(), got: labels.len() });
    }
    Ok(unit_gradient(model, &batch, labels))
}

/// The model's current parameters as a vector.
pub fn params_of<M: Trainable>(model: &M) -> Vec<f64> {
    let mut p = vec![0.0; param_count(M::LAYOUT)];
    model.params(&mut p);
    p
}
