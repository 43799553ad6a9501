//! The loom suite can fail: the real waiter protocol, with one step removed through the
//! test-only `fault` switch, must lose a wake-up, which loom reports as a deadlock (the
//! model notifier ignores timeouts, so nothing papers over it). Its own test binary so
//! the switch cannot leak into the passing suite; a lock serialises the three tests.
#![cfg(shm_loom)]

#[allow(dead_code)]
mod loom_common;

use shm_channel::fault::{inject, Fault};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the lock and undoes the fault when the test ends (also by panic).
struct Injected(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Injected {
    fn new(f: Fault) -> Self {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        inject(f);
        Injected(guard)
    }
}

impl Drop for Injected {
    fn drop(&mut self) {
        inject(Fault::None);
    }
}

#[test]
#[should_panic(expected = "deadlock")]
fn sleeper_without_fence_loses_a_wakeup() {
    let _f = Injected::new(Fault::SleeperFence);
    loom_common::spsc_reader_parks_on_empty();
}

#[test]
#[should_panic(expected = "deadlock")]
fn waker_without_fence_loses_a_wakeup() {
    let _f = Injected::new(Fault::WakerFence);
    loom_common::spsc_reader_parks_on_empty();
}

#[test]
#[should_panic(expected = "deadlock")]
fn withdrawing_before_the_recheck_loses_a_wakeup() {
    let _f = Injected::new(Fault::WithdrawBeforeRecheck);
    loom_common::spsc_reader_parks_on_empty();
}
