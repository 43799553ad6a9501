//! Helpers for the cross-process integration tests: unique names, child processes that
//! cannot outlive the test, and self-checking record contents.
#![allow(missing_docs)]

use std::os::fd::BorrowedFd;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A segment name unique to this process and call.
pub fn unique_name(tag: &str) -> String {
    #[allow(clippy::disallowed_types)] // a test counter, not shared memory
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("shmring-test-{}-{tag}-{n}", std::process::id())
}

/// A child process killed and reaped on drop, so a failing test leaves none behind.
#[derive(Debug)]
pub struct Peer(Option<Child>);

impl Peer {
    /// Spawns `cmd`; the child gets SIGKILL if this process dies, and `inherit` (if any)
    /// stays open across exec in the child only.
    pub fn spawn(mut cmd: Command, inherit: Option<BorrowedFd<'_>>) -> Peer {
        if let Some(fd) = inherit {
            shm_notify::handover::inherit(&mut cmd, &[fd]);
        }
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // prctl, which is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Peer(Some(cmd.spawn().expect("spawn peer")))
    }

    /// Waits for exit at most `timeout`; kills the child and panics after that.
    pub fn wait_timeout(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.0.as_mut().expect("child");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.0 = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "peer did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Peer {
    /// The child's piped stdout, if it was piped.
    pub fn stdout(&mut self) -> Option<&mut std::process::ChildStdout> {
        self.0.as_mut()?.stdout.as_mut()
    }

    /// The exit status if the child has exited (it is reaped then), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.0.as_mut()?.try_wait().expect("try_wait")?;
        self.0 = None;
        Some(status)
    }

    /// The child's pid (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Takes the child's piped stderr.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.0.as_mut()?.stderr.take()
    }

    /// Takes the child's piped stdout (for a reader that outlives many lines).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.0.as_mut()?.stdout.take()
    }

    /// Sends SIGKILL and reaps the child; a peer it runs as a child of its own (`unshare
    /// --fork --kill-child`) dies with it and is gone too when this returns.
    pub fn kill(mut self) {
        if let Some(mut c) = self.0.take() {
            kill_tree(&mut c);
        }
    }
}

/// SIGKILLs and reaps `c`, and any child of its own (`unshare --fork` runs the peer as
/// one), so the peer is gone when this returns. `c` is stopped first so it cannot fork
/// while its children are listed; the children are killed after it (killing them first
/// makes `unshare` complain), through pidfds, so a pid reused meanwhile is never hit.
fn kill_tree(c: &mut Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    use nix::unistd::Pid;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    let pid = Pid::from_raw(c.id() as i32);
    if kill(pid, Signal::SIGSTOP).is_ok() {
        // Until it has stopped (or exited): WNOWAIT leaves it for `c.wait` to reap.
        let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        let _ = waitid(Id::Pid(pid), flags);
    }
    let children: Vec<OwnedFd> =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id()))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<libc::pid_t>().ok())
            .filter_map(|pid| {
                // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
                // SAFETY: a non-negative result is a new fd nothing else owns.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
            })
            .collect();
    let _ = c.kill();
    let _ = c.wait();
    for fd in &children {
        // SAFETY: pidfd_send_signal takes a pidfd we own, a signal, a null siginfo and
        // flags 0; no memory is passed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        let mut poll = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut poll, nix::poll::PollTimeout::from(5000u16));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            kill_tree(&mut c);
        }
    }
}

/// Whether this process can run peers in new PID namespaces (root, and `unshare(1)`
/// works here).
pub fn pid_namespaces_available() -> bool {
    nix::unistd::geteuid().is_root()
        && Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// `program args` to run in a new PID namespace, with its own `/proc` or the host's
/// (`unshare --pid --fork --kill-child`: the peer dies with the `unshare` process).
pub fn in_pid_namespace(program: &std::ffi::OsStr, own_proc: bool) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child"]);
    if own_proc {
        cmd.arg("--mount-proc");
    }
    cmd.arg(program);
    cmd
}

/// xorshift64*: cheap deterministic bytes.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// xorshift64 for the randomised tests; `seed_from_env(VAR)` seeds it from `VAR` (to
/// replay a failure) or from the clock, and says which.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the environment variable `var` if set, else from the clock; prints
    /// the seed under `what`.
    pub fn seed_from_env(var: &str, what: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970");
                t.as_nanos() as u64 ^ std::process::id() as u64
            });
        eprintln!("{what}: {var}={seed}");
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }
}

/// The channel tests' message from producer `id`: `[id: u32][encode(seed, id, seq)]`,
/// built in `body` (`rec` is scratch).
pub fn encode_message(
    seed: u64,
    id: u32,
    seq: u64,
    max: usize,
    rec: &mut Vec<u8>,
    body: &mut Vec<u8>,
) {
    encode(seed, id, seq, max, rec);
    body.clear();
    body.extend_from_slice(&id.to_le_bytes());
    body.extend_from_slice(rec);
}

/// Shortest record body: sequence number plus checksum.
pub const MIN_BODY: usize = 12;

/// Body of record `seq` from `producer`: `[seq: u64][payload][fnv1a(seq ++ payload): u32]`,
/// with a length in `MIN_BODY..=max` and payload bytes both derived from (seed, producer, seq).
pub fn encode(seed: u64, producer: u32, seq: u64, max: usize, out: &mut Vec<u8>) {
    let mut x = seed ^ (producer as u64) << 48 ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = MIN_BODY + (next(&mut x) as usize % (max - MIN_BODY + 1));
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    while out.len() < len - 4 {
        let w = next(&mut x).to_le_bytes();
        let take = (len - 4 - out.len()).min(8);
        out.extend_from_slice(&w[..take]);
    }
    let sum = fnv1a(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// Checks a received body against its checksum and against the expected record `seq`.
pub fn verify(
    seed: u64,
    producer: u32,
    seq: u64,
    max: usize,
    body: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    if body.len() < MIN_BODY {
        return Err(format!(
            "producer {producer} seq {seq}: body of {} bytes",
            body.len()
        ));
    }
    let (data, sum) = body.split_at(body.len() - 4);
    if fnv1a(data).to_le_bytes() != sum {
        return Err(format!(
            "producer {producer} seq {seq}: checksum mismatch (torn record)"
        ));
    }
    let got_seq = u64::from_le_bytes(data[..8].try_into().unwrap());
    if got_seq != seq {
        return Err(format!(
            "producer {producer}: expected seq {seq}, got {got_seq} (lost or reordered)"
        ));
    }
    encode(seed, producer, seq, max, scratch);
    if scratch[..] != *body {
        return Err(format!("producer {producer} seq {seq}: contents differ"));
    }
    Ok(())
}

/// Longest body the cross-process tests send (kept small so a million records is quick).
pub const MAX_BODY: usize = 256;

/// An idle strategy the channel tests can build by type.
pub trait MakeIdle: Sized {
    /// The strategy as the tests configure it.
    fn make() -> Self;
}

impl MakeIdle for shm_idle::BusySpin {
    fn make() -> Self {
        shm_idle::BusySpin
    }
}

impl MakeIdle for shm_idle::Backoff {
    fn make() -> Self {
        shm_idle::Backoff::default()
    }
}

impl MakeIdle for shm_idle::Blocking {
    fn make() -> Self {
        shm_idle::Blocking
    }
}

impl MakeIdle for shm_idle::Adaptive {
    fn make() -> Self {
        shm_idle::Adaptive::new()
    }
}

impl MakeIdle for shm_idle::EpollPark {
    fn make() -> Self {
        shm_idle::EpollPark::new(100, None)
    }
}

/// Calls `$f::<K, N, I>($args)` for the ring kind, notifier and idle strategy named by
/// the three strings (`spsc|mpsc`, `futex|sem|fifo|eventfd`,
/// `spin|backoff|blocking|adaptive|epoll`);
/// `epoll` only with the pollable notifiers, as the types demand.
#[macro_export]
macro_rules! dispatch {
    ($kind:expr, $notifier:expr, $idle:expr, $f:ident ( $($args:expr),* )) => {
        match $kind {
            "spsc" => $crate::dispatch!(@n shm_ring::Spsc, $notifier, $idle, $f($($args),*)),
            "mpsc" => $crate::dispatch!(@n shm_channel::Mpsc, $notifier, $idle, $f($($args),*)),
            k => panic!("unknown kind {k}"),
        }
    };
    (@n $k:ty, $notifier:expr, $idle:expr, $f:ident ( $($args:expr),* )) => {
        match ($notifier, $idle) {
            ("futex", "spin") => $f::<$k, shm_notify::Futex, shm_idle::BusySpin>($($args),*),
            ("futex", "backoff") => $f::<$k, shm_notify::Futex, shm_idle::Backoff>($($args),*),
            ("futex", "blocking") => $f::<$k, shm_notify::Futex, shm_idle::Blocking>($($args),*),
            ("futex", "adaptive") => $f::<$k, shm_notify::Futex, shm_idle::Adaptive>($($args),*),
            ("sem", "spin") => $f::<$k, shm_notify::Semaphore, shm_idle::BusySpin>($($args),*),
            ("sem", "backoff") => $f::<$k, shm_notify::Semaphore, shm_idle::Backoff>($($args),*),
            ("sem", "blocking") => $f::<$k, shm_notify::Semaphore, shm_idle::Blocking>($($args),*),
            ("sem", "adaptive") => $f::<$k, shm_notify::Semaphore, shm_idle::Adaptive>($($args),*),
            ("fifo", "spin") => $f::<$k, shm_notify::Fifo, shm_idle::BusySpin>($($args),*),
            ("fifo", "backoff") => $f::<$k, shm_notify::Fifo, shm_idle::Backoff>($($args),*),
            ("fifo", "epoll") => $f::<$k, shm_notify::Fifo, shm_idle::EpollPark>($($args),*),
            ("fifo", "blocking") => $f::<$k, shm_notify::Fifo, shm_idle::Blocking>($($args),*),
            ("fifo", "adaptive") => $f::<$k, shm_notify::Fifo, shm_idle::Adaptive>($($args),*),
            ("eventfd", "spin") => $f::<$k, shm_notify::EventFd, shm_idle::BusySpin>($($args),*),
            ("eventfd", "backoff") => $f::<$k, shm_notify::EventFd, shm_idle::Backoff>($($args),*),
            ("eventfd", "epoll") => $f::<$k, shm_notify::EventFd, shm_idle::EpollPark>($($args),*),
            ("eventfd", "blocking") => $f::<$k, shm_notify::EventFd, shm_idle::Blocking>($($args),*),
            ("eventfd", "adaptive") => $f::<$k, shm_notify::EventFd, shm_idle::Adaptive>($($args),*),
            (n, i) => panic!("no channel {n}/{i}"),
        }
    };
}

/// Creates a channel's receiving end for the cross-process tests: by a unique name, or
/// anonymous (fds to inherit, `-` as the target) for eventfd. Returns the receiver, the
/// target a peer attaches to, and the fds to hand over.
pub fn create_receiver<K, N, I>(
    notifier: &str,
    b: &shm_channel::ChannelBuilder,
) -> (
    shm_channel::Receiver<K, N, I>,
    String,
    Option<shm_channel::Handoff>,
)
where
    K: shm_channel::ChannelKind,
    N: shm_channel::ChannelNotifier,
    I: shm_idle::ParksOn<N> + MakeIdle,
{
    if notifier == "eventfd" {
        let (rx, handoff) = b.anonymous_receiver::<K, N, I>(I::make()).unwrap();
        (rx, "-".into(), Some(handoff))
    } else {
        let name = unique_name("chan");
        (
            b.create_receiver::<K, N, I>(&name, I::make()).unwrap(),
            name,
            None,
        )
    }
}

/// Starts `exe` (a peer binary) with `args`, handing it `handoff`'s fds, its stdout
/// piped when asked.
pub fn spawn_peer(
    exe: &str,
    args: &[&str],
    handoff: Option<&shm_channel::Handoff>,
    stdout: bool,
) -> Peer {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    if stdout {
        cmd.stdout(std::process::Stdio::piped());
    }
    if let Some(h) = handoff {
        h.inherit(&mut cmd);
    }
    Peer::spawn(cmd, None)
}

/// The next line the peer printed (its stdout must be piped), trimmed.
pub fn read_line(p: &mut Peer) -> String {
    let out = p.stdout().expect("piped stdout");
    let mut line = String::new();
    // One line at a time, unbuffered: the peer may print more later.
    let mut byte = [0u8; 1];
    while std::io::Read::read(out, &mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    line.trim().to_owned()
}

/// Uses up this process's fds (for the fd-exhaustion tests): lowers the soft
/// `RLIMIT_NOFILE` to just above the highest open fd and opens `/dev/null` until `EMFILE`,
/// leaving `spare` of them closed again. Returns how many stay open.
pub fn exhaust_fds(spare: usize) -> usize {
    use std::os::fd::IntoRawFd;
    let highest = std::fs::read_dir("/proc/self/fd")
        .ok()
        .and_then(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .max()
        })
        .unwrap_or(1023);
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        (highest + 1).min(hard),
        hard,
    )
    .expect("setrlimit");
    let mut opened = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => opened.push(f.into_raw_fd()),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
    for fd in opened.drain(opened.len().saturating_sub(spare)..) {
        // SAFETY: fd was opened above and is owned by nothing else.
        unsafe { libc::close(fd) };
    }
    opened.len()
}

/// The name of ring kind `K` as the peer binaries take it.
pub fn kind_name<K: shm_channel::ChannelKind>() -> &'static str {
    if K::KIND == shm_ring::Kind::Spsc {
        "spsc"
    } else {
        "mpsc"
    }
}

/// A notifier of `notifiers` and an idle strategy that pairs with it (epoll only with
/// pollable notifiers), chosen by the random bits `r`.
pub fn combo(r: u64, notifiers: &[&'static str]) -> (&'static str, &'static str) {
    let n = notifiers[(r % notifiers.len() as u64) as usize];
    let idles: &[&str] = match n {
        // blocking and epoll park untimed on these, watching the peers' pidfds.
        "fifo" | "eventfd" => &["spin", "backoff", "epoll", "blocking", "adaptive"],
        _ => &["spin", "backoff", "blocking", "adaptive"],
    };
    (n, idles[((r >> 8) % idles.len() as u64) as usize])
}

/// One "creator killed" round of the crash tests: `creator` runs `create-hang` on
/// `name`. With `live_check`, once it has created: its live channel must be neither
/// stale, reclaimable nor shown stale; else it is killed after `kill_after`. After the
/// kill what it left is nothing or a stale channel, which `reclaim_stale` replaces and
/// which is gone once the replacement drops. Returns 1 if the kill left a stale channel.
pub fn creator_round<K, N, I>(
    mut creator: Peer,
    b: &shm_channel::ChannelBuilder,
    name: &str,
    kill_after: Duration,
    live_check: bool,
) -> Result<u32, String>
where
    K: shm_channel::ChannelKind,
    N: shm_channel::ChannelNotifier,
    I: shm_idle::ParksOn<N> + MakeIdle,
{
    use shm_channel::{is_stale, ChannelError};
    use shm_ring::SegmentError;
    let reclaim = b.clone().reclaim_stale(true);
    if live_check {
        if read_line(&mut creator) != "created" {
            return Err("creator failed".into());
        }
        if is_stale(name).map_err(|e| e.to_string())? {
            return Err("a live creator's channel reported stale".into());
        }
        if !matches!(
            reclaim.create_receiver::<K, N, I>(name, I::make()),
            Err(ChannelError::Segment(SegmentError::AlreadyExists(_)))
        ) {
            return Err("a live creator's channel was reclaimed".into());
        }
        let shown = shm_channel::inspect(name).map_err(|e| e.to_string())?;
        if shown.is_stale() || !shown.creator.1 {
            return Err(format!("inspect of a live channel: {shown:?}"));
        }
    } else {
        std::thread::sleep(kill_after);
    }
    creator.kill();
    let was_stale = match is_stale(name) {
        Ok(true) => 1,
        Ok(false) => return Err("dead creator, channel not stale".into()),
        Err(ChannelError::Segment(SegmentError::NotFound(_))) => 0,
        Err(e) => return Err(format!("is_stale: {e}")),
    };
    let rx = reclaim
        .create_receiver::<K, N, I>(name, I::make())
        .map_err(|e| format!("reclaim after a kill: {e}"))?;
    drop(rx);
    match is_stale(name) {
        Err(ChannelError::Segment(SegmentError::NotFound(_))) => Ok(was_stale),
        other => Err(format!(
            "left behind after the reclaimed channel: {other:?}"
        )),
    }
}

/// A copy of a test binary that another user may run (the build tree may not be
/// reachable for them), removed on drop.
#[derive(Debug)]
pub struct SharedCopy(pub std::path::PathBuf);

impl SharedCopy {
    pub fn new(bin: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(unique_name("peer-bin"));
        std::fs::copy(bin, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        SharedCopy(path)
    }
}

impl Drop for SharedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
