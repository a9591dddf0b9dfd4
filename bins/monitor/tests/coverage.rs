//! `efd-monitor coverage` after an end-to-end `efd-monitor` run over a synthetic night (the demo
//! config, a registry made by lsst-daf-butler, a line-protocol EFD) from which one sensor's topic
//! was deleted: on SQLite and on PostgreSQL, the columns of that topic are reported NULL
//! everywhere, every column's filled count equals a direct SQL count, and each exposure lists the
//! tasks that covered it. The HTML page renders in headless Chromium without console errors, and
//! its screenshot is kept in `<target>/coverage/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::sql_types::BigInt;
use diesel::{Connection as _, QueryableByName, RunQueryDsl as _, SqliteConnection};
use test_support::Postgres;
use test_support::butler::{ExpectedRegistry, make_registry_from_manifest};
use transform_core::{Config, Table};
use transformed_efd_examples::synth::{Night, Rates, SynthOptions};

/// The topic whose telemetry is deleted: the "missing sensor".
const MISSING: &str = "lsst.sal.MTM2.temperature";
const DAY_OBS: &str = "20251001";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

struct Night1 {
    dir: tempfile::TempDir,
    config: PathBuf,
    repo: PathBuf,
    efd: PathBuf,
}

fn night() -> Night1 {
    let dir = tempfile::tempdir().unwrap();
    let options = SynthOptions {
        minutes: 20,
        exposures: 10,
        rates: Rates::Uniform(0.5),
        lookback_hours: 0,
        seed: 41,
        ..SynthOptions::new(dir.path().join("night"))
    };
    let config = options.config.clone();
    let files = Night::generate(&options).unwrap();
    let text = std::fs::read_to_string(&files.efd).unwrap();
    assert!(text.contains(MISSING), "the demo night has no {MISSING}");
    let kept: String = text
        .lines()
        .filter(|l| {
            !l.starts_with(&format!("{MISSING} ")) && !l.starts_with(&format!("{MISSING},"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let efd = dir.path().join("efd.lp");
    std::fs::write(&efd, kept).unwrap();
    let repo = dir.path().join("repo");
    ExpectedRegistry::from_json(&make_registry_from_manifest(
        &repo,
        &files.manifest_path,
        None,
    ));
    Night1 {
        dir,
        config,
        repo,
        efd,
    }
}

fn binary(n: &Night1, db: &str) -> Command {
    let mut c = test_support::service_command(env!("CARGO_BIN_EXE_efd-monitor"));
    c.arg("-c")
        .arg(&n.config)
        .args(["-i", "latiss", "-r"])
        .arg(&n.repo)
        .args(["-d", db, "-E", &format!("file://{}", n.efd.display())])
        .arg("--migrate");
    c
}

/// Runs the monitor over the night (its reconciliation creates and processes the tasks), then
/// `coverage --json --html`: the JSON report.
fn run_then_coverage(n: &Night1, db: &str, html: &Path) -> serde_json::Value {
    let out = binary(n, db)
        .args(["--monitor-window-days", "3650"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "efd-monitor:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = binary(n, db)
        .args(["coverage", "--day-obs-start", DAY_OBS, "--json", "--html"])
        .arg(html)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON: {stdout}"));
    serde_json::from_str(line).unwrap()
}

/// The exposure columns reading the missing topic.
fn missing_columns(config: &Config) -> Vec<String> {
    config
        .columns_for(Table::ExposureEfd)
        .filter(|c| c.topic().name == MISSING)
        .map(|c| c.name.clone())
        .collect()
}

/// Checks the report against `count(column)` from the database.
fn assert_report(report: &serde_json::Value, config: &Config, count: &mut dyn FnMut(&str) -> i64) {
    let exposures = &report["tables"][0];
    assert_eq!(exposures["element"], "exposure");
    let items = exposures["items"].as_u64().unwrap();
    assert!(items >= 5, "{exposures}");
    assert_eq!(exposures["in_consdb"].as_u64().unwrap(), items);
    let missing = missing_columns(config);
    assert!(!missing.is_empty());
    let everywhere: Vec<&str> = exposures["null_everywhere"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(everywhere, missing, "{exposures}");
    let mut compared = 0;
    for column in exposures["columns"].as_array().unwrap() {
        let name = column["name"].as_str().unwrap();
        if name.ends_with(" (unpivoted)") {
            continue;
        }
        let filled = column["filled"].as_i64().unwrap();
        assert_eq!(filled, count(name), "column {name}");
        compared += 1;
    }
    assert_eq!(compared, config.columns_for(Table::ExposureEfd).count());
    for item in exposures["per_item"].as_array().unwrap() {
        let tasks = item["tasks"].as_array().unwrap();
        assert!(!tasks.is_empty(), "an exposure no task covered: {item}");
        assert!(tasks.iter().all(|t| t["status"] == "completed"), "{item}");
        assert!(
            item["nulls"].as_u64().unwrap() >= missing.len() as u64,
            "{item}"
        );
    }
}

/// Where the screenshots are kept: `<target>/coverage/`.
fn artefacts() -> PathBuf {
    let dir = test_support::report::faults_dir()
        .parent()
        .unwrap()
        .join("coverage");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Renders `page` in headless Chromium: its console errors and the screenshot's path.
fn render(page: &Path, screenshot: &Path) -> Vec<String> {
    let chromium = test_support::require_tool("chromium", "apt-get install -y chromium");
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(screenshot);
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1600,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("ERR_FILE"))
        .map(str::to_owned)
        .collect()
}

fn assert_renders(html: &Path, name: &str) {
    let text = std::fs::read_to_string(html).unwrap();
    assert!(text.contains("<svg"), "no heatmap");
    assert!(
        !text.contains("http://") && !text.contains("https://"),
        "external asset"
    );
    assert!(!text.contains("<script"), "a script");
    let shot = artefacts().join(format!("{name}.png"));
    let errors = render(html, &shot);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    // The check itself can fail: a page that logs an error is caught.
    let bad = html.with_file_name("bad.html");
    std::fs::write(
        &bad,
        "<html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let errors = render(&bad, &html.with_file_name("bad.png"));
    assert!(
        errors.iter().any(|l| l.contains("boom")),
        "the console check saw nothing: {errors:?}"
    );
}

#[test]
fn coverage_on_sqlite_matches_sql_counts_and_renders() {
    let n = night();
    let config = Config::load(&n.config).unwrap();
    let db_file = n.dir.path().join("consdb.db");
    let db = format!("sqlite:///{}", db_file.display());
    let html = artefacts().join("coverage-sqlite.html");
    let report = run_then_coverage(&n, &db, &html);
    let schema_file = n.dir.path().join("consdb.efd_latiss.sqlite3");
    let mut conn =
        SqliteConnection::establish(&format!("file:{}?mode=ro", schema_file.display())).unwrap();
    let mut count = |column: &str| {
        diesel::sql_query(format!(
            "SELECT count(\"{column}\") AS n FROM exposure_efd WHERE day_obs = {DAY_OBS}"
        ))
        .load::<Count>(&mut conn)
        .unwrap()[0]
            .n
    };
    assert_report(&report, &config, &mut count);
    assert_renders(&html, "coverage-sqlite");
}

#[test]
fn coverage_on_postgres_matches_sql_counts() {
    let n = night();
    let config = Config::load(&n.config).unwrap();
    let pg = Postgres::start();
    pg.create_database("consdb");
    let html = artefacts().join("coverage-postgres.html");
    let report = run_then_coverage(&n, &pg.url("consdb"), &html);
    let mut count = |column: &str| {
        pg.psql(
            "consdb",
            &format!(
                "SELECT count(\"{column}\") FROM efd_latiss.exposure_efd WHERE day_obs = {DAY_OBS}"
            ),
        )
        .trim()
        .parse::<i64>()
        .unwrap()
    };
    assert_report(&report, &config, &mut count);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
}
