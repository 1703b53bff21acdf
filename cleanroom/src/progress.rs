//! Progress for long owner commands: a bar (rows or MB, rate, ETA) when standard error is
//! a terminal, plain lines at most every few seconds otherwise (logs, CI).

use owner_prep::prepare::{Phase, Progress};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct CliProgress {
    bar: Option<indicatif::ProgressBar>,
    state: RefCell<(Option<Phase>, Instant, Instant)>,
}

impl CliProgress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar
        });
        let now = Instant::now();
        CliProgress { bar, state: RefCell::new((None, now, now)) }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn label(phase: Phase) -> (&'static str, bool) {
    match phase {
        Phase::Read => ("reading and tokenizing", true),
        Phase::Sort => ("sorting by privacy unit", false),
        Phase::Seal => ("sealing", false),
        Phase::Upload => ("uploading", true),
    }
}

impl Progress for CliProgress {
    fn update(&self, phase: Phase, done: u64, total: u64) {
        let (name, bytes) = label(phase);
        let mut st = self.state.borrow_mut();
        let new_phase = st.0 != Some(phase);
        if new_phase {
            *st = (Some(phase), Instant::now(), Instant::now());
        }
        if let Some(bar) = &self.bar {
            if new_phase {
                let unit = if bytes { "{bytes}/{total_bytes} {bytes_per_sec}" } else { "{pos}/{len} rows {per_sec}" };
                let style =
                    indicatif::ProgressStyle::with_template(&format!("{name:>24} [{{bar:30}}] {unit} ETA {{eta}}"))
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                bar.set_style(style);
                bar.reset();
            }
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let now = Instant::now();
        if !new_phase && now.duration_since(st.2) < Duration::from_secs(5) && done < total {
            return;
        }
        st.2 = now;
        let secs = now.duration_since(st.1).as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 { (total.saturating_sub(done)) as f64 / rate } else { 0.0 };
        if bytes {
            eprintln!(
                "{name}: {:.1} of {:.1} MB, {:.1} MB/s, ETA {eta:.0} s",
                done as f64 / 1e6,
                total as f64 / 1e6,
                rate / 1e6
            );
        } else {
            eprintln!("{name}: {done} of {total} rows, {rate:.0} rows/s, ETA {eta:.0} s");
        }
    }
}
