//! Request/response over two channels, built on the public API only: a [`Client`] sends
//! requests on `<name>-req` and reads replies on `<name>-rep`; a [`Server`] does the
//! reverse. Each request carries a correlation id (8 bytes, little-endian, before the
//! payload) that its reply echoes, so a client whose call timed out recognises the late
//! reply when it comes and skips it instead of taking it for the answer to a later call.
//!
//! One client at a time; clients may come and go: when one leaves (or dies), the server
//! waits for the next, which takes over both channels. Each client's ids carry a random
//! session number, so replies meant for an earlier client are skipped too.
//!
//! ```
//! use shm_channel::duplex::{Client, Server};
//! use shm_channel::ChannelBuilder;
//! use shm_idle::Backoff;
//! use shm_notify::Futex;
//! use std::time::Duration;
//! let name = format!("doc-duplex-{}", std::process::id());
//! let mut server: Server<Futex, Backoff> =
//!     Server::create(&name, &ChannelBuilder::new(), Backoff::default(), Backoff::default())?;
//! let t = std::thread::spawn(move || {
//!     // Two clients, one after the other.
//!     for _ in 0..2 {
//!         server.serve(Duration::from_secs(5), |req, reply| reply.extend(req.iter().rev())).unwrap();
//!     }
//! });
//! for word in [&b"abc"[..], b"xyz"] {
//!     let mut client: Client<Futex, Backoff> =
//!         Client::connect(&name, Backoff::default(), Backoff::default())?;
//!     let mut expected = word.to_vec();
//!     expected.reverse();
//!     assert_eq!(client.call(word, Duration::from_secs(5))?, expected);
//! }
//! t.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{
    ChannelBuilder, ChannelError, ChannelNotifier, Receiver, RecvError, RecvTimeoutError,
    SendError, SendTimeoutError, Sender,
};
use shm_idle::ParksOn;
use shm_ring::Spsc;
use std::time::{Duration, Instant};

const ID: usize = 8;

/// A random session number for a new client: the high half of its ids.
fn session() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() << 32
}

fn names(name: &str) -> (String, String) {
    (format!("{name}-req"), format!("{name}-rep"))
}

/// Why a call failed.
///
/// ```
/// use shm_channel::duplex::{CallError, Client, Server};
/// use shm_channel::ChannelBuilder;
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// use std::time::Duration;
/// let name = format!("doc-call-error-{}", std::process::id());
/// let _server: Server<Futex, Backoff> =
///     Server::create(&name, &ChannelBuilder::new(), Backoff::default(), Backoff::default())?;
/// let mut client: Client<Futex, Backoff> =
///     Client::connect(&name, Backoff::default(), Backoff::default())?;
/// // Nobody serves: the reply does not come in time.
/// let r = client.call(b"anyone?", Duration::from_millis(10));
/// assert!(matches!(r, Err(CallError::Timeout)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Sending the request failed.
    #[error("request: {0}")]
    Send(#[from] SendError),
    /// Receiving the reply failed.
    #[error("reply: {0}")]
    Recv(#[from] RecvError),
    /// `call`: the reply did not come in time (it will be skipped if it comes later);
    /// `serve`: no request came in time.
    #[error("timed out")]
    Timeout,
    /// The peer broke the request/response framing (a message too short to carry an id,
    /// or a reply to a call not made yet): not a duplex peer, or a misbehaving one.
    #[error("duplex protocol violated: {0}")]
    Protocol(String),
}

impl From<SendTimeoutError> for CallError {
    fn from(e: SendTimeoutError) -> Self {
        match e {
            SendTimeoutError::Timeout => CallError::Timeout,
            SendTimeoutError::Send(e) => CallError::Send(e),
        }
    }
}

impl From<RecvTimeoutError> for CallError {
    fn from(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::Timeout => CallError::Timeout,
            RecvTimeoutError::Recv(e) => CallError::Recv(e),
        }
    }
}

/// The calling side: requests out, replies in.
///
/// ```
/// use shm_channel::duplex::{Client, Server};
/// use shm_channel::ChannelBuilder;
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// use std::time::Duration;
/// let name = format!("doc-client-{}", std::process::id());
/// let mut server: Server<Futex, Backoff> =
///     Server::create(&name, &ChannelBuilder::new(), Backoff::default(), Backoff::default())?;
/// let t = std::thread::spawn(move || {
///     for _ in 0..3 {
///         server.serve(Duration::from_secs(5), |req, reply| reply.push(req.len() as u8)).unwrap();
///     }
/// });
/// let mut client: Client<Futex, Backoff> =
///     Client::connect(&name, Backoff::default(), Backoff::default())?;
/// for req in [&b"a"[..], b"bb", b"ccc"] {
///     assert_eq!(client.call(req, Duration::from_secs(5))?, [req.len() as u8]);
/// }
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client<N: ChannelNotifier, I> {
    tx: Sender<Spsc, N, I>,
    rx: Receiver<Spsc, N, I>,
    next: u64,
}

impl<N: ChannelNotifier, I: ParksOn<N>> Client<N, I> {
    /// Connects to the server named `name` (which must exist). Fails with
    /// `WriterAttached` or `ReaderAttached` while another client is connected.
    pub fn connect(name: &str, tx_idle: I, rx_idle: I) -> Result<Self, ChannelError> {
        let (req, rep) = names(name);
        Ok(Client {
            tx: Sender::open(&req, tx_idle)?,
            rx: Receiver::open(&rep, rx_idle)?,
            next: session(),
        })
    }

    /// Sends `request` and waits up to `timeout` for its reply. Replies to earlier calls
    /// that timed out are skipped.
    pub fn call(&mut self, request: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        let deadline = crate::engine::deadline(timeout);
        let id = self.next;
        self.next += 1;
        let mut msg = Vec::with_capacity(ID + request.len());
        msg.extend_from_slice(&id.to_le_bytes());
        msg.extend_from_slice(request);
        self.tx.send_until(&msg, deadline)?;
        loop {
            let reply = self.rx.recv_until(deadline, |m| {
                let got = m
                    .get(..ID)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
                match got {
                    Some(got) if got == id => Ok(Some(m[ID..].to_vec())),
                    // A late reply to a call of ours that gave up, or to an earlier client.
                    Some(got) if got < id || got >> 32 != id >> 32 => Ok(None),
                    _ => Err(CallError::Protocol(format!(
                        "reply id {got:?} to call {id}"
                    ))),
                }
            })?;
            if let Some(r) = reply? {
                return Ok(r);
            }
        }
    }
}

/// The serving side: requests in, replies out; it serves one client after another.
///
/// ```
/// use shm_channel::duplex::{CallError, Server};
/// use shm_channel::ChannelBuilder;
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// use std::time::Duration;
/// let name = format!("doc-server-{}", std::process::id());
/// let mut server: Server<Futex, Backoff> =
///     Server::create(&name, &ChannelBuilder::new(), Backoff::default(), Backoff::default())?;
/// // A serving loop: answer each request, stop after a quiet spell.
/// loop {
///     match server.serve(Duration::from_millis(20), |req, reply| reply.extend_from_slice(req)) {
///         Ok(()) => {}
///         Err(CallError::Timeout) => break, // nobody came
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server<N: ChannelNotifier, I> {
    rx: Receiver<Spsc, N, I>,
    tx: Sender<Spsc, N, I>,
    payload: Vec<u8>,
    out: Vec<u8>,
}

impl<N: ChannelNotifier, I: ParksOn<N>> Server<N, I> {
    /// Creates the two channels of the server named `name` with the builder's settings.
    pub fn create(
        name: &str,
        b: &ChannelBuilder,
        rx_idle: I,
        tx_idle: I,
    ) -> Result<Self, ChannelError> {
        let (req, rep) = names(name);
        Ok(Server {
            rx: b.create_receiver(&req, rx_idle)?,
            tx: b.create_sender(&rep, tx_idle)?,
            payload: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Waits up to `timeout` for one request, lets `handler(request, reply)` write the
    /// reply into the (empty) vector, and sends it back under the request's id (waiting
    /// up to `timeout` again for space). A server outlives its clients: when the client
    /// has left, it waits for the next one (checking every 20 ms at most) until the
    /// timeout, then returns `Timeout`; a reply whose client left meanwhile is
    /// dropped.
    pub fn serve(
        &mut self,
        timeout: Duration,
        handler: impl FnOnce(&[u8], &mut Vec<u8>),
    ) -> Result<(), CallError> {
        let deadline = crate::engine::deadline(timeout);
        let (payload, out) = (&mut self.payload, &mut self.out);
        payload.clear();
        out.clear();
        let mut handler = Some(handler);
        let mut pause = Duration::from_millis(1);
        loop {
            let got = self.rx.recv_until(deadline, |m| {
                if m.len() < ID {
                    return Err(CallError::Protocol(format!("request of {} bytes", m.len())));
                }
                out.extend_from_slice(&m[..ID]);
                if let Some(h) = handler.take() {
                    h(&m[ID..], payload);
                }
                Ok(())
            });
            match got {
                Ok(r) => break r?,
                // No client now: wait for the next one to take the channels over.
                Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => {
                    let left =
                        deadline.map_or(pause, |d| d.saturating_duration_since(Instant::now()));
                    if left.is_zero() {
                        return Err(CallError::Timeout);
                    }
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
        out.extend_from_slice(payload);
        match self.tx.send_until(out, deadline) {
            Err(SendTimeoutError::Send(SendError::Disconnected)) => {
                tracing::debug!("client left before its reply: dropped");
                Ok(())
            }
            r => Ok(r?),
        }
    }
}
