//! Progress of a job run: a bar on a terminal, otherwise periodic `event=job_progress` log lines.
//!
//! The bar (on stderr: tasks done/total, exposures and visits written, failures, elapsed time and
//! ETA) is shown only when stderr is a terminal; log lines written meanwhile step around it (see
//! [`suspend`]). In a pod, where nothing is a terminal, a progress line is logged each time another
//! tenth of the tasks is done, at least every [`LINE_EVERY`] while tasks finish, and for the last
//! task.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Longest gap between two progress lines while tasks finish (when no bar is shown).
pub const LINE_EVERY: Duration = Duration::from_secs(60);

/// The bar on screen, if any, so log lines can be written around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `write` with the active progress bar, if any, cleared from the terminal.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().ok().and_then(|active| active.clone());
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressDisplay {
    /// A bar on stderr.
    Bar,
    /// `event=job_progress` log lines.
    Lines,
}

impl ProgressDisplay {
    /// A bar when stderr is a terminal (and `TERM` is not `dumb`), else log lines.
    pub fn detect() -> ProgressDisplay {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if std::io::stderr().is_terminal() && !dumb {
            ProgressDisplay::Bar
        } else {
            ProgressDisplay::Lines
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    done: u64,
    failed: u64,
    exposures: u64,
    visits: u64,
    last_line: Option<Instant>,
    last_tenth: u64,
}

/// A job run's progress.
#[derive(Debug)]
pub struct Progress {
    counts: Mutex<Counts>,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// Progress over no tasks yet (see [`Progress::add_total`]), shown as `display` says.
    pub fn new(display: ProgressDisplay) -> Progress {
        let bar = (display == ProgressDisplay::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} tasks, {msg}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 exposures, 0 visits");
            if let Ok(mut active) = ACTIVE.lock() {
                *active = Some(bar.clone());
            }
            bar
        });
        Progress {
            counts: Mutex::new(Counts::default()),
            bar,
            started: Instant::now(),
        }
    }

    /// Adds `tasks` to the number expected.
    pub fn add_total(&self, tasks: u64) {
        let total = match self.counts.lock() {
            Ok(mut counts) => {
                counts.total += tasks;
                counts.total
            }
            Err(_) => return,
        };
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Records a finished task (completed, or failed when `failed`) and its rows.
    pub fn task_finished(&self, failed: bool, exposures: usize, visits: usize) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        counts.done += 1;
        counts.total = counts.total.max(counts.done);
        counts.failed += u64::from(failed);
        counts.exposures += exposures as u64;
        counts.visits += visits as u64;
        if let Some(bar) = &self.bar {
            bar.set_length(counts.total);
            bar.set_position(counts.done);
            let failures = match counts.failed {
                0 => String::new(),
                n => format!(", {n} failed"),
            };
            bar.set_message(format!(
                "{} exposures, {} visits{failures}",
                counts.exposures, counts.visits
            ));
            return;
        }
        let now = Instant::now();
        let tenth = counts.done * 10 / counts.total.max(1);
        let due = counts.done == counts.total
            || tenth > counts.last_tenth
            || counts
                .last_line
                .is_none_or(|last| now.duration_since(last) >= LINE_EVERY);
        if !due {
            return;
        }
        counts.last_tenth = tenth;
        counts.last_line = Some(now);
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let eta = (counts.done > 0 && counts.total > counts.done)
            .then(|| elapsed / counts.done as f64 * (counts.total - counts.done) as f64);
        tracing::info!(
            message = "Job progress.",
            event = "job_progress",
            tasks_done = counts.done,
            tasks_total = counts.total,
            failed = counts.failed,
            exposures = counts.exposures,
            visits = counts.visits,
            elapsed_s = elapsed.round() as u64,
            eta_s = eta.map_or(0, |s| s.round() as u64)
        );
    }

    /// Removes the bar from the terminal (also done on drop).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Ok(mut active) = ACTIVE.lock() {
                *active = None;
            }
        }
    }

    /// Tasks done so far and expected.
    pub fn done_and_total(&self) -> (u64, u64) {
        self.counts
            .lock()
            .map(|c| (c.done, c.total))
            .unwrap_or_default()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_tasks_rows_and_failures() {
        let (logs, _guard) = test_support::capture_logs();
        let progress = Progress::new(ProgressDisplay::Lines);
        progress.add_total(20);
        for k in 0..20 {
            progress.task_finished(k == 3, 2, 1);
        }
        assert_eq!(progress.done_and_total(), (20, 20));
        let text = logs.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("job_progress"))
            .collect();
        // The first task, then one line per tenth (every second task here), the last complete.
        assert_eq!(lines.len(), 11, "{text}");
        assert!(lines[0].contains("tasks_done=1 "), "{}", lines[0]);
        let last = lines.last().unwrap();
        for part in [
            "tasks_done=20",
            "tasks_total=20",
            "failed=1",
            "exposures=40",
            "visits=20",
            "eta_s=0",
        ] {
            assert!(last.contains(part), "{part} missing from {last}");
        }
    }

    #[test]
    fn more_tasks_than_expected_never_overflow() {
        let progress = Progress::new(ProgressDisplay::Lines);
        progress.task_finished(false, 0, 0);
        progress.task_finished(false, 0, 0);
        assert_eq!(progress.done_and_total(), (2, 2));
    }
}
