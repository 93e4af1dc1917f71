//! `progress`: live figures while a run goes: an indicatif bar on a terminal, a plain line
//! per second otherwise (CI logs), or nothing. Always on stderr, so `--json` keeps stdout
//! to its one object.
//!
//! Input: [`Tick`]s from the driver. Output: text on stderr. Never touches: the figures
//! themselves.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::thousands;
use crate::run::{Progress, Tick};

/// How to show progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A bar if stderr is a terminal, else lines.
    Auto,
    Lines,
    Quiet,
}

/// The progress sink for `mode`.
pub fn sink(mode: Mode) -> Box<dyn Progress> {
    match mode {
        Mode::Quiet => Box::new(Quiet),
        Mode::Lines => Box::new(Lines { last: None }),
        Mode::Auto if std::io::stderr().is_terminal() => Box::new(Bar { bar: None, phase: "" }),
        Mode::Auto => Box::new(Lines { last: None }),
    }
}

struct Quiet;

impl Progress for Quiet {
    fn tick(&mut self, _: &Tick) {}
    fn done(&mut self) {}
}

/// One line per second at most.
struct Lines {
    last: Option<Instant>,
}

fn describe(t: &Tick) -> String {
    format!(
        "{:>12} {:5.1}/{:.0} s  starts {} ({}/s)  throttled {}  ended {}  p99 start {}",
        t.phase,
        t.elapsed_s,
        t.total_s,
        thousands(t.issued),
        thousands(t.rate.round() as u64),
        thousands(t.throttled),
        thousands(t.ended),
        crate::report::us(t.p99_us)
    )
}

impl Progress for Lines {
    fn tick(&mut self, t: &Tick) {
        if self.last.is_some_and(|l| l.elapsed().as_secs_f64() < 1.0) {
            return;
        }
        self.last = Some(Instant::now());
        eprintln!("loadgen: {}", describe(t));
    }
    fn done(&mut self) {}
}

struct Bar {
    bar: Option<ProgressBar>,
    phase: &'static str,
}

impl Progress for Bar {
    fn tick(&mut self, t: &Tick) {
        if self.phase != t.phase {
            if let Some(b) = self.bar.take() {
                b.finish_and_clear();
            }
            self.phase = t.phase;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::with_draw_target(Some(t.offered), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(t.phase);
            b
        });
        bar.set_length(t.offered.max(1));
        bar.set_position(t.issued.min(t.offered));
        bar.set_message(format!(
            "{}/s  throttled {}  ended {}  p99 start {}",
            thousands(t.rate.round() as u64),
            thousands(t.throttled),
            thousands(t.ended),
            crate::report::us(t.p99_us)
        ));
    }
    fn done(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
