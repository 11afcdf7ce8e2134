//! What a run costs the console: SSH handshakes, round trips (one per exec channel) per host and
//! per step, bytes sent to hosts, and the process's CPU time and peak memory.
//!
//! Counters are process-wide and keyed by host name, so the SSH layer needs only one call per
//! event (`handshake`, `round_trip`) and the phases record the step a host is in (`set_step`,
//! called by `Progress::step`).

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    pub handshakes: u64,
    pub round_trips: u64,
    pub bytes_sent: u64,
    pub image_bytes_sent: u64,
    pub round_trips_by_step: BTreeMap<String, u64>,
    step: String,
}

static HOSTS: Mutex<BTreeMap<String, HostStats>> = Mutex::new(BTreeMap::new());

fn with<R>(host: &str, f: impl FnOnce(&mut HostStats) -> R) -> R {
    let mut m = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
    if !m.contains_key(host) {
        m.insert(host.to_string(), HostStats::default());
    }
    f(m.get_mut(host).expect("inserted above"))
}

/// `host` is now in `step`: its round trips from here on count for that step.
pub fn set_step(host: &str, step: &str) {
    with(host, |h| {
        if h.step != step {
            h.step = step.to_string();
        }
    });
}

/// An SSH handshake (key exchange + authentication) with `host` completed.
pub fn handshake(host: &str) {
    with(host, |h| h.handshakes += 1);
}

/// One exec channel to `host` (open, run, wait for exit), sending `stdin_bytes` on its stdin.
pub fn round_trip(host: &str, stdin_bytes: usize) {
    with(host, |h| {
        h.round_trips += 1;
        h.bytes_sent += stdin_bytes as u64;
        let step = if h.step.is_empty() {
            "connect".to_string()
        } else {
            h.step.clone()
        };
        *h.round_trips_by_step.entry(step).or_insert(0) += 1;
    });
}

/// Bytes of image bundles the console sent to `host` (also counted in `bytes_sent` by the SSH
/// layer, as stdin of the upload).
pub fn image_bytes(host: &str, n: u64) {
    with(host, |h| h.image_bytes_sent += n);
}

/// The counters of one host (zeros if it never got any).
pub fn host(host: &str) -> HostStats {
    with(host, |h| h.clone())
}

/// The process's CPU time (user + system, including waited-for children) in ms, and its peak
/// resident set in KiB, from getrusage(2).
pub fn usage() -> (u64, u64) {
    fn ru(who: libc::c_int) -> libc::rusage {
        // SAFETY: getrusage only writes into the struct we pass.
        unsafe {
            let mut r: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut r);
            r
        }
    }
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    let me = ru(libc::RUSAGE_SELF);
    let kids = ru(libc::RUSAGE_CHILDREN);
    let cpu = ms(me.ru_utime) + ms(me.ru_stime) + ms(kids.ru_utime) + ms(kids.ru_stime);
    (cpu, me.ru_maxrss.max(0) as u64)
}

/// The run's totals over `hosts` plus process usage, as the summary event's `stats` object.
pub fn summary(hosts: &[&str]) -> serde_json::Value {
    let mut handshakes = 0;
    let mut round_trips = 0;
    let mut bytes_sent = 0;
    let mut image_bytes_sent = 0;
    let mut by_step: BTreeMap<String, u64> = BTreeMap::new();
    for name in hosts {
        let h = host(name);
        handshakes += h.handshakes;
        round_trips += h.round_trips;
        bytes_sent += h.bytes_sent;
        image_bytes_sent += h.image_bytes_sent;
        for (s, n) in h.round_trips_by_step {
            *by_step.entry(s).or_insert(0) += n;
        }
    }
    let (cpu_ms, peak_rss_kb) = usage();
    serde_json::json!({
        "hosts": hosts.len(),
        "handshakes": handshakes,
        "round_trips": round_trips,
        "round_trips_by_step": by_step,
        "bytes_sent": bytes_sent,
        "image_bytes_sent": image_bytes_sent,
        "cpu_ms": cpu_ms,
        "peak_rss_kb": peak_rss_kb,
    })
}

/// The one-line text form: `console: 4 SSH handshakes, 9 round trips, 0.21 s CPU, 18 MB peak, 0
/// image bytes sent`.
pub fn line(stats: &serde_json::Value) -> String {
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    format!(
        "console: {} SSH handshakes, {} round trips, {:.2} s CPU, {} MB peak, {} image bytes sent",
        n("handshakes"),
        n("round_trips"),
        n("cpu_ms") as f64 / 1000.0,
        (n("peak_rss_kb") + 512) / 1024,
        n("image_bytes_sent"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_host_and_step() {
        // Names unique to this test: the counters are process-wide.
        let (a, b) = ("stats-test-a", "stats-test-b");
        handshake(a);
        round_trip(a, 10);
        set_step(a, "facts");
        round_trip(a, 5);
        round_trip(a, 0);
        set_step(b, "prepare");
        round_trip(b, 100);
        image_bytes(b, 100);
        let ha = host(a);
        assert_eq!((ha.handshakes, ha.round_trips, ha.bytes_sent), (1, 3, 15));
        assert_eq!(ha.round_trips_by_step["connect"], 1);
        assert_eq!(ha.round_trips_by_step["facts"], 2);
        let s = summary(&[a, b]);
        assert_eq!(s["hosts"], 2);
        assert_eq!(s["handshakes"], 1);
        assert_eq!(s["round_trips"], 4);
        assert_eq!(s["bytes_sent"], 115);
        assert_eq!(s["image_bytes_sent"], 100);
        assert_eq!(s["round_trips_by_step"]["prepare"], 1);
        assert!(s["cpu_ms"].as_u64().is_some());
        assert!(s["peak_rss_kb"].as_u64().unwrap() > 0);
        let l = line(&s);
        assert!(
            l.starts_with("console: 1 SSH handshakes, 4 round trips, ")
                && l.ends_with(" MB peak, 100 image bytes sent"),
            "{l}"
        );
    }

    #[test]
    fn usage_grows_with_work() {
        // Spin until getrusage reports 20 ms more CPU (on a busy machine this takes longer than
        // 20 ms of wall time); a broken reading never gets there.
        let (c0, _) = usage();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while usage().0 < c0 + 20 && t.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
        }
        std::hint::black_box(x);
        let (c1, rss) = usage();
        assert!(c1 >= c0 + 20, "cpu {c0} -> {c1}");
        assert!(rss > 1000, "peak rss {rss} KiB");
    }
}
