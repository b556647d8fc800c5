//! The progress bar of a load run (indicatif, redrawn by the main thread; no ticker
//! thread of its own).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::LoadArgs;
use crate::stats::Counters;

pub struct Progress {
    bar: ProgressBar,
    by_messages: bool,
}

impl Progress {
    pub fn new(args: &LoadArgs, duration: Option<Duration>) -> Progress {
        if args.quiet || args.json {
            return Progress {
                bar: ProgressBar::hidden(),
                by_messages: false,
            };
        }
        // The bar tracks whichever bound is set; with both, message count is the more exact.
        let bar = match (args.messages, duration) {
            (Some(m), _) => ProgressBar::new(m),
            (None, Some(d)) => ProgressBar::new(d.as_secs()),
            (None, None) => ProgressBar::new_spinner(),
        };
        let unit = if args.messages.is_some() { "msgs" } else { "s" };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit}  {{msg}}"
            ))
            .expect("static template")
            .progress_chars("=> "),
        );
        Progress {
            bar,
            by_messages: args.messages.is_some(),
        }
    }

    pub fn update(&self, c: &Counters, start: Instant) {
        let secs = start.elapsed().as_secs_f64();
        if self.by_messages {
            self.bar.set_position(c.ok() + c.failed());
        } else {
            self.bar.set_position(secs as u64);
        }
        let rate = if secs > 0.0 {
            c.ok() as f64 / secs
        } else {
            0.0
        };
        self.bar.set_message(format!(
            "{rate:.0} msg/s, {} failed, {} sessions open",
            c.failed(),
            c.open()
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
