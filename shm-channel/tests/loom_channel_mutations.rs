//! The loom suite can fail: each fault of `shm_channel::fault` is put into the real
//! protocol, one at a time, and run against every model it concerns; each pair is a test
//! of its own (`fault::model`), which passes only if the model fails under the fault (a
//! lost wake-up shows as loom's deadlock, a phantom sleeper as a waiter word left busy).
//! `cargo xtask loom` runs each test in a process of its own, so one model that aborts
//! cannot hide the others' results.
//!
//! Which models a fault concerns: the fences and the withdraw order matter to every park,
//! so they run against every model that parks a reader or a writer on a two-thread ring;
//! the plain `NOTIFIED` store and the pass-on matter where writers park on full;
//! `commit` waking the reader matters where a zero-copy claim is the last message.
#![cfg(shm_loom)]

#[allow(dead_code)]
mod loom_common;

use shm_channel::fault::{inject, Fault};

/// Runs `model` with `fault` injected; fails unless the model fails.
fn caught(fault: Fault, model: fn()) {
    inject(fault);
    let r = std::panic::catch_unwind(model);
    inject(Fault::None);
    let Err(payload) = r else {
        panic!("{fault:?} survived: the model passed with it");
    };
    let why = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    // Caught only for the failure the fault is about, not any panic on the way.
    assert!(
        CAUGHT_AS.iter().any(|kind| why.contains(kind)),
        "{fault:?} failed the model, but not as a lost wake-up or a phantom sleeper: {why}"
    );
    eprintln!("{fault:?} caught: {why}");
}

/// How a fault of the waiter protocol shows: a sleeper nobody wakes (loom's deadlock) or
/// a waiter word left busy at the end (`loom_common::finish`).
const CAUGHT_AS: [&str; 2] = ["deadlock", "waiter words not idle at the end"];

macro_rules! mutants {
    ($($module:ident => $fault:ident: [$($model:ident),+ $(,)?];)*) => {$(
        mod $module {
            $(
                #[test]
                fn $model() {
                    super::caught(super::Fault::$fault, super::loom_common::$model);
                }
            )+
        }
    )*};
}

mutants! {
    sleeper_fence => SleeperFence: [
        spsc_reader_parks_on_empty, spsc_writer_parks_on_full, spsc_wraps_with_padding,
        spsc_zero_copy_claim, mpsc_reader_parks_on_empty,
    ];
    waker_fence => WakerFence: [
        spsc_reader_parks_on_empty, spsc_writer_parks_on_full, spsc_wraps_with_padding,
        spsc_zero_copy_claim, mpsc_reader_parks_on_empty,
    ];
    withdraw_before_recheck => WithdrawBeforeRecheck: [
        spsc_reader_parks_on_empty, spsc_writer_parks_on_full, spsc_wraps_with_padding,
        spsc_zero_copy_claim, mpsc_reader_parks_on_empty,
    ];
    waker_stores_notified => WakerStoresNotified: [
        spsc_writer_parks_on_full, mpsc_writers_park_on_full, mpsc_wakes_every_parked_writer,
    ];
    no_pass_on => NoPassOn: [mpsc_wakes_every_parked_writer];
    commit_skips_wake => CommitSkipsWake: [spsc_zero_copy_claim, mpsc_zero_copy_claim];
}
