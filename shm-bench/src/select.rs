//! The `select` scenario: waiting on N notifier fds (eventfds) of which one is ready,
//! with `poll(2)` (the kernel scans all N every call: O(N)) beside epoll (the kernel
//! keeps a ready list: O(ready)). One process, no peer: rows `poll/N` and `epoll/N`,
//! the latency of one non-blocking call.

use crate::scenario::{fill, histogram, Sample};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use shm_notify::{EventFd, Notifier};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Fd counts measured.
pub const SIZES: [usize; 4] = [1, 16, 256, 1024];

/// Measures `row` (`poll/N` or `epoll/N`) for `dur`.
pub fn measure(row: &str, dur: Duration) -> Result<Sample, String> {
    let (how, n) = row
        .split_once('/')
        .and_then(|(h, n)| Some((h, n.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("bad select row {row}"))?;
    let fds: Vec<EventFd> = (0..n)
        .map(|_| EventFd::new())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    // The last one is ready (the worst case for a scan in order).
    fds[n - 1].notify().map_err(|e| e.to_string())?;
    let mut h = histogram();
    let t0 = Instant::now();
    let mut calls = 0u64;
    let mut time = |call: &mut dyn FnMut() -> usize| -> Result<(), String> {
        let t = Instant::now();
        let ready = call();
        h.record(t.elapsed().as_nanos().max(1) as u64).ok();
        calls += 1;
        (ready == 1)
            .then_some(())
            .ok_or(format!("{row}: {ready} fds ready, expected 1"))
    };
    match how {
        "poll" => {
            let mut set: Vec<PollFd> = fds
                .iter()
                .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            while t0.elapsed() < dur {
                time(&mut || poll(&mut set, PollTimeout::ZERO).unwrap_or(0) as usize)?;
            }
        }
        "epoll" => {
            let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| e.to_string())?;
            for (i, f) in fds.iter().enumerate() {
                ep.add(f.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                    .map_err(|e| e.to_string())?;
            }
            let mut events = [EpollEvent::empty(); 8];
            while t0.elapsed() < dur {
                time(&mut || ep.wait(&mut events, EpollTimeout::ZERO).unwrap_or(0))?;
            }
        }
        other => return Err(format!("unknown select method {other}")),
    }
    let mut s = Sample::default();
    fill(&mut s, &h);
    s.msgs_per_s = calls as f64 / t0.elapsed().as_secs_f64();
    s.cpu_writer = 1.0;
    Ok(s)
}
