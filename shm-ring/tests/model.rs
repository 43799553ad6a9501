//! Model-based tests: random sequences of write / claim+commit / claim+abort / read of
//! random sizes against a byte-exact model of the ring (positions, padding at the end,
//! free space) holding the messages in a `VecDeque`. Contents, order, free space (when a
//! write is refused) and errors must agree, for both ring kinds, 64 B to 64 KiB.
#![cfg(not(shm_loom))]

use proptest::prelude::*;
use shm_ring::{
    record_size, Kind, Mpsc, Producer, RingKind, Segment, SegmentOptions, Spsc, WriteError,
};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum Op {
    Write {
        ty: i32,
        len: usize,
    },
    /// Claim, then (with the claim outstanding) read and let other producers write,
    /// then commit or abort.
    Claim {
        ty: i32,
        len: usize,
        read_between: usize,
        others: Vec<usize>,
        commit: bool,
    },
    Read {
        limit: usize,
    },
}

#[derive(Debug, PartialEq)]
enum Entry {
    Padding(u64),
    Message { ty: i32, data: Vec<u8>, size: u64 },
    Pending { id: u64, size: u64 },
    Aborted(u64),
}

/// The specification: what the ring must do, position by position.
#[derive(Debug)]
struct Model {
    cap: u64,
    max: usize,
    /// Bytes a producer cannot fill: SPSC keeps the header after its last record free
    /// (it zeroes it, so the consumer never reads an earlier lap there).
    slack: u64,
    head: u64,
    tail: u64,
    entries: VecDeque<Entry>,
}

impl Model {
    /// Reserves a record; returns whether it fit.
    fn reserve(&mut self, ty: i32, len: usize) -> Result<(), WriteError> {
        if ty < 1 {
            return Err(WriteError::InvalidType(ty));
        }
        if len > self.max {
            return Err(WriteError::TooLong { len, max: self.max });
        }
        let size = record_size(len) as u64;
        let to_end = self.cap - self.tail % self.cap;
        let pad = if size > to_end { to_end } else { 0 };
        if pad + size + self.slack > self.cap - (self.tail - self.head) {
            return Err(WriteError::Full);
        }
        if pad > 0 {
            self.entries.push_back(Entry::Padding(pad));
        }
        self.tail += pad + size;
        Ok(())
    }

    fn write(&mut self, ty: i32, data: &[u8]) -> Result<(), WriteError> {
        self.reserve(ty, data.len())?;
        let size = record_size(data.len()) as u64;
        self.entries.push_back(Entry::Message {
            ty,
            data: data.to_vec(),
            size,
        });
        Ok(())
    }

    fn claim(&mut self, ty: i32, len: usize, id: u64) -> Result<(), WriteError> {
        self.reserve(ty, len)?;
        self.entries.push_back(Entry::Pending {
            id,
            size: record_size(len) as u64,
        });
        Ok(())
    }

    fn settle(&mut self, id: u64, ty: i32, data: Option<Vec<u8>>) {
        let e = self
            .entries
            .iter_mut()
            .find(|e| matches!(e, Entry::Pending { id: i, .. } if *i == id))
            .expect("pending claim in model");
        let Entry::Pending { size, .. } = *e else {
            unreachable!()
        };
        *e = match data {
            Some(data) => Entry::Message { ty, data, size },
            None => Entry::Aborted(size),
        };
    }

    fn read(&mut self, limit: usize) -> Vec<(i32, Vec<u8>)> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.entries.front() {
                None | Some(Entry::Pending { .. }) => break,
                Some(Entry::Padding(s)) | Some(Entry::Aborted(s)) => self.head += s,
                Some(Entry::Message { ty, data, size }) => {
                    out.push((*ty, data.clone()));
                    self.head += size;
                }
            }
            self.entries.pop_front();
        }
        out
    }
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    // Lengths cluster at the interesting points: empty, exact multiples of 8, max, over max.
    let len = prop_oneof![
        3 => 0..=max,
        1 => Just(0usize),
        1 => Just(max),
        1 => (0..=max / 8).prop_map(|k| k * 8),
        1 => Just(max + 1),
    ];
    let ty = prop_oneof![10 => 1..1000i32, 1 => -3..=0i32];
    let op = prop_oneof![
        4 => (ty.clone(), len.clone()).prop_map(|(ty, len)| Op::Write { ty, len }),
        2 => (ty, len.clone(), 0..4usize, prop::collection::vec(len, 0..3), any::<bool>())
            .prop_map(|(ty, len, read_between, others, commit)| Op::Claim { ty, len, read_between, others, commit }),
        3 => prop_oneof![Just(usize::MAX), 1..5usize].prop_map(|limit| Op::Read { limit }),
    ];
    prop::collection::vec(op, 1..200)
}

fn check_read<K: RingKind>(
    rx: &mut shm_ring::Consumer<K>,
    model: &mut Model,
    limit: usize,
) -> Result<(), TestCaseError> {
    let mut got = Vec::new();
    let n = rx.read(limit, |ty, b| got.push((ty, b.to_vec()))).unwrap();
    let want = model.read(limit);
    prop_assert_eq!(n, got.len());
    prop_assert_eq!(got, want);
    prop_assert_eq!(rx.position(), model.head);
    Ok(())
}

fn run<K: RingKind>(
    cap: usize,
    ops: Vec<Op>,
    mut tx: Producer<K>,
    mut others: Option<Producer<K>>,
    seg: &Segment,
) -> Result<(), TestCaseError> {
    let mut rx = seg.consumer::<K>().unwrap();
    let mut model = Model {
        cap: cap as u64,
        max: cap / 8,
        slack: if K::KIND == Kind::Mpsc { 0 } else { 8 },
        head: 0,
        tail: 0,
        entries: VecDeque::new(),
    };
    for (step, op) in ops.into_iter().enumerate() {
        let seed = step as u64;
        match op {
            Op::Write { ty, len } => {
                let data = payload(seed, len);
                prop_assert_eq!(
                    tx.try_write(ty, &data),
                    model.write(ty, &data),
                    "write step {}",
                    step
                );
            }
            Op::Claim {
                ty,
                len,
                read_between,
                others: other_lens,
                commit,
            } => {
                let want = model.claim(ty, len, seed);
                let claim = tx.try_claim(ty, len);
                let mut claim = match (claim, want) {
                    (Ok(c), Ok(())) => c,
                    (Err(got), Err(want)) => {
                        prop_assert_eq!(got, want);
                        continue;
                    }
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "claim step {step}: {:?} vs {want:?}",
                            got.map(|_| ())
                        )))
                    }
                };
                prop_assert!(
                    claim.as_mut_slice().iter().all(|&b| b == 0),
                    "claimed space not zeroed"
                );
                let data = payload(seed, len);
                claim.as_mut_slice().copy_from_slice(&data);
                // Pending claims block the consumer at their position.
                check_read(&mut rx, &mut model, read_between)?;
                if let Some(other) = others.as_mut() {
                    for (i, l) in other_lens.into_iter().enumerate() {
                        let d = payload(seed * 7 + i as u64, l);
                        prop_assert_eq!(other.try_write(5, &d), model.write(5, &d));
                    }
                }
                if commit {
                    claim.commit().unwrap();
                    model.settle(seed, ty, Some(data));
                } else {
                    claim.abort();
                    model.settle(seed, ty, None);
                }
            }
            Op::Read { limit } => check_read(&mut rx, &mut model, limit)?,
        }
    }
    check_read(&mut rx, &mut model, usize::MAX)?;
    prop_assert!(
        model.entries.is_empty(),
        "model has unread entries: {:?}",
        model.entries
    );
    Ok(())
}

fn capacity() -> impl Strategy<Value = usize> {
    (6u32..=16).prop_map(|s| 1usize << s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn spsc_agrees_with_model((cap, ops) in capacity().prop_flat_map(|c| (Just(c), ops(c / 8)))) {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, cap)).unwrap();
        let tx = seg.producer::<Spsc>().unwrap();
        run(cap, ops, tx, None, &seg)?;
    }

    #[test]
    fn mpsc_agrees_with_model((cap, ops) in capacity().prop_flat_map(|c| (Just(c), ops(c / 8)))) {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, cap)).unwrap();
        let tx = seg.producer::<Mpsc>().unwrap();
        let other = tx.clone();
        run(cap, ops, tx, Some(other), &seg)?;
    }
}
