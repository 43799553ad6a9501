//! `cargo xtask loom`: builds the loom test binaries (`--cfg shm_loom`, their own target
//! dir) and runs every model in a process of its own, as many at once as there are CPUs,
//! so a model that fails (or aborts: loom can, when a destructor panics while a failed
//! model unwinds) is reported by name without hiding the others' results.

use crate::{cargo, root, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Crates with loom models (test targets named `loom_*`).
const LOOM_PACKAGES: &[&str] = &["shm-ring", "shm-channel"];

fn loom_cargo(deep: bool) -> Command {
    let mut cmd = cargo();
    cmd.args(["test", "--release"]);
    for p in LOOM_PACKAGES {
        cmd.args(["-p", p]);
    }
    cmd.args(["--test", "loom_*"])
        .env("RUSTFLAGS", "--cfg shm_loom -C debug-assertions")
        .env("CARGO_TARGET_DIR", root().join("target/loom"));
    if deep {
        cmd.env("SHM_LOOM_DEEP", "1");
    }
    cmd
}

/// The loom test executables, from cargo's JSON messages of a `--no-run` build.
fn build(deep: bool) -> Result<Vec<(String, PathBuf)>> {
    eprintln!("\n==> loom: build");
    let out = loom_cargo(deep)
        .args(["--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
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
fn list(exe: &PathBuf) -> Result<Vec<String>> {
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

/// Builds the models and runs each in its own process; fails if any failed.
pub fn loom(deep: bool) -> Result {
    let t = Instant::now();
    let exes = build(deep)?;
    let logs = root().join("target/loom/logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut queue = Vec::new();
    for (bin, exe) in &exes {
        for test in list(exe)? {
            queue.push((format!("{bin}::{test}"), exe.clone(), test));
        }
    }
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!(
        "==> loom: {} models, {width} at a time{}",
        queue.len(),
        if deep { " (deep)" } else { "" }
    );
    queue.reverse();
    let (mut running, mut failed, mut passed) = (Vec::<Running>::new(), Vec::new(), 0);
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < width {
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
        std::thread::sleep(Duration::from_millis(20));
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(None) => i += 1,
                done => {
                    let r = running.swap_remove(i);
                    let ok = matches!(done, Ok(Some(s)) if s.success());
                    let took = r.started.elapsed();
                    eprintln!(
                        "    {} {} in {took:.1?}",
                        if ok { "ok    " } else { "FAILED" },
                        r.name
                    );
                    if ok {
                        passed += 1;
                    } else {
                        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
                        let tail: Vec<_> = text.lines().rev().take(30).collect();
                        for line in tail.iter().rev() {
                            eprintln!("      | {line}");
                        }
                        failed.push(r.name);
                    }
                }
            }
        }
    }
    eprintln!(
        "<== loom: {passed} passed, {} failed in {:.1?}",
        failed.len(),
        t.elapsed()
    );
    match failed.is_empty() {
        true => Ok(()),
        false => Err(format!("loom models failed: {failed:?}")),
    }
}
