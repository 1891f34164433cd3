//! Helpers shared by the CLI's integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs the `wvo` binary with `args` from the temp dir, so nothing is read from the repo
/// (the catalog and the built-in scenarios are embedded), and waits for it.
pub fn wvo_elsewhere(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("wvo runs")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` on `addr` over plain HTTP/1.1, giving up after `connect` to connect and
/// `read` to read the answer: (status code, body), or None when anything failed.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    connect: Duration,
    read: Duration,
) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, connect).ok()?;
    s.set_read_timeout(Some(read)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}
