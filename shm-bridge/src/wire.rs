//! What the two bridges say to each other on zenoh, byte for byte (little-endian).
//!
//! `KEY/data`, outbound to inbound: `[kind u8][epoch u64][seq u64][payload]`. `kind` is
//! [`DATA`] (a message) or [`END`] (every local writer closed: the stream is over).
//! `epoch` is a random number an outbound bridge draws when it starts, `seq` counts its
//! frames from 0, so an inbound bridge can tell a gap (frames lost while it was down)
//! from a new outbound (a new epoch).
//!
//! `KEY/ack`, inbound to outbound: `[inbound u64][epoch u64][next u64][flags u8][max u32]`:
//! inbound bridge `inbound` has written every frame of `epoch` before `next` into its
//! channel (or skipped it as a gap), its channel carries messages of up to `max` bytes,
//! and [`READER_GONE`] in `flags` says that channel's reader is gone; [`DOUBLED`] says
//! the stream `epoch` is refused: another outbound bridge publishes on the same key.
//!
//! Both are input from the network: a frame that does not parse is counted and dropped.

/// Frame kind: one message.
pub const DATA: u8 = 0;
/// Frame kind: the local writers are all gone; no frame follows in this epoch.
pub const END: u8 = 1;
/// Ack flag: the inbound bridge's channel has no reader any more.
pub const READER_GONE: u8 = 1;
/// Ack flag: stream `epoch` is refused, another outbound bridge publishes on this key.
pub const DOUBLED: u8 = 2;

/// Bytes before the payload of a data frame.
pub const FRAME_HEADER: usize = 17;
/// Bytes of an ack.
pub const ACK_LEN: usize = 29;

/// A frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// [`DATA`] or [`END`].
    pub kind: u8,
    /// The sending outbound bridge's epoch.
    pub epoch: u64,
    /// Its number in that epoch.
    pub seq: u64,
}

impl Frame {
    /// Header then payload, as sent.
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(FRAME_HEADER + payload.len());
        v.push(self.kind);
        v.extend_from_slice(&self.epoch.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// The header and the payload of `bytes`; `None` if it is no frame.
    pub fn decode(bytes: &[u8]) -> Option<(Frame, &[u8])> {
        if bytes.len() < FRAME_HEADER || bytes[0] > END {
            return None;
        }
        let frame = Frame {
            kind: bytes[0],
            epoch: u64::from_le_bytes(bytes[1..9].try_into().ok()?),
            seq: u64::from_le_bytes(bytes[9..17].try_into().ok()?),
        };
        Some((frame, &bytes[FRAME_HEADER..]))
    }
}

/// An inbound bridge's acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The inbound bridge's id (random, drawn when it starts).
    pub inbound: u64,
    /// The epoch it acknowledges.
    pub epoch: u64,
    /// Every frame of `epoch` before this one is written (or was a gap).
    pub next: u64,
    /// [`READER_GONE`], [`DOUBLED`] or 0.
    pub flags: u8,
    /// The largest message its channel carries.
    pub max: u32,
}

impl Ack {
    /// As sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ACK_LEN);
        v.extend_from_slice(&self.inbound.to_le_bytes());
        v.extend_from_slice(&self.epoch.to_le_bytes());
        v.extend_from_slice(&self.next.to_le_bytes());
        v.push(self.flags);
        v.extend_from_slice(&self.max.to_le_bytes());
        v
    }

    /// `None` unless `bytes` is exactly an ack.
    pub fn decode(bytes: &[u8]) -> Option<Ack> {
        if bytes.len() != ACK_LEN {
            return None;
        }
        Some(Ack {
            inbound: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
            epoch: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            next: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
            flags: bytes[24],
            max: u32::from_le_bytes(bytes[25..29].try_into().ok()?),
        })
    }
}

/// A random u64 (std's per-process hash keys, mixed with the clock and pid).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_acks_round_trip_and_garbage_is_refused() {
        let f = Frame {
            kind: DATA,
            epoch: 7,
            seq: 1 << 40,
        };
        let bytes = f.encode(b"hello");
        assert_eq!(Frame::decode(&bytes), Some((f, &b"hello"[..])));
        assert_eq!(Frame::decode(&bytes[..16]), None);
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert_eq!(Frame::decode(&bad), None);
        let a = Ack {
            inbound: 1,
            epoch: 2,
            next: 3,
            flags: READER_GONE,
            max: 4096,
        };
        assert_eq!(Ack::decode(&a.encode()), Some(a));
        assert_eq!(Ack::decode(&a.encode()[1..]), None);
        assert_ne!(random_u64(), random_u64());
    }
}
