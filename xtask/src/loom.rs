//! `cargo xtask loom`: builds the loom test binaries (`--cfg shm_loom`, their own target
//! dir) and runs every model in a process of its own, as many at once as there are CPUs,
//! so a model that fails (or aborts: loom can, when a destructor panics while a failed
//! model unwinds) is reported by name without hiding the others' results.

use crate::{cargo, root, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Crates with loom models (test targets named `loom_*`).
const LOOM_PACKAGES: &[&str] = &["shm-ring", "shm-channel"];
/// A model still running after this long counts as failed (a livelock, in a mutant).
const MODEL_LIMIT: Duration = Duration::from_secs(600);

/// Where to build and run the models: a source tree and its target dir.
pub struct Tree {
    /// The workspace root.
    pub src: PathBuf,
    /// `CARGO_TARGET_DIR` for the loom build.
    pub target: PathBuf,
}

impl Tree {
    /// The repository itself, with `target/loom`.
    pub fn here() -> Tree {
        Tree {
            src: root(),
            target: root().join("target/loom"),
        }
    }
}

/// What a run of the models came to.
pub struct Outcome {
    /// Models that passed.
    pub passed: usize,
    /// Models that failed, by name.
    pub failed: Vec<String>,
}

/// The loom test executables, from cargo's JSON messages of a `--no-run` build.
fn build(tree: &Tree, quiet: bool) -> Result<Vec<(String, PathBuf)>> {
    let mut cmd = cargo();
    cmd.current_dir(&tree.src).args(["test", "--release"]);
    for p in LOOM_PACKAGES {
        cmd.args(["-p", p]);
    }
    let out = cmd
        .args(["--test", "loom_*", "--no-run", "--message-format=json"])
        .env("RUSTFLAGS", "--cfg shm_loom -C debug-assertions")
        .env("CARGO_TARGET_DIR", &tree.target)
        .stderr(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("loom build failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut exes = Vec::new();
    for line in text.lines().filter(|l| l.contains("\"executable\":\"")) {
        let field = |key: &str| {
            let start = line.find(key)? + key.len();
            let len = line[start..].find('"')?;
            Some(line[start..start + len].to_string())
        };
        if let (Some(name), Some(exe)) = (field("\"name\":\""), field("\"executable\":\"")) {
            if name.starts_with("loom_") {
                exes.push((name, PathBuf::from(exe)));
            }
        }
    }
    if exes.is_empty() {
        return Err("no loom test binaries were built".into());
    }
    Ok(exes)
}

/// The tests of one libtest executable.
fn list(exe: &Path) -> Result<Vec<String>> {
    let out = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect())
}

struct Running {
    name: String,
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// Builds the models of `tree` and runs those whose `binary::test` name `select`
/// accepts, each in its own process. `stop_early`: end at the first failure (a mutant
/// is killed by one). `quiet`: print failures only.
pub fn run_models(
    tree: &Tree,
    deep: bool,
    select: impl Fn(&str) -> bool,
    stop_early: bool,
    quiet: bool,
) -> Result<Outcome> {
    let exes = build(tree, quiet)?;
    let logs = tree.target.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut queue = Vec::new();
    for (bin, exe) in &exes {
        for test in list(exe)? {
            let name = format!("{bin}::{test}");
            if select(&name) {
                queue.push((name, exe.clone(), test));
            }
        }
    }
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    if !quiet {
        eprintln!(
            "==> loom: {} models, {width} at a time{}",
            queue.len(),
            if deep { " (deep)" } else { "" }
        );
    }
    queue.reverse();
    let mut running = Vec::<Running>::new();
    let mut outcome = Outcome {
        passed: 0,
        failed: Vec::new(),
    };
    while !queue.is_empty() || !running.is_empty() {
        let stopping = stop_early && !outcome.failed.is_empty();
        while running.len() < width && !stopping {
            let Some((name, exe, test)) = queue.pop() else {
                break;
            };
            let log = logs.join(name.replace("::", "."));
            let file =
                std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = file.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new(&exe)
                .args(["--exact", &test, "--nocapture", "--test-threads", "1"])
                .env("LOOM_MAX_PREEMPTIONS", if deep { "3" } else { "2" })
                .envs(deep.then_some(("SHM_LOOM_DEEP", "1")))
                .stdout(file)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("{name}: cannot start: {e}"))?;
            running.push(Running {
                name,
                child,
                log,
                started: Instant::now(),
            });
        }
        if stopping {
            for mut r in running.drain(..) {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut i = 0;
        while i < running.len() {
            let late = running[i].started.elapsed() > MODEL_LIMIT;
            if late {
                let _ = running[i].child.kill();
            }
            match running[i].child.try_wait() {
                Ok(None) => i += 1,
                done => {
                    let r = running.swap_remove(i);
                    let ok = !late && matches!(done, Ok(Some(s)) if s.success());
                    let took = r.started.elapsed();
                    if ok {
                        outcome.passed += 1;
                    } else {
                        outcome.failed.push(r.name.clone());
                    }
                    if quiet {
                        continue;
                    }
                    let what = if ok { "ok    " } else { "FAILED" };
                    eprintln!("    {what} {} in {took:.1?}", r.name);
                    if !ok {
                        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
                        let tail: Vec<_> = text.lines().rev().take(30).collect();
                        for line in tail.iter().rev() {
                            eprintln!("      | {line}");
                        }
                    }
                }
            }
        }
    }
    Ok(outcome)
}

/// `cargo xtask loom [--deep]`: every model of this repository; fails if any failed.
pub fn loom(deep: bool) -> Result {
    let t = Instant::now();
    eprintln!("\n==> loom: build");
    let outcome = run_models(&Tree::here(), deep, |_| true, false, false)?;
    eprintln!(
        "<== loom: {} passed, {} failed in {:.1?}",
        outcome.passed,
        outcome.failed.len(),
        t.elapsed()
    );
    match outcome.failed.is_empty() {
        true => Ok(()),
        false => Err(format!("loom models failed: {:?}", outcome.failed)),
    }
}
