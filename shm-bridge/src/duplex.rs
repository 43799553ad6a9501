//! A `shm_channel::duplex` client and server on different hosts: one bridge process on
//! each side carries the request channel (`NAME-req`) one way and the reply channel
//! (`NAME-rep`) the other, on the keys `KEY/req` and `KEY/rep`.
//!
//! On the client's host the bridge creates both channels (it reads requests, writes
//! replies) and `Client::connect(NAME)` opens them; on the server's host
//! `Server::create(NAME)` creates them and the bridge opens them.

use crate::{inbound, outbound, BridgeError, Control, Ending};
use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
use shm_idle::AnyIdle;
use shm_notify::AnyNotifier;
use std::sync::Arc;
use std::time::Duration;

/// Which end of the call the bridge's host runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The host of the `Client`: the bridge creates the channels.
    Client,
    /// The host of the `Server`: the bridge opens the channels it created.
    Server,
}

/// The two directions' controls: stopping either stops both.
#[derive(Clone, Debug)]
pub struct Controls {
    /// Requests (client to server).
    pub requests: Arc<Control>,
    /// Replies (server to client).
    pub replies: Arc<Control>,
}

impl Controls {
    /// Two controls with the same window.
    pub fn new(window: u64) -> Controls {
        Controls {
            requests: Control::new(window),
            replies: Control::new(window),
        }
    }

    /// Stops both directions.
    pub fn stop(&self) {
        self.requests.stop();
        self.replies.stop();
    }
}

/// One duplex bridge: which pair of channels, which side, which keys, and how the
/// channels are made.
///
/// ```no_run
/// use shm_bridge::duplex::{Controls, Duplex, Side};
/// use shm_bridge::Net;
/// use shm_channel::ChannelBuilder;
/// use std::time::Duration;
/// let session = Net { listen: vec!["tcp/0.0.0.0:7448".into()], ..Default::default() }.open()?;
/// let bridge = Duplex {
///     name: "calc".into(),
///     side: Side::Server,
///     key: "site/calc".into(),
///     builder: ChannelBuilder::new().notifier_kind(shm_notify::NotifierKind::Futex),
///     idle: "adaptive".parse()?,
///     open_timeout: Duration::from_secs(10),
/// };
/// let ending = bridge.run(&session, &Controls::new(4096))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Duplex {
    /// The pair's name (`NAME-req`, `NAME-rep`).
    pub name: String,
    /// Which end this host runs.
    pub side: Side,
    /// The zenoh key (`KEY/req`, `KEY/rep`).
    pub key: String,
    /// Creates the channels on the client's side: its notifier kind (which it must
    /// name: the bridge's ends take any) and capacity.
    pub builder: ChannelBuilder,
    /// The bridge ends' idle strategy.
    pub idle: AnyIdle,
    /// On the server's side, how long to wait for the server to create the channels.
    pub open_timeout: Duration,
}

impl Duplex {
    /// Runs both directions until either ends; returns how the first one ended.
    pub fn run(&self, session: &zenoh::Session, ctl: &Controls) -> Result<Ending, BridgeError> {
        let (name, key, builder, open_timeout) =
            (&self.name, &self.key, &self.builder, self.open_timeout);
        let (req, rep) = (format!("{name}-req"), format!("{name}-rep"));
        let (req_key, rep_key) = (format!("{key}/req"), format!("{key}/rep"));
        let idle = || self.idle.clone();
        let ch = BridgeError::channel;
        // The direction that leaves this host, and the one that arrives.
        let (rx, tx): (
            Receiver<Spsc, AnyNotifier, AnyIdle>,
            Sender<Spsc, AnyNotifier, AnyIdle>,
        ) = match self.side {
            Side::Client => (
                builder.create_receiver(&req, idle()).map_err(ch)?,
                builder.create_sender(&rep, idle()).map_err(ch)?,
            ),
            Side::Server => (
                Receiver::open_timeout(&rep, idle(), open_timeout).map_err(ch)?,
                Sender::open_timeout(&req, idle(), open_timeout).map_err(ch)?,
            ),
        };
        let (out_key, in_key, out_ctl, in_ctl) = match self.side {
            Side::Client => (req_key, rep_key, &ctl.requests, &ctl.replies),
            Side::Server => (rep_key, req_key, &ctl.replies, &ctl.requests),
        };
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let r = inbound::run(tx, session, &in_key, in_ctl);
                ctl.stop();
                r
            });
            let first = outbound::run(rx, session, &out_key, out_ctl);
            ctl.stop();
            let second = t.join().expect("inbound thread");
            match (first, second) {
                (Err(e), _) | (_, Err(e)) => Err(e),
                (Ok(Ending::Stopped), Ok(other)) => Ok(other),
                (Ok(first), _) => Ok(first),
            }
        })
    }
}
