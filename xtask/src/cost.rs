//! `cargo xtask cost`: instructions per operation on the hot paths, counted by callgrind.
//!
//! A path that takes 14 to 40 ns moves by more, run to run on a shared host, than one
//! change to it saves; its instruction count does not move at all. Each path of
//! `shm-channel/examples/path_cost.rs` runs twice under callgrind, with N and 2N
//! operations: the difference over N is the count per operation, start-up cancelled.
//! Fewer instructions is not always faster (a fence is one instruction), so a change is
//! still judged by the cross-process bench; this says what it removed.

use crate::{cargo, readme::target_dir, run, Result};
use std::process::Command;

/// The example's paths, as it names them.
const PATHS: &[(&str, &str)] = &[
    ("ring", "bare ring: try_write + read"),
    ("send-recv", "channel: send + recv"),
    ("try-send-recv", "channel: try_send + try_recv"),
    ("empty-ring", "bare ring: empty read"),
    ("empty-poll", "channel: empty try_recv"),
];
/// Operations in the shorter run.
const N: u64 = 100_000;

pub(crate) fn cost() -> Result {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err("needs valgrind on PATH (Debian: apt-get install valgrind)".into());
    }
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "shm-channel"]);
    build.args(["--example", "path_cost"]);
    run("build examples/path_cost", build)?;
    println!("| path | instructions per operation |");
    println!("|---|---|");
    for (path, what) in PATHS {
        let per_op = (count(path, 2 * N)? - count(path, N)?) as f64 / N as f64;
        println!("| {what} | {per_op:.0} |");
    }
    Ok(())
}

/// Instructions callgrind counted for `n` operations of `path`, start-up included.
fn count(path: &str, n: u64) -> Result<u64> {
    let exe = target_dir().join("release/examples/path_cost");
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .args([path, &n.to_string()])
        .env("SHM_PATH_COST_ONCE", "1")
        .output()
        .map_err(|e| format!("valgrind {}: {e}", exe.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{path} under callgrind failed: {log}"));
    }
    // "==123== Collected : 17,258,001"
    log.lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, n)| n.trim().replace(',', ""))
        })
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no instruction count in callgrind's output: {log}"))
}
