//! EFD data handling: `/query` JSON and MessagePack parsing into frames (MB/s; the same rows in
//! both, so their times compare directly), packed-series unpacking
//! (samples/s), and loading a line-protocol export into the file source (MB/s).

use std::collections::HashMap;
use std::fmt::Write as _;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use efd_client::{
    CRIO_TIMESTAMP, EfdSource, FieldType, FileSource, parse_query_response,
    parse_query_response_msgpack, unpack,
};
use transform_core::{ColumnData, Frame, FrameColumn, Semantics};
use transformed_efd_benches::SplitMix;

/// A chunked `/query` body as influxd writes it: `rows` rows of `fields` float fields plus an integer
/// `salIndex`, 10,000 rows per chunk document.
fn query_body(rows: usize, fields: usize) -> Vec<u8> {
    let mut rng = SplitMix::new(7);
    let mut columns = String::from("\"time\"");
    for f in 0..fields {
        let _ = write!(columns, ",\"f{f}\"");
    }
    columns.push_str(",\"salIndex\"");
    let mut body = String::new();
    for chunk_start in (0..rows).step_by(10_000) {
        let chunk_end = (chunk_start + 10_000).min(rows);
        let _ = write!(
            body,
            "{{\"results\":[{{\"statement_id\":0,\"series\":[{{\"name\":\"lsst.sal.ESS.temperature\",\"columns\":[{columns}],\"values\":["
        );
        for r in chunk_start..chunk_end {
            if r > chunk_start {
                body.push(',');
            }
            let _ = write!(
                body,
                "[{}",
                1_700_000_000_000_000_000i64 + r as i64 * 20_000_000
            );
            for _ in 0..fields {
                let _ = write!(body, ",{}", 15.0 + rng.next_f64() * 10.0);
            }
            let _ = write!(body, ",{}]", 301 + r % 4);
        }
        let partial = if chunk_end < rows {
            ",\"partial\":true"
        } else {
            ""
        };
        let _ = writeln!(body, "]{partial}}}]{partial}}}]}}");
    }
    body.into_bytes()
}

fn json_benches(c: &mut Criterion) {
    let fields = 20;
    let body = query_body(50_000, fields);
    let mut types: HashMap<String, FieldType> = (0..fields)
        .map(|f| (format!("f{f}"), FieldType::Float))
        .collect();
    types.insert("salIndex".to_owned(), FieldType::Integer);
    let mut group = c.benchmark_group("efd");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_query_json", |b| {
        b.iter(|| parse_query_response(std::hint::black_box(&body), &types).map(|f| f.len()));
    });
    // The same documents as influxd encodes them for `Accept: application/x-msgpack`.
    let msgpack: Vec<u8> = body
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .flat_map(|line| {
            let doc: serde_json::Value = serde_json::from_slice(line).expect("bench JSON");
            rmp_serde::to_vec_named(&doc).expect("msgpack")
        })
        .collect();
    group.throughput(Throughput::Bytes(msgpack.len() as u64));
    group.bench_function("parse_query_msgpack", |b| {
        b.iter(|| {
            parse_query_response_msgpack(std::hint::black_box(&msgpack), &types).map(|f| f.len())
        });
    });
    group.finish();
}

fn packed_benches(c: &mut Criterion) {
    const ROWS: usize = 3_000;
    const N: usize = 100;
    let bases = vec![
        "azimuthCalculatedAngle".to_owned(),
        "elevationCalculatedAngle".to_owned(),
    ];
    let mut rng = SplitMix::new(3);
    let crio: Vec<f64> = (0..ROWS).map(|r| 1_700_000_037.0 + r as f64).collect();
    let mut columns = vec![FrameColumn::new(CRIO_TIMESTAMP, ColumnData::Float(crio))];
    for base in &bases {
        for i in 0..N {
            let v = (0..ROWS).map(|_| rng.next_f64()).collect();
            columns.push(FrameColumn::new(format!("{base}{i}"), ColumnData::Float(v)));
        }
    }
    let ts: Vec<i64> = (0..ROWS as i64)
        .map(|r| 1_700_000_001_000_000_000 + r * 1_000_000_000)
        .collect();
    let frame = Frame::new(ts, columns).expect("packed frame");
    let mut group = c.benchmark_group("efd");
    group.throughput(Throughput::Elements((ROWS * N * bases.len()) as u64));
    group.bench_function("unpack_packed_2x100", |b| {
        b.iter(|| {
            unpack(std::hint::black_box(&frame), &bases, N, Semantics::Default).map(|f| f.len())
        });
    });
    group.finish();
}

/// EFD-like line protocol: 20 topics written round-robin at 50 Hz, each point with 30 floats, an
/// integer, a boolean and a string.
fn export(bytes: usize) -> String {
    let mut rng = SplitMix::new(42);
    let mut text = String::with_capacity(bytes + 4096);
    let mut k = 0i64;
    while text.len() < bytes {
        let _ = write!(text, "lsst.sal.Test.topic{} ", k % 20);
        for f in 0..30 {
            let _ = write!(text, "value{f}={},", rng.next_f64() * 100.0);
        }
        let _ = writeln!(
            text,
            "count={k}i,ok={},status=\"state {}\" {}",
            k % 2 == 0,
            k % 7,
            1_700_000_000_000_000_000 + k * 20_000_000
        );
        k += 1;
    }
    text
}

fn file_benches(c: &mut Criterion) {
    let text = export(32 << 20);
    let path = std::env::temp_dir().join(format!("efd-bench-{}.lp", std::process::id()));
    std::fs::write(&path, &text).expect("write the bench export");
    let mut group = c.benchmark_group("efd");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("load_line_protocol", |b| {
        b.iter(|| FileSource::open(&path).map(|f| f.describe().len()));
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, json_benches, packed_benches, file_benches);
criterion_main!(benches);
