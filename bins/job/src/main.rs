//! `efd-job`: create tasks for a date range and process them (`--resume`: process the range's
//! existing idle tasks), then retry the repository's failed tasks.
//!
//! A thin binary: it parses options (every flag also reads the variable the Kubernetes manifests
//! set), opens the pipeline and runs job mode. Exit codes: 0 all tasks completed; 1 configuration or
//! startup error; 3 some tasks failed (they are recorded); 130/143 after SIGINT/SIGTERM. Progress
//! shows as a bar when stderr is a terminal, else as `event=job_progress` log lines.

use std::process::ExitCode;

use clap::Parser;
use pipeline::cli::{CommonArgs, open_pipeline, parse_instant, run_binary, startup_error};
use pipeline::modes::{JobOptions, job};
use pipeline::progress::{Progress, ProgressDisplay};
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
    #[arg(short = 's', long = "start", env = "DATETIME_START", value_parser = parse_instant, required_unless_present = "check_config")]
    start: Option<UtcNanos>,
    /// Range end, ISO 8601 (naive = UTC).
    #[arg(short = 'e', long = "end", env = "DATETIME_END", value_parser = parse_instant, required_unless_present = "check_config")]
    end: Option<UtcNanos>,
    /// Process the range's existing idle tasks instead of creating them.
    #[arg(short = 'R', long = "resume")]
    resume: bool,
}

fn main() -> ExitCode {
    let cli = match pipeline::cli::parse_args::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let common = cli.common.clone();
    run_binary("job", &common, run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let (mut pipeline, store) = match open_pipeline(&cli.common).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    // A bar when stderr is a terminal, else `event=job_progress` lines.
    let progress = std::sync::Arc::new(Progress::new(ProgressDisplay::detect()));
    pipeline.set_progress(progress.clone());
    let (signal, shutdown) = pipeline::signals::watch_signals();
    let run = cli.common.run_options();
    let (Some(start), Some(end)) = (cli.start, cli.end) else {
        return startup_error(&pipeline::PipelineError::Usage(
            "job mode needs -s/--start and -e/--end".into(),
        ));
    };
    let job_options = JobOptions {
        start,
        end,
        interval_minutes: cli.common.timedelta,
        timewindow_minutes: cli.common.timewindow,
        resume: cli.resume,
        repo: cli.common.repo().unwrap_or_default().to_owned(),
    };
    let outcome = job(&pipeline, &store, &job_options, &run, shutdown).await;
    progress.finish();
    match outcome {
        Ok(summary) => pipeline::signals::exit_code(&summary, signal.received()),
        Err(e) => startup_error(&e),
    }
}
