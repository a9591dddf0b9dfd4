//! `efd-monitor status`: the task queue as a table or JSON.
//!
//! Counts per status, the oldest pending task, the running tasks with owner and lease, the last
//! failures with their errors, and the last completions with their counts and where their time
//! went (Butler, EFD, transform, write, scheduler), with the phases' shares over those tasks.

use std::fmt::Write as _;

use scheduler_store::{PhaseTimings, SchedulerStore, StatusSummary, Task, format_utc};
use serde_json::{Value, json};

use crate::error::PipelineError;

/// Tasks listed per section.
const LISTED: usize = 10;

fn opt_time(t: Option<transform_core::UtcNanos>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_utc(t)))
}

fn timings_json(t: &PhaseTimings) -> Value {
    let [butler, efd, transform, write, scheduler] = t.millis();
    json!({
        "butler_ms": butler,
        "efd_ms": efd,
        "transform_ms": transform,
        "write_ms": write,
        "scheduler_ms": scheduler,
    })
}

fn task_json(t: &Task) -> Value {
    json!({
        "id": t.id.0,
        "start": format_utc(t.start),
        "end": format_utc(t.end),
        "status": t.status.as_str(),
        "retries": t.retries,
        "claimed_by": t.claimed_by,
        "lease_expires_at": opt_time(t.lease_expires_at),
        "process_end": opt_time(t.process_end),
        "process_exec_time": t.process_exec_time,
        "exposures": t.exposures,
        "visits1": t.visits1,
        "replica_failures": t.replica_failures,
        "timings": t.timings.as_ref().map(timings_json),
        "error": t.error,
    })
}

/// The phases summed over the recent completions that recorded timings, and how many did.
fn phase_totals(summary: &StatusSummary) -> (PhaseTimings, usize) {
    let mut total = PhaseTimings::default();
    let mut n = 0;
    for t in summary.recent_completed.iter().filter_map(|t| t.timings) {
        total.add(&t);
        n += 1;
    }
    (total, n)
}

/// Each phase's share of the total, in percent (0 when nothing was recorded).
fn shares(t: &PhaseTimings) -> [f64; 5] {
    let total = t.total().as_secs_f64();
    [t.butler, t.efd, t.transform, t.write, t.scheduler].map(|d| {
        if total > 0.0 {
            (100.0 * d.as_secs_f64() / total * 10.0).round() / 10.0
        } else {
            0.0
        }
    })
}

/// The queue of `repo` (all repositories when `None`) as text.
pub async fn render(
    store: &SchedulerStore,
    repo: Option<&str>,
    json: bool,
) -> Result<String, PipelineError> {
    let summary = store.status_summary(repo, LISTED).await?;
    let (totals, timed) = phase_totals(&summary);
    let share = shares(&totals);
    if json {
        let list = |tasks: &[Task]| tasks.iter().map(task_json).collect::<Vec<_>>();
        let value = json!({
            "counts": summary.counts,
            "oldest_pending": summary.oldest_pending.as_ref().map(task_json),
            "running": list(&summary.running),
            "recent_failures": list(&summary.recent_failures),
            "recent_completed": list(&summary.recent_completed),
            "phases": {
                "tasks": timed,
                "total": timings_json(&totals),
                "percent": {
                    "butler": share[0],
                    "efd": share[1],
                    "transform": share[2],
                    "write": share[3],
                    "scheduler": share[4],
                },
            },
        });
        return Ok(format!("{value}\n"));
    }
    let mut out = String::new();
    let _ = writeln!(out, "{:<12} {:>8}", "status", "tasks");
    for (status, n) in &summary.counts {
        let _ = writeln!(out, "{status:<12} {n:>8}");
    }
    if let Some(t) = &summary.oldest_pending {
        let _ = writeln!(
            out,
            "\noldest pending: #{} {} → {}",
            t.id.0,
            format_utc(t.start),
            format_utc(t.end)
        );
    }
    let _ = writeln!(out, "\nrunning: {}", summary.running.len());
    for t in &summary.running {
        let _ = writeln!(
            out,
            "  #{:<8} {} owner={} lease until {}",
            t.id.0,
            format_utc(t.start),
            t.claimed_by.as_deref().unwrap_or("-"),
            t.lease_expires_at
                .map_or_else(|| "-".to_owned(), format_utc)
        );
    }
    let _ = writeln!(out, "\nlast failures: {}", summary.recent_failures.len());
    for t in &summary.recent_failures {
        let _ = writeln!(
            out,
            "  #{:<8} {} retries={} {}",
            t.id.0,
            format_utc(t.start),
            t.retries,
            t.error.as_deref().unwrap_or("")
        );
    }
    if timed > 0 {
        let _ = writeln!(
            out,
            "\ntime of the last {timed} completed task(s): butler {:.1}%, efd {:.1}%, transform {:.1}%, write {:.1}%, scheduler {:.1}% (of {:.1} s)",
            share[0],
            share[1],
            share[2],
            share[3],
            share[4],
            totals.total().as_secs_f64()
        );
    }
    Ok(out)
}

/// Prints [`render`] to stdout.
#[allow(clippy::print_stdout)] // The status report is printed for the operator.
pub async fn print(
    store: &SchedulerStore,
    repo: Option<&str>,
    json: bool,
) -> Result<(), PipelineError> {
    print!("{}", render(store, repo, json).await?);
    Ok(())
}
