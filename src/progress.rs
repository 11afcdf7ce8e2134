//! Progress output: one live line per host on a terminal (indicatif), one plain line per step
//! change otherwise, or one JSON event per line with `--output json`. Everything passes the
//! redactor first.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::redact::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

pub struct Progress {
    format: OutputFormat,
    redactor: Redactor,
    started: Instant,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, (ProgressBar, Instant)>>,
    width: usize,
}

impl Progress {
    pub fn new(format: OutputFormat, redactor: Redactor, hosts: &[String]) -> Self {
        let live = format == OutputFormat::Text && std::io::stderr().is_terminal();
        let multi = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4).max(4);
        let p = Progress {
            format,
            redactor,
            started: Instant::now(),
            multi,
            bars: Mutex::new(HashMap::new()),
            width,
        };
        if let Some(m) = &p.multi {
            let style =
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg} {elapsed:.dim}")
                    .unwrap()
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓");
            let mut bars = p.bars.lock().unwrap();
            for h in hosts {
                let b = m.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(format!("{h:w$}", w = width));
                b.set_message("waiting");
                b.enable_steady_tick(Duration::from_millis(120));
                bars.insert(h.clone(), (b, Instant::now()));
            }
        }
        p
    }

    /// Run `f` with the live display cleared and its redraws held (a terminal prompt).
    pub fn suspend(&self, f: &mut dyn FnMut()) {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn emit_json(&self, v: serde_json::Value) {
        let line = self.redactor.redact_json(v).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// A line of text for the user (stderr in text mode, an event in JSON mode).
    pub fn say(&self, msg: &str) {
        let msg = self.redactor.redact(msg);
        match self.format {
            OutputFormat::Json => {
                self.emit_json(json!({"event": "message", "message": msg, "t": self.t()}))
            }
            OutputFormat::Text => match &self.multi {
                Some(m) => {
                    let _ = m.println(msg);
                }
                None => crate::errln!("{msg}"),
            },
        }
    }

    pub fn warn(&self, host: Option<&str>, msg: &str) {
        let msg = self.redactor.redact(msg);
        match self.format {
            OutputFormat::Json => self.emit_json(
                json!({"event": "warning", "host": host, "message": msg, "t": self.t()}),
            ),
            OutputFormat::Text => {
                let line = match host {
                    Some(h) => format!("warning: {h}: {msg}"),
                    None => format!("warning: {msg}"),
                };
                match &self.multi {
                    Some(m) => {
                        let _ = m.println(line);
                    }
                    None => crate::errln!("{line}"),
                }
            }
        }
    }

    fn t(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0
    }

    /// A host started a step.
    pub fn step(&self, host: &str, step: crate::cluster::phase::Step) {
        let step = step.as_str();
        crate::stats::set_step(host, step);
        match self.format {
            OutputFormat::Json => {
                self.emit_json(json!({"event": "step", "host": host, "step": step, "t": self.t()}))
            }
            OutputFormat::Text => {
                let bars = self.bars.lock().unwrap();
                if let Some((b, _)) = bars.get(host) {
                    b.set_message(step.to_string());
                } else {
                    crate::errln!("[{:>6.1}s] {host:w$}  {step}", self.t(), w = self.width);
                }
            }
        }
    }

    /// A host finished (ok, failed or skipped) with a short note.
    pub fn done(&self, host: &str, status: &str, note: &str) {
        let note = self.redactor.redact(note);
        match self.format {
            OutputFormat::Json => self.emit_json(json!({"event": "host", "host": host, "status": status, "detail": note, "t": self.t()})),
            OutputFormat::Text => {
                let bars = self.bars.lock().unwrap();
                if let Some((b, _)) = bars.get(host) {
                    b.finish_with_message(format!("{status}: {note}"));
                } else {
                    crate::errln!("[{:>6.1}s] {host:w$}  {status}: {note}", self.t(), w = self.width);
                }
            }
        }
    }

    /// Stop live drawing before the summary is printed.
    pub fn finish(&self) {
        let bars = self.bars.lock().unwrap();
        for (b, _) in bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    pub fn json(&self, v: serde_json::Value) {
        self.emit_json(v)
    }
}
