//! `peer/iceoryx2/{spin,blocking}`: iceoryx2 0.10 publish-subscribe of `[u8; 64]`, one
//! service each way, lossless like our channels (no safe overflow; a full subscriber
//! buffer of 1024 samples makes the publisher retry until delivered). `spin` polls
//! `receive`; `blocking` also opens an event service each way: the sender notifies after
//! each sample, the receiver waits on its listener whenever `receive` finds nothing.

use super::SIZE;
use crate::transport::{Endpoint, STOP};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::time::{Duration, Instant};

type Msg = [u8; SIZE];
type PubSub =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, Msg, ()>;

/// Samples a subscriber buffers, as a channel row's ring holds 64 KiB.
const BUFFER: usize = 1024;

pub struct Ice {
    // Ports before the services and the node: dropped first.
    tx: Publisher<ipc::Service, Msg, ()>,
    rx: Subscriber<ipc::Service, Msg, ()>,
    wake: Option<(Notifier<ipc::Service>, Listener<ipc::Service>)>,
    out: PubSub,
    /// Whether the peer's subscriber was seen on our publisher's service.
    connected: bool,
    _inp: PubSub,
    _events: Vec<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>>,
    _node: Node<ipc::Service>,
}

fn service_name(id: &str, dir: &str) -> ServiceName {
    format!("shmbench/{id}/{dir}")
        .as_str()
        .try_into()
        .expect("service name")
}

fn pubsub(node: &Node<ipc::Service>, id: &str, dir: &str) -> PubSub {
    node.service_builder(&service_name(id, dir))
        .publish_subscribe::<Msg>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
        .expect("iceoryx2 publish-subscribe service")
}

impl Ice {
    pub fn new(id: &str, parent: bool, blocking: bool) -> Ice {
        let (out, inp) = if parent {
            ("fwd", "bwd")
        } else {
            ("bwd", "fwd")
        };
        // Its notice that no config file was found would land in the report's output.
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .expect("iceoryx2 node");
        let (out_svc, inp_svc) = (pubsub(&node, id, out), pubsub(&node, id, inp));
        let rx = inp_svc
            .subscriber_builder()
            .create()
            .expect("iceoryx2 subscriber");
        let tx = out_svc
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .expect("iceoryx2 publisher");
        let (mut events, mut wake) = (Vec::new(), None);
        if blocking {
            let event = |dir: &str| {
                node.service_builder(&service_name(id, &format!("{dir}-event")))
                    .event()
                    .open_or_create()
                    .expect("iceoryx2 event service")
            };
            let (out_ev, inp_ev) = (event(out), event(inp));
            let notifier = out_ev.notifier_builder().create().expect("notifier");
            let listener = inp_ev.listener_builder().create().expect("listener");
            wake = Some((notifier, listener));
            events = vec![out_ev, inp_ev];
        }
        Ice {
            tx,
            rx,
            wake,
            out: out_svc,
            connected: false,
            _inp: inp_svc,
            _events: events,
            _node: node,
        }
    }

    /// Waits (bounded) until the peer's subscriber (and listener) exist: a sample sent
    /// before that reaches no one.
    fn connect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.out.dynamic_config().number_of_subscribers() == 0
            || self
                .wake
                .as_ref()
                .is_some_and(|_| self._events[0].dynamic_config().number_of_listeners() == 0)
        {
            assert!(Instant::now() < deadline, "iceoryx2 peer never connected");
            std::thread::sleep(Duration::from_millis(1));
        }
        self.connected = true;
    }

    /// The next sample's payload, copied out; waits by spinning or on the listener.
    fn take(&mut self) -> Msg {
        loop {
            if let Some(sample) = self.rx.receive().expect("iceoryx2 receive") {
                return *sample.payload();
            }
            match &self.wake {
                Some((_, listener)) => {
                    listener.blocking_wait(|_| {}).expect("iceoryx2 wait");
                }
                None => std::hint::spin_loop(),
            }
        }
    }
}

impl Endpoint for Ice {
    fn send(&mut self, msg: &[u8]) {
        if !self.connected {
            self.connect();
        }
        let mut m = [0u8; SIZE];
        let n = msg.len().min(SIZE);
        m[..n].copy_from_slice(&msg[..n]);
        let sample = self.tx.loan_uninit().expect("iceoryx2 loan");
        sample.write_payload(m).send().expect("iceoryx2 send");
        if let Some((notifier, _)) = &self.wake {
            notifier.notify().expect("iceoryx2 notify");
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let m = self.take();
        buf.clear();
        buf.extend_from_slice(&m);
        m[..8] != STOP.to_le_bytes()
    }
}
