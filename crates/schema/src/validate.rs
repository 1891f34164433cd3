//! Validation of a custom object against its CRD schema.
