//! The loom suite can fail: an SPSC producer that zeroes the header after its record
//! only once the record is committed (instead of before it publishes its claim) lets
//! the consumer, which leaves old laps in place, read a record of an earlier lap as new.
//! A separate test binary, so the global fault switch cannot leak into other models.
#![cfg(shm_loom)]

#[allow(dead_code)]
mod loom_common;

#[test]
#[should_panic(expected = "out of order")]
fn late_next_header_zero_is_caught() {
    shm_ring::sync::fault::set_late_header_zero(true);
    loom_common::spsc_wraps_and_waits_for_space();
}
