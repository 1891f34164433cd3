//! sim (stub)
