//! End-to-end benchmark of `efd-job` (`make bench-e2e`): real servers, a synthetic night for a real
//! config, and what a run costs.
//!
//! For every combination of the list options it runs the release `efd-job` over a synthetic night
//! (made by [`transformed_efd_examples::synth`], realistic rates, cached per size in
//! `<out>/nights/`) and measures it:
//!
//! - `http` source: a fresh `influxd` per night, seeded once with the night's line protocol (the
//!   seeding is timed separately and not part of any run), ConsDB in a fresh database of one
//!   PostgreSQL server per run;
//! - `file` source: `-E file:///<night>/efd.lp`, ConsDB in a fresh SQLite file per run.
//!
//! Both read the night's SQLite Butler registry. Each run is `efd-job --migrate --log-format json`
//! over the night; the wall time is measured around the child process, everything else comes from
//! its JSON log (`task_processing_summary`, `runtime`, `task_completed`, `tasks_created`) and, when
//! `/usr/bin/time` exists, from it (peak RSS cross-check, CPU time). Output: a table on stdout,
//! every run in `<out>/e2e.json` (with the git commit, the machine's cores and the date, for
//! comparison across commits), and each run's log in `<out>/runs/<id>/`.
//!
//! Definitions (columns of the table, fields of the JSON):
//!
//! - `wall s`: wall time of the `efd-job` process, start to exit (startup, migrations, task
//!   creation, the tasks, exit).
//! - `tasks/s`: tasks processed / wall; `exp/s`: the night's exposures / wall.
//! - `stmts`, `reqs`, `MB rx`: InfluxQL statements, HTTP requests and bytes received from the EFD
//!   (the EFD client's totals for the process; the file source makes no requests).
//! - `EFD %`, `xform %`, `write %`, `sched %`, `butler %`: the phase's time summed over the tasks
//!   (`efd_s`, ... of `task_processing_summary`), divided by the run's wall time. Each task's
//!   phases are wall-clock spans of that task, so with N workers the shares can add up to N × 100 %.
//!   `EFD %` is the share of wall time spent waiting on the EFD (each task's EFD phase, in which
//!   its topic queries run concurrently, up to `--efd-concurrency` at once).
//! - `start s`: from spawning the process to its `tasks_created` event (config, connections,
//!   migrations, loading the EFD file for the file source, creating the tasks).
//! - `CPU %`: user + system CPU time of `efd-job` / wall (from `/usr/bin/time`; 100 % = one core).
//! - `RSS MiB`: peak resident set size of `efd-job` (`VmHWM`, its `runtime` event).
//! - `influxd CPU %`, `pg CPU %` (http runs): CPU time the servers used during the run / wall, from
//!   `/proc/<pid>/stat` (PostgreSQL: the postmaster and the backends it reaped, i.e. the run's
//!   connections). On a small machine the servers share the cores with `efd-job`.
//! - `status`: `ok`, or the exit code and the number of failed tasks.
//!
//! After seeding, the benchmark waits (at most 3 minutes) until influxd is idle, so its snapshot
//! and compactions do not run during the first measurement.
//!
//! ```text
//! cargo build --release -p efd-job
//! cargo run --release -p transformed-efd-examples --example bench_e2e -- \
//!     [--minutes 120] [--exposures 80] [--config PATH] [--instrument lsstcam] [--seed 1] \
//!     [--timedelta 5[,60]] [--workers 1[,2]] [--efd-concurrency 4[,1]] [--sources http,http-json,file] \
//!     [--scale 1[,2,4]] [--out target/bench] [--job target/release/efd-job] [--regenerate]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // The table and progress are the output.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use transform_core::time::{format_isot, parse_timestamp};
use transform_core::{Instrument, UtcNanos};
use transformed_efd_examples::synth::{Manifest, NANOS_PER_SECOND, Night, SynthOptions};

const USAGE: &str = "usage: bench_e2e [--minutes N] [--exposures N] [--config PATH] \
                     [--instrument NAME] [--seed N] [--timedelta LIST] [--workers LIST] \
                     [--efd-concurrency LIST] [--sources http,http-json,file] [--scale LIST] [--out DIR] \
                     [--job PATH] [--regenerate]\n(LIST: comma-separated numbers, e.g. 5,60)";

/// The EFD database name in influxd (the pipeline's default).
const EFD_DATABASE: &str = "efd";
/// Line protocol handed to [`test_support::Influxd::write`] at once while seeding.
const SEED_CHUNK_BYTES: usize = 64 << 20;
/// Where the EFD is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Source {
    /// A real influxd over HTTP, answers in MessagePack (ConsDB in PostgreSQL).
    Http,
    /// The same, answers in JSON (`--efd-format json`), for comparison.
    #[serde(rename = "http-json")]
    HttpJson,
    /// The line-protocol file (ConsDB in SQLite).
    File,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::HttpJson => "http-json",
            Source::File => "file",
        }
    }

    fn is_http(self) -> bool {
        matches!(self, Source::Http | Source::HttpJson)
    }
}

/// The command line.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    minutes: u32,
    exposures: u32,
    config: PathBuf,
    instrument: Instrument,
    seed: u64,
    timedelta: Vec<u32>,
    workers: Vec<u32>,
    efd_concurrency: Vec<u32>,
    sources: Vec<Source>,
    scale: Vec<u32>,
    out: PathBuf,
    job: PathBuf,
    regenerate: bool,
}

impl Options {
    /// The defaults: a 2-hour night of 80 exposures for the real LSSTCam config, 5-minute tasks,
    /// one worker, 4 EFD queries in flight, both sources, scale 1, output in `<target>/bench`, the
    /// release `efd-job` of the target directory this program runs from.
    fn defaults() -> Options {
        let target = target_dir();
        Options {
            minutes: 120,
            exposures: 80,
            config: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/reference/consdb/config/config_lsstcam.yaml"),
            instrument: Instrument::LsstCam,
            seed: 1,
            timedelta: vec![5],
            workers: vec![1],
            efd_concurrency: vec![4],
            sources: vec![Source::Http, Source::File],
            scale: vec![1],
            out: target.join("bench"),
            job: target.join("release").join("efd-job"),
            regenerate: false,
        }
    }

    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut options = Options::defaults();
        let mut args = args;
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "-h" | "--help" => bail!("{USAGE}"),
                "--regenerate" => {
                    options.regenerate = true;
                    continue;
                }
                _ => {}
            }
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
            match flag.as_str() {
                "--minutes" => options.minutes = number(&flag, &value)?,
                "--exposures" => options.exposures = number(&flag, &value)?,
                "--config" => options.config = PathBuf::from(value),
                "--instrument" => {
                    options.instrument = value
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--instrument: {e}"))?;
                }
                "--seed" => options.seed = number(&flag, &value)?,
                "--timedelta" => options.timedelta = list(&flag, &value)?,
                "--workers" => options.workers = list(&flag, &value)?,
                "--efd-concurrency" => options.efd_concurrency = list(&flag, &value)?,
                "--scale" => options.scale = list(&flag, &value)?,
                "--out" => options.out = PathBuf::from(value),
                "--job" => options.job = PathBuf::from(value),
                "--sources" => {
                    options.sources = value
                        .split(',')
                        .map(|s| match s.trim() {
                            "http" => Ok(Source::Http),
                            "http-json" => Ok(Source::HttpJson),
                            "file" => Ok(Source::File),
                            other => bail!("--sources: `{other}` is not http, http-json or file"),
                        })
                        .collect::<anyhow::Result<_>>()?;
                }
                _ => bail!("unknown option {flag}\n{USAGE}"),
            }
        }
        ensure!(options.minutes > 0, "--minutes must be positive");
        for (flag, values) in [
            ("--timedelta", &options.timedelta),
            ("--workers", &options.workers),
            ("--efd-concurrency", &options.efd_concurrency),
            ("--scale", &options.scale),
        ] {
            ensure!(
                values.iter().all(|v| *v > 0),
                "{flag}: every value must be positive"
            );
        }
        Ok(options)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: not a number: {value}"))
}

fn list(flag: &str, value: &str) -> anyhow::Result<Vec<u32>> {
    let values: Vec<u32> = value
        .split(',')
        .map(|v| number(flag, v))
        .collect::<anyhow::Result<_>>()?;
    ensure!(!values.is_empty(), "{flag}: empty list");
    Ok(values)
}

/// The cargo target directory this program was built into (`<target>/<profile>/examples/<exe>`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// What one `efd-job` process logged (`--log-format json`, one object per line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct JobLog {
    /// `task_processing_summary` events (job mode: the failed-task pass, then the idle tasks).
    summaries: u32,
    /// Summed over the summaries.
    tasks: u64,
    completed: u64,
    failed: u64,
    released: u64,
    /// Per-task counts summed (an item in two padded tasks counts twice).
    exposures: u64,
    visits: u64,
    butler_s: f64,
    efd_s: f64,
    transform_s: f64,
    write_s: f64,
    scheduler_s: f64,
    /// The EFD client's totals for the process (from the last summary).
    efd_statements: u64,
    efd_requests: u64,
    efd_bytes: u64,
    efd_retries: u64,
    /// `runtime`: the process's own measure of its duration, and its peak RSS.
    runtime_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
    /// `task_completed` events and their `duration_s`.
    task_durations_s: Vec<f64>,
    /// Unix ns of the first line, of `tasks_created` and of the last summary.
    first_ns: Option<i64>,
    tasks_created_ns: Option<i64>,
    last_summary_ns: Option<i64>,
    /// Lines at level ERROR, and the first of them.
    errors: u64,
    first_error: Option<String>,
}

impl JobLog {
    fn parse(text: &str) -> anyhow::Result<JobLog> {
        let mut log = JobLog::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let object: Value = serde_json::from_str(line)
                .with_context(|| format!("line {}: not JSON: {line}", n + 1))?;
            let ts = object
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(parse_timestamp)
                .map(|t| t.0);
            if log.first_ns.is_none() {
                log.first_ns = ts;
            }
            let fields = object.get("fields").unwrap_or(&Value::Null);
            let f64_of = |k: &str| fields.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let u64_of = |k: &str| fields.get(k).and_then(Value::as_u64).unwrap_or(0);
            if object.get("level").and_then(Value::as_str) == Some("ERROR") {
                log.errors += 1;
                if log.first_error.is_none() {
                    log.first_error = Some(fields.to_string());
                }
            }
            match fields.get("event").and_then(Value::as_str) {
                Some("task_processing_summary") => {
                    log.summaries += 1;
                    log.tasks += u64_of("tasks");
                    log.completed += u64_of("completed");
                    log.failed += u64_of("failed");
                    log.released += u64_of("released");
                    log.exposures += u64_of("exposures");
                    log.visits += u64_of("visits");
                    log.butler_s += f64_of("butler_s");
                    log.efd_s += f64_of("efd_s");
                    log.transform_s += f64_of("transform_s");
                    log.write_s += f64_of("write_s");
                    log.scheduler_s += f64_of("scheduler_s");
                    log.efd_statements = u64_of("efd_statements");
                    log.efd_requests = u64_of("efd_requests");
                    log.efd_bytes = u64_of("efd_bytes");
                    log.efd_retries = u64_of("efd_retries");
                    log.last_summary_ns = ts;
                }
                Some("runtime") => {
                    log.runtime_s = fields.get("duration_s").and_then(Value::as_f64);
                    log.peak_rss_bytes = fields.get("peak_rss_bytes").and_then(Value::as_u64);
                }
                Some("task_completed") => log.task_durations_s.push(f64_of("duration_s")),
                Some("tasks_created") if log.tasks_created_ns.is_none() => {
                    log.tasks_created_ns = ts;
                }
                _ => {}
            }
        }
        ensure!(
            log.summaries > 0,
            "no task_processing_summary event in the log"
        );
        Ok(log)
    }
}

/// What `/usr/bin/time -f "%M %U %S"` reports about the child.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimeV {
    max_rss_bytes: u64,
    user_s: f64,
    sys_s: f64,
}

impl TimeV {
    const FORMAT: &'static str = "%M %U %S";

    fn parse(text: &str) -> Option<TimeV> {
        // Its last line; earlier ones report a non-zero exit ("Command exited with ...").
        let mut fields = text.lines().last()?.split_whitespace();
        let kib: u64 = fields.next()?.parse().ok()?;
        Some(TimeV {
            max_rss_bytes: kib * 1024,
            user_s: fields.next()?.parse().ok()?,
            sys_s: fields.next()?.parse().ok()?,
        })
    }
}

/// One `efd-job` invocation.
#[derive(Debug, Clone)]
struct JobSpec<'a> {
    job: &'a Path,
    config: &'a Path,
    instrument: Instrument,
    repo: &'a Path,
    consdb: &'a str,
    efd: &'a str,
    start: UtcNanos,
    end: UtcNanos,
    timedelta: u32,
    workers: u32,
    efd_concurrency: u32,
    /// `--efd-format` of the run (what the http sources ask influxd for).
    efd_format: &'static str,
    /// Directory for `job.log` (stdout), `job.err` and `time.txt`.
    dir: &'a Path,
}

/// What one invocation gave.
#[derive(Debug, Clone)]
struct JobRun {
    exit_code: Option<i32>,
    wall_s: f64,
    /// Unix ns when the process was spawned.
    spawned_ns: i64,
    log: JobLog,
    time: Option<TimeV>,
}

/// Unix ns of the wall clock: a benchmark measures real time, and compares it with the log's
/// timestamps (there is no clock to inject here).
#[allow(clippy::disallowed_methods)]
fn now_ns() -> i64 {
    unix_ns(SystemTime::now())
}

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs `efd-job` as `spec` says, with only the options given here (nothing from the caller's
/// environment), and parses its log.
fn run_job(spec: &JobSpec<'_>) -> anyhow::Result<JobRun> {
    ensure!(
        spec.job.is_file(),
        "{} not found: build it first with `cargo build --release -p efd-job` (or pass --job PATH)",
        spec.job.display()
    );
    std::fs::create_dir_all(spec.dir)
        .with_context(|| format!("cannot create {}", spec.dir.display()))?;
    let stdout_path = spec.dir.join("job.log");
    let stderr_path = spec.dir.join("job.err");
    let time_path = spec.dir.join("time.txt");
    let gnu_time = Path::new("/usr/bin/time");
    // Nothing the job reads comes from the caller's environment (test_support::service_command).
    let mut command = if gnu_time.is_file() {
        let mut c = test_support::service_command(gnu_time);
        c.args(["-f", TimeV::FORMAT, "-o"])
            .arg(&time_path)
            .arg(spec.job);
        c
    } else {
        test_support::service_command(spec.job)
    };
    command
        .arg("-c")
        .arg(spec.config)
        .args(["-i", spec.instrument.butler_name()])
        .arg("-r")
        .arg(spec.repo)
        .args(["-d", spec.consdb, "-E", spec.efd])
        .args(["-s", &format_isot(spec.start), "-e", &format_isot(spec.end)])
        .args(["-t", &spec.timedelta.to_string()])
        .args(["--workers", &spec.workers.to_string()])
        .args(["--efd-concurrency", &spec.efd_concurrency.to_string()])
        .args(["--efd-format", spec.efd_format])
        .args(["--migrate", "--log-format", "json"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?);
    let spawned_ns = now_ns();
    let began = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", spec.job.display()))?;
    let wall_s = began.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&stdout_path)?;
    let log = JobLog::parse(&text).with_context(|| {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        format!(
            "efd-job exited with {status}; its log {} ends:\n{}\nstderr:\n{}",
            stdout_path.display(),
            tail(&text, 10),
            tail(&stderr, 10)
        )
    })?;
    let time = std::fs::read_to_string(&time_path)
        .ok()
        .as_deref()
        .and_then(TimeV::parse);
    Ok(JobRun {
        exit_code: status.code(),
        wall_s,
        spawned_ns,
        log,
        time,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One night the runs read, as the JSON reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NightRecord {
    scale: u32,
    dir: String,
    minutes: u32,
    exposures: u64,
    visits: u64,
    topics: u64,
    efd_rows: u64,
    efd_lp_bytes: u64,
    /// Seconds to generate it (`None`: taken from the cache).
    generate_s: Option<f64>,
    /// Seconds to seed a fresh influxd with it (`None`: no http run).
    seed_influxd_s: Option<f64>,
    /// Seconds waited after seeding until influxd was idle.
    settle_influxd_s: Option<f64>,
}

impl NightRecord {
    fn new(scale: u32, dir: &Path, m: &Manifest, generate_s: Option<f64>) -> NightRecord {
        let exposures = m.items.iter().filter(|i| !i.is_visit).count() as u64;
        NightRecord {
            scale,
            dir: dir.display().to_string(),
            minutes: u32::try_from((m.night_end_utc_ns - m.night_start_utc_ns) / 60_000_000_000)
                .unwrap_or(u32::MAX),
            exposures,
            visits: m.items.len() as u64 - exposures,
            topics: m.topics.len() as u64,
            efd_rows: m.topics.iter().map(|t| t.rows).sum(),
            efd_lp_bytes: m.efd_bytes,
            generate_s,
            seed_influxd_s: None,
            settle_influxd_s: None,
        }
    }
}

/// One run: its parameters, its measures and the derived figures of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunRecord {
    id: String,
    source: Source,
    timedelta_min: u32,
    workers: u32,
    efd_concurrency: u32,
    scale: u32,
    night_minutes: u32,
    night_exposures: u64,
    night_visits: u64,
    exit_code: Option<i32>,
    wall_s: f64,
    /// Spawn to `tasks_created`.
    startup_s: Option<f64>,
    /// `tasks_created` to the last `task_processing_summary`.
    tasks_loop_s: Option<f64>,
    tasks_per_s: f64,
    exposures_per_s: f64,
    /// Phase seconds summed over tasks, divided by `wall_s`.
    efd_share: f64,
    transform_share: f64,
    write_share: f64,
    scheduler_share: f64,
    butler_share: f64,
    task_s_median: Option<f64>,
    task_s_max: Option<f64>,
    /// `/usr/bin/time`: peak RSS and CPU seconds of the process.
    time_max_rss_bytes: Option<u64>,
    cpu_user_s: Option<f64>,
    cpu_sys_s: Option<f64>,
    /// CPU seconds of the servers during the run (http runs): influxd, and PostgreSQL's postmaster
    /// with the backends it reaped (the run's connections).
    influxd_cpu_s: Option<f64>,
    postgres_cpu_s: Option<f64>,
    log_path: String,
    /// Everything the log said, as parsed.
    log: JobLog,
}

impl RunRecord {
    fn new(id: &str, params: &RunParams, night: &NightRecord, run: JobRun, dir: &Path) -> Self {
        let wall = run.wall_s.max(f64::MIN_POSITIVE);
        let log = run.log;
        let mut durations = log.task_durations_s.clone();
        durations.sort_by(f64::total_cmp);
        let secs = |from: Option<i64>, to: Option<i64>| {
            Some((to? - from?) as f64 / NANOS_PER_SECOND as f64)
        };
        RunRecord {
            id: id.to_owned(),
            source: params.source,
            timedelta_min: params.timedelta,
            workers: params.workers,
            efd_concurrency: params.efd_concurrency,
            scale: params.scale,
            night_minutes: night.minutes,
            night_exposures: night.exposures,
            night_visits: night.visits,
            exit_code: run.exit_code,
            wall_s: run.wall_s,
            startup_s: secs(Some(run.spawned_ns), log.tasks_created_ns),
            tasks_loop_s: secs(log.tasks_created_ns, log.last_summary_ns),
            tasks_per_s: log.tasks as f64 / wall,
            exposures_per_s: night.exposures as f64 / wall,
            efd_share: log.efd_s / wall,
            transform_share: log.transform_s / wall,
            write_share: log.write_s / wall,
            scheduler_share: log.scheduler_s / wall,
            butler_share: log.butler_s / wall,
            task_s_median: durations.get(durations.len() / 2).copied(),
            task_s_max: durations.last().copied(),
            time_max_rss_bytes: run.time.map(|t| t.max_rss_bytes),
            cpu_user_s: run.time.map(|t| t.user_s),
            cpu_sys_s: run.time.map(|t| t.sys_s),
            influxd_cpu_s: None,
            postgres_cpu_s: None,
            log_path: dir.join("job.log").display().to_string(),
            log,
        }
    }

    fn ok(&self) -> bool {
        self.exit_code == Some(0) && self.log.failed == 0
    }
}

/// The parameters of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RunParams {
    source: Source,
    timedelta: u32,
    workers: u32,
    efd_concurrency: u32,
    scale: u32,
}

impl RunParams {
    fn id(&self, index: usize) -> String {
        format!(
            "{index:02}-{}-t{}-w{}-c{}-x{}",
            self.source.name(),
            self.timedelta,
            self.workers,
            self.efd_concurrency,
            self.scale
        )
    }
}

/// Everything `<out>/e2e.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    /// `git rev-parse HEAD` of the workspace, and whether the tree had changes.
    commit: Option<String>,
    dirty: Option<bool>,
    /// UTC, ISO 8601.
    date: String,
    cores: usize,
    job: String,
    config: String,
    nights: Vec<NightRecord>,
    runs: Vec<RunRecord>,
}

/// The table of runs, one row each (see the module documentation for the columns).
fn format_table(runs: &[RunRecord]) -> String {
    const HEADER: [&str; 23] = [
        "source",
        "td",
        "w",
        "conc",
        "x",
        "tasks",
        "wall s",
        "tasks/s",
        "exp/s",
        "stmts",
        "reqs",
        "MB rx",
        "EFD %",
        "xform %",
        "write %",
        "sched %",
        "butler %",
        "start s",
        "CPU %",
        "RSS MiB",
        "influxd CPU %",
        "pg CPU %",
        "status",
    ];
    let opt = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
    };
    let pct = |share: f64| format!("{:.1}", share * 100.0);
    let rows: Vec<[String; 23]> = runs
        .iter()
        .map(|r| {
            let cpu = r
                .cpu_user_s
                .zip(r.cpu_sys_s)
                .map(|(u, s)| (u + s) / r.wall_s * 100.0);
            let status = if r.ok() {
                "ok".to_owned()
            } else {
                format!(
                    "exit {} failed {}",
                    r.exit_code
                        .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
                    r.log.failed
                )
            };
            [
                r.source.name().to_owned(),
                r.timedelta_min.to_string(),
                r.workers.to_string(),
                r.efd_concurrency.to_string(),
                r.scale.to_string(),
                r.log.tasks.to_string(),
                format!("{:.2}", r.wall_s),
                format!("{:.2}", r.tasks_per_s),
                format!("{:.2}", r.exposures_per_s),
                r.log.efd_statements.to_string(),
                r.log.efd_requests.to_string(),
                format!("{:.1}", r.log.efd_bytes as f64 / 1e6),
                pct(r.efd_share),
                pct(r.transform_share),
                pct(r.write_share),
                pct(r.scheduler_share),
                pct(r.butler_share),
                opt(r.startup_s, 2),
                opt(cpu, 0),
                opt(r.log.peak_rss_bytes.map(|b| b as f64 / 1_048_576.0), 1),
                opt(r.influxd_cpu_s.map(|c| c / r.wall_s * 100.0), 0),
                opt(r.postgres_cpu_s.map(|c| c / r.wall_s * 100.0), 0),
                status,
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Text columns (the first and the last) to the left, numbers to the right.
            if i == 0 || i + 1 == cells.len() {
                let _ = write!(text, "{cell:<w$}  ");
            } else {
                let _ = write!(text, "{cell:>w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&HEADER);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// The night of `scale`: from the cache in `<out>/nights/` when it is there (and `--regenerate`
/// was not given), else generated.
fn night(options: &Options, scale: u32) -> anyhow::Result<(PathBuf, Manifest, Option<f64>)> {
    let minutes = options.minutes * scale;
    let exposures = options.exposures * scale;
    let stem = options
        .config
        .file_stem()
        .map_or_else(|| "config".into(), |s| s.to_string_lossy());
    let dir = options.out.join("nights").join(format!(
        "{stem}-{}-{minutes}min-{exposures}exp-seed{}",
        options.instrument.butler_name().to_lowercase(),
        options.seed
    ));
    let manifest_path = dir.join("night.json");
    // night.json is written last: its presence means a complete night.
    if !options.regenerate && manifest_path.is_file() {
        let manifest = Manifest::load(&manifest_path)?;
        if manifest.config == options.config.display().to_string() && dir.join("efd.lp").is_file() {
            eprintln!("bench-e2e: night ×{scale}: cached in {}", dir.display());
            return Ok((dir, manifest, None));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    eprintln!(
        "bench-e2e: night ×{scale}: generating {minutes} min, {exposures} exposures, realistic \
         rates, {} into {}",
        options.config.display(),
        dir.display()
    );
    let synth = SynthOptions {
        instrument: options.instrument,
        config: options.config.clone(),
        minutes,
        exposures,
        seed: options.seed,
        ..SynthOptions::new(&dir)
    }
    .realistic();
    let began = Instant::now();
    let files = Night::generate(&synth)?;
    let took = began.elapsed().as_secs_f64();
    Ok((dir, files.manifest, Some(took)))
}

/// Writes the night's line protocol into database `efd` of `influx`, in chunks of whole lines.
fn seed(influx: &test_support::Influxd, efd: &Path) -> anyhow::Result<()> {
    influx.create_database(EFD_DATABASE);
    let file =
        std::fs::File::open(efd).with_context(|| format!("cannot open {}", efd.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut chunk = String::with_capacity(SEED_CHUNK_BYTES + (1 << 20));
    loop {
        let read = reader.read_line(&mut chunk)?;
        if read == 0 || chunk.len() >= SEED_CHUNK_BYTES {
            if !chunk.is_empty() {
                influx.write(EFD_DATABASE, &chunk);
                chunk.clear();
            }
            if read == 0 {
                return Ok(());
            }
        }
    }
}

/// `git rev-parse HEAD` and whether `git status --porcelain` lists anything, in the workspace.
fn git_commit() -> (Option<String>, Option<bool>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    (commit, dirty)
}

/// A server process the harness started, found by its command line, whose CPU time is read from
/// `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ServerProcess {
    pid: u32,
    /// `USER_HZ`: clock ticks per second of `/proc/<pid>/stat`.
    ticks: f64,
}

impl ServerProcess {
    /// The process one of whose arguments lies under `dir` (the server's private temp dir: influxd's
    /// `-config`, postgres's `-D`); `None` where `/proc` says nothing.
    fn find(dir: &Path) -> Option<ServerProcess> {
        let dir = dir.to_str()?;
        let ticks = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg.starts_with(dir.as_bytes()))
                    .then_some(ServerProcess { pid, ticks })
            })
    }

    /// CPU seconds of the process, its threads and its children it has reaped (PostgreSQL's
    /// backends once they exit): utime + stime + cutime + cstime.
    fn cpu_s(self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the command name in parentheses start with the state (field 3).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..15)?
            .iter()
            .map(|f| f.parse::<u64>().ok())
            .sum::<Option<u64>>()?;
        Some(ticks as f64 / self.ticks)
    }
}

/// CPU seconds `process` used while `f` ran.
fn cpu_during<T>(process: Option<ServerProcess>, f: impl FnOnce() -> T) -> (T, Option<f64>) {
    let before = process.and_then(ServerProcess::cpu_s);
    let value = f();
    let after = process.and_then(ServerProcess::cpu_s);
    (value, after.zip(before).map(|(a, b)| a - b))
}

/// Waits until `influxd` has been nearly idle (under 5 % of a core) for two seconds after seeding
/// (its snapshot and compactions would otherwise compete with the first run), for at most
/// `limit_s`; returns the seconds waited.
fn settle(process: Option<ServerProcess>, limit_s: f64) -> f64 {
    let began = Instant::now();
    let mut quiet = 0;
    while let Some(cpu) = process.and_then(ServerProcess::cpu_s) {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let Some(later) = process.and_then(ServerProcess::cpu_s) else {
            break;
        };
        quiet = if later - cpu < 0.05 { quiet + 1 } else { 0 };
        if quiet >= 2 || began.elapsed().as_secs_f64() >= limit_s {
            break;
        }
    }
    began.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    ensure!(
        options.job.is_file(),
        "{} not found: build it first with `cargo build --release -p efd-job` (or pass --job PATH)",
        options.job.display()
    );
    ensure!(
        options.config.is_file(),
        "config {} not found (pass --config PATH)",
        options.config.display()
    );
    let options = Options {
        config: options.config.canonicalize()?,
        job: options.job.canonicalize()?,
        ..options
    };
    std::fs::create_dir_all(&options.out)?;
    let out = options.out.canonicalize()?;
    let options = Options { out, ..options };

    let postgres = options
        .sources
        .iter()
        .any(|s| s.is_http())
        .then(test_support::Postgres::start);
    let postgres_process = postgres
        .as_ref()
        .and_then(|pg| ServerProcess::find(pg.log_path().parent()?));
    let mut nights = Vec::new();
    let mut runs = Vec::new();
    let mut index = 0;
    for &scale in &options.scale {
        let (dir, manifest, generate_s) = night(&options, scale)?;
        let mut record = NightRecord::new(scale, &dir, &manifest, generate_s);
        let influx = if options.sources.iter().any(|s| s.is_http()) {
            let influx = test_support::Influxd::start();
            eprintln!(
                "bench-e2e: night ×{scale}: seeding influxd with {:.0} MB of line protocol",
                record.efd_lp_bytes as f64 / 1e6
            );
            let began = Instant::now();
            seed(&influx, &dir.join("efd.lp"))?;
            record.seed_influxd_s = Some(began.elapsed().as_secs_f64());
            let process = influx.log_path().parent().and_then(ServerProcess::find);
            let settled = settle(process, 180.0);
            record.settle_influxd_s = Some(settled);
            eprintln!(
                "bench-e2e: night ×{scale}: seeded in {:.1} s, influxd idle {settled:.0} s later",
                record.seed_influxd_s.unwrap_or_default()
            );
            Some((influx, process))
        } else {
            None
        };
        let efd_file = format!("file://{}", dir.join("efd.lp").display());
        for &source in &options.sources {
            for &timedelta in &options.timedelta {
                for &workers in &options.workers {
                    for &efd_concurrency in &options.efd_concurrency {
                        index += 1;
                        let params = RunParams {
                            source,
                            timedelta,
                            workers,
                            efd_concurrency,
                            scale,
                        };
                        let id = params.id(index);
                        let run_dir = options.out.join("runs").join(&id);
                        if run_dir.exists() {
                            std::fs::remove_dir_all(&run_dir)?;
                        }
                        std::fs::create_dir_all(&run_dir)?;
                        let (consdb, efd) = match (source, &postgres, &influx) {
                            (source, Some(pg), Some((influx, _))) if source.is_http() => {
                                let db = format!("consdb_{index:02}");
                                pg.create_database(&db);
                                (pg.url(&db), influx.url())
                            }
                            _ => (
                                format!("sqlite:///{}", run_dir.join("consdb.db").display()),
                                efd_file.clone(),
                            ),
                        };
                        eprintln!("bench-e2e: run {id}");
                        let spec = JobSpec {
                            job: &options.job,
                            config: &options.config,
                            instrument: options.instrument,
                            repo: &dir.join("butler"),
                            consdb: &consdb,
                            efd: &efd,
                            start: UtcNanos(manifest.night_start_utc_ns),
                            end: UtcNanos(manifest.night_end_utc_ns),
                            timedelta,
                            workers,
                            efd_concurrency,
                            efd_format: if source == Source::HttpJson {
                                "json"
                            } else {
                                "msgpack"
                            },
                            dir: &run_dir,
                        };
                        let http = source.is_http();
                        let influxd_process = influx.as_ref().and_then(|i| i.1).filter(|_| http);
                        let pg_process = postgres_process.filter(|_| http);
                        let ((run, influxd_cpu_s), pg_cpu_s) = cpu_during(pg_process, || {
                            cpu_during(influxd_process, || {
                                let run = run_job(&spec);
                                // Let PostgreSQL reap the run's backends.
                                std::thread::sleep(std::time::Duration::from_millis(300));
                                run
                            })
                        });
                        let mut record = RunRecord::new(&id, &params, &record, run?, &run_dir);
                        record.influxd_cpu_s = influxd_cpu_s;
                        record.postgres_cpu_s = pg_cpu_s;
                        if !record.ok() {
                            eprintln!(
                                "bench-e2e: run {id} did not succeed (exit {:?}, {} failed tasks): {}",
                                record.exit_code,
                                record.log.failed,
                                record
                                    .log
                                    .first_error
                                    .as_deref()
                                    .unwrap_or("no error logged")
                            );
                        }
                        runs.push(record);
                    }
                }
            }
        }
        nights.push(record);
    }

    let (commit, dirty) = git_commit();
    let report = Report {
        commit,
        dirty,
        date: format!("{}Z", format_isot(UtcNanos(now_ns()))),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        job: options.job.display().to_string(),
        config: options.config.display().to_string(),
        nights,
        runs,
    };
    let json_path = options.out.join("e2e.json");
    let mut json = serde_json::to_string_pretty(&report)?;
    json.push('\n');
    std::fs::write(&json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;

    for n in &report.nights {
        println!(
            "night ×{}: {} min, {} exposures, {} visits, {} topics, {} EFD rows, efd.lp {:.0} MB; \
             generated in {}, seeded into influxd in {}",
            n.scale,
            n.minutes,
            n.exposures,
            n.visits,
            n.topics,
            n.efd_rows,
            n.efd_lp_bytes as f64 / 1e6,
            n.generate_s
                .map_or_else(|| "(cached)".to_owned(), |s| format!("{s:.1} s")),
            n.seed_influxd_s
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s")),
        );
    }
    println!(
        "commit {}{}, {} cores, {}",
        report.commit.as_deref().unwrap_or("unknown"),
        if report.dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        },
        report.cores,
        report.date
    );
    print!("{}", format_table(&report.runs));
    println!(
        "phase %: time summed over tasks / wall (can exceed 100 % with several workers); \
         http runs write ConsDB to PostgreSQL, file runs to SQLite; JSON: {}",
        json_path.display()
    );
    if report.runs.iter().any(|r| !r.ok()) {
        bail!("some runs did not succeed (see the status column and their logs)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `efd-job` of the profile these tests were built in (`<target>/<profile>/efd-job`).
    fn debug_job() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/examples/bench_e2e-<hash> or <target>/<profile>/deps/...
        let profile = exe.parent().and_then(Path::parent).unwrap();
        let job = profile.join("efd-job");
        assert!(
            job.is_file(),
            "{} not found: build it with `cargo build -p efd-job` (`cargo test --workspace` does)",
            job.display()
        );
        job
    }

    #[test]
    fn options_parse_lists_and_keep_defaults() {
        let args = [
            "--timedelta",
            "5,60",
            "--efd-concurrency",
            "1,4",
            "--sources",
            "file,http-json",
        ];
        let options = Options::parse(args.iter().map(|s| (*s).to_owned())).unwrap();
        assert_eq!(options.timedelta, [5, 60]);
        assert_eq!(options.efd_concurrency, [1, 4]);
        assert_eq!(options.sources, [Source::File, Source::HttpJson]);
        assert_eq!((options.minutes, options.exposures), (120, 80));
        assert_eq!(options.scale, [1]);
        assert!(options.config.ends_with("config_lsstcam.yaml"));
        assert!(options.job.ends_with("release/efd-job"));
        for bad in [
            &["--scale", "0"][..],
            &["--sources", "ftp"],
            &["--minutes"],
            &["--x", "1"],
        ] {
            assert!(
                Options::parse(bad.iter().map(|s| (*s).to_owned())).is_err(),
                "{bad:?}"
            );
        }
    }

    /// Runs the real `efd-job` over a tiny night with the file source through the same code path
    /// as the benchmark, then checks the parsed log against the night and the table and JSON.
    #[test]
    fn a_tiny_file_run_is_parsed_tabulated_and_serialized() {
        let job = debug_job();
        let tmp = tempfile::tempdir().unwrap();
        let synth = SynthOptions {
            minutes: 12,
            exposures: 10,
            ..SynthOptions::new(tmp.path().join("night"))
        };
        let files = Night::generate(&synth).unwrap();
        let m = &files.manifest;
        let night = NightRecord::new(1, &files.dir, m, Some(0.0));
        let run_dir = tmp.path().join("run");
        let consdb = format!("sqlite:///{}", run_dir.join("consdb.db").display());
        let efd = format!("file://{}", files.efd.display());
        let spec = JobSpec {
            job: &job,
            config: &synth.config,
            instrument: synth.instrument,
            repo: &files.butler,
            consdb: &consdb,
            efd: &efd,
            start: UtcNanos(m.night_start_utc_ns),
            end: UtcNanos(m.night_end_utc_ns),
            timedelta: 5,
            workers: 2,
            efd_concurrency: 3,
            efd_format: "json",
            dir: &run_dir,
        };
        let run = run_job(&spec).unwrap();
        let params = RunParams {
            source: Source::File,
            timedelta: 5,
            workers: 2,
            efd_concurrency: 3,
            scale: 1,
        };
        let record = RunRecord::new(&params.id(1), &params, &night, run, &run_dir);
        let log = &record.log;
        assert!(record.ok(), "{record:#?}");
        // 12 minutes in 5-minute tasks; job mode logs a summary for the failed-task pass too.
        assert_eq!(log.tasks, 3, "{log:#?}");
        assert_eq!(log.summaries, 2);
        assert_eq!(log.completed, log.tasks);
        assert_eq!(log.task_durations_s.len() as u64, log.tasks);
        assert!(log.exposures >= night.exposures && night.exposures == 10);
        assert!(log.visits >= night.visits && night.visits > 0);
        assert!(log.efd_statements > 0);
        assert_eq!((log.efd_requests, log.efd_bytes), (0, 0), "the file source");
        assert!(log.efd_s > 0.0 && log.transform_s > 0.0 && log.write_s > 0.0);
        assert!(log.peak_rss_bytes.unwrap() > 1 << 20);
        if Path::new("/usr/bin/time").is_file() {
            // GNU time reports the largest RSS among the process's (one) children: efd-job's.
            let time_rss = record.time_max_rss_bytes.unwrap();
            assert!(time_rss >= log.peak_rss_bytes.unwrap() / 2, "{record:#?}");
            assert!(record.cpu_user_s.unwrap() + record.cpu_sys_s.unwrap() > 0.0);
        }
        let runtime = log.runtime_s.unwrap();
        assert!(record.wall_s >= runtime && runtime > 0.0, "{record:#?}");
        let (startup, tasks_loop) = (record.startup_s.unwrap(), record.tasks_loop_s.unwrap());
        assert!(startup > 0.0 && tasks_loop > 0.0 && startup + tasks_loop <= record.wall_s);
        assert_eq!(record.tasks_per_s, 3.0 / record.wall_s);
        assert_eq!(record.efd_share, log.efd_s / record.wall_s);

        let table = format_table(std::slice::from_ref(&record));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("source") && lines[0].contains("RSS MiB"));
        assert!(
            lines[2].starts_with("file") && lines[2].ends_with("ok"),
            "{table}"
        );
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cells[5], "3", "tasks: {table}");
        assert_eq!(cells[9], log.efd_statements.to_string(), "{table}");

        let report = Report {
            commit: git_commit().0,
            dirty: None,
            date: String::new(),
            cores: 2,
            job: job.display().to_string(),
            config: synth.config.display().to_string(),
            nights: vec![night],
            runs: vec![record],
        };
        let json = serde_json::to_string_pretty(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["runs"][0]["source"], "file");
        assert_eq!(value["runs"][0]["log"]["tasks"], 3);
    }

    #[test]
    fn time_output_is_parsed_after_an_exit_status_line() {
        let t = TimeV::parse("Command exited with non-zero status 3\n20480 1.50 0.25\n").unwrap();
        assert_eq!(t.max_rss_bytes, 20480 * 1024);
        assert_eq!((t.user_s, t.sys_s), (1.5, 0.25));
        assert_eq!(TimeV::parse(""), None);
    }
}
