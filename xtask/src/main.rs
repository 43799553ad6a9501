//! `cargo xtask`: the project's tasks, in Rust so they run wherever cargo does.
//!
//! * `ci`    — everything CI checks: rustfmt, clippy (-D warnings), rustdoc (-D warnings),
//!   the README's snippets built in a crate outside the workspace, the workspace tests,
//!   the loom suite, a benchmark smoke row, a 60 s soak, and that nothing was left in
//!   /dev/shm (test segments, FIFOs, ledgers, staging files).
//! * `readme` — the README's snippets, built and run from a crate outside the workspace.
//! * `loom [--deep]` — the loom models under `--cfg shm_loom` in their own target dir,
//!   each model in a process of its own.
//! * `mutants [--filter TEXT | --only FILE]` — mutation testing of the protocol files with the loom
//!   suite as the test (slow, opt-in; see `mutants.rs`).
//! * `fuzz [--rounds N]` — the hostile-memory tests (ring and channel) in release mode
//!   with N rounds each (default 5,000,000; CI runs 100,000 in debug).
//! * `soak [--seconds N]` — writers and readers started, stopped and killed at random for
//!   N seconds (default 60, as CI runs it), counting every message end to end.
//! * `bench [--full] [--filter TEXT] [--json] [--same-cpu] [--cpus A,B] [--peers] [--bridge]` — the cross-process
//!   matrix (`shm-bench`, built in release mode; `--peers` adds other libraries' rows,
//!   building with the `peers` feature); `bench --micro` — the criterion benchmarks.
//! * `cost` — instructions per operation on the hot paths (ring, channel), counted by
//!   callgrind (needs valgrind): noise-free, for comparing one change with the last.

mod cost;
mod loom;
mod mutants;
mod readme;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Criterion benchmarks: (package, bench target).
const MICRO_BENCHES: &[(&str, &str)] = &[
    ("shm-ring", "ring"),
    ("shm-notify", "notify"),
    ("shm-idle", "idle"),
];
/// Prefix of every segment name the tests create.
const TEST_SEGMENT_PREFIX: &str = "shmring-test-";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = args
        .split_first()
        .map(|(t, r)| (t.as_str(), r))
        .unwrap_or(("help", &[]));
    let flag = |name: &str| rest.iter().any(|a| a == name);
    let result = match task {
        "ci" => ci(),
        "readme" => readme::readme(),
        "loom" => loom::loom(flag("--deep")),
        "fuzz" => match number(rest, "--rounds", 5_000_000) {
            Ok(n) => fuzz(n),
            Err(e) => Err(e),
        },
        "soak" => match number(rest, "--seconds", 60) {
            Ok(n) => soak(n),
            Err(e) => Err(e),
        },
        "mutants" => match rest {
            [] => mutants::mutants(None),
            [f, text] if f == "--filter" => mutants::mutants(Some(text)),
            [f, file] if f == "--only" => match std::fs::read_to_string(file) {
                Ok(names) => mutants::only(names.lines().map(str::trim).collect()),
                Err(e) => Err(format!("{file}: {e}")),
            },
            other => Err(format!(
                "unexpected arguments {other:?} (expected --filter TEXT or --only FILE)"
            )),
        },
        "bench" if flag("--micro") => micro(flag("--full")),
        "bench" => bench(rest),
        "cost" => cost::cost(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | readme | loom [--deep] | mutants [--filter TEXT | --only FILE] | fuzz [--rounds N] | soak [--seconds N] | bench [--full] [--filter TEXT] [--json] [--same-cpu] [--cpus A,B] [--peers] [--bridge] | bench --micro [--full] | cost>"
            );
            return if task == "help" || task == "--help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value of `--name N` in `args`, or `default`; anything else is an error.
fn number(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args {
        [] => Ok(default),
        [flag, value] if flag == name => value
            .parse()
            .map_err(|_| format!("{name} needs a number, got {value:?}")),
        other => Err(format!(
            "unexpected arguments {other:?} (expected {name} N)"
        )),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(what: &str, mut cmd: Command) -> Result {
    eprintln!("\n==> {what}");
    let t = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    eprintln!("<== {what}: {status} in {:.1?}", t.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn test_segments() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| {
                    n.starts_with(TEST_SEGMENT_PREFIX) || n.starts_with(shm_ring::STAGING_PREFIX)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ci() -> Result {
    let before = test_segments();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("rustfmt", fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("clippy", clippy)?;
    // Public docs build without a warning (broken links, private items in public docs).
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("rustdoc", doc)?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run("tests", test)?;
    // After the tests, whose dependencies it mostly reuses.
    readme::readme()?;
    loom::loom(false)?;
    // The benchmark harness must keep working: one fast row, end to end.
    bench(&["--filter".into(), "pingpong/kernel/pipe".into()])?;
    soak(60)?;
    let left: Vec<_> = test_segments().difference(&before).cloned().collect();
    if !left.is_empty() {
        return Err(format!("tests left segments in /dev/shm: {left:?}"));
    }
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// The hostile-memory tests, optimised, with `rounds` rounds each.
fn fuzz(rounds: u64) -> Result {
    let mut cmd = cargo();
    cmd.args(["test", "--release", "-p", "shm-ring", "-p", "shm-tests"])
        .args(["--test", "hostile", "--test", "hostile_channel"])
        .args(["--", "--nocapture"])
        .env("SHM_FUZZ_ROUNDS", rounds.to_string());
    run(&format!("fuzz ({rounds} rounds)"), cmd)
}

/// The soak: the tests crate's `soak` binary for `seconds`.
fn soak(seconds: u64) -> Result {
    let cmd = run_release("shm-tests", "soak", &[seconds.to_string()]);
    run(&format!("soak ({seconds} s)"), cmd)
}

/// `cargo run --release` of `package`'s `bin` with `args` (through cargo, so a custom
/// CARGO_TARGET_DIR is honoured).
fn run_release(package: &str, bin: &str, args: &[String]) -> Command {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        package,
        "--bin",
        bin,
        "--",
    ])
    .args(args);
    cmd
}

/// The cross-process matrix: builds `shm-bench` in release mode and runs it (through
/// `cargo run`, so a custom CARGO_TARGET_DIR is honoured).
fn bench(args: &[String]) -> Result {
    let mut cmd = run_release("shm-bench", "shm-bench", args);
    // Peers and the bridge are linked only when asked for: the default build stays lean.
    let features: Vec<&str> = [("--peers", "peers"), ("--bridge", "bridge")]
        .into_iter()
        .filter(|(flag, _)| args.iter().any(|a| a == flag))
        .map(|(_, feature)| feature)
        .collect();
    if !features.is_empty() {
        let mut with = cargo();
        with.args(["run", "--release", "--quiet", "-p", "shm-bench"])
            .args(["--features", &features.join(",")])
            .args(["--bin", "shm-bench", "--"])
            .args(args);
        cmd = with;
    }
    run("shm-bench", cmd)
}

/// Criterion micro-benchmarks.
fn micro(full: bool) -> Result {
    for (package, bench) in MICRO_BENCHES {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", package, "--bench", bench, "--"]);
        if !full {
            cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
        }
        run(&format!("criterion micro-benchmarks ({bench})"), cmd)?;
    }
    Ok(())
}
