//! The command-line options the three binaries share, each also read from the environment variable
//! the Kubernetes manifests set, and the logging they configure.
//!
//! Bad input never ends in a panic or a screen of help: [`parse_args`] turns clap's errors into one
//! line on stderr naming the flag and its variable (exit code 1), and [`startup_error`] does the same
//! for everything found wrong before the first task (values out of range, a missing config, an
//! unreachable ConsDB, Butler registry or EFD), besides logging it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use efd_client::{EfdError, EfdLocation, EfdOptions};
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
    // The values of CONSDB_URL and EFD_URL may hold passwords: `--help` does not show them.
    #[arg(short = 'd', long = "db", env = "CONSDB_URL", hide_env_values = true, value_delimiter = ' ', num_args = 1.., required_unless_present = "check_config")]
    pub db: Vec<String>,
    /// EFD URL (http(s)://... or file://...); without it, EFD_HOST/EFD_PORT/EFD_PATH.
    #[arg(short = 'E', long = "efd", env = "EFD_URL", hide_env_values = true)]
    pub efd: Option<String>,
    /// Task length in minutes.
    #[arg(
        short = 't',
        long = "timedelta",
        env = "TIMEDELTA",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub timedelta: i64,
    /// Padding on both sides of every task, in minutes.
    #[arg(
        short = 'w',
        long = "timewindow",
        env = "TIMEWINDOW",
        default_value_t = 1,
        allow_negative_numbers = true
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

/// The longest task `-t/--timedelta` allows: a week, in minutes.
pub const MAX_TIMEDELTA_MINUTES: i64 = 7 * 24 * 60;
/// The widest padding `-w/--timewindow` allows: a day, in minutes.
pub const MAX_TIMEWINDOW_MINUTES: i32 = 24 * 60;

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
        if !(1..=MAX_TIMEDELTA_MINUTES).contains(&self.timedelta) {
            return Err(PipelineError::Usage(format!(
                "-t/--timedelta or TIMEDELTA must be a whole number of minutes from 1 to \
                 {MAX_TIMEDELTA_MINUTES}, not {}",
                self.timedelta
            )));
        }
        // A task's stored timewindow of 0 means "use the run's", so 0 cannot be recorded.
        if !(1..=MAX_TIMEWINDOW_MINUTES).contains(&self.timewindow) {
            return Err(PipelineError::Usage(format!(
                "-w/--timewindow or TIMEWINDOW must be a whole number of minutes from 1 to \
                 {MAX_TIMEWINDOW_MINUTES}, not {}",
                self.timewindow
            )));
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
            lease: Duration::from_secs(self.lease),
            default_timewindow_minutes: i64::from(self.timewindow),
            grace_period: Duration::from_secs(self.grace_period),
        }
    }
}

/// Sets up logging from `LOG_LEVEL` and the options, logs `event=execution_config`, then runs
/// `work` on a multi-threaded runtime and logs `event=runtime`; exit code 1 if the runtime cannot
/// start.
///
/// `mode` names what runs (`job`, `cronjob`, `monitor`); `status`, `coverage` and `--dry-run` are quiet: they
/// log only warnings unless `LOG_LEVEL` says otherwise, so their output stands alone on stdout.
pub fn run_binary<F>(mode: &str, common: &CommonArgs, work: F) -> ExitCode
where
    F: Future<Output = ExitCode>,
{
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .or_else(|| {
            (mode == "status" || mode == "coverage" || common.dry_run).then(|| "warn".to_owned())
        });
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
            ExitCode::from(1)
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
) -> Result<(crate::Pipeline, scheduler_store::SchedulerStore), ExitCode> {
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
                ExitCode::SUCCESS
            }
            Err(e) => startup_error(&e),
        });
    }
    let opened = crate::Pipeline::open(&options, &env)
        .await
        .map_err(|e| startup_error(&e))?;
    check_efd_reachable(&options.efd, &env)
        .await
        .map_err(|e| startup_error(&e))?;
    Ok(opened)
}

/// Attempts at reaching the EFD at startup.
const EFD_CHECK_ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each later one.
const EFD_CHECK_PAUSE: Duration = Duration::from_millis(500);

/// Variables through which reqwest sends EFD requests to a proxy.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Fails fast when the HTTP EFD cannot be reached at all: a TCP connection to its host and port,
/// [`EFD_CHECK_ATTEMPTS`] tries within its connect timeout each, so an unreachable URL is a startup
/// error (exit code 1) in seconds instead of every task failing after its retries. Only the
/// connection is checked: a slow or busy EFD is the tasks' business. Skipped for `file://`, and
/// when a proxy variable is set (the requests then go to the proxy, not to the EFD's host).
async fn check_efd_reachable(
    efd: &EfdOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), PipelineError> {
    let EfdLocation::Http(url) = &efd.location else {
        return Ok(());
    };
    if PROXY_VARIABLES
        .iter()
        .any(|v| env(v).is_some_and(|p| !p.trim().is_empty()))
    {
        return Ok(());
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Ok(());
    };
    // IPv6 literals come bracketed.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut pause = EFD_CHECK_PAUSE;
    let mut last = String::new();
    for attempt in 1..=EFD_CHECK_ATTEMPTS {
        let connect = tokio::net::TcpStream::connect((host, port));
        match tokio::time::timeout(efd.connect_timeout, connect).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {
                last = format!(
                    "no connection within {} s",
                    efd.connect_timeout.as_secs_f64()
                );
            }
        }
        if attempt < EFD_CHECK_ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(EfdError::Connect {
        endpoint: efd.location.to_string(),
        topic: "the startup check".to_owned(),
        attempts: EFD_CHECK_ATTEMPTS,
        message: last,
    }
    .into())
}

/// Opens only the scheduler store `common` describes (for `efd-monitor status`: the Butler and the
/// EFD are not contacted); on failure logs the error and gives exit code 1.
pub async fn open_store(common: &CommonArgs) -> Result<scheduler_store::SchedulerStore, ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let options = common
        .pipeline_options(&env)
        .map_err(|e| startup_error(&e))?;
    crate::open::open_store(&options, &env)
        .await
        .map_err(|e| startup_error(&e))
}

/// `--check-config`: validates the config and prints its plan (columns per table, topics, query
/// groups, queries per task) without connecting anywhere; exit code 1 on an invalid config. With
/// an EFD URL (`-E/--efd` or `EFD_URL`), also checks every column against what the EFD holds
/// ([`crate::check`]); exit code 1 when a column can never produce a value.
#[allow(clippy::print_stdout)] // The plan is printed for the operator.
pub fn check_config(common: &CommonArgs) -> ExitCode {
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
    let Some(url) = common.efd.as_deref().filter(|u| !u.trim().is_empty()) else {
        return ExitCode::SUCCESS;
    };
    let checked = tokio::runtime::Runtime::new()
        .map_err(|e| PipelineError::Usage(format!("cannot start the runtime: {e}")))
        .and_then(|runtime| runtime.block_on(check_against_efd(url, &config)));
    match checked {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => startup_error(&e),
    }
}

/// `--check-config --efd URL`: every column against the EFD's catalogue, printed one line per
/// column that is not ok; whether every column can produce a value.
#[allow(clippy::print_stdout)] // The report is printed for the operator.
async fn check_against_efd(
    url: &str,
    config: &transform_core::Config,
) -> Result<bool, PipelineError> {
    let options = EfdOptions::from_env(Some(url), &|k| std::env::var(k).ok())?;
    let shown = options.location.to_string();
    let efd = efd_client::EfdClient::open(options).await?;
    let topics = crate::check::config_topics(config);
    let catalog = efd.catalog(&topics).await?;
    let checks = crate::check::check_config(config, &catalog);
    let count = |verdict: &str| checks.iter().filter(|c| c.verdict() == verdict).count();
    let missing = topics
        .iter()
        .filter(|t| !catalog.measurements.contains(**t))
        .count();
    println!(
        "EFD {shown}: {} of the config's {} topics exist; columns: {} ok, {} partial, {} dead",
        topics.len() - missing,
        topics.len(),
        count("ok"),
        count("partial"),
        count("dead")
    );
    for c in checks.iter().filter(|c| !c.findings.is_empty()) {
        let findings: Vec<String> = c.findings.iter().map(ToString::to_string).collect();
        println!(
            "{:<8} {} (line {}, {}): {}",
            c.verdict(),
            c.column,
            c.line,
            c.topic,
            findings.join("; ")
        );
    }
    Ok(checks.iter().all(|c| !c.dead))
}

/// Logs a configuration or startup error (`event=configuration_error`), prints it as one line on
/// stderr (`<program>: error: <flag or variable>: <what is wrong>`), and returns exit code 1.
pub fn startup_error(e: &PipelineError) -> ExitCode {
    tracing::error!(message = "Cannot run.", event = "configuration_error", error = %e);
    let message = one_line(&e.to_string());
    let line = match subject(e) {
        Some(subject) => format!("{subject}: {message}"),
        None => message,
    };
    print_error(&program_name(std::env::args_os().next()), &line);
    ExitCode::from(1)
}

/// The flag and variable an error is about, when its kind says.
fn subject(e: &PipelineError) -> Option<&'static str> {
    match e {
        PipelineError::Config(_) => Some("-c/--config or CONFIG_FILE"),
        // Configuration messages name the variable or the URL themselves.
        PipelineError::Efd(EfdError::Config { .. }) => None,
        PipelineError::Efd(_) => Some("-E/--efd or EFD_URL"),
        PipelineError::Butler(_) => Some("-r/--repo or BUTLER_REPO"),
        PipelineError::Writer(_) | PipelineError::Scheduler(_) => Some("-d/--db or CONSDB_URL"),
        // Usage messages name their flags themselves.
        PipelineError::Usage(_) => None,
    }
}

/// Prints `<program>: error: <line>` on stderr.
#[allow(clippy::print_stderr)] // The one line an operator sees when the binary cannot run.
fn print_error(program: &str, line: &str) {
    eprintln!("{program}: error: {line}");
}

/// The binary's name, from `argv[0]`.
fn program_name(argv0: Option<OsString>) -> String {
    argv0
        .as_deref()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .map_or_else(
            || "transformed-efd".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        )
}

/// `text` on one line: its lines trimmed and joined with spaces.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the command line as `P` (a binary's options). `--help` and `--version` print and give
/// exit code 0; any error prints one line on stderr naming the flag and its variable and gives exit
/// code 1, instead of clap's exit code 2 and usage screen:
///
/// ```text
/// efd-job: error: invalid value 'hsc' for -i/--instrument or INSTRUMENT: unknown instrument `hsc` (expected one of latiss, lsstcam, lsstcomcam, lsstcomcamsim) (see --help)
/// ```
///
/// A binary's `main` starts with it:
///
/// ```text
/// let cli = match pipeline::cli::parse_args::<Cli>() {
///     Ok(cli) => cli,
///     Err(code) => return code,
/// };
/// ```
pub fn parse_args<P: clap::Parser>() -> Result<P, ExitCode> {
    parse_args_from(std::env::args_os())
}

/// [`parse_args`] over `args` (the program name first).
pub fn parse_args_from<P, I, T>(args: I) -> Result<P, ExitCode>
where
    P: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    P::try_parse_from(&args).map_err(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            // Help and version go to stdout; nothing to do if it is closed.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let program = program_name(args.first().cloned());
        print_error(&program, &clap_error_line(&e, &P::command()));
        ExitCode::from(1)
    })
}

/// One line for a clap error: clap's message (its first paragraph, `[possible values: ...]`
/// included) with each argument shown as its flags and variable, any `tip:` appended, and a pointer
/// to `--help`; clap's usage lines are left out.
pub fn clap_error_line(e: &clap::Error, command: &clap::Command) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let rendered = e.render().to_string();
    let mut paragraphs = rendered.split("\n\n");
    let head = one_line(paragraphs.next().unwrap_or_default());
    let head = head.strip_prefix("error:").unwrap_or(&head).trim();
    let args: Vec<&str> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => vec![a.as_str()],
        Some(ContextValue::Strings(list)) => list.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    let mut line = if e.kind() == ErrorKind::MissingRequiredArgument && !args.is_empty() {
        let shown: Vec<String> = args
            .iter()
            .map(|a| arg_label(command, a).unwrap_or_else(|| (*a).to_owned()))
            .collect();
        format!("missing {}", shown.join(", "))
    } else {
        let mut line = head.to_owned();
        for a in &args {
            if let Some(label) = arg_label(command, a) {
                line = line.replacen(&format!("'{a}'"), &label, 1);
            }
        }
        line
    };
    for tip in paragraphs
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| l.starts_with("tip:"))
    {
        line.push_str("; ");
        line.push_str(tip);
    }
    format!("{line} (see --help)")
}

/// `-s/--start or DATETIME_START` for clap's `--start <START>` (as it names an argument); `None`
/// for a name the command does not have.
fn arg_label(command: &clap::Command, shown: &str) -> Option<String> {
    let name = shown.split([' ', '=']).next().unwrap_or(shown);
    let arg = command.get_arguments().find(|a| {
        a.get_long().is_some_and(|l| name == format!("--{l}"))
            || a.get_short().is_some_and(|s| name == format!("-{s}"))
    })?;
    let flags = match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}/--{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => name.to_owned(),
    };
    Some(match arg.get_env() {
        Some(var) => format!("{flags} or {}", var.to_string_lossy()),
        None => flags,
    })
}

/// Parses an ISO 8601 instant (naive = UTC) for `-s`/`-e`.
pub fn parse_instant(text: &str) -> Result<transform_core::UtcNanos, String> {
    transform_core::time::parse_timestamp(text).ok_or_else(|| {
        format!(
            "`{text}` is not an ISO 8601 UTC date-time of the years 1678 to 2261 (e.g. \
             2025-10-02T03:00:00)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary's options, as `efd-job` declares them.
    #[derive(Debug, clap::Parser)]
    #[command(name = "efd-test")]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        // No `env` here: xtask's manifest check reads every `env = ` of this file as CommonArgs'.
        #[arg(short = 's', long = "start", value_parser = parse_instant)]
        start: Option<transform_core::UtcNanos>,
    }

    const VALID: [&str; 9] = [
        "efd-test",
        "-c",
        "c.yaml",
        "-i",
        "latiss",
        "-r",
        "/repo",
        "-d",
        "sqlite:////x.db",
    ];

    /// The one line for `args`, which must not parse.
    fn line(args: &[&str]) -> String {
        use clap::Parser as _;
        let e = Cli::try_parse_from(args).unwrap_err();
        let line = clap_error_line(&e, &<Cli as clap::CommandFactory>::command());
        assert!(!line.contains('\n'), "{line}");
        line
    }

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        VALID.iter().chain(extra).copied().collect()
    }

    #[test]
    fn clap_errors_become_one_line_naming_flag_and_variable() {
        let mut args = VALID.to_vec();
        args[4] = "hsc";
        let l = line(&args);
        assert!(
            l.starts_with("invalid value 'hsc' for -i/--instrument or INSTRUMENT: ")
                && l.contains("unknown instrument `hsc`")
                && l.ends_with("(see --help)"),
            "{l}"
        );
        let l = line(&with(&["-s", "yesterday"]));
        assert!(
            l.starts_with("invalid value 'yesterday' for -s/--start: ")
                && l.contains("not an ISO 8601"),
            "{l}"
        );
        let l = line(&VALID[..5]);
        assert!(
            l.starts_with("missing -r/--repo or BUTLER_REPO, -d/--db or CONSDB_URL"),
            "{l}"
        );
        let l = line(&with(&["--compat", "python"]));
        assert!(
            l.contains("--compat") && l.contains("[possible values: default, reference]"),
            "{l}"
        );
        let l = line(&with(&["--timedeltaa", "5"]));
        assert!(l.contains("'--timedeltaa'") && l.contains("tip:"), "{l}");
    }

    #[test]
    fn task_length_and_padding_are_checked_with_their_flags() {
        use clap::Parser as _;
        let env = |_: &str| None;
        let message = |extra: &[&'static str]| {
            let cli = Cli::try_parse_from(with(extra)).unwrap();
            cli.common
                .pipeline_options(&env)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        // Negative numbers reach the check instead of being taken for flags.
        for (extra, want) in [
            (["-t", "0"], "-t/--timedelta or TIMEDELTA must be"),
            (["-t", "-5"], "not -5"),
            (["-t", "10081"], "not 10081"),
            (["-w", "0"], "-w/--timewindow or TIMEWINDOW must be"),
            (["-w", "-3"], "not -3"),
            (["-w", "1441"], "not 1441"),
        ] {
            let err = message(&extra).unwrap_err();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
        assert!(message(&["-t", "10080", "-w", "1440"]).is_ok());
        assert!(message(&["-t", "1", "-w", "1"]).is_ok());
    }

    #[test]
    fn startup_errors_name_their_flag() {
        assert_eq!(
            subject(&PipelineError::Butler(
                butler_reader::ButlerError::Location {
                    repo: "/x".into(),
                    message: "no such directory".into(),
                }
            )),
            Some("-r/--repo or BUTLER_REPO")
        );
        assert_eq!(subject(&PipelineError::Usage("x".into())), None);
        assert_eq!(one_line("a\n  b\n\nc "), "a b c");
        assert_eq!(
            program_name(Some("/usr/local/bin/efd-job".into())),
            "efd-job"
        );
        assert_eq!(program_name(None), "transformed-efd");
    }

    #[tokio::test]
    async fn an_unreachable_efd_fails_the_startup_check_in_seconds() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let options = EfdOptions::from_env(Some(&url), &|_| None).unwrap();
        let began = std::time::Instant::now();
        let err = check_efd_reachable(&options, &|_| None).await.unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(30), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains(&url) && shown.contains("3 attempt(s)"),
            "{shown}"
        );
        // Through a proxy the EFD's own port says nothing: no check.
        let proxy = |k: &str| (k == "HTTPS_PROXY").then(|| "http://proxy:3128".to_owned());
        assert!(check_efd_reachable(&options, &proxy).await.is_ok());
        // A listening EFD passes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let options = EfdOptions::from_env(Some(&url), &|_| None).unwrap();
        check_efd_reachable(&options, &|_| None).await.unwrap();
    }
}
