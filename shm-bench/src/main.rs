//! `shm-bench`: the cross-process benchmark matrix behind `cargo xtask bench`.
//!
//! Every row (a channel configuration, a physical floor or a kernel path) runs in two
//! processes: this binary and a copy of itself started in the child role, each pinned to
//! its own CPU when there are two. Rows are repeated in alternation (A B A B) and the
//! median of the repeats is reported, because on a shared VM the floors drift from
//! minute to minute and only ratios measured side by side mean something.

#[cfg(feature = "bridge")]
mod bridge;
mod fanin;
#[cfg(feature = "peers")]
mod peers;
mod report;
mod scenario;
mod select;
mod sys;
mod transport;

use scenario::Sample;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One result row of the report.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) row: String,
    pub(crate) payload: usize,
    pub(crate) rate: Option<u64>,
    pub(crate) sample: Sample,
}

struct Opts {
    full: bool,
    filter: Option<String>,
    json: bool,
    same_cpu: bool,
    /// Add the peer libraries' rows (feature `peers`).
    peers: bool,
    /// Add the `bridge/zenoh-tcp` rows (feature `bridge`).
    bridge: bool,
    /// The parent's CPU and the child's (`--cpus A,B`; 0 and 1 by default).
    cpus: (usize, usize),
}

const NOTIFIERS: [&str; 4] = ["futex", "sem", "fifo", "eventfd"];
/// The pingpong scenario with both processes on the first CPU.
pub(crate) const ONE_CPU: &str = "pingpong-1cpu";

fn channel_rows(ring: &str, full: bool) -> Vec<String> {
    let mut idles = vec!["spin", "backoff", "blocking", "adaptive"];
    if full {
        idles.extend(["yield", "sleep"]);
    }
    let mut rows = Vec::new();
    for n in NOTIFIERS {
        for i in &idles {
            rows.push(format!("channel/{ring}/{n}/{i}"));
        }
        if n == "fifo" || n == "eventfd" {
            rows.push(format!("channel/{ring}/{n}/epoll"));
        }
    }
    rows
}

/// One scenario of the plan: its rows, payload sizes and rates.
type Step = (&'static str, Vec<String>, Vec<usize>, Vec<Option<u64>>);
/// Repeats of one (scenario, row, payload, rate), before taking the median.
type Results =
    std::collections::BTreeMap<(String, String, usize, Option<u64>), (&'static str, Vec<Sample>)>;

fn plan(full: bool, peers: bool, bridge: bool) -> Vec<Step> {
    let kernel = vec!["kernel/uds".to_string(), "kernel/pipe".to_string()];
    let floors = vec![
        "floor/spin".to_string(),
        "floor/futex".to_string(),
        "floor/eventfd".to_string(),
    ];
    let spsc = channel_rows("spsc", full);
    let mut pingpong = floors;
    pingpong.push("floor/ring".to_string());
    pingpong.push("ring/spsc/spin".to_string());
    pingpong.extend(kernel.clone());
    // Beside the kernel's local paths, a TCP connection over loopback, and (`--bridge`)
    // a channel carried over it by zenoh bridges: the hop beyond one host.
    let mut network = vec!["kernel/tcp".to_string()];
    if bridge {
        network.push("bridge/zenoh-tcp".to_string());
    }
    pingpong.extend(network.clone());
    pingpong.extend(spsc.clone());
    // The stream's floor: the simplest correct ring between the two processes.
    let mut stream = vec!["floor/ring".to_string()];
    stream.extend(kernel.clone());
    stream.extend(network);
    stream.extend(spsc.clone());
    stream.extend(channel_rows("mpsc", full));
    // Parked rows with both processes on one CPU: a wake-up there costs a context switch,
    // not a cross-CPU interrupt (on a VM, ~2 µs against ~60 µs).
    let mut one_cpu = vec!["floor/futex".to_string(), "floor/eventfd".to_string()];
    one_cpu.extend(kernel.clone());
    one_cpu.extend(NOTIFIERS.iter().flat_map(|n| {
        [
            format!("channel/spsc/{n}/blocking"),
            format!("channel/spsc/{n}/adaptive"),
        ]
    }));
    let mut latency = kernel;
    latency.extend(spsc);
    // Peers: 64-byte messages only (fixed-size slots), beside our nearest rows.
    let peer_rows: Vec<String> = if peers {
        [
            "peer/ringfire/spin",
            "peer/ringfire/futex",
            "peer/iceoryx2/spin",
            "peer/iceoryx2/blocking",
        ]
        .map(String::from)
        .to_vec()
    } else {
        Vec::new()
    };
    pingpong.extend(peer_rows.clone());
    let peer_stream = peers.then(|| {
        let mut rows = vec![
            "floor/ring".to_string(),
            "channel/spsc/futex/spin".to_string(),
        ];
        rows.extend(peer_rows.clone());
        ("stream", rows, vec![64], vec![None])
    });
    let mut steps = vec![
        ("pingpong", pingpong, vec![64], vec![None]),
        // The spin round trip by payload, against floors that move as many lines: the
        // record of a 64-byte message (8-byte header, 72 bytes) spans two cache lines,
        // 8 and 56-byte messages make one-line records.
        (
            "pingpong",
            vec![
                "floor/spin".into(),
                "floor/ring".into(),
                "ring/spsc/spin".into(),
                "channel/spsc/futex/spin".into(),
            ],
            vec![8, 56, 120, 256],
            vec![None],
        ),
        (ONE_CPU, one_cpu, vec![64], vec![None]),
        ("stream", stream, vec![8, 64, 512, 4096], vec![None]),
        (
            "paced",
            latency.clone(),
            vec![64],
            vec![Some(1_000), Some(10_000), Some(100_000)],
        ),
        ("burst", latency.clone(), vec![64], vec![None]),
        (
            "fanin",
            fanin::WRITERS
                .iter()
                .flat_map(|n| [format!("mpsc/{n}"), format!("waitset/{n}")])
                .collect(),
            vec![64],
            vec![None],
        ),
        (
            "select",
            select::SIZES
                .iter()
                .flat_map(|n| [format!("poll/{n}"), format!("epoll/{n}")])
                .collect(),
            vec![0],
            vec![None],
        ),
        (
            "idle",
            latency
                .into_iter()
                .filter(|r| !r.ends_with("/spin"))
                .collect(),
            vec![64],
            vec![None],
        ),
    ];
    steps.extend(peer_stream);
    steps
}

/// How long one run of a row lasts. Burst runs are long enough (about 58 bursts in quick
/// mode) that what `adaptive` does once it knows the gaps outweighs the eight bursts it
/// needs to learn them: at about 29 bursts the learning was a third of each run, and a
/// row's p50 flipped between 0.45 and 41 µs from one run to the next.
fn duration(scenario: &str, full: bool) -> Duration {
    let scenario = if scenario == ONE_CPU {
        "pingpong"
    } else {
        scenario
    };
    let ms = match (scenario, full) {
        ("pingpong", false) => 150,
        ("stream", false) => 60,
        ("paced", false) => 200,
        ("burst", false) => 600,
        ("idle", false) => 400,
        ("idle", true) => 3000,
        (_, true) => 1000,
        _ => 200,
    };
    Duration::from_millis(ms)
}

/// Runs of each row, alternated with the other rows; the report keeps the median. The
/// scenarios that place rows on a latency/CPU front repeat even in quick mode: one noisy
/// run on a shared machine would move a row on or off the front. Rounds on one CPU
/// (pingpong-1cpu, and pingpong under `--same-cpu`) run five: each is one scheduler
/// decision per message, and three runs left `adaptive` and `blocking` (which park alike
/// there) 0.7-1.5x apart on a shared VM, wider than the 1.1x the comparison asks about.
/// Stream rows repeat too: a quick run lasts 60 ms, and one run's rate moved from 13 to
/// 24 M msgs/s (80 runs of one row, 64 B, on the 2-vCPU VM), wider than the margins
/// between the rows it compares.
fn repeats(scenario: &str, o: &Opts) -> usize {
    match (scenario, o.full) {
        (ONE_CPU, _) => 5,
        ("pingpong", _) if o.same_cpu => 5,
        ("pingpong" | "paced" | "burst" | "stream", false) => 3,
        (_, false) => 1,
        (_, true) => 3,
    }
}

/// Runs one row once: sets it up, starts the child, measures, merges the child's report.
fn measure(
    o: &Opts,
    scenario: &'static str,
    row: &str,
    size: usize,
    rate: Option<u64>,
    n: usize,
) -> Result<Sample, String> {
    if scenario == "select" {
        return select::measure(row, duration(scenario, o.full));
    }
    let id = format!("shmbench-{}-{n}", std::process::id());
    if scenario == "fanin" {
        return fanin::measure(row, duration(scenario, o.full), &id, o.cpus.1);
    }
    let setup = transport::parent(row, &id, 1 << 16, size);
    let mut ep = setup.endpoint;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    let echo = scenario == "pingpong" || scenario == ONE_CPU;
    let role = if echo { "echo" } else { "sink" };
    let cpu = if o.same_cpu || scenario == ONE_CPU || sys::cpus() < 2 {
        o.cpus.0
    } else {
        o.cpus.1
    };
    cmd.args(["--child", role, row, &size.to_string(), &cpu.to_string()])
        .args(&setup.args);
    cmd.stdout(Stdio::piped());
    let fds: Vec<_> = setup.fds.iter().map(|f| f.as_fd()).collect();
    shm_notify::handover::inherit(&mut cmd, &fds);
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    drop(setup.fds);
    // 1k msgs/s: 1,000 samples, not 200, so a p99 is not one outlier among a handful.
    let dur = match (scenario, rate, o.full) {
        ("paced", Some(r), false) if r <= 1_000 => Duration::from_secs(1),
        _ => duration(scenario, o.full),
    };
    let mut s = scenario::parent(scenario, &mut *ep, size, rate, dur);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{scenario} {row}: child failed ({status})"));
    }
    drop(ep);
    let mut r = Sample::default();
    scenario::parse_report(&line, &mut r)?;
    s.cpu_reader = r.cpu_reader;
    s.settled = r.settled;
    s.reader_parks = r.reader_parks;
    if !echo {
        let sent = s.samples;
        (s.p50, s.p90, s.p99, s.p999, s.max, s.samples, s.msgs_per_s) =
            (r.p50, r.p90, r.p99, r.p999, r.max, r.samples, r.msgs_per_s);
        if scenario == "stream" {
            s.samples = sent;
        }
    }
    Ok(s)
}

fn child_main(args: &[String]) -> Result<(), String> {
    let [role, row, size, cpu, rest @ ..] = args else {
        return Err("child: bad arguments".into());
    };
    if role == "fanin-writer" {
        return fanin::writer(&args[1..]);
    }
    sys::pin(cpu.parse().map_err(|_| "cpu")?);
    // SAFETY: the parent handed exactly these fds to this process for the row.
    let fds: Vec<OwnedFd> = unsafe { shm_notify::handover::inherited() }.unwrap_or_default();
    let size = size.parse().map_err(|_| "size")?;
    let mut ep = transport::child(row, rest, fds, size);
    let line = scenario::child(role, &mut *ep, size)?;
    println!("{line}");
    Ok(())
}

/// `A,B`: two different CPUs this process may run on.
fn parse_cpus(v: &str) -> Result<(usize, usize), String> {
    let (a, b) = v
        .split_once(',')
        .ok_or_else(|| format!("{v:?} is not two CPU numbers A,B"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("{s:?} is not a CPU number"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a == b {
        return Err(format!(
            "CPU {a} twice (--same-cpu runs both processes on one)"
        ));
    }
    for c in [a, b] {
        if !sys::allowed(c) {
            return Err(format!("CPU {c} is not one this process may run on"));
        }
    }
    Ok((a, b))
}

/// The repeat with the median p50 (or rate); with an even count, the lower middle one.
/// Its p90, p99 and p99.9 are each the median of the repeats' values, so that a hiccup
/// of the machine in one run (ten late samples make a p99 of 1,000) does not become a
/// row's tail, in every row alike; its max is the largest of all the repeats.
fn median(mut v: Vec<Sample>) -> Sample {
    let key = |s: &Sample| {
        if s.p50 > 0 {
            s.p50 as f64
        } else {
            -s.msgs_per_s
        }
    };
    let middle = |f: fn(&Sample) -> u64, v: &[Sample]| {
        let mut x: Vec<u64> = v.iter().map(f).collect();
        x.sort_unstable();
        x[(x.len() - 1) / 2]
    };
    let (p90, p99, p999) = (
        middle(|s| s.p90, &v),
        middle(|s| s.p99, &v),
        middle(|s| s.p999, &v),
    );
    let max = v.iter().map(|s| s.max).max().unwrap_or(0);
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mut m = v.swap_remove((v.len() - 1) / 2);
    if m.p50 > 0 {
        (m.p90, m.p99, m.p999, m.max) = (p90, p99, p999, max);
    }
    m
}

const USAGE: &str = "\
usage: cargo xtask bench [OPTIONS]   (or: shm-bench [OPTIONS])

Measures every channel configuration (notifier x idle strategy) between two processes,
beside the hardware floors and the kernel's own paths, and writes report.md, report.json
and paced.svg to <target dir>/shm-bench/.

  --quick        short runs (the default, about four and a half minutes)
  --full         longer runs, more strategies and payloads
  --filter TEXT  only rows whose `scenario/row` contains TEXT (e.g. pingpong/channel;
                 several, comma-separated: any of them)
  --json         print the JSON report on stdout instead of the table
  --same-cpu     both processes on one CPU (spinning rows are skipped)
  --cpus A,B     the two CPUs to pin the processes to (default 0,1); the report says
                 whether they share a core or a cache
  --peers        add other libraries' rows (ringfire, iceoryx2); needs the `peers`
                 feature, which `cargo xtask bench --peers` turns on
  --bridge       add `bridge/zenoh-tcp` rows (a channel carried over zenoh on
                 loopback, by shm-bridge); needs the `bridge` feature, which
                 `cargo xtask bench --bridge` turns on
  -h, --help     this text
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        if let Err(e) = child_main(&args[1..]) {
            eprintln!("shm-bench child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" | "--full" | "--json" | "--same-cpu" => {}
            "--peers" if cfg!(feature = "peers") => {}
            "--peers" => {
                eprintln!(
                    "shm-bench: --peers needs the `peers` feature (cargo xtask bench --peers)"
                );
                std::process::exit(2);
            }
            "--bridge" if cfg!(feature = "bridge") => {}
            "--bridge" => {
                eprintln!(
                    "shm-bench: --bridge needs the `bridge` feature (cargo xtask bench --bridge)"
                );
                std::process::exit(2);
            }
            "--filter" | "--cpus" if i + 1 < args.len() => i += 1,
            "--help" | "-h" => {
                print!("{USAGE}");
                return;
            }
            other => {
                eprintln!("shm-bench: unknown argument {other:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let cpus = match value("--cpus").map(|v| parse_cpus(&v)).transpose() {
        Ok(c) => c.unwrap_or((0, 1)),
        Err(e) => {
            eprintln!("shm-bench: --cpus: {e}");
            std::process::exit(2);
        }
    };
    let o = Opts {
        full: args.iter().any(|a| a == "--full"),
        filter: value("--filter"),
        json: args.iter().any(|a| a == "--json"),
        same_cpu: args.iter().any(|a| a == "--same-cpu"),
        peers: args.iter().any(|a| a == "--peers"),
        bridge: args.iter().any(|a| a == "--bridge"),
        cpus,
    };
    let pinned = sys::cpus() >= 2 && sys::pin(o.cpus.0);
    let mut jobs = Vec::new();
    for (scenario, rows, sizes, rates) in plan(o.full, o.peers, o.bridge) {
        for rep in 0..repeats(scenario, &o) {
            for size in &sizes {
                for rate in &rates {
                    for row in &rows {
                        let tag = format!("{scenario}/{row}");
                        if o.filter
                            .as_ref()
                            .is_some_and(|f| !f.split(',').any(|f| tag.contains(f)))
                        {
                            continue;
                        }
                        // Two spinners on one CPU only measure the scheduler's time slice.
                        if o.same_cpu && (row.ends_with("/spin") || row.ends_with("/yield")) {
                            continue;
                        }
                        // Already on one CPU, or on one CPU anyway.
                        if scenario == ONE_CPU && (o.same_cpu || sys::cpus() < 2) {
                            continue;
                        }
                        jobs.push((scenario, row.clone(), *size, *rate, rep));
                    }
                }
            }
        }
    }
    let mut env = report::Environment::probe(pinned, o.same_cpu, o.full, o.cpus);
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    if o.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results: Results = Default::default();
    let mut failures = Vec::new();
    for (n, (scenario, row, size, rate, _)) in jobs.into_iter().enumerate() {
        bar.set_message(format!("{scenario} {row}"));
        match measure(&o, scenario, &row, size, rate, n) {
            Ok(s) => results
                .entry((scenario.to_string(), row.clone(), size, rate))
                .or_insert((scenario, vec![]))
                .1
                .push(s),
            Err(e) => failures.push(e),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows: Vec<Row> = results
        .into_iter()
        .map(|((_, row, payload, rate), (scenario, samples))| Row {
            scenario,
            row,
            payload,
            rate,
            sample: median(samples),
        })
        .collect();
    env.finish();
    if let Err(e) = report::write_all(&rows, &env, o.json) {
        eprintln!("shm-bench: writing the report failed: {e}");
        std::process::exit(1);
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("shm-bench: {f}");
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p50: u64, p99: u64, max: u64, cpu: f64) -> Sample {
        Sample {
            p50,
            p90: p50 + 1,
            p99,
            p999: p99 + 1,
            max,
            cpu_reader: cpu,
            ..Sample::default()
        }
    }

    #[test]
    fn the_median_run_keeps_its_p50_and_cpu_and_takes_each_tail_percentile_s_median() {
        // The median-p50 run (the second) had a hiccup: p99 900.
        let m = median(vec![
            run(10, 20, 1000, 0.1),
            run(11, 900, 950, 0.2),
            run(12, 25, 30, 0.3),
        ]);
        assert_eq!((m.p50, m.cpu_reader), (11, 0.2));
        assert_eq!((m.p90, m.p99, m.p999), (12, 25, 26));
        assert_eq!(m.max, 1000, "max: the largest of the repeats");
    }

    #[test]
    fn throughput_rows_are_the_median_rate_run_unchanged() {
        let rate = |r: f64| Sample {
            msgs_per_s: r,
            max: r as u64,
            ..Sample::default()
        };
        let m = median(vec![rate(1.0), rate(3.0), rate(2.0)]);
        assert_eq!((m.msgs_per_s, m.max), (2.0, 2));
    }
}
