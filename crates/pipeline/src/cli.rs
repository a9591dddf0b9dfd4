//! The command-line options the three binaries share, each also read from the environment variable
//! the Kubernetes manifests set, and the logging they configure.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use efd_client::EfdOptions;
use transform_core::{Instrument, Semantics};

use crate::error::PipelineError;
use crate::open::PipelineOptions;
use crate::runner::RunOptions;

/// Options of every binary.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Column config (YAML).
    #[arg(short = 'c', long = "config", env = "CONFIG_FILE")]
    pub config: PathBuf,
    /// Instrument: latiss, lsstcam, lsstcomcam or lsstcomcamsim (any case).
    #[arg(short = 'i', long = "instrument", env = "INSTRUMENT")]
    pub instrument: Instrument,
    /// Butler repository: directory, butler.yaml path or URL, s3://..., or an index label.
    #[arg(
        short = 'r',
        long = "repo",
        env = "BUTLER_REPO",
        required_unless_present = "check_config"
    )]
    pub repo: Option<String>,
    /// ConsDB URL(s): the primary first, then replicas (repeat the flag, or space-separate them in
    /// CONSDB_URL).
    #[arg(short = 'd', long = "db", env = "CONSDB_URL", value_delimiter = ' ', num_args = 1.., required_unless_present = "check_config")]
    pub db: Vec<String>,
    /// EFD URL (http(s)://... or file://...); without it, EFD_HOST/EFD_PORT/EFD_PATH.
    #[arg(short = 'E', long = "efd", env = "EFD_URL")]
    pub efd: Option<String>,
    /// Task length in minutes.
    #[arg(
        short = 't',
        long = "timedelta",
        env = "TIMEDELTA",
        default_value_t = 5
    )]
    pub timedelta: i64,
    /// Padding on both sides of every task, in minutes.
    #[arg(
        short = 'w',
        long = "timewindow",
        env = "TIMEWINDOW",
        default_value_t = 1
    )]
    pub timewindow: i32,
    /// Also log to this file.
    #[arg(short = 'l', long = "logfile", env = "LOG_FILE")]
    pub logfile: Option<PathBuf>,
    /// Reproduce the Python service's numbers exactly (`reference`).
    #[arg(long = "compat", value_enum, default_value = "default")]
    pub compat: Compat,
    /// Tasks in flight at once in this process.
    #[arg(long = "workers", env = "WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// EFD queries in flight at once in this process (shared by all workers).
    #[arg(long = "efd-concurrency", env = "EFD_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub efd_concurrency: u16,
    /// Encoding asked of the EFD for selects: msgpack (cheaper for InfluxDB to encode) or json.
    /// Answers are read by their Content-Type either way.
    #[arg(long = "efd-format", env = "EFD_FORMAT", default_value = "msgpack")]
    pub efd_format: efd_client::ResponseFormat,
    /// Log line format.
    #[arg(
        long = "log-format",
        value_enum,
        env = "LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Apply the additive ConsDB and task-table migrations before running.
    #[arg(long = "migrate")]
    pub migrate: bool,
    /// Print the SQL that `--migrate` would run on the ConsDB primary (and what the database has
    /// beyond the config), then exit without changing or processing anything.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Seconds a task in flight may take to finish after SIGTERM/SIGINT.
    #[arg(long = "grace-period", env = "GRACE_PERIOD", default_value_t = 25)]
    pub grace_period: u64,
    /// Seconds a claimed task stays ours without a heartbeat (heartbeats every third of it); after
    /// a crash, other processes may take the task over once it has passed.
    #[arg(long = "lease", env = "LEASE_SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease: u64,
    /// Validate the config and print its plan, without connecting anywhere.
    #[arg(long = "check-config")]
    pub check_config: bool,
}

/// `--compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compat {
    /// Corrected behaviour.
    Default,
    /// The Python service's numbers.
    Reference,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for Loki).
    Json,
}

impl CommonArgs {
    /// The pipeline options these arguments describe; `env` supplies the `EFD_*` variables.
    pub fn pipeline_options(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PipelineOptions, PipelineError> {
        if self.timedelta <= 0 {
            return Err(PipelineError::Usage(
                "-t/--timedelta must be a positive number of minutes".into(),
            ));
        }
        if self.timewindow < 0 {
            return Err(PipelineError::Usage(
                "-w/--timewindow must not be negative".into(),
            ));
        }
        let repo = self.repo().ok_or_else(|| {
            PipelineError::Usage("no Butler repository: give -r/--repo or set BUTLER_REPO".into())
        })?;
        let mut efd = EfdOptions::from_env(self.efd.as_deref(), env)?;
        efd.concurrency = usize::from(self.efd_concurrency);
        efd.response_format = self.efd_format;
        Ok(PipelineOptions {
            instrument: self.instrument,
            config_path: self.config.clone(),
            repo: repo.to_owned(),
            db_urls: self.db.iter().filter(|u| !u.is_empty()).cloned().collect(),
            efd,
            semantics: match self.compat {
                Compat::Default => Semantics::Default,
                Compat::Reference => Semantics::Reference,
            },
            migrate: self.migrate,
        })
    }
}

impl CommonArgs {
    /// The Butler repository, when given.
    pub fn repo(&self) -> Option<&str> {
        self.repo.as_deref().filter(|r| !r.is_empty())
    }

    /// How the task loop runs: `--workers`, a `host:pid` owner, `--lease`, the grace period.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            workers: self.workers,
            owner: crate::signals::owner_name(),
            lease: std::time::Duration::from_secs(self.lease),
            default_timewindow_minutes: i64::from(self.timewindow),
            grace_period: std::time::Duration::from_secs(self.grace_period),
        }
    }
}

/// Sets up logging from `LOG_LEVEL` and the options, logs `event=execution_config`, then runs
/// `work` on a multi-threaded runtime and logs `event=runtime`; exit code 1 if the runtime cannot
/// start.
///
/// `mode` names what runs (`job`, `cronjob`, `monitor`); `status` and `--dry-run` are quiet: they
/// log only warnings unless `LOG_LEVEL` says otherwise, so their output stands alone on stdout.
pub fn run_binary<F>(mode: &str, common: &CommonArgs, work: F) -> std::process::ExitCode
where
    F: Future<Output = std::process::ExitCode>,
{
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .or_else(|| (mode == "status" || common.dry_run).then(|| "warn".to_owned()));
    crate::logging::init_logging(
        common.log_format,
        common.logfile.as_deref(),
        level.as_deref(),
    );
    if common.check_config {
        return check_config(common);
    }
    let began = std::time::Instant::now();
    tracing::info!(
        message = "Execution config.",
        event = "execution_config",
        mode,
        instrument = %common.instrument,
        repo = common.repo().unwrap_or(""),
        timedelta_min = common.timedelta,
        timewindow_min = common.timewindow,
        workers = common.workers,
        compat = ?common.compat,
        version = env!("CARGO_PKG_VERSION")
    );
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            tracing::error!(message = "Cannot start the runtime.", event = "processing_failed", error = %e);
            std::process::ExitCode::from(1)
        }
    };
    tracing::info!(
        message = "Runtime.",
        event = "runtime",
        mode,
        duration_s = began.elapsed().as_secs_f64(),
        peak_rss_bytes = peak_rss_bytes()
    );
    code
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`), where Linux reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Opens the pipeline `common` describes, reading variables from the process environment; on
/// failure logs the error and gives exit code 1. With `--dry-run` it prints the ConsDB migration
/// SQL instead and gives exit code 0 (or 1), so the binary stops there.
pub async fn open_pipeline(
    common: &CommonArgs,
) -> Result<(crate::Pipeline, scheduler_store::SchedulerStore), std::process::ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let options = common
        .pipeline_options(&env)
        .map_err(|e| startup_error(&e))?;
    if common.dry_run {
        return Err(match crate::open::migration_dry_run(&options, &env).await {
            Ok(sql) => {
                #[allow(clippy::print_stdout)] // The SQL is the output the operator asked for.
                {
                    print!("{sql}");
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => startup_error(&e),
        });
    }
    crate::Pipeline::open(&options, &env)
        .await
        .map_err(|e| startup_error(&e))
}

/// Opens only the scheduler store `common` describes (for `efd-monitor status`: the Butler and the
/// EFD are not contacted); on failure logs the error and gives exit code 1.
pub async fn open_store(
    common: &CommonArgs,
) -> Result<scheduler_store::SchedulerStore, std::process::ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let options = common
        .pipeline_options(&env)
        .map_err(|e| startup_error(&e))?;
    crate::open::open_store(&options, &env)
        .await
        .map_err(|e| startup_error(&e))
}

/// `--check-config`: validates the config and prints its plan (columns per table, topics, query
/// groups, queries per task) without connecting anywhere; exit code 1 on an invalid config.
#[allow(clippy::print_stdout)] // The plan is printed for the operator.
pub fn check_config(common: &CommonArgs) -> std::process::ExitCode {
    let config = match transform_core::Config::load(&common.config) {
        Ok(c) => c,
        Err(e) => return startup_error(&e.into()),
    };
    let semantics = match common.compat {
        Compat::Default => Semantics::Default,
        Compat::Reference => Semantics::Reference,
    };
    let plan = transform_core::QueryPlan::new(&config, semantics);
    let s = plan.summary();
    println!(
        "{}: version {}, {} columns, valid",
        common.config.display(),
        config.version,
        config.columns.len()
    );
    for table in transform_core::Table::ALL {
        println!(
            "  {:<24} {:>4} columns",
            table.as_str(),
            config.columns_for(table).count()
        );
    }
    println!(
        "plan ({semantics}): {} query groups over {} topics ({} packed, {} pre-aggregated); {} SELECTs per task plus 2 per packed group",
        s.groups, s.topics, s.packed_groups, s.pre_aggregated_groups, s.plain_queries
    );
    std::process::ExitCode::SUCCESS
}

/// Logs a configuration or startup error (`event=configuration_error`) and returns exit code 1.
pub fn startup_error(e: &PipelineError) -> std::process::ExitCode {
    tracing::error!(message = "Cannot run.", event = "configuration_error", error = %e);
    std::process::ExitCode::from(1)
}

/// Parses an ISO 8601 instant (naive = UTC) for `-s`/`-e`.
pub fn parse_instant(text: &str) -> Result<transform_core::UtcNanos, String> {
    transform_core::time::parse_timestamp(text).ok_or_else(|| {
        format!("`{text}` is not an ISO 8601 UTC date-time (e.g. 2025-10-02T03:00:00)")
    })
}
