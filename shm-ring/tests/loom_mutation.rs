//! The loom suite can fail: the real SPSC protocol with a fault injected through
//! `sync::fault` must be caught. One test binary per fault, so a global fault switch
//! cannot leak into other models (`loom_mutation_header.rs` holds the other).
#![cfg(shm_loom)]

#[allow(dead_code)]
mod loom_common;

#[test]
#[should_panic(expected = "Causality violation")]
fn relaxed_commit_is_caught() {
    shm_ring::sync::fault::set_relaxed_commit(true);
    loom_common::spsc_wraps_and_waits_for_space();
}
