//! `efd-monitor status`: the task queue as a table or JSON.

use std::fmt::Write as _;

use scheduler_store::{SchedulerStore, Task, format_utc};

use crate::error::PipelineError;

fn opt_time(t: Option<transform_core::UtcNanos>) -> String {
    t.map_or_else(|| "-".to_owned(), format_utc)
}

fn task_json(t: &Task) -> String {
    let s = |v: &Option<String>| {
        v.as_ref()
            .map_or_else(|| "null".to_owned(), |x| format!("{x:?}"))
    };
    format!(
        "{{\"id\":{},\"start\":\"{}\",\"end\":\"{}\",\"status\":\"{}\",\"retries\":{},\"claimed_by\":{},\"lease_expires_at\":{},\"error\":{}}}",
        t.id.0,
        format_utc(t.start),
        format_utc(t.end),
        t.status.as_str(),
        t.retries,
        s(&t.claimed_by),
        t.lease_expires_at
            .map_or_else(|| "null".to_owned(), |l| format!("\"{}\"", format_utc(l))),
        s(&t.error)
    )
}

/// The queue of `repo` (all repositories when `None`) as text.
pub async fn render(
    store: &SchedulerStore,
    repo: Option<&str>,
    json: bool,
) -> Result<String, PipelineError> {
    let summary = store.status_summary(repo, 10).await?;
    let mut out = String::new();
    if json {
        let counts: Vec<String> = summary
            .counts
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let list = |tasks: &[Task]| tasks.iter().map(task_json).collect::<Vec<_>>().join(",");
        let _ = writeln!(
            out,
            "{{\"counts\":{{{}}},\"oldest_pending\":{},\"running\":[{}],\"recent_failures\":[{}]}}",
            counts.join(","),
            summary
                .oldest_pending
                .as_ref()
                .map_or_else(|| "null".to_owned(), task_json),
            list(&summary.running),
            list(&summary.recent_failures)
        );
        return Ok(out);
    }
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
            opt_time(t.lease_expires_at)
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
