//! Every strategy driven by a recording fake parker with a fake clock: the exact
//! sequence of spin / yield / sleep / park decisions for a work pattern, reset on work,
//! park timeouts doubling up to the cap. One suite of expectations per strategy.

use shm_idle::{
    Action, Adaptive, AnyIdle, AnyPollIdle, Backoff, Blocking, BusySpin, EpollPark, IdleStrategy,
    NoOp, Parker, Sleeping, Yielding,
};
use std::time::Duration;

/// Records what it was asked to do; "time" advances only by sleeps and parks.
#[derive(Default, Debug)]
struct Recorder {
    log: Vec<String>,
    clock: Duration,
}

impl Parker for Recorder {
    fn spin(&mut self) {
        self.log.push("S".into());
    }
    fn yield_now(&mut self) {
        self.log.push("Y".into());
    }
    fn sleep(&mut self, d: Duration) {
        self.clock += d;
        self.log.push(format!("sleep {}", d.as_micros()));
    }
    fn park(&mut self, t: Option<Duration>) {
        self.clock += t.unwrap_or_default();
        self.log.push(match t {
            Some(t) => format!("P{}", t.as_micros()),
            None => "P-".into(),
        });
    }
}

/// Runs `pattern` (work per poll) through `s`; "-" marks a poll that did work.
fn drive(s: &mut impl IdleStrategy, pattern: &[usize]) -> Recorder {
    let mut r = Recorder::default();
    for &work in pattern {
        let a = s.idle(work);
        if a == Action::Continue {
            r.log.push("-".into());
        }
        a.apply(&mut r);
    }
    r
}

fn log(s: &mut impl IdleStrategy, pattern: &[usize]) -> String {
    drive(s, pattern).log.join(" ")
}

const PATTERN: [usize; 8] = [0, 0, 0, 1, 0, 0, 5, 0];

#[test]
fn stateless_strategies() {
    assert_eq!(log(&mut BusySpin, &PATTERN), "S S S - S S - S");
    assert_eq!(log(&mut NoOp, &PATTERN), "- - - - - - - -");
    assert_eq!(log(&mut Yielding, &PATTERN), "Y Y Y - Y Y - Y");
    assert_eq!(log(&mut Blocking, &PATTERN), "P- P- P- - P- P- - P-");
    let r = drive(&mut Sleeping::new(Duration::from_micros(70)), &PATTERN);
    assert_eq!(
        r.log.join(" "),
        "sleep 70 sleep 70 sleep 70 - sleep 70 sleep 70 - sleep 70"
    );
    assert_eq!(r.clock, Duration::from_micros(6 * 70));
}

#[test]
fn backoff_ramps_doubles_caps_and_resets() {
    let mut b = Backoff::new(2, 3, Duration::from_micros(100), Duration::from_micros(500));
    let idle = [0; 10];
    let r = drive(&mut b, &idle);
    assert_eq!(r.log.join(" "), "S S Y Y Y P100 P200 P400 P500 P500");
    assert_eq!(r.clock, Duration::from_micros(100 + 200 + 400 + 500 + 500));
    // Work resets the ramp and the park period.
    assert_eq!(log(&mut b, &[1, 0, 0, 0, 0, 0, 0]), "- S S Y Y Y P100");
    b.reset();
    assert_eq!(log(&mut b, &[0]), "S");
}

#[test]
fn backoff_defaults_are_the_benchmarked_ones() {
    let (spins, yields, min, max) = Backoff::default().limits();
    assert_eq!(
        (spins, yields, min, max),
        (100, 5, Duration::from_micros(1), Duration::from_millis(50))
    );
    let r = drive(&mut Backoff::default(), &[0; 125]);
    let parks: Vec<_> = r
        .log
        .iter()
        .filter(|l| l.starts_with('P'))
        .cloned()
        .collect();
    assert_eq!(parks[..4], ["P1", "P2", "P4", "P8"]);
    assert_eq!(parks.len(), 20, "after 100 spins and 5 yields");
    assert_eq!(parks.last().unwrap(), "P50000", "capped at max_park");
}

#[test]
fn backoff_with_zero_phases_parks_at_once() {
    let mut b = Backoff::new(0, 0, Duration::from_micros(3), Duration::from_micros(3));
    assert_eq!(log(&mut b, &[0, 0]), "P3 P3");
}

#[test]
fn epoll_park_spends_its_budget_then_parks() {
    let mut e = EpollPark::new(3, Some(Duration::from_micros(250)));
    assert_eq!(
        log(&mut e, &[0, 0, 0, 0, 0, 2, 0, 0, 0, 0]),
        "S S S P250 P250 - S S S P250"
    );
    let mut forever = EpollPark::new(0, None);
    assert_eq!(log(&mut forever, &[0, 0]), "P- P-");
}

#[test]
fn names_are_stable() {
    let names: Vec<&str> = [
        BusySpin.name(),
        NoOp.name(),
        Yielding.name(),
        Sleeping::default().name(),
        Blocking.name(),
        Backoff::default().name(),
        EpollPark::new(1, None).name(),
        Adaptive::new().name(),
    ]
    .to_vec();
    assert_eq!(
        names,
        ["spin", "noop", "yield", "sleep", "blocking", "backoff", "epoll", "adaptive"]
    );
}

#[test]
fn any_idle_parses_and_behaves_like_the_concrete_strategy() {
    let mut any: AnyIdle = "backoff:spins=2,yields=3,min=100us,max=500us"
        .parse()
        .unwrap();
    assert_eq!(
        log(&mut any, &[0; 10]),
        "S S Y Y Y P100 P200 P400 P500 P500"
    );
    let mut s: AnyIdle = "sleep:period=70us".parse().unwrap();
    assert_eq!(log(&mut s, &[0]), "sleep 70");
    for (input, name) in [
        ("spin", "spin"),
        ("noop", "noop"),
        ("yield", "yield"),
        ("blocking", "blocking"),
        ("sleep", "sleep"),
        ("adaptive", "adaptive"),
    ] {
        assert_eq!(input.parse::<AnyIdle>().unwrap().name(), name);
    }
    for (input, budget) in [
        ("adaptive", None),
        ("adaptive:budget=0.05", Some(0.05)),
        ("adaptive:budget=5%", Some(0.05)),
    ] {
        let AnyIdle::Adaptive(a) = input.parse::<AnyIdle>().unwrap() else {
            panic!("{input} is not adaptive");
        };
        assert_eq!(a.budget(), budget, "{input}");
    }
    let mut e: AnyPollIdle = "epoll:budget=2,timeout=1ms".parse().unwrap();
    assert_eq!(log(&mut e, &[0, 0, 0]), "S S P1000");
    let mut e: AnyPollIdle = "epoll:budget=0,timeout=none".parse().unwrap();
    assert_eq!(log(&mut e, &[0]), "P-");
    let mut e: AnyPollIdle = "epoll:budget=1,park_min=10us,park_max=25us"
        .parse()
        .unwrap();
    assert_eq!(log(&mut e, &[0, 0, 0, 0, 1, 0, 0]), "S P10 P20 P25 - S P10");
    assert_eq!("yield".parse::<AnyPollIdle>().unwrap().name(), "yield");
}

#[test]
fn bad_strings_list_what_is_accepted() {
    for bad in [
        "",
        "spinning",
        "sleep:period=5",
        "sleep:period=fast",
        "backoff:spins=-1",
        "backoff:spins=1,spins=2",
        "backoff:colour=red",
        "spin:x=1",
        "backoff:spins",
        "epoll:timeout=1h",
        "adaptive:budget=2",
        "adaptive:budget=-0.1",
        "adaptive:budget=150%",
        "adaptive:budget=some",
        "adaptive:spins=10",
    ] {
        let e = bad.parse::<AnyPollIdle>().unwrap_err().to_string();
        assert!(e.contains("accepted: spin | noop | yield"), "{bad}: {e}");
    }
    let e = "epoll".parse::<AnyIdle>().unwrap_err().to_string();
    assert!(e.contains("pollable notifier"), "{e}");
    assert!(e.contains("AnyPollNotifier"), "{e}");
    // What AnyIdle lists as accepted is what it accepts: no epoll.
    for bad in ["epoll", "spinning"] {
        let e = bad.parse::<AnyIdle>().unwrap_err().to_string();
        let accepted = e.split("accepted: ").nth(1).unwrap();
        assert!(!accepted.contains("epoll["), "{bad}: {e}");
        assert!(accepted.contains("adaptive"), "{bad}: {e}");
    }
}
