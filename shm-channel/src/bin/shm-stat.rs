//! `shm-stat [--json] [NAME...]`: this user's channels under /dev/shm (or the named
//! ones), with ring kind, notifier, capacity, fill level, head and tail, heartbeats,
//! parked waiters, the ends' liveness and the creator's, and `STALE` where the creator
//! died (`ChannelBuilder::reclaim_stale` replaces such a channel). Reads only.

// The loom build (`--cfg shm_loom`) has no OS notifiers, hence no inspection.
#[cfg(not(shm_loom))]
mod stat {
    use shm_channel::{channel_names, inspect, ChannelInfo, EndState};
    use std::fmt::Write as _;

    fn end(e: &EndState) -> String {
        match e {
            EndState::Free => "free".into(),
            EndState::Closed => "closed".into(),
            EndState::Open { pid, alive: true } => format!("pid {pid}"),
            EndState::Open { pid, alive: false } => format!("dead {pid}"),
            EndState::Claiming { pid, alive } => {
                format!("claiming {pid}{}", if *alive { "" } else { " (dead)" })
            }
            EndState::Corrupt(v) => format!("corrupt {v:#x}"),
        }
    }

    fn waiters((n, notified): (u32, bool)) -> String {
        format!("{n}{}", if notified { "+wake" } else { "" })
    }

    fn row(i: &ChannelInfo) -> Vec<String> {
        let live = i
            .writers
            .iter()
            .filter(|w| matches!(w, EndState::Open { alive: true, .. }))
            .count();
        vec![
            i.name.clone(),
            i.ring.to_string(),
            i.notifier.map_or("?".into(), |n| n.to_string()),
            i.capacity.to_string(),
            format!("{:.1}%", i.fill_percent()),
            i.head.to_string(),
            i.tail.to_string(),
            end(&i.reader),
            format!("{live}/{}", i.writers.len()),
            waiters(i.data_waiters),
            waiters(i.space_waiters),
            format!("{}/{}", i.heartbeats.0, i.heartbeats.1),
            format!(
                "{} {}",
                i.creator.0,
                if i.creator.1 { "alive" } else { "STALE" }
            ),
        ]
    }

    fn table(infos: &[ChannelInfo]) -> String {
        let head = [
            "name",
            "ring",
            "notifier",
            "capacity",
            "fill",
            "head",
            "tail",
            "reader",
            "writers",
            "parked rx",
            "parked tx",
            "heartbeats",
            "creator",
        ];
        let mut rows = vec![head.map(String::from).to_vec()];
        rows.extend(infos.iter().map(row));
        let widths: Vec<usize> = (0..head.len())
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }

    /// JSON string escape for names (the only free text).
    fn quote(s: &str) -> String {
        let mut q = String::from('"');
        for c in s.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(q, "\\u{:04x}", c as u32);
                }
                c => q.push(c),
            }
        }
        q.push('"');
        q
    }

    fn end_json(e: &EndState) -> String {
        let (state, pid, alive) = match *e {
            EndState::Free => ("free", None, None),
            EndState::Closed => ("closed", None, None),
            EndState::Open { pid, alive } => ("open", Some(pid), Some(alive)),
            EndState::Claiming { pid, alive } => ("claiming", Some(pid), Some(alive)),
            EndState::Corrupt(_) => ("corrupt", None, None),
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        format!(
            "{{\"state\":\"{state}\",\"pid\":{},\"alive\":{}}}",
            opt(pid.map(|p| p.to_string())),
            opt(alive.map(|a| a.to_string()))
        )
    }

    fn json(infos: &[ChannelInfo]) -> String {
        let items: Vec<String> = infos
            .iter()
            .map(|i| {
                let writers: Vec<String> = i.writers.iter().map(end_json).collect();
                format!(
                    "{{\"name\":{},\"ring\":\"{}\",\"notifier\":{},\"capacity\":{},\"max_message_len\":{},\"head\":{},\"tail\":{},\"used\":{},\"heartbeats\":[{},{}],\"data_waiters\":{},\"data_notified\":{},\"space_waiters\":{},\"space_notified\":{},\"reader\":{},\"writers\":[{}],\"creator_pid\":{},\"creator_alive\":{},\"stale\":{}}}",
                    quote(&i.name),
                    i.ring,
                    i.notifier.map_or("null".into(), |n| format!("\"{n}\"")),
                    i.capacity,
                    i.max_message_len,
                    i.head,
                    i.tail,
                    i.used,
                    i.heartbeats.0,
                    i.heartbeats.1,
                    i.data_waiters.0,
                    i.data_waiters.1,
                    i.space_waiters.0,
                    i.space_waiters.1,
                    end_json(&i.reader),
                    writers.join(","),
                    i.creator.0,
                    i.creator.1,
                    i.is_stale()
                )
            })
            .collect();
        format!("[{}]\n", items.join(",\n"))
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-h" || a == "--help") {
            println!("usage: shm-stat [--json] [NAME...]");
            return;
        }
        if let Some(bad) = args.iter().find(|a| a.starts_with('-') && *a != "--json") {
            eprintln!("shm-stat: unknown option {bad:?}\nusage: shm-stat [--json] [NAME...]");
            std::process::exit(2);
        }
        let as_json = args.iter().any(|a| a == "--json");
        let asked: Vec<String> = args.into_iter().filter(|a| a != "--json").collect();
        let explicit = !asked.is_empty();
        let names = if explicit { asked } else { channel_names() };
        let mut infos = Vec::new();
        let mut failed = false;
        for n in &names {
            match inspect(n) {
                Ok(i) => infos.push(i),
                Err(e) => {
                    eprintln!("shm-stat: {n}: {e}");
                    failed = true;
                }
            }
        }
        if as_json {
            print!("{}", json(&infos));
        } else {
            print!("{}", table(&infos));
        }
        if failed && explicit {
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(not(shm_loom))]
    stat::main();
}
