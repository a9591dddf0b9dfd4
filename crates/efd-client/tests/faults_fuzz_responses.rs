//! Fuzzing the `/query` response parsers, JSON ([`parse_query_response`]) and MessagePack
//! ([`parse_query_response_msgpack`]): a million near-valid bodies each (valid chunked responses of
//! every column type, then mutated with hostile tokens: huge numbers, NaN, invalid UTF-8, deep
//! nesting, lying lengths, cut documents) never panic, every error is permanent, and the peak memory
//! allocated while parsing one body stays within a fixed multiple of its size plus a constant.
//!
//! A slow test (`faults_*`): `make test-faults` runs it, `make test` does not.

mod fuzz_support;

use std::collections::HashMap;

use efd_client::{FieldType, parse_query_response, parse_query_response_msgpack};
use fuzz_support::{AllocBound, Rng, cases, measure, mutate};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};

/// Inputs tried per parser (`FAULTS_FUZZ_CASES` overrides it for a quick local look).
const CASES: u32 = 1_000_000;

/// The typed fields of the generated responses; other columns (tags) are strings.
fn field_types() -> HashMap<String, FieldType> {
    [
        ("a", FieldType::Float),
        ("b", FieldType::Integer),
        ("u", FieldType::Unsigned),
        ("t", FieldType::Boolean),
        ("s", FieldType::String),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_owned(), t))
    .collect()
}

fn cell(rng: &mut Rng, column: &str) -> Value {
    if rng.chance(15) {
        return Value::Null;
    }
    match column {
        // Finite floats of every magnitude, and integral ones (which JSON writes as integers).
        "a" => match rng.below(3) {
            0 => json!(rng.below(1000)),
            1 => json!(f64::from_bits(rng.next()))
                .as_f64()
                .map_or(Value::Null, |v| json!(v)),
            _ => json!(rng.below(1_000_000) as f64 / 7.0),
        },
        "b" => json!(i64::from_le_bytes(rng.next().to_le_bytes()) >> rng.below(64)),
        "u" => json!(rng.next() >> (1 + rng.below(63))),
        "t" => json!(rng.chance(50)),
        _ => json!(rng.pick(&["", "x", "a b", "301", "é\u{1F600}", "\"q\"", "\\", "\u{0}"])),
    }
}

/// A valid response body, as parsed JSON values: one to three chunks of one statement, each with
/// zero to three series of the same columns; sometimes an error or a `SHOW FIELD KEYS` answer.
fn valid_documents(rng: &mut Rng) -> Vec<Value> {
    match rng.below(20) {
        0 => {
            return vec![
                json!({"results": [{"statement_id": 0, "error": "database not found: efd"}]}),
            ];
        }
        1 => {
            return vec![json!({"results": [{"statement_id": 0, "series": [{
                "name": "lsst.sal.ESS.temperature",
                "columns": ["fieldKey", "fieldType"],
                "values": [["a", "float"], ["b", "integer"]],
            }]}]})];
        }
        _ => {}
    }
    let mut columns: Vec<&str> = vec!["time"];
    for c in ["a", "b", "u", "t", "s", "salIndex"] {
        if rng.chance(50) {
            columns.push(c);
        }
    }
    let chunks = 1 + rng.below(3);
    let mut time = i64::from_le_bytes(rng.next().to_le_bytes()) >> 8;
    (0..chunks)
        .map(|k| {
            let partial = k + 1 < chunks;
            let series: Vec<Value> = (0..rng.below(4))
                .map(|_| {
                    let rows: Vec<Value> = (0..rng.below(12))
                        .map(|_| {
                            time = time.saturating_add(i64::try_from(rng.below(1 << 30)).unwrap_or(0));
                            let mut row = vec![json!(time)];
                            for c in &columns[1..] {
                                row.push(cell(rng, c));
                            }
                            Value::Array(row)
                        })
                        .collect();
                    let mut s = json!({"name": "lsst.sal.ESS.temperature", "columns": columns, "values": rows});
                    if rng.chance(30) {
                        s["tags"] = json!({"salIndex": "101"});
                    }
                    if partial {
                        s["partial"] = json!(true);
                    }
                    s
                })
                .collect();
            let mut statement = json!({"statement_id": 0, "series": series});
            if partial {
                statement["partial"] = json!(true);
            }
            json!({"results": [statement]})
        })
        .collect()
}

/// Tokens spliced into JSON bodies.
const JSON_TOKENS: &[&[u8]] = &[
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"null",
    b"true",
    b"false",
    b"0",
    b"-0",
    b"1.5",
    b"1e999",
    b"-1e999",
    b"1e-999",
    b"\"NaN\"",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"18446744073709551616",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"99999999999999999999999999999999999999",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\n",
    b" ",
    b"\"time\"",
    b"\"columns\":[\"time\",\"a\"]",
    b"\"values\":[[1,2,3]]",
    b"\"values\":[[1]]",
    b"\"values\":[[]]",
    b"\"partial\":true",
    b"\"error\":\"boom\"",
    b"\"series\":[]",
    b"\"results\":",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":{\"x\":",
    b"\"a\\\"b\"",
];

/// Tokens spliced into MessagePack bodies: lying lengths, reserved and extension markers, extreme
/// numbers, invalid UTF-8, nesting.
const MSGPACK_TOKENS: &[&[u8]] = &[
    &[0xc0],
    &[0xc1],
    &[0xc2],
    &[0xc3],
    &[0x91],
    &[0x92],
    &[0x81],
    &[0x80],
    &[0x90],
    &[0xdc, 0xff, 0xff],
    &[0xdd, 0xff, 0xff, 0xff, 0xff],
    &[0xde, 0xff, 0xff],
    &[0xdf, 0xff, 0xff, 0xff, 0xff],
    &[0xdb, 0xff, 0xff, 0xff, 0xff],
    &[0xc6, 0x7f, 0xff, 0xff, 0xff],
    &[0xd9, 0x03, 0xff, 0xfe, 0xfd],
    &[0xa3, 0xed, 0xa0, 0x80],
    &[0xc4, 0x02, 0x00, 0x01],
    &[0xd4, 0x01, 0x02],
    &[0xc7, 0x01, 0x05, 0x00],
    &[0xd6, 0xff, 0x00, 0x00, 0x00, 0x01],
    &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
    &[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
    &[0xca, 0xff, 0x80, 0, 0],
    &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
    &[0xa4, b't', b'i', b'm', b'e'],
    &[0xa3, b'N', b'a', b'N'],
    &[0xa5, b'e', b'r', b'r', b'o', b'r'],
    &[0xa7, b'c', b'o', b'l', b'u', b'm', b'n', b's'],
    &[0xa6, b'v', b'a', b'l', b'u', b'e', b's'],
    &[
        0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
        0x91,
    ],
    &[
        0x81, 0xa1, b'x', 0x81, 0xa1, b'x', 0x81, 0xa1, b'x', 0x81, 0xa1, b'x', 0x81, 0xa1, b'x',
    ],
];

/// A nest of `depth` one-element arrays (JSON `[[[...]]]` or MessagePack `0x91...`) around `x`,
/// as the value of a key the parser skips.
fn deep_nesting(rng: &mut Rng, msgpack: bool) -> Vec<u8> {
    let depth = 1 + rng.below(3000);
    if msgpack {
        let mut doc = vec![0x81, 0xa4, b'n', b'a', b'm', b'e'];
        doc.extend(std::iter::repeat_n(0x91, depth));
        doc.push(0x01);
        doc
    } else {
        format!("{{\"name\":{}1{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
    }
}

/// A valid body (one document per line in JSON, concatenated in MessagePack).
fn valid_body(rng: &mut Rng, msgpack: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for doc in &valid_documents(rng) {
        if msgpack {
            body.extend(rmp_serde::to_vec_named(doc).expect("a JSON value encodes"));
        } else {
            body.extend(serde_json::to_vec(doc).expect("a JSON value encodes"));
            body.push(b'\n');
        }
    }
    body
}

/// Valid bodies to mutate, made once (making them costs more than parsing them).
const POOL: u64 = 1024;

fn body(rng: &mut Rng, pool: &[Vec<u8>], msgpack: bool) -> Vec<u8> {
    if rng.chance(1) {
        return deep_nesting(rng, msgpack);
    }
    let mut body = pool[rng.below(pool.len())].clone();
    // One in ten stays valid, so the accepting path is exercised as much as the rejecting ones.
    if !rng.chance(10) {
        let tokens = if msgpack { MSGPACK_TOKENS } else { JSON_TOKENS };
        mutate(rng, &mut body, tokens, 4);
    }
    body
}

/// Fuzzes one parser; returns (accepted, rejected, the allocation bound with its closest case).
fn fuzz(msgpack: bool, bound: AllocBound) -> (u64, u64, AllocBound) {
    let types = field_types();
    let pool: Vec<Vec<u8>> = (0..POOL)
        .map(|k| valid_body(&mut Rng(k), msgpack))
        .collect();
    let cases = cases(CASES);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let counts = std::cell::Cell::new((0u64, 0u64));
    let bound = std::cell::RefCell::new(bound);
    runner
        .run(&any::<u64>(), |seed| {
            let mut rng = Rng(seed);
            let input = body(&mut rng, &pool, msgpack);
            let (result, peak) = measure(|| {
                if msgpack {
                    parse_query_response_msgpack(&input, &types)
                } else {
                    parse_query_response(&input, &types)
                }
            });
            let (ok, bad) = counts.get();
            match result {
                Ok(frame) => {
                    for column in frame.columns() {
                        prop_assert_eq!(column.data.len(), frame.len());
                    }
                    counts.set((ok + 1, bad));
                }
                Err(err) => {
                    prop_assert!(
                        !err.is_transient(),
                        "a transient error for {input:?}: {err}"
                    );
                    counts.set((ok, bad + 1));
                }
            }
            let mut bound = bound.borrow_mut();
            prop_assert!(
                bound.admits(input.len(), peak),
                "{peak} bytes allocated parsing {} bytes (bound {}): {input:?}",
                input.len(),
                bound.limit(input.len())
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, bad) = counts.get();
    for (what, n) in [("accepted", ok), ("rejected", bad)] {
        assert!(
            n >= u64::from(cases) / 20,
            "only {n} of {cases} bodies were {what}: the generator is too narrow"
        );
    }
    (ok, bad, bound.into_inner())
}

#[test]
fn a_million_mutated_json_bodies_never_panic_nor_allocate_without_bound() {
    let (ok, bad, bound) = fuzz(false, AllocBound::new(64, 64 * 1024));
    test_support::report::record(
        "fuzz",
        "/query JSON parser",
        "valid chunked responses of every field type, mutated (huge numbers, NaN, invalid UTF-8, nesting to 3000 deep, cut documents, wrong column counts)",
        ok + bad,
        &format!(
            "no panic; 0 crashes; {ok} parsed, {bad} permanent errors; {}",
            bound.describe()
        ),
        "faults_fuzz_responses::a_million_mutated_json_bodies_never_panic_nor_allocate_without_bound",
    );
}

#[test]
fn a_million_mutated_msgpack_bodies_never_panic_nor_allocate_without_bound() {
    let (ok, bad, bound) = fuzz(true, AllocBound::new(64, 64 * 1024));
    test_support::report::record(
        "fuzz",
        "/query MessagePack parser",
        "valid chunked responses of every field type, mutated (lying lengths, reserved and extension markers, NaN and infinite floats, invalid UTF-8, nesting to 3000 deep, cut documents)",
        ok + bad,
        &format!(
            "no panic; 0 crashes; {ok} parsed, {bad} permanent errors; {}",
            bound.describe()
        ),
        "faults_fuzz_responses::a_million_mutated_msgpack_bodies_never_panic_nor_allocate_without_bound",
    );
}
