//! `bridge/zenoh-tcp` (feature `bridge`): the whole path a message takes between hosts,
//! over loopback. Each process writes and reads local channels as usual (futex,
//! adaptive); beside it, in the same process (so on the same pinned CPU), run the
//! `shm-bridge` library's outbound and inbound loops, and the two processes' zenoh
//! sessions meet over TCP on 127.0.0.1. One direction: parent's channel -> outbound
//! bridge -> zenoh -> inbound bridge -> child's channel; the other the reverse.

use crate::transport::{Chan, Endpoint, Setup};
use shm_bridge::{inbound, outbound, Control, Net};
use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
use shm_idle::Adaptive;
use shm_notify::{Futex, NotifierKind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

type Tx = Sender<Spsc, Futex, Adaptive>;
type Rx = Receiver<Spsc, Futex, Adaptive>;

/// A row's side: its channel ends, and the bridge loops that carry them.
struct Bridged {
    chan: Chan<Spsc, Spsc, Futex, Adaptive>,
    ctls: Vec<Arc<Control>>,
    loops: Vec<JoinHandle<()>>,
}

impl Endpoint for Bridged {
    fn send(&mut self, msg: &[u8]) {
        self.chan.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        self.chan.recv(buf)
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        for c in &self.ctls {
            c.stop();
        }
        for t in self.loops.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts this side: `out` is the channel our writer feeds (carried on `out_key`),
/// `inp` the one our reader reads (filled from `in_key`).
fn side(net: Net, out: &str, inp: &str, out_key: String, in_key: String) -> Bridged {
    let session = net.open().expect("zenoh session");
    let b = ChannelBuilder::new().notifier_kind(NotifierKind::Futex);
    let tx: Tx = b.create_sender(out, Adaptive::new()).unwrap();
    let rx: Rx = b.create_receiver(inp, Adaptive::new()).unwrap();
    let bridge_rx: Rx = Receiver::open(out, Adaptive::new()).unwrap();
    let bridge_tx: Tx = Sender::open(inp, Adaptive::new()).unwrap();
    let (c_out, c_in) = (
        Control::new(shm_bridge::DEFAULT_WINDOW),
        Control::new(shm_bridge::DEFAULT_WINDOW),
    );
    let (s1, s2, k1, k2) = (session.clone(), session, out_key, in_key);
    let (c1, c2) = (c_out.clone(), c_in.clone());
    let loops = vec![
        std::thread::spawn(move || {
            let _ = outbound::run(bridge_rx, &s1, &k1, &c1);
        }),
        std::thread::spawn(move || {
            let _ = inbound::run(bridge_tx, &s2, &k2, &c2);
        }),
    ];
    Bridged {
        chan: Chan { tx, rx },
        ctls: vec![c_out, c_in],
        loops,
    }
}

/// The parent's side: it listens on a free loopback port, which the child is told.
pub fn parent(id: &str) -> Setup {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let net = Net {
        listen: vec![format!("tcp/127.0.0.1:{port}")],
        ..Net::default()
    };
    let (fwd, bwd) = keys(id);
    let endpoint = side(net, &format!("{id}-zf-a"), &format!("{id}-zb-a"), fwd, bwd);
    Setup {
        endpoint: Box::new(endpoint),
        args: vec![id.into(), port.to_string()],
        fds: vec![],
    }
}

/// The child's side: connects to the parent's port.
pub fn child(args: &[String]) -> Box<dyn Endpoint> {
    let (id, port) = (&args[0], &args[1]);
    let net = Net {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        ..Net::default()
    };
    let (fwd, bwd) = keys(id);
    // Give the parent's listener a moment if it is still starting.
    std::thread::sleep(Duration::from_millis(50));
    Box::new(side(
        net,
        &format!("{id}-zb-b"),
        &format!("{id}-zf-b"),
        bwd,
        fwd,
    ))
}

fn keys(id: &str) -> (String, String) {
    (format!("shm-bench/{id}/fwd"), format!("shm-bench/{id}/bwd"))
}
