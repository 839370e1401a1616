//! Progress display: a spinner for a stage whose length is unknown, a bar when it is known.
//! Both draw only on a terminal, so logs and CI output stay clean.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Stage {
    bar: ProgressBar,
    started: Instant,
}

impl Stage {
    pub fn start(message: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Stage {
            bar,
            started: Instant::now(),
        }
    }

    pub fn done(self, message: &str) {
        self.bar.finish_and_clear();
        report_done(self.started, message);
    }
}

/// The line printed when a stage finishes.
pub fn report_done(started: Instant, message: &str) {
    eprintln!("✓ {message} ({:.1}s)", started.elapsed().as_secs_f64());
}

/// A bar over `total` items with rate and ETA.
pub fn bar(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}
