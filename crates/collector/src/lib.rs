//! collector (stub)
