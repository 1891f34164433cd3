//! The apiserver's rules for CustomResourceDefinitions, as a pure library (no I/O).
//!
//! - [`check`]: what a CRD's `openAPIV3Schema` must satisfy for a real apiserver to install it
//!   (structural schema, known formats, list-type map keys, a conservative CEL cost estimate).
//! - [`validate`]: what a custom object must satisfy to be stored (types, ranges, required,
//!   pruning of unknown fields or refusal under `fieldValidation=Strict`, CEL rules).

pub mod check;
pub mod validate;
