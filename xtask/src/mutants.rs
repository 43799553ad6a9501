//! `cargo xtask mutants`: mutation testing of the protocol code, with the loom suite as
//! the test. Each mutant is one small change a real edit could make: a memory ordering
//! weakened to `Relaxed`, a fence removed, or one of a list of protocol slips (a step of
//! the waiter protocol or of the wait engine left out). Mutants are made in a copy of
//! the committed tree (`target/mutants/tree`, from `git archive HEAD`), never in the
//! working tree, and each is run against the passing loom models (each in a process of
//! its own; the first failure kills the mutant).
//!
//! A mutant that no model kills must be listed in `xtask/mutants-equivalent.txt` (by its
//! name: file, line text, operator) with a one-line argument for why it cannot change
//! behaviour, or why loom cannot see it and what covers it instead; the task prints
//! `mutants: K killed, S survived, E equivalent` and fails if any survivor is unlisted.
//! `--filter TEXT` runs the mutants whose names contain TEXT; `--only FILE` those named
//! in FILE, one per line.

use crate::loom::{run_models, Tree};
use crate::{root, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The protocol files: the ring's producer and consumer, the waiter protocol, the wait
/// engine and the ends' wake-ups.
const FILES: &[&str] = &[
    "shm-ring/src/producer.rs",
    "shm-ring/src/consumer.rs",
    "shm-channel/src/waiter.rs",
    "shm-channel/src/engine.rs",
    "shm-channel/src/sender.rs",
    "shm-channel/src/receiver.rs",
];

/// Protocol slips: (id, file, text that occurs once, replacement).
const SLIPS: &[(&str, &str, &str, &str)] = &[
    (
        "waker-plain-store",
        "shm-channel/src/waiter.rs",
        "match word.compare_exchange(cur, cur | NOTIFIED, Ordering::AcqRel, Ordering::Relaxed) {",
        "match Ok::<u32, u32>(word.swap(cur | NOTIFIED, Ordering::AcqRel)) {",
    ),
    (
        "no-pass-on",
        "shm-channel/src/waiter.rs",
        "if prev & NOTIFIED != 0 && others != 0 && !fault::no_pass_on() {",
        "if false {",
    ),
    (
        "withdraw-keeps-notified",
        "shm-channel/src/waiter.rs",
        "Sleeper::Writer(_) => word.fetch_and(!(who.bit() | NOTIFIED), Ordering::AcqRel),",
        "Sleeper::Writer(_) => word.fetch_and(!who.bit(), Ordering::AcqRel),",
    ),
    (
        "reader-never-announces",
        "shm-channel/src/waiter.rs",
        "let prev = word.swap(who.bit(), Ordering::Relaxed);",
        "let prev = word.load(Ordering::Relaxed);",
    ),
    (
        "writer-never-announces",
        "shm-channel/src/waiter.rs",
        "let prev = word.fetch_or(who.bit(), Ordering::Relaxed);",
        "let prev = word.load(Ordering::Relaxed);",
    ),
    (
        "park-without-recheck",
        "shm-channel/src/engine.rs",
        "outcome = op.attempt();",
        "outcome = None;",
    ),
    (
        "commit-skips-wake",
        "shm-channel/src/sender.rs",
        "if waiter::fault::commit_skips_wake() {",
        "if true {",
    ),
    (
        "send-skips-wake",
        "shm-channel/src/sender.rs",
        "        self.stats.sent += 1;\n        if waiter::wake(",
        "        self.stats.sent += 1;\n        if false && waiter::wake(",
    ),
    (
        "read-skips-wake",
        "shm-channel/src/receiver.rs",
        "if waiter::wake(self.link.word(Direction::Space), &*self.link.space)? {",
        "if false {",
    ),
];

/// One mutant: `file` with `from` (at byte `at`) replaced by `to`.
struct Mutant {
    id: String,
    file: &'static str,
    at: usize,
    from: String,
    to: String,
}

/// Orderings weakened one occurrence at a time, and fences removed, in `file`.
fn generated(file: &'static str, text: &str) -> Vec<Mutant> {
    const WEAKER: &[(&str, &str)] = &[
        ("Ordering::Release", "Ordering::Relaxed"),
        ("Ordering::Acquire", "Ordering::Relaxed"),
        ("Ordering::AcqRel", "Ordering::Relaxed"),
        ("commit_ordering()", "Ordering::Relaxed"),
    ];
    let mut out = Vec::new();
    let mut offset = 0;
    // Mutants are named by the line's text (and which copy of it), not its number, so
    // the names in the equivalents file survive edits elsewhere in the file.
    let mut seen = BTreeMap::<&str, usize>::new();
    for line in text.split_inclusive('\n') {
        let code = line.trim_start();
        let start = offset;
        offset += line.len();
        let copy = seen.entry(code.trim_end()).or_default();
        *copy += 1;
        let at_line = match *copy {
            1 => format!("{file}: `{}`", code.trim_end()),
            k => format!("{file}: `{}` (copy {k})", code.trim_end()),
        };
        // Comments, and the test-only fault switches, are not protocol code.
        if code.starts_with("//") || line.contains("FAULT.") {
            continue;
        }
        // A fence has no relaxed form (it panics): fences are removed instead, below.
        let fence = code.starts_with("fence(");
        for (from, to) in WEAKER.iter().filter(|_| !fence) {
            for (k, (i, _)) in line.match_indices(from).enumerate() {
                let op = from.trim_start_matches("Ordering::").trim_end_matches("()");
                out.push(Mutant {
                    id: match k {
                        0 => format!("{at_line} {op}->Relaxed"),
                        k => format!("{at_line} {op}->Relaxed (use {})", k + 1),
                    },
                    file,
                    at: start + i,
                    from: from.to_string(),
                    to: to.to_string(),
                });
            }
        }
        let stmt = code.trim_end();
        if stmt.starts_with("fence(") && stmt.ends_with(");") {
            out.push(Mutant {
                id: format!("{at_line} fence-removed"),
                file,
                at: start + (line.len() - code.len()),
                from: stmt.to_string(),
                to: "// fence removed".to_string(),
            });
        }
    }
    out
}

/// The slips of [`SLIPS`] in `file`; each text must occur exactly once.
fn slips(file: &'static str, text: &str) -> Result<Vec<Mutant>> {
    let mut out = Vec::new();
    for (id, f, from, to) in SLIPS.iter().filter(|s| s.1 == file) {
        let mut hits = text.match_indices(from);
        let (Some((at, _)), None) = (hits.next(), hits.next()) else {
            return Err(format!(
                "mutant {id}: its text must occur exactly once in {f}"
            ));
        };
        out.push(Mutant {
            id: id.to_string(),
            file,
            at,
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    Ok(out)
}

/// `id -- argument` lines of the equivalents file (`#` comments).
fn equivalents() -> Result<BTreeMap<String, String>> {
    let path = root().join("xtask/mutants-equivalent.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(" -- "))
        .map(|(id, why)| (id.trim().to_string(), why.trim().to_string()))
        .collect())
}

/// A fresh copy of the committed tree in `dir`.
fn copy_tree(dir: &Path) -> Result {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let archive = Command::new("git")
        .current_dir(root())
        .args(["archive", "--format=tar", "HEAD"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("git archive: {e}"))?;
    // `-m`: files get the time of extraction, not of the commit, so cargo never takes a
    // build of an earlier mutant for up to date.
    let status = Command::new("tar")
        .args(["-x", "-m", "-C"])
        .arg(dir)
        .stdin(archive.stdout.ok_or("git archive: no stdout")?)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("tar failed ({status})")),
    }
}

/// `cargo xtask mutants --only FILE`: just the mutants named in FILE, one per line (to
/// re-run the survivors of a full run after adding models).
pub fn only(names: Vec<&str>) -> Result {
    run(|m| names.contains(&m.id.as_str()))
}

/// `cargo xtask mutants [--filter TEXT]`: see the module docs.
pub fn mutants(filter: Option<&str>) -> Result {
    run(|m| filter.is_none_or(|f| m.id.contains(f)))
}

fn run(select: impl Fn(&Mutant) -> bool) -> Result {
    let t = Instant::now();
    let base = root().join("target/mutants");
    let tree = Tree {
        src: base.join("tree"),
        target: base.join("target"),
    };
    copy_tree(&tree.src)?;
    let equivalent = equivalents()?;
    let mut all = Vec::new();
    for file in FILES {
        let text = std::fs::read_to_string(tree.src.join(file)).map_err(|e| e.to_string())?;
        all.extend(generated(file, &text));
        all.extend(slips(file, &text)?);
    }
    all.retain(|m| select(m));
    let passing = |name: &str| !name.contains("_mutation");
    eprintln!("==> mutants: checking that the unmutated tree passes");
    let clean = run_models(&tree, false, passing, true, true)?;
    if !clean.failed.is_empty() {
        return Err(format!("the unmutated models fail: {:?}", clean.failed));
    }
    eprintln!("==> mutants: {} mutants", all.len());
    let (mut killed, mut survived, mut equiv) = (0, Vec::new(), 0);
    for (i, m) in all.iter().enumerate() {
        let path = tree.src.join(m.file);
        let original = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut text = original.clone();
        text.replace_range(m.at..m.at + m.from.len(), &m.to);
        std::fs::write(&path, &text).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let result = run_models(&tree, false, passing, true, true);
        std::fs::write(&path, &original).map_err(|e| e.to_string())?;
        let verdict = match result {
            Err(e) if e.starts_with("loom build failed") => {
                killed += 1;
                "killed (does not compile)".to_string()
            }
            Err(e) => return Err(e),
            Ok(o) if !o.failed.is_empty() => {
                killed += 1;
                format!("killed by {}", o.failed[0])
            }
            Ok(_) => match equivalent.get(&m.id) {
                Some(why) => {
                    equiv += 1;
                    format!("equivalent: {why}")
                }
                None => {
                    survived.push(m.id.clone());
                    "SURVIVED".to_string()
                }
            },
        };
        eprintln!(
            "  [{}/{}] {} ({:.0?}): {verdict}",
            i + 1,
            all.len(),
            m.id,
            started.elapsed()
        );
    }
    eprintln!("finished in {:.0?}", t.elapsed());
    for id in &survived {
        eprintln!("unexplained survivor: {id}");
    }
    println!(
        "mutants: {killed} killed, {} survived, {equiv} equivalent",
        survived.len()
    );
    match survived.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{} survivors are not listed in xtask/mutants-equivalent.txt",
            survived.len()
        )),
    }
}
