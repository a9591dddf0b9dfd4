//! Fuzzing the line-protocol file source ([`FileSource`]: `lineproto.rs` parsing, `file.rs`
//! loading and selects): a million near-valid files (valid exports with comments, DDL, tags, escapes,
//! multi-line strings and every value type, then mutated with hostile tokens: huge and NaN numbers,
//! out-of-range times, invalid UTF-8, stray quotes and backslashes, cut lines; some gzip-compressed)
//! never panic, every load error names a line and is permanent, every loaded file answers raw and
//! aggregated selects without panicking, and the peak memory allocated while loading one file stays
//! within a fixed multiple of its size (decompressed size included) plus a constant.
//!
//! A slow test (`faults_*`): `make test-faults` runs it, `make test` does not.

mod fuzz_support;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use efd_client::{EfdError, EfdSource, FileSource, Select};
use fuzz_support::{AllocBound, Rng, cases, measure, mutate};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use transform_core::{AggregateFn, InfluxDuration, PreAggregation, TimeRange, UtcNanos};

/// Inputs tried (`FAULTS_FUZZ_CASES` overrides it for a quick local look).
const CASES: u32 = 1_000_000;

/// The file source's futures never wait (everything is in memory): one poll finishes them.
fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a file-source future was not ready at once"),
    }
}

const TOPICS: [&str; 2] = ["lsst.sal.ESS.temperature", "m 2,x"];

/// One valid point of `topic`; each field name keeps one type across the file.
fn point(rng: &mut Rng, topic: &str, time: i64) -> String {
    let measurement = topic.replace(' ', "\\ ").replace(',', "\\,");
    let mut line = measurement;
    for (key, values) in [
        ("salIndex", &["101", "111"][..]),
        ("loc", &["a\\ b", "c\\,d", "e\\=f"][..]),
    ] {
        if rng.chance(50) {
            line.push_str(&format!(",{key}={}", rng.pick(values)));
        }
    }
    line.push(' ');
    let mut fields = Vec::new();
    for (key, value) in [
        ("a", format!("{}", rng.below(100_000) as f64 / 8.0)),
        ("e", "-1.5e-3".to_owned()),
        (
            "n",
            format!(
                "{}i",
                i64::from_le_bytes(rng.next().to_le_bytes()) >> rng.below(64)
            ),
        ),
        ("u", format!("{}u", rng.next() >> rng.below(64))),
        (
            "b",
            (*rng.pick(&["t", "F", "true", "False", "TRUE"])).to_owned(),
        ),
        (
            "s",
            format!(
                "\"{}\"",
                rng.pick(&["x", "a b", "q\\\"q", "multi\nline", "é", "\\\\", ""])
            ),
        ),
        ("k\\ e\\,y\\=", "1".to_owned()),
    ] {
        if rng.chance(40) {
            fields.push(format!("{key}={value}"));
        }
    }
    if fields.is_empty() {
        fields.push("a=1".to_owned());
    }
    line.push_str(&fields.join(","));
    line.push_str(&format!(" {time}"));
    line
}

/// A valid export: the DDL header and comments sometimes, then zero to twenty points.
fn valid_file(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    if rng.chance(30) {
        text.push_str(
            "# DDL\nCREATE DATABASE efd WITH NAME autogen\n# DML\n# CONTEXT-DATABASE:efd\n",
        );
    }
    let mut time = i64::from_le_bytes(rng.next().to_le_bytes()) >> 4;
    for _ in 0..rng.below(20) {
        // Mostly increasing, sometimes repeated or earlier (duplicates merge, rows sort).
        time = match rng.below(10) {
            0 => time,
            1 => time.saturating_sub(1_000),
            _ => time.saturating_add(i64::try_from(rng.below(1 << 34)).unwrap_or(0)),
        }
        .clamp(i64::MIN + 2, i64::MAX - 1);
        let topic = rng.pick(&TOPICS);
        text.push_str(&point(rng, topic, time));
        text.push_str(rng.pick(&["\n", "\n", "\n", "\r\n", "\n\n"]));
    }
    text.into_bytes()
}

/// Tokens spliced into line protocol.
const TOKENS: &[&[u8]] = &[
    b" ",
    b",",
    b"=",
    b"\"",
    b"\\",
    b"\n",
    b"\r",
    b"\t",
    b"\0",
    b"#",
    b"=\"",
    b"\\\n",
    b"NaN",
    b"nan",
    b"-Inf",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"9223372036854775808i",
    b"-9223372036854775809i",
    b"18446744073709551616u",
    b"-1u",
    b"1.5i",
    b"0x10",
    b"+1",
    b"1..2",
    b"--1",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"99999999999999999999",
    b"t",
    b"tru",
    b"time=1",
    b",time=x",
    b"CREATE DATABASE x",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"a=1",
    b"s=\"x\"",
    b"n=1i",
    b"a=\"str\"",
    b"b=t",
    b"m,t=1 a=1 1\n",
    "\u{1F600}".as_bytes(),
];

/// A bound on what decompression yields from `input` (its size when it is not gzip).
fn loaded_len(input: &[u8]) -> usize {
    if !input.starts_with(&[0x1f, 0x8b]) {
        return input.len();
    }
    let mut out = Vec::new();
    // A corrupt stream still yields what came before the fault; stop at 64 MiB.
    let _ = flate2::read::MultiGzDecoder::new(input)
        .take(64 << 20)
        .read_to_end(&mut out);
    input.len() + out.len()
}

/// Raw and aggregated selects of every field (and a tag and a missing name) of both topics, over
/// all time or a narrow range; returns the rows answered. Errors must be permanent: aggregating
/// strings and booleans, or an unsigned value beyond `i64`, is an InfluxQL or response error as on
/// the server; a transient error from a file is returned as a failure.
fn selects(source: &FileSource, narrow_only: bool) -> Result<usize, EfdError> {
    let everything =
        TimeRange::new(UtcNanos(i64::MIN + 2), UtcNanos(i64::MAX - 1)).expect("ordered");
    let narrow = TimeRange::new(UtcNanos(-1 << 40), UtcNanos(1 << 40)).expect("ordered");
    let aggregations: Vec<PreAggregation> = [
        ("1s", AggregateFn::Mean),
        ("1ns", AggregateFn::Max),
        ("1w", AggregateFn::Min),
    ]
    .into_iter()
    .map(|(i, f)| PreAggregation {
        interval: InfluxDuration::parse(i).expect("a literal"),
        function: f,
    })
    .collect();
    let mut rows = 0;
    let mut answered = |result: Result<transform_core::Frame, EfdError>| match result {
        Ok(frame) => {
            rows += frame.len();
            Ok(())
        }
        Err(e) if !e.is_transient() => Ok(()),
        Err(e) => Err(e),
    };
    for topic in TOPICS {
        let mut names: Vec<String> = now(source.field_keys(topic))?
            .into_iter()
            .map(|k| k.name)
            .collect();
        names.extend(["salIndex".to_owned(), "missing".to_owned()]);
        // One range per file (selects cost more than loading): all time, or a narrow window.
        let range = if narrow_only { narrow } else { everything };
        for aggregation in [None].into_iter().chain(aggregations.iter().map(Some)) {
            answered(now(source.select(Select {
                topic,
                fields: &names,
                range,
                aggregation,
            })))?;
        }
    }
    Ok(rows)
}

#[test]
fn a_million_mutated_line_protocol_files_never_panic_nor_allocate_without_bound() {
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let path = dir.path().join("efd.lp");
    // Valid files to mutate, made once.
    let pool: Vec<Vec<u8>> = (0..1024).map(|k| valid_file(&mut Rng(k))).collect();
    let cases = cases(CASES);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let counts = std::cell::Cell::new((0u64, 0u64, 0u64));
    // The source reads through a 64 KiB buffer and inflates through a 32 KiB window.
    let bound = std::cell::RefCell::new(AllocBound::new(64, 256 * 1024));
    runner
        .run(&any::<u64>(), |seed| {
            let mut rng = Rng(seed);
            let mut input = if rng.chance(1) {
                // One very long line: a key past InfluxDB's 64 KiB limit, or just a long string.
                let long = "x".repeat(60_000 + rng.below(10_000));
                format!("m,t={long} a=1 1\nm s=\"{long}\" 2\n").into_bytes()
            } else {
                pool[rng.below(pool.len())].clone()
            };
            if !rng.chance(10) {
                mutate(&mut rng, &mut input, TOKENS, 4);
            }
            if rng.chance(5) {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&input).expect("in memory");
                input = gz.finish().expect("in memory");
                if rng.chance(50) {
                    mutate(&mut rng, &mut input, &[b"\0", b"\xff"], 2);
                }
            }
            std::fs::write(&path, &input).expect("the temporary file is writable");
            let (result, peak) = measure(|| FileSource::open(&path));
            let (loaded, rejected, rows) = counts.get();
            match result {
                Ok(source) => {
                    let found = selects(&source, rng.chance(25));
                    prop_assert!(
                        found.is_ok(),
                        "a select failed: {:?} on {input:?}",
                        found.as_ref().err()
                    );
                    counts.set((loaded + 1, rejected, rows + found.unwrap_or(0) as u64));
                }
                Err(err) => {
                    prop_assert!(!err.is_transient(), "{err}");
                    match &err {
                        EfdError::File { line, .. } => {
                            let lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
                            // Gzip: the line is of the decompressed text, unknown here.
                            prop_assert!(
                                *line >= 1 && (*line <= lines || input.starts_with(&[0x1f, 0x8b])),
                                "{err} for a {lines}-line file: {input:?}"
                            );
                        }
                        other => {
                            return Err(TestCaseError::fail(format!("not a file error: {other}")));
                        }
                    }
                    counts.set((loaded, rejected + 1, rows));
                }
            }
            let len = loaded_len(&input);
            let mut bound = bound.borrow_mut();
            prop_assert!(
                bound.admits(len, peak),
                "{peak} bytes allocated loading {len} bytes (bound {}): {input:?}",
                bound.limit(len)
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (loaded, rejected, rows) = counts.get();
    for (what, n) in [("loaded", loaded), ("rejected", rejected)] {
        assert!(
            n >= u64::from(cases) / 20,
            "only {n} of {cases} files were {what}: the generator is too narrow"
        );
    }
    assert!(rows > 0, "no select returned a row");
    let bound = bound.into_inner();
    test_support::report::record(
        "fuzz",
        "line-protocol file source",
        "valid exports (DDL, comments, tags, escapes, multi-line strings, every value type; 5% gzip), mutated (huge and NaN numbers, out-of-range times, invalid UTF-8, stray quotes and backslashes, cut lines, 64 KiB keys); raw and MEAN/MAX/MIN selects on every file that loads",
        loaded + rejected,
        &format!(
            "no panic; 0 crashes; {loaded} loaded ({rows} rows selected), {rejected} rejected with a line number and a permanent error; {}",
            bound.describe()
        ),
        "faults_fuzz_lineproto::a_million_mutated_line_protocol_files_never_panic_nor_allocate_without_bound",
    );
}
