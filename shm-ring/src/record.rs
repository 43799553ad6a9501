//! The record format: an 8-byte header (`length: i32`, `type: i32`) and the body,
//! aligned to 8 bytes.
//!
//! `length` counts header plus body. Its sign carries the publication state: zero means
//! nothing written, negative means claimed and being written, positive means committed.
//! A record of type [`PADDING_TYPE`] is skipped by the consumer: it fills the gap at the
//! end of the buffer, or stands for an aborted or unblocked claim.

/// Bytes in a record header; also the record alignment.
pub const RECORD_HEADER_LEN: usize = 8;
/// The type of padding records. User types must be `>= 1`.
pub const PADDING_TYPE: i32 = -1;

/// Rounds `n` up to the record alignment.
#[inline(always)]
pub(crate) const fn align(n: usize) -> usize {
    (n + RECORD_HEADER_LEN - 1) & !(RECORD_HEADER_LEN - 1)
}

/// Why a record header read from shared memory cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadHeader {
    Length(i32),
    Type(i32),
    PastEnd,
}

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadHeader::Length(l) => write!(f, "record length {l} out of range"),
            BadHeader::Type(t) => write!(
                f,
                "record type {t} is neither a user type (>= 1) nor padding"
            ),
            BadHeader::PastEnd => f.write_str("record runs past the end of the buffer"),
        }
    }
}

/// Checks the magnitude of a (committed or in-progress) length read at `index`, and
/// returns the aligned record size. Padding may be as long as the rest of the buffer;
/// a message no longer than `max_msg` plus its header.
#[inline(always)]
pub(crate) fn checked_size(
    length: i32,
    msg_type: i32,
    index: usize,
    capacity: usize,
    max_msg: usize,
) -> Result<usize, BadHeader> {
    let len = length.unsigned_abs() as usize;
    if len < RECORD_HEADER_LEN {
        return Err(BadHeader::Length(length));
    }
    let size = align(len);
    if size > capacity - index {
        return Err(BadHeader::PastEnd);
    }
    if msg_type == PADDING_TYPE {
        return Ok(size);
    }
    if msg_type < 1 {
        return Err(BadHeader::Type(msg_type));
    }
    if len - RECORD_HEADER_LEN > max_msg {
        return Err(BadHeader::Length(length));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_rounds_up_to_eight() {
        assert_eq!([0, 1, 8, 9, 15, 16].map(align), [0, 8, 8, 16, 16, 16]);
    }

    #[test]
    fn checked_size_refuses_bad_headers() {
        let (cap, max) = (64, 8);
        assert_eq!(checked_size(16, 1, 0, cap, max), Ok(16));
        assert_eq!(checked_size(-12, 1, 0, cap, max), Ok(16));
        assert_eq!(checked_size(8, 7, 56, cap, max), Ok(8));
        assert_eq!(checked_size(7, 1, 0, cap, max), Err(BadHeader::Length(7)));
        assert_eq!(
            checked_size(i32::MIN, 1, 0, cap, max),
            Err(BadHeader::PastEnd)
        );
        assert_eq!(checked_size(17, 1, 0, cap, max), Err(BadHeader::Length(17)));
        assert_eq!(checked_size(16, 1, 56, cap, max), Err(BadHeader::PastEnd));
        assert_eq!(checked_size(16, 0, 0, cap, max), Err(BadHeader::Type(0)));
        assert_eq!(checked_size(16, -2, 0, cap, max), Err(BadHeader::Type(-2)));
        assert_eq!(checked_size(64, PADDING_TYPE, 0, cap, max), Ok(64));
    }
}
