//! `efd-cronjob`: create the tasks since the last task of this repository (status pending), then
//! process the pending tasks whose end is at least 5 minutes old, oldest first.
//!
//! A thin binary: it parses options (every flag also reads the variable the Kubernetes manifests
//! set), opens the pipeline and runs cronjob mode. Exit codes: 0 all tasks completed; 1
//! configuration or startup error; 3 some tasks failed (they are recorded); 130/143 after
//! SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use pipeline::cli::{CommonArgs, open_pipeline, run_binary, startup_error};
use pipeline::modes::cronjob;

#[derive(Debug, Parser)]
#[command(
    name = "efd-cronjob",
    version,
    about = "Create the EFD summary tasks since the last run and process those that are due."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = match pipeline::cli::parse_args::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let common = cli.common.clone();
    run_binary("cronjob", &common, run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let (pipeline, store) = match open_pipeline(&cli.common).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (signal, shutdown) = pipeline::signals::watch_signals();
    let run = cli.common.run_options();
    let result = cronjob(
        &pipeline,
        &store,
        cli.common.repo().unwrap_or_default(),
        cli.common.timedelta,
        cli.common.timewindow,
        &run,
        shutdown,
    )
    .await;
    match result {
        Ok(summary) => pipeline::signals::exit_code(&summary, signal.received()),
        Err(e) => startup_error(&e),
    }
}
