//! `efd-job`: create tasks for a date range and process them (`--resume`: process the range's
//! existing idle tasks), then retry the repository's failed tasks.
//!
//! A thin binary: it parses options (every flag also reads the variable the Kubernetes manifests
//! set), opens the pipeline and runs job mode. Exit codes: 0 all tasks completed; 1 configuration or
//! startup error; 3 some tasks failed (they are recorded); 130/143 after SIGINT/SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pipeline::cli::{CommonArgs, init_logging, parse_instant};
use pipeline::modes::{JobOptions, job};
use pipeline::{Pipeline, RunOptions};
use transform_core::UtcNanos;

#[derive(Debug, Parser)]
#[command(
    name = "efd-job",
    version,
    about = "Create EFD summary tasks for a date range and process them."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Range start, ISO 8601 (naive = UTC).
    #[arg(short = 's', long = "start", env = "DATETIME_START", value_parser = parse_instant)]
    start: UtcNanos,
    /// Range end, ISO 8601 (naive = UTC).
    #[arg(short = 'e', long = "end", env = "DATETIME_END", value_parser = parse_instant)]
    end: UtcNanos,
    /// Process the range's existing idle tasks instead of creating them.
    #[arg(short = 'R', long = "resume")]
    resume: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("LOG_LEVEL").ok();
    init_logging(
        cli.common.log_format,
        cli.common.logfile.as_deref(),
        level.as_deref(),
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(message = "Cannot start the runtime.", error = %e);
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let options = match cli.common.pipeline_options(&env) {
        Ok(o) => o,
        Err(e) => return startup_error(&e),
    };
    let (pipeline, store) = match Pipeline::open(&options, &env).await {
        Ok(p) => p,
        Err(e) => return startup_error(&e),
    };
    let (signal, shutdown) = pipeline::signals::watch_signals();
    let run = RunOptions {
        workers: cli.common.workers,
        owner: pipeline::signals::owner_name(),
        lease: Duration::from_secs(120),
        default_timewindow_minutes: i64::from(cli.common.timewindow),
        grace_period: Duration::from_secs(cli.common.grace_period),
    };
    let job_options = JobOptions {
        start: cli.start,
        end: cli.end,
        interval_minutes: cli.common.timedelta,
        timewindow_minutes: cli.common.timewindow,
        resume: cli.resume,
        repo: cli.common.repo.clone(),
    };
    match job(&pipeline, &store, &job_options, &run, shutdown).await {
        Ok(summary) => pipeline::signals::exit_code(&summary, signal.received()),
        Err(e) => startup_error(&e),
    }
}

fn startup_error(e: &pipeline::PipelineError) -> ExitCode {
    tracing::error!(message = "Cannot run.", event = "configuration_error", error = %e);
    ExitCode::from(1)
}
