//! `vrouter top`: a live view of the running vrouter, refreshed every interval from
//! the API: per-worker load and packet rates, per-interface packet, bit and drop
//! rates (busiest first), drops by reason and flow setups. On a terminal it takes the
//! screen until `q` (or Esc, Ctrl-C); otherwise, or with `--iterations`, it prints
//! that many frames one after another, as `top -b` does.

use crate::api::{ApiClient, DropStatsView, FlowStatsView, InterfaceView, Request, StatusView};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// What one refresh reads.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    status: StatusView,
    interfaces: Vec<InterfaceView>,
    drops: DropStatsView,
    flows: FlowStatsView,
}

impl Sample {
    fn read(api: &ApiClient) -> anyhow::Result<Self> {
        Ok(Self {
            status: api.call(&Request::Status)?,
            interfaces: api.call(&Request::Interfaces)?,
            drops: api.call(&Request::DropStats)?,
            flows: api.call(&Request::FlowStats)?,
            at: Instant::now(),
        })
    }
}

/// Per second, from `before` to `after` over `secs` (a counter that went back, as
/// after a restart, counts from zero).
fn rate(before: u64, after: u64, secs: f64) -> f64 {
    let delta = if after >= before { after - before } else { after };
    delta as f64 / secs
}

/// The frame for the change from `prev` to `cur`: at most `rows` lines of at most
/// `width` characters.
pub fn frame(prev: &Sample, cur: &Sample, width: usize, rows: usize) -> Vec<String> {
    let secs = cur.at.duration_since(prev.at).as_secs_f64().max(1e-3);
    let s = &cur.status;
    let mut out = vec![
        format!(
            "vrouter top: generation {}, {}, {} interfaces, {} VRFs, {} workers; every {:.1} s; q quits",
            s.generation,
            if s.ready { "ready" } else { "restoring" },
            s.interfaces,
            s.vrfs,
            s.workers.len(),
            secs
        ),
        String::new(),
        format!(
            "{:<7} {:>5} {:>6} {:>10} {:>10} {:>10}",
            "WORKER", "CORE", "LOAD", "RX/s", "TX/s", "DROP/s"
        ),
    ];
    for w in &s.workers {
        let Some(p) = prev.status.workers.iter().find(|p| p.index == w.index) else {
            continue;
        };
        let busy = w.busy_cycles.saturating_sub(p.busy_cycles) as f64;
        let idle = w.idle_cycles.saturating_sub(p.idle_cycles) as f64;
        let load = if busy + idle > 0.0 {
            100.0 * busy / (busy + idle)
        } else {
            0.0
        };
        out.push(format!(
            "{:<7} {:>5} {:>5.1}% {:>10.0} {:>10.0} {:>10.0}",
            w.index,
            w.core,
            load,
            rate(p.rx_packets, w.rx_packets, secs),
            rate(p.tx_packets, w.tx_packets, secs),
            rate(p.drops, w.drops, secs)
        ));
    }
    let f = &cur.flows;
    let refused = |v: &FlowStatsView| v.refused_table_full + v.refused_interface_limit;
    out.push(String::new());
    out.push(format!(
        "FLOWS  {} of {} entries, {:.0} created/s, {:.0} aged/s, {:.0} refused/s",
        f.active_entries,
        f.capacity,
        rate(prev.flows.created_entries, f.created_entries, secs),
        rate(prev.flows.aged_flows, f.aged_flows, secs),
        rate(refused(&prev.flows), refused(f), secs)
    ));
    let mut reasons: Vec<(String, f64)> = cur
        .drops
        .reasons
        .iter()
        .map(|(r, n)| {
            let before = prev.drops.get(r);
            (r.clone(), rate(before, *n, secs))
        })
        .filter(|(_, r)| *r > 0.0)
        .collect();
    reasons.sort_by(|a, b| b.1.total_cmp(&a.1));
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n:.0}/s")).collect();
    out.push(format!(
        "DROPS  {}",
        if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons.join(", ")
        }
    ));
    out.push(String::new());
    out.push(format!(
        "{:<16} {:>5} {:<16} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "INTERFACE", "VIF", "VRF", "RX/s", "RX Mbit/s", "TX/s", "TX Mbit/s", "DROP/s"
    ));
    let mut rows_of: Vec<(f64, String)> = cur
        .interfaces
        .iter()
        .map(|i| {
            let Some(b) = prev.interfaces.iter().find(|p| p.vif == i.vif && p.name == i.name) else {
                // Attached since the last sample: no rate yet (its totals are not one).
                let row = format!(
                    "{:<16} {:>5} {:<16} {:>10} {:>10} {:>10} {:>10} {:>8}",
                    i.name, i.vif, i.vrf, "-", "-", "-", "-", "-"
                );
                return (0.0, row);
            };
            let (c, b) = (&i.counters, &b.counters);
            let rx = rate(b.rx_packets, c.rx_packets, secs);
            let tx = rate(b.tx_packets, c.tx_packets, secs);
            let row = format!(
                "{:<16} {:>5} {:<16} {:>10.0} {:>10.2} {:>10.0} {:>10.2} {:>8.0}",
                i.name,
                i.vif,
                i.vrf,
                rx,
                rate(b.rx_bytes, c.rx_bytes, secs) * 8.0 / 1e6,
                tx,
                rate(b.tx_bytes, c.tx_bytes, secs) * 8.0 / 1e6,
                rate(b.drops, c.drops, secs)
            );
            (rx + tx, row)
        })
        .collect();
    rows_of.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.extend(rows_of.into_iter().map(|(_, r)| r));
    out.truncate(rows.max(1));
    for line in &mut out {
        if let Some((cut, _)) = line.char_indices().nth(width) {
            line.truncate(cut);
        }
    }
    out
}

/// Leaves the terminal as it found it, however `top` ends.
struct Screen;

/// Gives the terminal back: on drop, and from the panic hook (release builds abort on
/// a panic, so no destructor runs then).
fn restore_terminal() {
    let _ = execute!(std::io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
}

impl Screen {
    fn take() -> anyhow::Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let screen = Screen;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }

    fn draw(&self, lines: &[String]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        queue!(out, terminal::Clear(terminal::ClearType::All))?;
        for (row, line) in lines.iter().enumerate() {
            queue!(out, cursor::MoveTo(0, row as u16))?;
            out.write_all(line.as_bytes())?;
        }
        out.flush()?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Waits up to `wait` for a key; true if it asks to quit.
fn quit_within(wait: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(false);
        }
        if let Event::Key(k) = event::read()? {
            let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if k.kind != KeyEventKind::Release
                && (matches!(k.code, KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc) || ctrl_c)
            {
                return Ok(true);
            }
        }
    }
}

/// Runs the view: on a terminal until `q` unless `iterations` is given; otherwise
/// `iterations` frames (default 1) printed one after another.
pub fn run(api: &ApiClient, interval: Duration, iterations: Option<u32>) -> anyhow::Result<()> {
    let interval = interval.clamp(Duration::from_millis(100), Duration::from_secs(3600));
    let mut prev = Sample::read(api)?;
    if iterations.is_none() && std::io::stdout().is_terminal() {
        let screen = Screen::take()?;
        // The first frame comes soon (rates need two samples), then every interval.
        let mut wait = Duration::from_millis(200).min(interval);
        loop {
            if quit_within(wait)? {
                return Ok(());
            }
            let cur = Sample::read(api)?;
            let (width, rows) = terminal::size().unwrap_or((120, 40));
            screen.draw(&frame(&prev, &cur, width as usize, rows as usize))?;
            prev = cur;
            wait = interval;
        }
    }
    for n in 0..iterations.unwrap_or(1) {
        std::thread::sleep(interval);
        let cur = Sample::read(api)?;
        if n > 0 {
            println!();
        }
        for line in frame(&prev, &cur, usize::MAX, usize::MAX) {
            println!("{line}");
        }
        prev = cur;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    /// A sample `secs` after the start, with pod `p1` and worker 0 at these counts.
    fn sample(start: Instant, secs: u64, rx: u64, rx_bytes: u64, busy: u64, idle: u64, other_vrf: u64) -> Sample {
        let pod = |name: &str, vif: u32, rx: u64, bytes: u64| {
            json!({"vif": vif, "label": 17, "name": name, "kind": "pod", "vrf": "red",
                "mac": "02:00:00:00:00:01", "ipv4": null, "ipv6": null, "gateway4": null, "gateway6": null,
                "vlan": null, "counters": {"rx_packets": rx, "rx_bytes": bytes, "tx_packets": 0, "tx_bytes": 0,
                "drops": other_vrf, "tx_ring_full": 0, "kernel_rx_dropped": 0, "kernel_rx_ring_full": 0,
                "kernel_fill_ring_empty": 0, "drops_by_reason": []}})
        };
        Sample {
            at: start + Duration::from_secs(secs),
            status: from(
                json!({"ready": true, "generation": 7, "forwarding_cores": [3], "interfaces": 3,
                "vrfs": 1, "cycles_per_second": 1000, "workers": [{"index": 0, "core": 3, "busy_loops": 0,
                "idle_loops": 0, "rx_packets": rx, "tx_packets": 0, "drops": other_vrf, "busy_cycles": busy,
                "idle_cycles": idle, "drops_by_reason": []}]}),
            ),
            interfaces: vec![from(pod("quiet", 2, 5, 500)), from(pod("p1", 1, rx, rx_bytes))],
            drops: from(json!({"reasons": [["other_vrf", other_vrf], ["no_route", 0]],
                "icmp_errors_sent": 0, "icmp_errors_suppressed": 0})),
            flows: from(
                json!({"capacity": 1024, "active_entries": 4, "created_entries": 10 * secs,
                "deleted_entries": 0, "aged_flows": 0, "refused_table_full": 0, "refused_interface_limit": 0,
                "setup_rate_per_sec": 0.0, "memory_bytes": 0}),
            ),
        }
    }

    #[test]
    fn a_frame_shows_rates_over_the_interval_busiest_first() {
        let start = Instant::now();
        let mut before = sample(start, 0, 100, 10_000, 100, 900, 0);
        // "quiet" is attached between the samples: no rate for it yet.
        before.interfaces.retain(|i| i.name != "quiet");
        let after = sample(start, 2, 2100, 2_510_000, 400, 1100, 6);
        let lines = frame(&before, &after, 200, 100);
        let text = lines.join("\n");
        let worker = lines.iter().find(|l| l.starts_with("0 ")).expect(&text);
        let cols: Vec<&str> = worker.split_whitespace().collect();
        // 300 busy of 500 cycles; 2000 packets and 6 drops over 2 s.
        assert_eq!(cols, ["0", "3", "60.0%", "1000", "0", "3"], "{text}");
        let pods: Vec<&String> = lines.iter().filter(|l| l.contains(" red ")).collect();
        assert!(
            pods[0].starts_with("p1 ") && pods[1].starts_with("quiet "),
            "busiest first:\n{text}"
        );
        assert_eq!(
            pods[1].split_whitespace().skip(3).collect::<Vec<_>>(),
            ["-"; 5],
            "a new interface has no rate yet:\n{text}"
        );
        let p1: Vec<&str> = pods[0].split_whitespace().collect();
        // 2,500,000 bytes in 2 s = 10 Mbit/s.
        assert_eq!(&p1[3..8], ["1000", "10.00", "0", "0.00", "3"], "{text}");
        assert!(text.contains("DROPS  other_vrf 3/s"), "{text}");
        assert!(text.contains("4 of 1024 entries, 10 created/s"), "{text}");
        // The frame fits the terminal.
        let small = frame(&before, &after, 20, 5);
        assert_eq!(small.len(), 5);
        assert!(small.iter().all(|l| l.chars().count() <= 20), "{small:?}");
    }
}
