//! Install-time checks of a CRD schema.
