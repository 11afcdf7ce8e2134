//! `timeouts:`: durations, bounded so that no deadline computed from them can overflow.

use std::time::Duration;

use super::super::raw::{RawTimeouts, S};
use super::super::Timeouts;
use super::{at, Ctx};

/// The longest timeout accepted: a day (a deadline `now + timeout` must never overflow).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// `30s`, `5m`, `1h30m`, `90` (seconds).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Duration::from_secs);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            let mult = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(mult)?)?;
        }
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

pub(crate) fn timeouts(ctx: &mut Ctx, raw: &S<RawTimeouts>) -> Timeouts {
    let mut t = Timeouts::default();
    let Some(r) = raw else { return t };
    let r = &r.value;
    for (name, src, dst) in [
        ("connect", &r.connect, &mut t.connect),
        ("command", &r.command, &mut t.command),
        ("packageInstall", &r.package_install, &mut t.package_install),
        ("imagePull", &r.image_pull, &mut t.image_pull),
        ("kubeadmInit", &r.kubeadm_init, &mut t.kubeadm_init),
        ("kubeadmJoin", &r.kubeadm_join, &mut t.kubeadm_join),
        ("nodeReady", &r.node_ready, &mut t.node_ready),
    ] {
        let Some(s) = src else { continue };
        let path = format!("timeouts.{name}");
        match parse_duration(&s.value) {
            Some(d) if d.is_zero() => ctx.err(at(s), path, "a timeout must be longer than 0s"),
            Some(d) if d > MAX_TIMEOUT => ctx.err(
                at(s),
                path,
                format!(
                    "{:?} is longer than the 24h limit; write at most 24h (or 86400 seconds)",
                    s.value.trim()
                ),
            ),
            Some(d) => *dst = d,
            None => ctx.err(
                at(s),
                path,
                format!(
                    "{:?} is not a duration; write e.g. 30s, 5m, 1h30m or a number of seconds (at most 24h)",
                    s.value
                ),
            ),
        }
    }
    t
}
