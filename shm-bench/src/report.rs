//! The report: a table on the terminal, `target/shm-bench/report.md`, `report.json`, and
//! an SVG of p99 latency against reader CPU for the paced scenario.

use crate::Row;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where and how the numbers were taken.
pub struct Environment {
    pub date: String,
    pub nproc: usize,
    pub kernel: String,
    pub pinned: bool,
    pub same_cpu: bool,
    pub full: bool,
    /// The parent's and the child's CPU.
    pub cpus: (usize, usize),
    /// What those two CPUs share (a core, a cache), from sysfs.
    pub shared: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// The load averages (1, 5, 15 min) when the run began and when it ended: a busy
    /// machine makes every row slower and noisier.
    pub load_before: String,
    pub load_after: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

impl Environment {
    pub fn probe(pinned: bool, same_cpu: bool, full: bool, cpus: (usize, usize)) -> Self {
        let out = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        Environment {
            date: out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            nproc: crate::sys::cpus(),
            kernel: out("uname", &["-r"]),
            pinned,
            same_cpu,
            full,
            cpus,
            shared: crate::sys::shared(cpus.0, cpus.1),
            cpu_model: cpu_model(),
            load_before: load_average(),
            load_after: String::new(),
        }
    }

    /// Records the machine's load at the end of the run.
    pub fn finish(&mut self) {
        self.load_after = load_average();
    }

    fn describe(&self) -> String {
        format!(
            "{}, {}, nproc {}, kernel {}, load average {} at the start and {} at the end, \
             {} mode, {}",
            self.date,
            self.cpu_model,
            self.nproc,
            self.kernel,
            self.load_before,
            self.load_after,
            if self.full { "full" } else { "quick" },
            match (self.pinned, self.same_cpu) {
                (_, true) => format!("both processes pinned to CPU {} (--same-cpu)", self.cpus.0),
                (true, false) => format!(
                    "processes pinned to CPUs {} and {}: {}",
                    self.cpus.0, self.cpus.1, self.shared
                ),
                (false, false) => "unpinned (fewer than two CPUs)".into(),
            }
        )
    }
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

fn rate(r: Option<u64>) -> String {
    r.map_or("-".into(), |r| r.to_string())
}

/// p50 of `row` in the same scenario and payload.
fn p50_of(rows: &[Row], scenario: &str, row: &str, payload: usize) -> Option<u64> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.row == row && r.payload == payload)
        .map(|r| r.sample.p50)
}

/// The floor a pingpong row is compared with: for spinning rows the ring floor, which
/// moves the same payload through cache-line slots (as many lines as the payload needs,
/// nothing else); for blocking futex and eventfd rows the raw wake of their notifier.
fn floor_for(row: &str) -> Option<&'static str> {
    let p: Vec<&str> = row.split('/').collect();
    match p[..] {
        ["channel", _, _, "spin"] | ["peer", _, "spin"] | ["ring", _, "spin"] => Some("floor/ring"),
        ["channel", _, "futex", "blocking"] | ["peer", _, "futex"] => Some("floor/futex"),
        ["channel", _, "eventfd", "blocking"] => Some("floor/eventfd"),
        _ => None,
    }
}

/// Scenarios whose rows are choices between latency and reader CPU.
const TRADE_OFFS: [&str; 4] = ["pingpong", crate::ONE_CPU, "paced", "burst"];

/// Whether a row is one a user could pick (floors and the bare ring are yardsticks).
fn is_choice(row: &str) -> bool {
    !row.starts_with("floor/") && !row.starts_with("ring/")
}

/// Whether `b` is at least as good as `a` on p50, p99 and reader CPU, and better on one.
fn dominates(b: &Row, a: &Row) -> bool {
    let (x, y) = (&b.sample, &a.sample);
    x.p50 <= y.p50
        && x.p99 <= y.p99
        && x.cpu_reader <= y.cpu_reader
        && (x.p50 < y.p50 || x.p99 < y.p99 || x.cpu_reader < y.cpu_reader)
}

/// The rows of `r`'s scenario, payload and rate that a user could pick.
fn peers_of<'a>(rows: &'a [Row], r: &Row) -> Vec<&'a Row> {
    rows.iter()
        .filter(|o| {
            o.scenario == r.scenario
                && o.payload == r.payload
                && o.rate == r.rate
                && is_choice(&o.row)
        })
        .collect()
}

/// Whether `r` is on the Pareto front of its scenario, payload and rate: no other row
/// has p50, p99 and reader CPU all at most its own and one lower.
fn on_front(rows: &[Row], r: &Row) -> bool {
    TRADE_OFFS.contains(&r.scenario)
        && is_choice(&r.row)
        && r.sample.p50 > 0
        && !peers_of(rows, r).iter().any(|b| dominates(b, r))
}

/// For a row off the front: how far its latency is from the best the front reaches at
/// no more CPU (over front rows using at most its CPU, the largest of the worse of its
/// p50 and p99 ratios to theirs), and that front row.
fn distance_to_front<'a>(rows: &'a [Row], r: &Row) -> Option<(f64, &'a Row)> {
    peers_of(rows, r)
        .into_iter()
        .filter(|b| on_front(rows, b) && b.sample.cpu_reader <= r.sample.cpu_reader)
        .map(|b| {
            let ratio = |x: u64, y: u64| x as f64 / y.max(1) as f64;
            let worse = ratio(r.sample.p50, b.sample.p50).max(ratio(r.sample.p99, b.sample.p99));
            (worse, b)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// One line per `adaptive` row: whether it is on the front (or how far off), and the spin
/// limit and wake-up cost its reader settled on, and how many waits it woke ahead of.
fn adaptive_summary(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| r.row.ends_with("/adaptive")) {
        let front = if !TRADE_OFFS.contains(&r.scenario) {
            String::new()
        } else if on_front(rows, r) {
            "on the front; ".into()
        } else {
            match distance_to_front(rows, r) {
                Some((x, b)) => format!("{x:.2}x the latency of `{}` at no more CPU; ", b.row),
                None => "off the front; ".into(),
            }
        };
        let settled = r.sample.settled.map_or("-".into(), |s| {
            format!(
                "spin limit {}, wake-up {}, woke ahead of {} waits",
                us_unit(s.limit_ns),
                us_unit(s.wake_ns),
                s.woke_ahead
            )
        });
        let _ = writeln!(
            out,
            "- {} {} {}: {front}{settled}",
            r.scenario,
            rate(r.rate),
            r.row
        );
    }
    out
}

fn us_unit(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

/// Scenarios in the order the report shows them.
const ORDER: [&str; 8] = [
    "pingpong",
    crate::ONE_CPU,
    "stream",
    "paced",
    "burst",
    "idle",
    "fanin",
    "select",
];

fn order(scenario: &str) -> usize {
    ORDER
        .iter()
        .position(|s| *s == scenario)
        .unwrap_or(ORDER.len())
}

/// A latency cell: `-` where the scenario measures none.
fn lat(ns: u64) -> String {
    if ns == 0 {
        "-".into()
    } else {
        us(ns)
    }
}

/// What a user could pick, at the payload the trade-off scenarios use.
fn pickable(r: &Row) -> bool {
    r.row.starts_with("channel/") && r.payload == 64
}

/// The label of a trade-off cell (scenario and rate).
fn cell(r: &Row) -> String {
    match (r.scenario, r.rate) {
        ("paced", Some(rate)) => format!("paced {}/s", rate_label(rate)),
        ("burst", _) => "bursts".into(),
        (s, _) => s.into(),
    }
}

fn rate_label(rate: u64) -> String {
    if rate >= 1000 && rate.is_multiple_of(1000) {
        format!("{}k", rate / 1000)
    } else {
        rate.to_string()
    }
}

fn strategy(row: &str) -> &str {
    row.rsplit('/').next().unwrap_or(row)
}

/// "For this machine": the fastest choice, the cheapest choice on each front, what idles
/// cheapest, and the one strategy that is on (or near) the front most often, all from
/// this run's measurements.
fn advice(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut cells: Vec<String> = rows
        .iter()
        .filter(|r| TRADE_OFFS.contains(&r.scenario) && pickable(r))
        .map(cell)
        .collect();
    cells.sort_by_key(|c| (order(c.split(' ').next().unwrap_or("")), c.len(), c.clone()));
    cells.dedup();
    let in_cell = |c: &str| {
        rows.iter()
            .filter(|r| TRADE_OFFS.contains(&r.scenario) && pickable(r) && cell(r) == c)
            .collect::<Vec<_>>()
    };
    for c in &cells {
        let front: Vec<&Row> = in_cell(c)
            .into_iter()
            .filter(|r| on_front(rows, r))
            .collect();
        let fastest = front.iter().min_by_key(|r| (r.sample.p50, r.sample.p99));
        let cheapest = front
            .iter()
            .min_by(|a, b| a.sample.cpu_reader.total_cmp(&b.sample.cpu_reader));
        if let (Some(f), Some(ch)) = (fastest, cheapest) {
            let show = |r: &Row| {
                format!(
                    "`{}` (p50 {} µs, p99 {}, reader CPU {:.3})",
                    r.row,
                    us(r.sample.p50),
                    us(r.sample.p99),
                    r.sample.cpu_reader
                )
            };
            if f.row == ch.row {
                let _ = writeln!(out, "- {c}: {} is best on every count.", show(f));
            } else {
                let _ = writeln!(
                    out,
                    "- {c}: fastest {}; least CPU on the front {}.",
                    show(f),
                    show(ch)
                );
            }
        }
    }
    let mut idle: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario == "idle" && r.row.starts_with("channel/"))
        .collect();
    idle.sort_by(|a, b| a.sample.cpu_reader.total_cmp(&b.sample.cpu_reader));
    if !idle.is_empty() {
        let list: Vec<String> = idle
            .iter()
            .map(|r| {
                format!(
                    "`{}` {:.2}% of a core, {:.0} wake-ups/s",
                    r.row,
                    100.0 * r.sample.cpu_reader,
                    r.sample.reader_parks as f64 / r.sample.wall_s.max(1e-9)
                )
            })
            .collect();
        let _ = writeln!(out, "- idle: {}.", list.join("; "));
    }
    // The strategy whose best row (over notifiers) is on the front, or within 1.25x of
    // the front's latency at no more CPU, in the most cells.
    let mut names: Vec<&str> = rows
        .iter()
        .filter(|r| pickable(r))
        .map(|r| strategy(&r.row))
        .collect();
    names.sort();
    names.dedup();
    let mut scores: Vec<(usize, &str, Vec<String>)> = names
        .iter()
        .map(|name| {
            let missed: Vec<String> = cells
                .iter()
                .filter(|c| {
                    !in_cell(c).iter().any(|r| {
                        strategy(&r.row) == *name
                            && (on_front(rows, r)
                                || distance_to_front(rows, r).is_some_and(|(x, _)| x <= 1.25))
                    })
                })
                .cloned()
                .collect();
            (cells.len() - missed.len(), *name, missed)
        })
        .collect();
    scores.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    if let Some((n, name, missed)) = scores.first() {
        let others: Vec<String> = scores[1..]
            .iter()
            .take(3)
            .map(|(n, s, _)| format!("`{s}` {n}"))
            .collect();
        let _ = writeln!(
            out,
            "- a default: `{name}` (with the best notifier of each case) is on the front, or \
             within 1.25x of its latency at no more CPU, in {n} of {} cases{}; then {}. The \
             `adaptive` summary below gives each notifier's row.",
            cells.len(),
            if missed.is_empty() {
                String::new()
            } else {
                format!(" (not in: {})", missed.join(", "))
            },
            others.join(", ")
        );
    }
    out
}

/// A warning when the host moved the two CPUs during the run: `floor/spin` (one word
/// bouncing between them, nothing else) measured at every payload should not change
/// with the payload, and on a VM whose virtual CPUs sometimes share a physical core it
/// took 0.07 µs in some runs and 0.41 µs in others. Rows measured in different
/// placements cannot be compared.
fn placement_warning(rows: &[Row]) -> Option<String> {
    let floors: Vec<(usize, u64)> = rows
        .iter()
        .filter(|r| r.scenario == "pingpong" && r.row == "floor/spin" && r.sample.p50 > 0)
        .map(|r| (r.payload, r.sample.p50))
        .collect();
    let lo = floors.iter().min_by_key(|f| f.1)?;
    let hi = floors.iter().max_by_key(|f| f.1)?;
    (hi.1 > 2 * lo.1).then(|| {
        format!(
            "**The CPUs moved during this run**: `floor/spin` took {} µs at {} B and {} µs at \
             {} B, where it moves the same one word. The host placed the two CPUs differently \
             (on a VM: sometimes on one physical core), so compare rows of one payload only, \
             and run again to compare across payloads.\n",
            us(lo.1),
            lo.0,
            us(hi.1),
            hi.0
        )
    })
}

fn markdown(rows: &[Row], env: &Environment) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# shm-bench report\n\n{}\n", env.describe());
    if let Some(warning) = placement_warning(rows) {
        let _ = writeln!(md, "{warning}");
    }
    let advice = advice(rows);
    if !advice.is_empty() {
        let _ = writeln!(
            md,
            "## For this machine\n\nFrom this run's Pareto fronts (latency p50 and p99 \
             against the reader's CPU; channel rows, 64-byte messages):\n\n{advice}"
        );
    }
    let _ = writeln!(
        md,
        "Latencies in µs (pingpong: round trip; pingpong-1cpu: the same with both processes \
         on the first CPU, parked rows only; others: one way). CPU is CPU-seconds per wall second \
         of each process (1.0 = a whole core). Pingpong, pingpong-1cpu, paced and burst rows \
         are the run with the median p50 of three (pingpong-1cpu, and pingpong under `--same-cpu`: five), alternated with the \
         other rows; their p90, p99 and p99.9 are each the median of those runs' values (one \
         run's hiccup of the machine is not a row's tail), their max the largest; stream rows \
         are the run with the median rate of three, alternated likewise. `vs floor` is p50 over the p50 of the floor measured \
         in the same run (spin rows against floor/ring, which moves the same payload in cache-line \
         slots and nothing else; floor/spin moves one word; blocking futex/eventfd rows against their \
         raw wake floor). `*` marks the Pareto front of each pingpong, burst and paced rate: no \
         other row (floors and the bare ring aside) has p50, p99 and reader CPU all at most its own. \
         Idle strategies: adaptive = `Adaptive::new()` (no parameter; it learns its spin limit \
         and wakes ahead of regular long gaps, the summary below says what it settled on); \
         spin = BusySpin; backoff = `Backoff::default()`: 100 spins, 5 yields, notifier parks from 1 µs doubling to 50 ms; \
         blocking = park at once; epoll = 100 empty polls, then epoll on the notifier fd; \
         yield, sleep (50 µs) in --full. The stream scenario carries sequence numbers only (no \
         latency); the paced writer's CPU includes its pacing spin. `select`: one non-blocking \
         wait on N eventfds (N in the row name) of which one is ready, `poll(2)` against epoll; \
         latency per call. `fanin`: N writer processes (on the second CPU) into one reader, one MPSC \
         channel or N SPSC channels in a `WaitSet` (FIFO notifiers, Backoff), total rate. \
         Pingpong payloads 8 to 256: a record is an 8-byte header and the payload rounded up to \
         8 bytes (56 B: one cache line; 64 B: 72 bytes, two lines), against floor/ring at the same \
         payload (its slots: header and payload rounded up to whole lines).\n"
    );
    let adaptive = adaptive_summary(rows);
    if !adaptive.is_empty() {
        let _ = writeln!(md, "\n## adaptive\n\n{adaptive}");
    }
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| (order(r.scenario), r.rate, r.payload));
    let mut scenario = "";
    for r in sorted {
        if r.scenario != scenario {
            scenario = r.scenario;
            let _ = writeln!(
                md,
                "\n## {scenario}\n\n| row | payload | rate/s | p50 | p90 | p99 | p99.9 | max | msgs/s | cpu writer | cpu reader | notifies | samples | vs floor |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
        }
        let s = &r.sample;
        let vs = match (r.scenario, floor_for(&r.row)) {
            ("pingpong" | crate::ONE_CPU, Some(f)) => p50_of(rows, r.scenario, f, r.payload)
                .map_or("-".into(), |f| {
                    format!("{:.2}x", s.p50 as f64 / f.max(1) as f64)
                }),
            // A stream row's rate as a share of the ring floor's (same payload).
            ("stream", _) if r.row != "floor/ring" => rows
                .iter()
                .find(|f| f.scenario == "stream" && f.row == "floor/ring" && f.payload == r.payload)
                .filter(|f| f.sample.msgs_per_s > 0.0)
                .map_or("-".into(), |f| {
                    format!("{:.0}% of ring", 100.0 * s.msgs_per_s / f.sample.msgs_per_s)
                }),
            // How often an idle reader wakes: its parks over the quiet spell.
            ("idle", _) if r.row.starts_with("channel/") => {
                format!(
                    "{:.1} wake-ups/s",
                    s.reader_parks as f64 / s.wall_s.max(1e-9)
                )
            }
            _ => "-".into(),
        };
        let front = on_front(rows, r);
        let _ = writeln!(
            md,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {} |",
            r.row,
            if front { " *" } else { "" },
            r.payload,
            rate(r.rate),
            lat(s.p50),
            lat(s.p90),
            lat(s.p99),
            lat(s.p999),
            lat(s.max),
            if s.msgs_per_s > 0.0 {
                format!("{:.0}", s.msgs_per_s)
            } else {
                "-".into()
            },
            s.cpu_writer,
            s.cpu_reader,
            s.notifies,
            s.samples,
            vs
        );
    }
    md
}

fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let s = &r.sample;
            format!(
                "{{\"scenario\":\"{}\",\"row\":\"{}\",\"payload\":{},\"rate\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},\"msgs_per_s\":{:.1},\"cpu_writer\":{:.4},\"cpu_reader\":{:.4},\"notifies\":{},\"samples\":{},\"spin_limit_ns\":{},\"wake_ns\":{},\"woke_ahead\":{},\"front\":{}}}",
                r.scenario,
                r.row,
                r.payload,
                r.rate.map_or("null".into(), |x| x.to_string()),
                s.p50,
                s.p90,
                s.p99,
                s.p999,
                s.max,
                s.msgs_per_s,
                s.cpu_writer,
                s.cpu_reader,
                s.notifies,
                s.samples,
                s.settled.map_or("null".into(), |x| x.limit_ns.to_string()),
                s.settled.map_or("null".into(), |x| x.wake_ns.to_string()),
                s.settled.map_or("null".into(), |x| x.woke_ahead.to_string()),
                on_front(rows, r)
            )
        })
        .collect();
    format!("[\n{}\n]\n", items.join(",\n"))
}

fn svg(rows: &[Row], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let paced: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario == "paced" && r.sample.p99 > 0)
        .collect();
    if paced.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_cpu = paced
        .iter()
        .map(|r| r.sample.cpu_reader)
        .fold(0.05, f64::max)
        * 1.1;
    let max_p99 = paced
        .iter()
        .map(|r| r.sample.p99 as f64 / 1000.0)
        .fold(1.0, f64::max)
        * 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "paced: p99 one-way latency vs reader CPU (labels: msgs/s)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_cpu, (0.1..max_p99).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("reader CPU (cores)")
        .y_desc("p99 latency (µs, log)")
        .draw()?;
    // One series per strategy (a colour each, in the legend); each point says its rate.
    let mut names: Vec<&str> = paced.iter().map(|r| r.row.as_str()).collect();
    names.sort();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let c = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64, String)> = paced
            .iter()
            .filter(|r| r.row == *name)
            .map(|r| {
                (
                    r.sample.cpu_reader,
                    (r.sample.p99 as f64 / 1000.0).max(0.1),
                    r.rate.map_or(String::new(), rate_label),
                )
            })
            .collect();
        chart
            .draw_series(pts.into_iter().map(|(x, y, label)| {
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 4, c.filled())
                    + Text::new(label, (6, -6), ("sans-serif", 11))
            }))?
            .label(name.to_string())
            .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 11))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Where the report goes: `shm-bench/` in the cargo target dir this binary was built in
/// (`CARGO_TARGET_DIR` if set, else the grandparent of `target/release/shm-bench`),
/// never the source tree.
fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("shm-bench")
}

/// Prints the table (or the JSON) and writes the three files.
pub fn write_all(
    rows: &[Row],
    env: &Environment,
    json_out: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = &out_dir();
    std::fs::create_dir_all(dir)?;
    let md = markdown(rows, env);
    let js = json(rows);
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("report.json"), &js)?;
    svg(rows, &dir.join("paced.svg"))?;
    if json_out {
        print!("{js}");
    } else {
        println!("{md}");
        println!(
            "written: {}/{{report.md, report.json, paced.svg}}",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Sample;

    fn floor(payload: usize, p50: u64) -> Row {
        Row {
            scenario: "pingpong",
            row: "floor/spin".into(),
            payload,
            rate: None,
            sample: Sample {
                p50,
                ..Sample::default()
            },
        }
    }

    #[test]
    fn a_run_whose_cpus_moved_says_so() {
        let steady = [floor(8, 330), floor(64, 410), floor(256, 300)];
        assert_eq!(placement_warning(&steady), None);
        let moved = [floor(8, 70), floor(64, 410), floor(256, 300)];
        let warning = placement_warning(&moved).expect("moved");
        assert!(
            warning.contains("0.07 µs at 8 B and 0.41 µs at 64 B"),
            "{warning}"
        );
        assert_eq!(placement_warning(&[]), None);
    }
}
