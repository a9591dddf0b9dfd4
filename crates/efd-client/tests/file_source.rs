//! The line-protocol file source through the public API, and against a real `influxd` 1.x fed the
//! very same bytes: escapes, multi-line strings, duplicate points, tags, negative times, several
//! shards, per-series `MEAN` merging, `MAX`/`MIN` of every type, InfluxQL errors, and which lines
//! the server accepts at all.
//!
//! Floats are compared bit for bit against the server's CSV output (shortest round-trip decimals
//! parsed exactly), because the HTTP source's JSON parsing can be off by one ulp. `MEAN` parity for
//! buckets holding three or more series assumes a server with at least as many cores as series; the
//! harness runs influxd with `GOMAXPROCS` = `test_support::SERVER_GOMAXPROCS` (8) on every machine.

mod common;

use std::io::Write as _;
use std::path::PathBuf;

use common::*;
use efd_client::{
    EfdClient, EfdError, EfdSource, FieldKey, FileSource, Select, influxql, run_query,
};
use test_support::{Influxd, http_request};
use transform_core::{
    AggregateFn, ColumnData, Frame, FrameColumn, InfluxDuration, PreAggregation, Semantics,
    TimeRange,
};

/// The widest range InfluxDB queries (its two lowest and its highest nanosecond are reserved).
fn everything() -> TimeRange {
    range(i64::MIN + 2, i64::MAX - 1)
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Posts `body` to `/write` on database `db` as one request (so multi-line strings arrive intact).
fn post(influx: &Influxd, db: &str, body: &str) -> (u16, String) {
    let url = format!("{}/write?db={db}&precision=ns", influx.url());
    let response = http_request("POST", &url, &[], body.as_bytes()).expect("influxd reachable");
    (response.status, response.body)
}

/// Runs `statement` and returns the server's CSV answer as rows of cells (header included).
fn csv_query(influx: &Influxd, statement: &str) -> Vec<Vec<String>> {
    let url = format!("{}/query?db=efd&epoch=ns", influx.url());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", statement)
        .finish();
    let response = http_request(
        "POST",
        &url,
        &[
            ("Accept", "application/csv"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .expect("influxd reachable");
    assert_eq!(response.status, 200, "{statement}: {}", response.body);
    parse_csv(&response.body)
}

/// A small RFC 4180 reader: quoted cells may hold commas, newlines and doubled quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            _ => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

/// A server and a file source holding the same line protocol.
struct Pair {
    influx: Influxd,
    _dir: tempfile::TempDir,
    http: efd_client::HttpSource,
    file: FileSource,
}

fn pair(text: &str) -> Pair {
    pair_with(text, text)
}

/// A server fed `server_text` and a file holding `file_text` (the same points, in a form only the
/// file accepts: DDL lines, CRLF line ends).
fn pair_with(server_text: &str, file_text: &str) -> Pair {
    let influx = Influxd::start();
    influx.create_database("efd");
    let (status, body) = post(&influx, "efd", server_text);
    assert_eq!(status, 204, "influxd refused the seed: {body}");
    let dir = tempfile::tempdir().unwrap();
    let file = FileSource::open(&write_file(&dir, "seed.lp", file_text)).unwrap();
    Pair {
        http: http(&influx.url()),
        influx,
        _dir: dir,
        file,
    }
}

impl Pair {
    async fn both(
        &self,
        topic: &str,
        fields: &[&str],
        r: TimeRange,
        aggregation: Option<(&str, AggregateFn)>,
    ) -> (Result<Frame, EfdError>, Result<Frame, EfdError>) {
        let fields = strings(fields);
        let aggregation = aggregation.map(|(interval, function)| PreAggregation {
            interval: InfluxDuration::parse(interval).unwrap(),
            function,
        });
        let select = Select {
            topic,
            fields: &fields,
            range: r,
            aggregation: aggregation.as_ref(),
        };
        (
            self.http.select(select).await,
            self.file.select(select).await,
        )
    }

    /// Asserts both sources return the same frame (floats bit for bit as the server computed
    /// them), and returns it.
    async fn same(
        &self,
        topic: &str,
        fields: &[&str],
        r: TimeRange,
        aggregation: Option<(&str, AggregateFn)>,
    ) -> Frame {
        let (a, b) = self.both(topic, fields, r, aggregation).await;
        let (a, b) = (a.unwrap(), b.unwrap());
        let a = self.exact_floats(a, topic, fields, r, aggregation);
        if let Err(why) = same_frame(&a, &b) {
            panic!("{topic} {fields:?} {aggregation:?}: {why}");
        }
        a
    }

    /// The HTTP frame with its float columns replaced by the values of the server's CSV answer.
    fn exact_floats(
        &self,
        frame: Frame,
        topic: &str,
        fields: &[&str],
        r: TimeRange,
        aggregation: Option<(&str, AggregateFn)>,
    ) -> Frame {
        if frame.is_empty() {
            return frame;
        }
        let aggregation = aggregation.map(|(interval, function)| PreAggregation {
            interval: InfluxDuration::parse(interval).unwrap(),
            function,
        });
        let statement = influxql::select(
            &influxql::measurement("efd", "autogen", topic),
            &strings(fields),
            r,
            aggregation.as_ref(),
        );
        let rows = csv_query(&self.influx, &statement);
        let (header, rows) = rows.split_first().expect("a CSV header");
        // Raw rows align one to one; aggregated rows (null buckets included) by their time.
        let aligned: Vec<&Vec<String>> = if rows.len() == frame.len() {
            rows.iter().collect()
        } else {
            frame
                .timestamps()
                .iter()
                .map(|t| {
                    rows.iter()
                        .find(|row| row[2] == t.to_string())
                        .expect("every bucket in the CSV")
                })
                .collect()
        };
        let (timestamps, columns) = frame.into_parts();
        let columns = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| match c.data {
                ColumnData::Float(_) => {
                    assert_eq!(header[3 + i], c.name);
                    let values = aligned
                        .iter()
                        .map(|row| row[3 + i].parse::<f64>().unwrap_or(f64::NAN))
                        .collect();
                    FrameColumn::new(c.name, ColumnData::Float(values))
                }
                _ => c,
            })
            .collect();
        Frame::new(timestamps, columns).unwrap()
    }

    async fn same_keys(&self, topic: &str) -> Vec<FieldKey> {
        let a = self.http.field_keys(topic).await.unwrap();
        assert_eq!(a, self.file.field_keys(topic).await.unwrap(), "{topic}");
        a
    }
}

/// Deterministic pseudo-random values (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn float(&mut self) -> f64 {
        // Values with full 53-bit mantissas, so rounding differences would show.
        #[allow(clippy::cast_precision_loss)]
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (unit - 0.3) * 1000.0
    }
}

#[tokio::test]
async fn escapes_multiline_strings_comments_and_ddl_match_influxd() {
    let text = concat!(
        "# DDL\n",
        "CREATE DATABASE efd WITH NAME autogen\n",
        "# DML\n",
        "# CONTEXT-DATABASE:efd\n",
        "\n",
        "odd\\ name\\,x,t\\ a\\=g=v\\,1\\ x f\\ k\\=1=1.5,s=\"q \\\"quoted\\\" \\\\ end\" 1000\n",
        "odd\\ name\\,x,t\\ a\\=g=v2 f\\ k\\=1=2.5,s=\"multi\nline\n\" 2000\n",
        "  \todd\\ name\\,x,t\\ a\\=g=v2 s=\"back\\\\slash\\d\" 3000\r\n",
        "odd\\ name\\,x f\\ k\\=1=-0.0,s=\"\" 3000\n",
    );
    // `/write` takes neither the DDL header nor CRLF; the file takes both.
    let server_text: String = text
        .lines()
        .filter(|l| !l.starts_with("CREATE"))
        .map(|l| format!("{}\n", l.trim_end_matches('\r')))
        .collect();
    let p = pair_with(&server_text, text);
    let topic = "odd name,x";
    let frame = p
        .same(topic, &["s", "f k=1", "t a=g"], everything(), None)
        .await;
    assert_eq!(frame.timestamps(), &[1000, 2000, 3000, 3000]);
    assert!(matches!(
        frame.column("s"),
        Some(ColumnData::Str(v)) if v[0].as_deref() == Some("q \"quoted\" \\ end")
            && v[1].as_deref() == Some("multi\nline\n")
            && v[3].as_deref() == Some("back\\slash\\d")
            && v[2].as_deref() == Some("")
    ));
    p.same_keys(topic).await;
}

#[tokio::test]
async fn duplicate_points_merge_and_unsorted_input_matches_influxd() {
    let text = "\
m,b=2,a=1 f=1,g=10i 50
m,a=1,b=2 f=2 50
m,a=1,b=2 h=\"x\" 50
m,a=1 f=3 50
m f=4,f=5 40
m,a=1,b=2 f=6 10
m,a=1,b=3 g=7i 10
";
    let p = pair(text);
    let frame = p
        .same("m", &["f", "g", "h", "a", "b"], everything(), None)
        .await;
    assert_eq!(frame.timestamps(), &[10, 10, 40, 50, 50]);
    let mut at_50: Vec<f64> = floats(&frame, "f")[3..].to_vec();
    at_50.sort_by(f64::total_cmp);
    assert_eq!(at_50, [2.0, 3.0]);
    p.same("m", &["g"], everything(), None).await;
    p.same("m", &["h", "b"], range(40, 50), None).await;
    p.same_keys("m").await;
}

#[tokio::test]
async fn tags_shadowing_and_missing_names_match_influxd() {
    let text = "\
m,salIndex=301,site=a value=1,f=0 1
m,salIndex=302 value=2 1
m,salIndex=303,f=t value=3 2
m value=4 3
";
    let p = pair(text);
    p.same("m", &["value", "salIndex", "site"], everything(), None)
        .await;
    p.same("m", &["site", "value"], range(2, 3), None).await;
    p.same("m", &["f", "nope", "value"], everything(), None)
        .await;
    p.same("m", &["salIndex"], everything(), None).await;
    p.same("absent", &["value"], everything(), None).await;
    // Tags are not aggregated.
    p.same(
        "m",
        &["value", "salIndex"],
        range(0, 5),
        Some(("1ns", AggregateFn::Mean)),
    )
    .await;
}

/// Line protocol for `series` sensors of `ESS` writing at random times: full-mantissa floats, large
/// integers and booleans; the first quarter of the rows from the first two sensors only.
fn many_series(series: u64, rows: i64, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut text = String::new();
    for k in 0..rows {
        let sensor = rng.below(series);
        if sensor >= 2 && k < rows / 4 {
            continue;
        }
        let t = T0 + k * 7_000_000 + i64::try_from(rng.below(1000)).unwrap();
        let big = i64::try_from(rng.below(1 << 60)).unwrap() - (1 << 59);
        text.push_str(&format!(
            "{ESS},sensor=s{sensor} v={},n={big}i,b={} {t}\n",
            rng.float(),
            rng.below(2) == 1
        ));
    }
    text
}

async fn check_aggregations(p: &Pair) {
    let r = range(T0 - SECOND, T0 + 40 * SECOND);
    for interval in ["1s", "250ms", "3s"] {
        for function in [AggregateFn::Mean, AggregateFn::Max, AggregateFn::Min] {
            let fields: &[&str] = if function == AggregateFn::Mean {
                &["v", "n", "sensor"]
            } else {
                &["v", "n", "b"]
            };
            p.same(ESS, fields, r, Some((interval, function))).await;
        }
    }
}

#[tokio::test]
async fn means_over_two_series_are_bit_identical_to_influxd() {
    check_aggregations(&pair(&many_series(2, 4000, 0x2545_F491_4F6C_DD1D))).await;
}

#[tokio::test]
async fn means_over_many_series_are_bit_identical_to_influxd() {
    let series = 5;
    assert!(
        series <= test_support::SERVER_GOMAXPROCS,
        "the harness's influxd merges up to that many series apart"
    );
    check_aggregations(&pair(&many_series(
        u64::try_from(series).unwrap(),
        6000,
        0x9E37_79B9_7F4A_7C15,
    )))
    .await;
}

#[tokio::test]
async fn ties_between_many_series_come_out_in_influxd_order() {
    // Raw selects merge all series in one heap, whatever the core count.
    let mut rng = Rng(7);
    let mut text = String::new();
    for k in 0..400i64 {
        let sensor = rng.below(7);
        let t = T0 + (k / 5) * SECOND;
        let s = if rng.below(3) == 0 { "" } else { ",s=\"x\"" };
        text.push_str(&format!(
            "{TAGGED},salIndex={},site={} value={k}{s} {t}\n",
            300 + sensor,
            rng.below(2)
        ));
    }
    let p = pair(&text);
    let r = range(T0, T0 + 100 * SECOND);
    for fields in [
        &["value"][..],
        &["value", "salIndex"],
        &["salIndex", "value"],
        &["site", "value", "salIndex"],
        &["s", "value"],
        &["value", "s", "salIndex"],
        &["s", "site", "value"],
    ] {
        p.same(TAGGED, fields, r, None).await;
    }
}

#[tokio::test]
async fn negative_times_and_several_shards_match_influxd() {
    let day = 86_400 * SECOND;
    let mut text = String::new();
    for k in -30..30i64 {
        // Every 9 days (several weekly shard groups), and around the epoch in ns.
        text.push_str(&format!(
            "m v={},i={k}i {}\n",
            k as f64 * 0.1,
            k * 9 * day + k
        ));
        text.push_str(&format!("m v={} {}\n", k as f64 * 0.3, k * 1_000_003));
    }
    let p = pair(&text);
    p.same("m", &["v", "i"], everything(), None).await;
    p.same("m", &["v", "i"], range(-5 * day, 100 * day), None)
        .await;
    for (interval, r) in [
        ("1ms", range(-40_000_000, 40_000_000)),
        ("7ms", range(-40_000_000, 40_000_000)),
        ("1d", range(-300 * day, 300 * day)),
    ] {
        for function in [AggregateFn::Mean, AggregateFn::Max, AggregateFn::Min] {
            p.same("m", &["v", "i"], r, Some((interval, function)))
                .await;
        }
    }
}

#[tokio::test]
async fn shard_boundaries_split_merges_as_influxd_does() {
    // Monday 2023-11-13 00:00 UTC starts a shard group: ties after it are merged in a fresh heap,
    // and a bucket spanning it averages the two shards' means.
    const MONDAY: i64 = 1_699_833_600 * SECOND;
    let mut rng = Rng(99);
    let mut text = String::new();
    for k in -300..300i64 {
        let t = MONDAY + (k / 3) * 100_000_000;
        let sensor = rng.below(5);
        text.push_str(&format!(
            "{TAGGED},salIndex={} value={},n={}i {t}\n",
            300 + sensor,
            rng.float(),
            rng.below(1000)
        ));
        text.push_str(&format!("{ESS} v={} {}\n", rng.float(), t + 1));
    }
    let p = pair(&text);
    let r = range(MONDAY - 20 * SECOND, MONDAY + 20 * SECOND);
    for fields in [&["value"][..], &["n", "value"], &["salIndex", "value"]] {
        p.same(TAGGED, fields, r, None).await;
    }
    for interval in ["7s", "3s", "1w"] {
        p.same(ESS, &["v"], r, Some((interval, AggregateFn::Mean)))
            .await;
        p.same(
            TAGGED,
            &["value", "n"],
            r,
            Some((interval, AggregateFn::Mean)),
        )
        .await;
    }
}

#[tokio::test]
async fn unsupported_aggregations_fail_on_both_sources() {
    let p = pair("m b=t,s=\"x\",f=1 1\nm b=f,f=2 2\n");
    for (field, function) in [
        ("b", AggregateFn::Mean),
        ("s", AggregateFn::Mean),
        ("s", AggregateFn::Max),
        ("s", AggregateFn::Min),
    ] {
        let (a, b) = p
            .both("m", &["f", field], range(0, 10), Some(("1s", function)))
            .await;
        assert!(
            matches!(a, Err(EfdError::InfluxQl { .. })),
            "{field} {function:?}: {a:?}"
        );
        assert!(
            matches!(b, Err(EfdError::InfluxQl { .. })),
            "{field} {function:?}: {b:?}"
        );
    }
    // Booleans have MAX and MIN.
    for function in [AggregateFn::Max, AggregateFn::Min] {
        p.same("m", &["b", "f"], range(0, 10), Some(("1ns", function)))
            .await;
    }
}

#[tokio::test]
async fn the_file_accepts_exactly_the_lines_influxd_accepts() {
    let influx = Influxd::start();
    influx.create_database("efd");
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "m f=1 1",
        "m f=-1.5e3,g=.5,h=1.,i=-0 1",
        "m f=1E5,g=1e-5,h=1e+5 1",
        "m i=9223372036854775807i,j=-9223372036854775808i 1",
        "m b=t,c=T,d=true,e=True,f=TRUE,g=f,h=F,i=false,j=False,k=FALSE 1",
        "m s=\"a\\\"b\\\\c\\d\" 1",
        "m,t==x f=1 1",
        "m,b=1,a=2 f=1 1",
        "m time=1,f=2 1",
        "m  \t f=1 \t 1",
        "m f=1 1 ",
        "m f=1 -1",
        "m f=1 -9223372036854775806",
        "m f=1 9223372036854775806",
        // Rejected by both.
        "m f=NaN 1",
        "m f=nan 1",
        "m f=-inf 1",
        "m f=1e400 1",
        "m f=+1 1",
        "m f=0x10 1",
        "m f=1.2.3 1",
        "m f=1.5i 1",
        "m f=9223372036854775808i 1",
        "m f=tru 1",
        "m f= 1",
        "m f=1, 1",
        "m =1 1",
        "m f 1",
        "m f=\"x\" 1 2",
        "m f=1 1x",
        "m f=1 9223372036854775807",
        "m f=1 -9223372036854775808",
        "m,t=a=b f=1 1",
        "m,a=1,a=2 f=1 1",
        "m,t= f=1 1",
        "m,=1 f=1 1",
        ",t=1 f=1 1",
        "m time=1 1",
        "m,time=1 f=1 1",
        "m",
    ];
    let mut accepted = Vec::new();
    for (k, line) in lines.iter().enumerate() {
        let db = format!("db{k}");
        influx.create_database(&db);
        let (status, body) = post(&influx, &db, &format!("{line}\n"));
        let path = write_file(&dir, "one.lp", &format!("{line}\n"));
        let file = FileSource::open(&path);
        assert_eq!(
            status == 204,
            file.is_ok(),
            "{line:?}: influxd {status} {body}, file {:?}",
            file.err()
        );
        if status == 204 {
            // Each accepted line in its own measurement, to read back below.
            accepted.push(format!("m{k}{}\n", &line[1..]));
        }
    }
    let all: String = accepted.concat();
    let p = pair(&all);
    for k in 0..lines.len() {
        let topic = format!("m{k}");
        let keys = p.same_keys(&topic).await;
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        if !names.is_empty() {
            let mut fields = names.clone();
            fields.extend(["t", "a", "b"].iter().filter(|t| !names.contains(t)));
            p.same(&topic, &fields, everything(), None).await;
        }
    }
}

#[tokio::test]
async fn a_comment_opening_a_string_swallows_lines_on_both_sources() {
    let text = "# note: x=\"quoted\nm f=1 1\nm f=2 2\"\nm f=3 3\n";
    let p = pair(text);
    let frame = p.same("m", &["f"], everything(), None).await;
    assert_eq!(frame.timestamps(), &[3]);
}

#[tokio::test]
async fn the_client_opens_plain_and_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = seed();
    let plain = write_file(&dir, "efd.lp", &text);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let zipped = dir.path().join("efd.lp.gz");
    std::fs::write(&zipped, gz.finish().unwrap()).unwrap();
    let q = query(
        ESS,
        &["temperatureItem0", "status"],
        range(T0, T0 + 60 * SECOND),
    );
    let mut frames = Vec::new();
    for path in [&plain, &zipped] {
        let client = EfdClient::open(file_options(path)).await.unwrap();
        assert_eq!(client.describe(), format!("file://{}", path.display()));
        frames.push(run_query(&client, &q, Semantics::Reference).await.unwrap());
    }
    assert_eq!(frames[0].len(), 60);
    same_frame(&frames[0], &frames[1]).unwrap();
    let bad = write_file(&dir, "bad.lp", "m f=1 1\nm f=1\n");
    match EfdClient::open(file_options(&bad)).await {
        Err(EfdError::File { line, message, .. }) => {
            assert_eq!(line, 2);
            assert!(message.contains("timestamp"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
