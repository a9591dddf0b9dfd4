//! `efd-monitor`: the hourly failure monitor. Without a subcommand it recovers expired leases,
//! marks failed tasks older than 72 h (or retried more than 3 times) stale, and retries failed
//! tasks whose backoff (2.82843^(retries+1) h from creation) has elapsed; then it creates and
//! processes tasks for the Butler's exposures and visits of the last complete nights that ConsDB
//! lacks. `status` prints the queue; `coverage` what landed in ConsDB for a range of nights.
//!
//! A thin binary: option parsing and the choice of mode. Exit codes: 0 all retried tasks completed;
//! 1 configuration or startup error; 3 some tasks failed again; 130/143 after SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pipeline::ReconcileOptions;
use pipeline::cli::{CommonArgs, open_pipeline, open_store, run_binary, startup_error};
use pipeline::modes::monitor_retries;

#[derive(Debug, Parser)]
#[command(
    name = "efd-monitor",
    version,
    about = "Retry failed EFD summary tasks, mark stale ones, report the queue."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Reconciliation window: complete nights (day_obs) to check against the Butler.
    #[arg(
        long = "monitor-window-days",
        env = "MONITOR_WINDOW_DAYS",
        default_value_t = 7
    )]
    monitor_window_days: u32,
    /// Also reconcile the night in progress (which the cron is still processing).
    #[arg(long = "include-current-night")]
    include_current_night: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the task queue: counts per status, the oldest pending task, running tasks with their
    /// owner and lease, and the last failures.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Report what landed in ConsDB for a range of nights: per column the share of exposures and
    /// visits with a value, the columns NULL everywhere or nowhere, per item its NULL count and
    /// the tasks that covered it.
    Coverage {
        /// First day_obs (YYYYMMDD); default: the last complete night.
        #[arg(long = "day-obs-start", value_parser = clap::value_parser!(i32).range(19_700_101..=29_991_231))]
        day_obs_start: Option<i32>,
        /// Last day_obs (YYYYMMDD); default: the first.
        #[arg(long = "day-obs-end", value_parser = clap::value_parser!(i32).range(19_700_101..=29_991_231))]
        day_obs_end: Option<i32>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML page (heatmap of columns × items, and the tables).
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match pipeline::cli::parse_args::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let common = cli.common.clone();
    let mode = match cli.command {
        Some(Command::Status { .. }) => "status",
        Some(Command::Coverage { .. }) => "coverage",
        None => "monitor",
    };
    run_binary(mode, &common, run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Some(Command::Coverage {
        day_obs_start,
        day_obs_end,
        json,
        html,
    }) = &cli.command
    {
        let args = pipeline::coverage::CoverageArgs {
            day_obs_start: *day_obs_start,
            day_obs_end: *day_obs_end,
            json: *json,
            html: html.clone(),
        };
        return match pipeline::coverage::run(&cli.common, &args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => startup_error(&e),
        };
    }
    if let Some(Command::Status { json }) = cli.command {
        // The queue only: no Butler, EFD or ConsDB schema needed.
        let store = match open_store(&cli.common).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        return match pipeline::status::print(&store, cli.common.repo(), json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => startup_error(&e),
        };
    }
    let (pipeline, store) = match open_pipeline(&cli.common).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (signal, shutdown) = pipeline::signals::watch_signals();
    let run = cli.common.run_options();
    let retried = match monitor_retries(
        &pipeline,
        &store,
        cli.common.repo().unwrap_or_default(),
        &run,
        shutdown.clone(),
    )
    .await
    {
        Ok(summary) => summary,
        Err(e) => return startup_error(&e),
    };
    let reconcile = ReconcileOptions {
        window_days: cli.monitor_window_days,
        include_current_night: cli.include_current_night,
        interval_minutes: cli.common.timedelta,
        timewindow_minutes: cli.common.timewindow,
    };
    match pipeline
        .reconcile(
            &store,
            cli.common.repo().unwrap_or_default(),
            &reconcile,
            &run,
            shutdown,
        )
        .await
    {
        Ok((_, mut summary)) => {
            summary.add(&retried);
            pipeline::signals::exit_code(&summary, signal.received())
        }
        Err(e) => startup_error(&e),
    }
}
