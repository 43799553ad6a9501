//! Request/response: a ping-pong of 10,000 calls, replies matched by id, and a late
//! reply to a call that timed out skipped by the next call.
#![cfg(not(shm_loom))]

use shm_channel::duplex::{CallError, Client, Server};
use shm_channel::ChannelBuilder;
use shm_idle::Backoff;
use shm_notify::Futex;
use std::time::Duration;

fn name(tag: &str) -> String {
    format!("shmring-test-{}-duplex-{tag}", std::process::id())
}

type Srv = Server<Futex, Backoff>;
type Cli = Client<Futex, Backoff>;

fn pair(tag: &str) -> (Srv, Cli) {
    let n = name(tag);
    let b = ChannelBuilder::new().capacity(4096);
    let srv = Server::create(&n, &b, Backoff::default(), Backoff::default()).unwrap();
    let cli = Client::connect(&n, Backoff::default(), Backoff::default()).unwrap();
    (srv, cli)
}

#[test]
fn ping_pong_of_ten_thousand_calls() {
    let (mut srv, mut cli) = pair("pingpong");
    let server = std::thread::spawn(move || {
        for _ in 0..10_000 {
            srv.serve(Duration::from_secs(10), |req, reply| {
                let n = u32::from_le_bytes(req.try_into().unwrap());
                reply.extend_from_slice(&(n * 2).to_le_bytes());
            })
            .unwrap();
        }
    });
    for n in 0..10_000u32 {
        let r = cli.call(&n.to_le_bytes(), Duration::from_secs(10)).unwrap();
        assert_eq!(r, (n * 2).to_le_bytes());
    }
    server.join().unwrap();
}

#[test]
fn a_late_reply_is_not_taken_for_the_next_one() {
    let (mut srv, mut cli) = pair("late");
    let (go, wait) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        wait.recv().unwrap(); // answer only after the first call gave up
        for _ in 0..2 {
            srv.serve(Duration::from_secs(10), |req, reply| {
                reply.extend_from_slice(req)
            })
            .unwrap();
        }
    });
    let first = cli.call(b"first", Duration::from_millis(20));
    assert!(matches!(first, Err(CallError::Timeout)), "{first:?}");
    go.send(()).unwrap();
    assert_eq!(
        cli.call(b"second", Duration::from_secs(10)).unwrap(),
        b"second"
    );
    server.join().unwrap();
}

/// A server outlives its clients: the next client takes both channels over, a reply
/// meant for the client before is skipped, and with no client the server times out.
#[test]
fn a_server_serves_successive_clients() {
    let n = name("successive");
    let b = ChannelBuilder::new().capacity(4096);
    let mut srv: Srv = Server::create(&n, &b, Backoff::default(), Backoff::default()).unwrap();
    let (go, wait) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        wait.recv().unwrap(); // the first client has given up and left
        for _ in 0..1 + 3 * 10 {
            srv.serve(Duration::from_secs(10), |req, reply| {
                reply.extend_from_slice(req)
            })
            .unwrap();
        }
        // No client any more: a bounded wait, then Timeout.
        let idle = srv.serve(Duration::from_millis(50), |_, _| panic!("no request"));
        assert!(matches!(idle, Err(CallError::Timeout)), "{idle:?}");
    });
    // The first client's call times out; its reply will be left in the reply ring.
    let mut first: Cli = Client::connect(&n, Backoff::default(), Backoff::default()).unwrap();
    assert!(first.call(b"stale", Duration::from_millis(20)).is_err());
    drop(first);
    for c in 0..3u32 {
        let mut cli: Cli = Client::connect(&n, Backoff::default(), Backoff::default()).unwrap();
        if c == 0 {
            // The stale request is answered now, into this client's reply ring.
            go.send(()).unwrap();
        }
        for i in 0..10u32 {
            let req = (c * 100 + i).to_le_bytes();
            assert_eq!(cli.call(&req, Duration::from_secs(10)).unwrap(), req);
        }
    }
    server.join().unwrap();
}
