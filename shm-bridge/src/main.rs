//! `shm-bridge`: carries a shared-memory channel to another host over zenoh (see the
//! library's docs for what holds). Run `shm-bridge --help`.
// Process-local atomics (counters, flags), not shared memory: the sync facade does not
// apply.
#![allow(clippy::disallowed_types)]

use shm_bridge::duplex::{Controls, Duplex, Side};
use shm_bridge::{inbound, outbound, BridgeError, Ending, Net};
use shm_channel::{ChannelBuilder, ChannelError, Mpsc, Receiver, Sender, Spsc};
use shm_idle::AnyIdle;
use shm_notify::{AnyNotifier, NotifierKind};
use shm_ring::SegmentError;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const HELP: &str = "\
usage: shm-bridge out    --channel NAME --key KEY [OPTIONS]
       shm-bridge in     --channel NAME --key KEY [OPTIONS]
       shm-bridge duplex --name NAME --side client|server --key KEY [OPTIONS]

`out` reads channel NAME on this host (opening it, or creating it for its writers to
open) and publishes every message on zenoh key KEY; `in` writes every message published
on KEY into channel NAME here (opening or creating it). `duplex` carries a
shm_channel::duplex pair NAME-req/NAME-rep: `--side client` on the client's host
(creates the channels), `--side server` on the server's (opens the server's).

network (zenoh, peer mode; without endpoints: multicast scouting on the local network)
  --connect ENDPOINT   connect to a peer, e.g. tcp/10.0.0.2:7447 (repeatable)
  --listen ENDPOINT    listen, e.g. tcp/0.0.0.0:7447 (repeatable)
  --config FILE        a zenoh config file (JSON5) to start from
channel (used when this bridge creates the channel)
  --notifier KIND      futex (default), eventfd, fifo or semaphore
  --capacity BYTES     ring capacity, a power of two (default 65536)
  --mpsc               the channel is MPSC (default SPSC)
  --idle SPEC          the bridge ends' idle strategy (default adaptive)
flow
  --window N           messages in flight unacknowledged at most (default 4096)
output
  --interval MS        progress period (default 1000; 0: none)
  --json               progress as JSON lines (counters, as shm-stat --json)

Stops cleanly on SIGINT or SIGTERM. Exit status 0 when stopped or when the stream
ended (every writer closed), 3 when the reader at the far end is gone, 1 on error.";

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

#[derive(Debug, Default)]
struct Args {
    cmd: String,
    channel: Option<String>,
    key: Option<String>,
    side: Option<Side>,
    net: Net,
    notifier: Option<NotifierKind>,
    capacity: Option<usize>,
    mpsc: bool,
    idle: Option<AnyIdle>,
    window: u64,
    interval: u64,
    json: bool,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        window: shm_bridge::DEFAULT_WINDOW,
        interval: 1000,
        ..Args::default()
    };
    a.cmd = it.next().ok_or("a command is needed: out, in or duplex")?;
    if a.cmd == "--help" || a.cmd == "-h" {
        return Ok(a);
    }
    if !["out", "in", "duplex"].contains(&a.cmd.as_str()) {
        return Err(format!("unknown command {:?}: out, in or duplex", a.cmd));
    }
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--channel" | "--name" => a.channel = Some(value()?),
            "--key" => a.key = Some(value()?),
            "--side" => {
                a.side = Some(match value()?.as_str() {
                    "client" => Side::Client,
                    "server" => Side::Server,
                    v => return Err(format!("--side {v:?}: client or server")),
                })
            }
            "--connect" => a.net.connect.push(value()?),
            "--listen" => a.net.listen.push(value()?),
            "--config" => a.net.config = Some(value()?.into()),
            "--notifier" => {
                a.notifier = Some(value()?.parse().map_err(|e| format!("--notifier: {e}"))?)
            }
            "--capacity" => {
                a.capacity = Some(value()?.parse().map_err(|e| format!("--capacity: {e}"))?)
            }
            "--mpsc" => a.mpsc = true,
            "--idle" => a.idle = Some(value()?.parse().map_err(|e| format!("--idle: {e}"))?),
            "--window" => a.window = value()?.parse().map_err(|e| format!("--window: {e}"))?,
            "--interval" => {
                a.interval = value()?.parse().map_err(|e| format!("--interval: {e}"))?
            }
            "--json" => a.json = true,
            "-h" | "--help" => a.cmd = "--help".into(),
            f => return Err(format!("unknown option {f:?} (see --help)")),
        }
    }
    if a.cmd == "--help" {
        return Ok(a);
    }
    if a.channel.is_none() || a.key.is_none() {
        return Err(format!(
            "{} needs {} and --key",
            a.cmd,
            if a.cmd == "duplex" {
                "--name"
            } else {
                "--channel"
            }
        ));
    }
    if a.cmd == "duplex" && a.side.is_none() {
        return Err("duplex needs --side client or --side server".into());
    }
    Ok(a)
}

impl Args {
    fn builder(&self) -> ChannelBuilder {
        let mut b =
            ChannelBuilder::new().notifier_kind(self.notifier.unwrap_or(NotifierKind::Futex));
        if let Some(c) = self.capacity {
            b = b.capacity(c);
        }
        b
    }

    fn idle(&self) -> AnyIdle {
        self.idle
            .clone()
            .unwrap_or_else(|| "adaptive".parse().expect("a known strategy"))
    }
}

/// Opens `name`, or creates it when it does not exist (and opens it if someone else
/// created it meanwhile).
fn open_or_create<T>(
    open: impl Fn() -> Result<T, ChannelError>,
    create: impl FnOnce() -> Result<T, ChannelError>,
) -> Result<T, ChannelError> {
    match open() {
        Err(ChannelError::Segment(SegmentError::NotFound(_))) => match create() {
            Err(ChannelError::Segment(SegmentError::AlreadyExists(_))) => open(),
            other => other,
        },
        other => other,
    }
}

fn run(args: &Args, session: &zenoh::Session, ctl: &Controls) -> Result<Ending, BridgeError> {
    let (name, key) = (
        args.channel.as_deref().expect("checked"),
        args.key.as_deref().expect("checked"),
    );
    let b = args.builder();
    let ch = |e: ChannelError| BridgeError::Channel(e.to_string());
    macro_rules! out {
        ($k:ty) => {{
            let rx: Receiver<$k, AnyNotifier, AnyIdle> = open_or_create(
                || Receiver::open(name, args.idle()),
                || b.create_receiver(name, args.idle()),
            )
            .map_err(ch)?;
            outbound::run(rx, session, key, &ctl.requests)
        }};
    }
    macro_rules! inb {
        ($k:ty) => {{
            let tx: Sender<$k, AnyNotifier, AnyIdle> = open_or_create(
                || Sender::open(name, args.idle()),
                || b.create_sender(name, args.idle()),
            )
            .map_err(ch)?;
            inbound::run(tx, session, key, &ctl.requests)
        }};
    }
    match (args.cmd.as_str(), args.mpsc) {
        ("out", false) => out!(Spsc),
        ("out", true) => out!(Mpsc),
        ("in", false) => inb!(Spsc),
        ("in", true) => inb!(Mpsc),
        _ => Duplex {
            name: name.into(),
            side: args.side.expect("checked"),
            key: key.into(),
            builder: b,
            idle: args.idle(),
            open_timeout: Duration::from_secs(30),
        }
        .run(session, ctl),
    }
}

/// Prints a progress line (or a JSON line) every `interval` until `done`.
fn progress(args: &Args, ctl: &Controls, done: &AtomicBool) {
    let period = Duration::from_millis(args.interval);
    let label = format!("{} {}", args.cmd, args.channel.as_deref().unwrap_or(""));
    let snap = || ctl.requests.counters().snapshot() + ctl.replies.counters().snapshot();
    let (mut last, mut at) = (snap(), Instant::now());
    while !done.load(Ordering::Relaxed) {
        if SIGNALLED.load(Ordering::Relaxed) {
            ctl.stop();
        }
        std::thread::sleep(Duration::from_millis(20));
        if args.interval == 0 || at.elapsed() < period {
            continue;
        }
        let now = snap();
        let rate = (now.messages - last.messages) as f64 / at.elapsed().as_secs_f64();
        (last, at) = (now, Instant::now());
        if args.json {
            println!("{}", now.to_json());
        } else {
            eprintln!(
                "{label}: {} msgs, {} bytes, {rate:.0} msgs/s, in flight {}, reconnects {}, \
                 lost in flight {}, gaps {}, refused {}",
                now.messages,
                now.bytes,
                now.in_flight,
                now.reconnects,
                now.lost_in_flight,
                now.gaps,
                now.refused
            );
        }
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) if a.cmd == "--help" => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("shm-bridge: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zeroed and then filled in as the kernel expects.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let session = match args.net.open() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shm-bridge: {e}");
            return ExitCode::from(1);
        }
    };
    let ctl = Controls::new(args.window);
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| progress(&args, &ctl, &done));
        let r = run(&args, &session, &ctl);
        done.store(true, Ordering::Relaxed);
        r
    });
    let total = ctl.requests.counters().snapshot() + ctl.replies.counters().snapshot();
    match result {
        Ok(ending) => {
            eprintln!("shm-bridge: {ending:?}; {}", total.to_json());
            match ending {
                Ending::ReaderGone => ExitCode::from(3),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("shm-bridge: {e}");
            ExitCode::from(1)
        }
    }
}
