//! Segment names: what `shm_open` will accept without surprises.

use crate::SegmentError;
use std::ffi::CString;

/// Longest accepted name (NAME_MAX 255, less the leading `/` we add).
pub const MAX_NAME_LEN: usize = 254;

/// Checks a segment name and returns the `/name` form `shm_open` takes.
///
/// A name is one path component: non-empty, at most [`MAX_NAME_LEN`] bytes, no `/`, no
/// NUL, not `.` or `..`, and not in the library's own namespace (names starting with
/// [`STAGING_PREFIX`](crate::STAGING_PREFIX), which a sweep may remove).
///
/// ```
/// assert!(shm_ring::validate_name("orders-7").is_ok());
/// assert!(shm_ring::validate_name("../etc/passwd").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<CString, SegmentError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than NAME_MAX")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.contains('\0') {
        Some("contains NUL")
    } else if name == "." || name == ".." {
        Some("is '.' or '..'")
    } else if name.starts_with(super::staging::STAGING_PREFIX) {
        Some("starts with the library's reserved staging prefix")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(SegmentError::InvalidName {
            name: name.to_owned(),
            reason,
        });
    }
    Ok(CString::new(format!("/{name}")).expect("NUL rejected above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_paths_nul_dots_and_long_names() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let staging = format!("{}x", super::super::staging::STAGING_PREFIX);
        for bad in ["", "a/b", "/a", "..", ".", "a\0b", long.as_str(), &staging] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_name("ok.name-1").unwrap().to_str().unwrap(),
            "/ok.name-1"
        );
        assert!(validate_name(&"y".repeat(MAX_NAME_LEN)).is_ok());
    }
}
