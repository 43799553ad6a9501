//! The tokio receiver across processes: a writer process sends 100,000 self-checking
//! messages through a FIFO-notified channel (pausing now and then, so the async reader
//! parks in tokio's reactor); every message arrives once, in order, then `Disconnected`.

use shm_channel::{AsyncReceiver, ChannelBuilder, Receiver, RecvError};
use shm_idle::Backoff;
use shm_notify::Fifo;
use shm_ring::Spsc;
use shm_tests::{read_line, unique_name, verify, MAX_BODY};
use std::time::Duration;

#[tokio::test(flavor = "current_thread")]
async fn async_reader_gets_every_message_from_another_process() {
    const COUNT: u64 = 100_000;
    let name = unique_name("async");
    let rx: Receiver<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .capacity(1 << 14)
        .detect_interval(Duration::from_millis(50))
        .create_receiver(&name, Backoff::default())
        .unwrap();
    let max = MAX_BODY.min(rx.max_message_len()) - 4;
    let mut rx = AsyncReceiver::new(rx).unwrap();
    let mut writer = shm_tests::spawn_peer(
        env!("CARGO_BIN_EXE_channel_peer"),
        &[
            "stream",
            "spsc",
            "fifo",
            "backoff",
            &name,
            "11",
            "0",
            &COUNT.to_string(),
        ],
        None,
        true,
    );
    assert_eq!(read_line(&mut writer), "attached");
    let mut scratch = Vec::new();
    for seq in 0..COUNT {
        let m = tokio::time::timeout(Duration::from_secs(20), rx.recv_vec())
            .await
            .unwrap_or_else(|_| panic!("no message {seq} within 20 s"))
            .unwrap();
        assert_eq!(u32::from_le_bytes(m[..4].try_into().unwrap()), 0);
        verify(11, 0, seq, max, &m[4..], &mut scratch).unwrap();
        if seq % 20_000 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await; // the writer parks on full
        }
    }
    assert!(writer.wait_timeout(Duration::from_secs(20)).success());
    assert!(matches!(rx.recv_vec().await, Err(RecvError::Disconnected)));
}

/// The tokio sender across processes: 20,000 messages to a reader process that prints
/// each sequence number; the sender parks on a full 1 KiB ring and is woken by the other
/// process; every number arrives once, in order.
#[tokio::test(flavor = "current_thread")]
async fn async_sender_reaches_a_reader_in_another_process() {
    use shm_channel::{AsyncSender, Sender};
    use tokio::io::AsyncBufReadExt;
    const COUNT: u64 = 20_000;
    let name = unique_name("asynctx");
    let tx: Sender<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .capacity(1024)
        .create_sender(&name, Backoff::default())
        .unwrap();
    let mut tx = AsyncSender::new(tx).unwrap();
    let mut reader = shm_tests::spawn_peer(
        env!("CARGO_BIN_EXE_channel_peer"),
        &["recv-print", "spsc", "fifo", "backoff", &name],
        None,
        true,
    );
    assert_eq!(read_line(&mut reader), "ready");
    let out = reader.take_stdout().unwrap();
    // Read its output alongside (a full pipe would stop the reader, and so the sender).
    let printed = tokio::spawn(async move {
        let out = tokio::process::ChildStdout::from_std(out).unwrap();
        let mut lines = tokio::io::BufReader::new(out).lines();
        let mut seqs = Vec::new();
        while seqs.len() < COUNT as usize {
            match lines.next_line().await.unwrap() {
                Some(l) => seqs.push(l.parse::<u64>().unwrap()),
                None => break,
            }
        }
        seqs
    });
    for seq in 0..COUNT {
        let mut m = vec![0u8; 4];
        m.extend_from_slice(&seq.to_le_bytes());
        tokio::time::timeout(Duration::from_secs(20), tx.send(&m))
            .await
            .unwrap_or_else(|_| panic!("send {seq} not done within 20 s"))
            .unwrap();
    }
    let seqs = tokio::time::timeout(Duration::from_secs(20), printed)
        .await
        .expect("reader output within 20 s")
        .unwrap();
    assert!(
        seqs.iter().copied().eq(0..COUNT),
        "lost, duplicated or reordered"
    );
}
