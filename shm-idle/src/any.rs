//! Choosing a strategy at run time from a string such as `backoff:spins=100,max=1ms`.

use crate::{Adaptive, Backoff, Blocking, BusySpin, EpollPark, NoOp, ParksOn, Sleeping, Yielding};
use shm_notify::{Notifier, PollableNotifier, Wait};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::str::FromStr;
use std::time::Duration;

/// Strategy strings [`AnyPollIdle`] accepts (pollable notifiers: eventfd, fifo).
pub const ACCEPTED: &str = "spin | noop | yield | sleep[:period=DUR] | blocking | \
backoff[:spins=N,yields=N,min=DUR,max=DUR] | adaptive[:budget=FRACTION] | epoll[:budget=N,timeout=DUR|none,park_min=DUR,park_max=DUR] \
(DUR: a number with ns, us, ms or s)";

/// Strategy strings [`AnyIdle`] accepts (every notifier; no `epoll`).
pub const ACCEPTED_ANY: &str = "spin | noop | yield | sleep[:period=DUR] | blocking | \
backoff[:spins=N,yields=N,min=DUR,max=DUR] | adaptive[:budget=FRACTION] \
(DUR: a number with ns, us, ms or s); epoll needs AnyPollIdle and a pollable notifier";

/// Any strategy that works with every notifier, chosen at run time.
///
/// ```
/// use shm_idle::{AnyIdle, IdleStrategy};
/// let s: AnyIdle = "backoff:spins=100,yields=10,min=1us,max=1ms".parse()?;
/// assert_eq!(s.name(), "backoff");
/// assert!("epoll".parse::<AnyIdle>().is_err()); // needs a pollable notifier: AnyPollIdle
/// # Ok::<(), shm_idle::ParseError>(())
/// ```
#[enum_dispatch::enum_dispatch(IdleStrategy)]
#[derive(Debug, Clone)]
pub enum AnyIdle {
    /// `spin`
    BusySpin,
    /// `noop`
    NoOp,
    /// `yield`
    Yielding,
    /// `sleep`
    Sleeping,
    /// `blocking`
    Blocking,
    /// `backoff`
    Backoff,
    /// `adaptive`
    Adaptive,
}

impl<N: Notifier + ?Sized> ParksOn<N> for AnyIdle {}

/// Any strategy, `epoll` included, for pollable notifiers (eventfd, FIFO).
///
/// ```
/// use shm_idle::{AnyPollIdle, IdleStrategy};
/// let s: AnyPollIdle = "epoll:budget=200,timeout=100us".parse()?;
/// assert_eq!(s.name(), "epoll");
/// # Ok::<(), shm_idle::ParseError>(())
/// ```
#[enum_dispatch::enum_dispatch(IdleStrategy)]
#[derive(Debug, Clone)]
pub enum AnyPollIdle {
    /// Any strategy that does not need the fd.
    AnyIdle,
    /// `epoll`
    EpollPark,
}

impl<N: PollableNotifier + ?Sized> ParksOn<N> for AnyPollIdle {
    fn block(&mut self, notifier: &N, timeout: Option<Duration>) -> io::Result<Wait> {
        match self {
            AnyPollIdle::AnyIdle(s) => s.block(notifier, timeout),
            AnyPollIdle::EpollPark(s) => s.block(notifier, timeout),
        }
    }

    fn watches(&self, notifier: &N) -> bool {
        match self {
            AnyPollIdle::AnyIdle(s) => s.watches(notifier),
            AnyPollIdle::EpollPark(s) => s.watches(notifier),
        }
    }

    fn block_watching(
        &mut self,
        notifier: &N,
        watch: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> io::Result<Wait> {
        match self {
            AnyPollIdle::AnyIdle(s) => s.block_watching(notifier, watch, timeout),
            AnyPollIdle::EpollPark(s) => s.block_watching(notifier, watch, timeout),
        }
    }
}

/// A strategy string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    input: String,
    reason: String,
    accepted: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad idle strategy {:?}: {}; accepted: {}",
            self.input, self.reason, self.accepted
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses `10ns`, `5us`, `1ms`, `2s` (also `µs`).
fn duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    Ok(match unit {
        "ns" => Duration::from_nanos(n),
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return Err(format!("{s:?} has no unit (ns, us, ms, s)")),
    })
}

struct Params<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Params<'a> {
    fn parse(s: &'a str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for kv in s.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv:?} is not key=value"))?;
            if map.insert(k, v).is_some() {
                return Err(format!("{k:?} given twice"));
            }
        }
        Ok(Params(map))
    }

    fn take<T>(
        &mut self,
        key: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        self.0.remove(key).map_or(Ok(default), parse)
    }

    fn done(self, name: &str) -> Result<(), String> {
        match self.0.keys().next() {
            Some(k) => Err(format!("{name} takes no parameter {k:?}")),
            None => Ok(()),
        }
    }
}

fn count(s: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("{s:?} is not a count"))
}

/// A share of a core, `0.05` or `5%`.
fn fraction(s: &str) -> Result<Option<f64>, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(f) if (0.0..=scale).contains(&f) => Ok(Some(f / scale)),
        _ => Err(format!(
            "{s:?} is not a share of a core (0.0 to 1.0, or 0% to 100%)"
        )),
    }
}

fn parse_any(s: &str) -> Result<AnyPollIdle, String> {
    let (name, rest) = s.split_once(':').unwrap_or((s, ""));
    let mut p = Params::parse(rest)?;
    let strategy: AnyPollIdle = match name {
        "spin" => AnyIdle::from(BusySpin).into(),
        "noop" => AnyIdle::from(NoOp).into(),
        "yield" => AnyIdle::from(Yielding).into(),
        "blocking" => AnyIdle::from(Blocking).into(),
        "sleep" => AnyIdle::from(Sleeping::new(p.take(
            "period",
            Sleeping::default().period,
            duration,
        )?))
        .into(),
        "backoff" => {
            let (spins, yields, min, max) = Backoff::default().limits();
            let b = Backoff::new(
                p.take("spins", spins, count)?,
                p.take("yields", yields, count)?,
                p.take("min", min, duration)?,
                p.take("max", max, duration)?,
            );
            AnyIdle::from(b).into()
        }
        "adaptive" => AnyIdle::from(match p.take("budget", None, fraction)? {
            Some(f) => Adaptive::with_budget(f),
            None => Adaptive::new(),
        })
        .into(),
        "epoll" => {
            let budget = p.take("budget", 100, count)?;
            let timeout = p.take("timeout", None, |v| {
                if v == "none" {
                    Ok(None)
                } else {
                    duration(v).map(Some)
                }
            })?;
            let ramp = (
                p.take("park_min", None, |v| duration(v).map(Some))?,
                p.take("park_max", None, |v| duration(v).map(Some))?,
            );
            match ramp {
                (None, None) => EpollPark::new(budget, timeout).into(),
                (min, max) => {
                    let min = min.unwrap_or(Duration::from_micros(1));
                    let max = max.unwrap_or(Duration::from_millis(50));
                    EpollPark::new(budget, timeout)
                        .with_park_backoff(min, max)
                        .into()
                }
            }
        }
        _ => return Err(format!("unknown strategy {name:?}")),
    };
    p.done(name)?;
    Ok(strategy)
}

impl FromStr for AnyPollIdle {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        parse_any(s).map_err(|reason| ParseError {
            input: s.to_owned(),
            reason,
            accepted: ACCEPTED,
        })
    }
}

impl FromStr for AnyIdle {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.parse::<AnyPollIdle>() {
            Ok(AnyPollIdle::AnyIdle(a)) => Ok(a),
            Ok(AnyPollIdle::EpollPark(_)) => Err(ParseError {
                input: s.to_owned(),
                reason: "epoll parks in epoll on the notifier's fd: use AnyPollIdle with a \
                         pollable notifier (EventFd, Fifo, or AnyPollNotifier chosen at run \
                         time)"
                    .into(),
                accepted: ACCEPTED_ANY,
            }),
            Err(e) => Err(ParseError {
                accepted: ACCEPTED_ANY,
                ..e
            }),
        }
    }
}
