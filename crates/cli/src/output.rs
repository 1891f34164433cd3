//! Writing to standard output without panicking when the reader goes away.
//!
//! `print!` panics on a closed pipe (`wvo crds | head`): Rust ignores SIGPIPE, so the write
//! fails with `BrokenPipe` and the macro turns that into a panic. Commands write through
//! [`print`] instead and return the error; `main` ends quietly with exit 0 when
//! [`is_broken_pipe`] says the reader left.

use std::io::{ErrorKind, Write};

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Same, followed by a newline.
pub fn println(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Whether `error` (or anything in its chain) is a write to a pipe whose reader has closed.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
