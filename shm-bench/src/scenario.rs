//! What is measured: the parent's side of each scenario, and the child's.

use crate::sys::{cpu_seconds, now_ns, wait_until};
use crate::transport::Endpoint;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// One measurement (one scenario, row, payload and rate, one repeat).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub samples: u64,
    pub msgs_per_s: f64,
    pub cpu_writer: f64,
    pub cpu_reader: f64,
    pub notifies: u64,
    /// `adaptive` rows: what the reader's strategy settled on, at the end.
    pub settled: Option<Settled>,
    /// Times the reader went to sleep (channel rows), so an idle row can say how often an
    /// idle reader wakes.
    pub reader_parks: u64,
    /// Seconds the parent's measured part took.
    pub wall_s: f64,
}

/// What an `adaptive` reader settled on by the end of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Settled {
    /// Spin limit (ns).
    pub limit_ns: u64,
    /// Wake-up cost estimate (ns).
    pub wake_ns: u64,
    /// Waits it woke ahead of and met spinning.
    pub woke_ahead: u64,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

pub fn fill(s: &mut Sample, h: &Histogram<u64>) {
    s.p50 = h.value_at_quantile(0.5);
    s.p90 = h.value_at_quantile(0.9);
    s.p99 = h.value_at_quantile(0.99);
    s.p999 = h.value_at_quantile(0.999);
    s.max = h.max();
    s.samples = h.len();
}

/// A message: `[seq][send time ns][zeros]` (the time only when there is room).
fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    if buf.len() >= 16 {
        buf[8..16].copy_from_slice(&now_ns().to_le_bytes());
    }
}

/// The child's report, one line on stdout.
pub fn report_line(
    h: &Histogram<u64>,
    msgs_per_s: f64,
    cpu: f64,
    wall: f64,
    settled: Option<Settled>,
    parks: u64,
) -> String {
    let mut s = Sample::default();
    fill(&mut s, h);
    let (limit, wake, ahead) = settled.map_or(("-".into(), "-".into(), "-".into()), |s| {
        (
            s.limit_ns.to_string(),
            s.wake_ns.to_string(),
            s.woke_ahead.to_string(),
        )
    });
    format!(
        "RESULT {} {} {} {} {} {} {} {} {limit} {wake} {ahead} {parks}",
        s.samples,
        s.p50,
        s.p90,
        s.p99,
        s.p999,
        s.max,
        msgs_per_s,
        cpu / wall.max(1e-9)
    )
}

/// Parses the child's report into the reader-side fields of `s`.
pub fn parse_report(line: &str, s: &mut Sample) -> Result<(), String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 13 || f[0] != "RESULT" {
        return Err(format!("bad child report {line:?}"));
    }
    let n = |i: usize| {
        f[i].parse::<f64>()
            .map_err(|_| format!("bad field in {line:?}"))
    };
    s.samples = n(1)? as u64;
    s.p50 = n(2)? as u64;
    s.p90 = n(3)? as u64;
    s.p99 = n(4)? as u64;
    s.p999 = n(5)? as u64;
    s.max = n(6)? as u64;
    s.msgs_per_s = n(7)?;
    s.cpu_reader = n(8)?;
    s.settled = match (f[9], f[10], f[11]) {
        ("-", "-", "-") => None,
        _ => Some(Settled {
            limit_ns: n(9)? as u64,
            wake_ns: n(10)? as u64,
            woke_ahead: n(11)? as u64,
        }),
    };
    s.reader_parks = n(12)? as u64;
    Ok(())
}

/// Child roles: `echo` answers every message; `sink` checks sequence numbers, records
/// one-way latency (when messages carry a time) and the rate.
pub fn child(role: &str, ep: &mut dyn Endpoint, size: usize) -> Result<String, String> {
    let mut buf = vec![0u8; size.max(8)];
    // Attached: tell the parent, so nothing it measures waits for this process to start.
    ep.send(&buf);
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut sink = Sink {
        h: histogram(),
        n: 0,
        err: None,
    };
    // (time, messages) at the end of the first batch, and at the end of the last one.
    let mut first = None;
    let mut last = (Instant::now(), 0);
    if role == "echo" {
        while ep.recv(&mut buf) {
            ep.send(&buf);
        }
    } else {
        // The clock is read once per batch, not per message: a read per message took
        // half of the reader's time in a 64-byte stream (perf, cpu-clock samples).
        while ep.recv_batch(&mut buf, &mut |m| sink.take(m)) {
            last = (Instant::now(), sink.n);
            first.get_or_insert(last);
        }
        if let Some(e) = sink.err {
            return Err(e);
        }
    }
    let rate = match first {
        Some(f) if last.1 > f.1 => (last.1 - f.1) as f64 / (last.0 - f.0).as_secs_f64().max(1e-9),
        _ => 0.0,
    };
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let parks = ep.parks();
    Ok(report_line(&sink.h, rate, cpu, wall, ep.settled(), parks))
}

/// The sink's state: next expected sequence number, first error, one-way latencies.
struct Sink {
    h: Histogram<u64>,
    n: u64,
    err: Option<String>,
}

impl Sink {
    fn take(&mut self, m: &[u8]) {
        let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
        if seq != self.n && self.err.is_none() {
            let n = self.n;
            self.err = Some(format!(
                "expected message {n}, got {seq}: lost or reordered"
            ));
        }
        self.n += 1;
        if m.len() >= 16 {
            let sent = u64::from_le_bytes(m[8..16].try_into().unwrap());
            self.h.record(now_ns().saturating_sub(sent).max(1)).ok();
        }
    }
}

/// The parent's side; returns what it measured (the child's report is merged later).
pub fn parent(
    scenario: &str,
    ep: &mut dyn Endpoint,
    size: usize,
    rate: Option<u64>,
    dur: Duration,
) -> Sample {
    let mut buf = vec![0u8; size.max(8)];
    let mut s = Sample::default();
    ep.recv(&mut buf); // the child is attached
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    match scenario {
        "pingpong" | crate::ONE_CPU => {
            let mut h = histogram();
            let mut reply = buf.clone();
            for i in 0.. {
                let t = Instant::now();
                ep.send(&buf);
                ep.recv(&mut reply);
                if i >= 200 {
                    h.record(t.elapsed().as_nanos().max(1) as u64).ok();
                }
                if t0.elapsed() >= dur && i >= 1000 {
                    break;
                }
            }
            ep.stop(size);
            fill(&mut s, &h);
            // Messages each way per second over the timed part.
            s.msgs_per_s = 2.0 * s.samples as f64 / t0.elapsed().as_secs_f64();
        }
        "stream" => {
            let mut seq = 0u64;
            while t0.elapsed() < dur {
                for _ in 0..256 {
                    // Sequence only: a clock read per message would cap the rate.
                    buf[..8].copy_from_slice(&seq.to_le_bytes());
                    ep.send(&buf);
                    seq += 1;
                }
            }
            ep.stop(size);
            s.samples = seq;
        }
        "paced" => {
            let rate = rate.expect("paced needs a rate");
            let start = now_ns() + 1_000_000;
            let gap = 1_000_000_000 / rate;
            let count = (dur.as_secs_f64() * rate as f64).max(200.0) as u64;
            for seq in 0..count {
                wait_until(start + seq * gap);
                stamp(&mut buf, seq);
                ep.send(&buf);
            }
            ep.stop(size);
        }
        "burst" => {
            let mut seq = 0;
            let bursts = (dur.as_secs_f64() / 0.010).max(5.0) as u64;
            for _ in 0..bursts {
                std::thread::sleep(Duration::from_millis(10));
                let start = now_ns();
                for i in 0..100 {
                    wait_until(start + i * 1_000);
                    stamp(&mut buf, seq);
                    ep.send(&buf);
                    seq += 1;
                }
            }
            ep.stop(size);
        }
        "idle" => {
            std::thread::sleep(dur);
            ep.stop(size);
        }
        other => panic!("unknown scenario {other}"),
    }
    let wall = t0.elapsed().as_secs_f64();
    s.wall_s = wall;
    s.cpu_writer = (cpu_seconds() - cpu0) / wall;
    s.notifies = ep.notifies();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_line_carries_what_adaptive_settled_on() {
        let mut h = histogram();
        h.record(1_000).unwrap();
        let settled = Settled {
            limit_ns: 4_096,
            wake_ns: 40_000,
            woke_ahead: 17,
        };
        let mut s = Sample::default();
        parse_report(&report_line(&h, 10.0, 0.5, 1.0, Some(settled), 3), &mut s).unwrap();
        assert_eq!(
            (s.settled, s.reader_parks, s.samples),
            (Some(settled), 3, 1)
        );
        parse_report(&report_line(&h, 10.0, 0.5, 1.0, None, 0), &mut s).unwrap();
        assert_eq!(s.settled, None);
        assert!(parse_report("RESULT 1 2 3", &mut s).is_err());
    }
}
