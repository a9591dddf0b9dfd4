//! Upsert throughput of 473-column LSSTCam `exposure_efd` rows (the real config), in batches of 100
//! and 1,000 rows: on PostgreSQL (started by test-support) inserting new rows and updating existing
//! ones, and on SQLite (a file in a temp dir) for comparison. Criterion reports rows per second.
//! Also `exposure_efd_unpivoted` batches of 20,000 rows (what a 5-minute LSSTCam task writes),
//! in the order the pipeline produces them (column by column, then item by item).
//!
//! `cargo bench -p consdb-writer --bench upsert`

use std::path::PathBuf;

use consdb_writer::{ConsDb, EfdSchema, ItemKey, MigrateMode, UnpivotedBatch, WideBatch};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use db_connect::DbUrl;
use tokio::runtime::Runtime;
use transform_core::{Config, Instrument, Table, UtcNanos};

const CREATED_AT: UtcNanos = UtcNanos(1_717_243_200_000_000_000);

fn schema() -> EfdSchema {
    let shared = std::env::var_os("TRANSFORMED_EFD_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let path = shared.join("reference/consdb/config/config_lsstcam.yaml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    EfdSchema::new(&config, Instrument::LsstCam).unwrap()
}

/// `rows` rows starting at sequence number `first`, every column computed.
fn batch(schema: &EfdSchema, first: i32, rows: i32) -> WideBatch {
    let columns: Vec<String> = schema
        .table(Table::ExposureEfd)
        .config_columns()
        .map(|c| c.name.to_string())
        .collect();
    let mut batch = WideBatch::new(Table::ExposureEfd, columns.clone());
    for seq_num in first..first + rows {
        let key = ItemKey {
            day_obs: 20240601 + seq_num / 100_000,
            seq_num,
            id: 2_024_060_100_000_000 + i64::from(seq_num),
        };
        let values = (0..columns.len())
            .map(|j| {
                let j = u32::try_from(j).unwrap();
                (j % 13 != 0).then(|| f64::from(seq_num) * 0.001 + f64::from(j))
            })
            .collect();
        batch.push(key, values);
    }
    batch
}

/// Unpivoted rows for `items` exposures from sequence number `first`: for each unpivoted column of
/// the config, for each item, `fields` fields (the pipeline's order).
fn unpivoted(schema: &EfdSchema, first: i32, items: i32, fields: usize) -> UnpivotedBatch {
    let properties = schema.table(Table::ExposureEfdUnpivoted).properties.clone();
    let mut batch = UnpivotedBatch::new(Table::ExposureEfdUnpivoted);
    for (p, property) in properties.iter().enumerate() {
        for seq_num in first..first + items {
            let key = ItemKey {
                day_obs: 20240601,
                seq_num,
                id: 2_024_060_100_000_000 + i64::from(seq_num),
            };
            for f in 0..fields {
                let value = f64::from(seq_num) + p as f64 * 0.01 + f as f64 * 1e-4;
                batch.push(key, property.clone(), format!("zForce{f}"), Some(value));
            }
        }
    }
    batch
}

fn bench_unpivoted(c: &mut Criterion, name: &str, rt: &Runtime, db: &mut ConsDb) {
    let schema = db.schema().clone();
    let properties = schema.table(Table::ExposureEfdUnpivoted).properties.len();
    let items = 8;
    // About 20,000 rows a task.
    let fields = (20_000 / (properties * items as usize)).max(1);
    let rows = properties * items as usize * fields;
    let mut group = c.benchmark_group(format!("upsert_unpivoted/{name}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    let mut next = 100_000;
    group.bench_function(BenchmarkId::new("insert", rows), |b| {
        b.iter_batched(
            || {
                let batch = unpivoted(&schema, next, items, fields);
                next += items;
                batch
            },
            |batch| {
                rt.block_on(db.upsert_unpivoted(&batch, CREATED_AT))
                    .unwrap()
            },
            criterion::BatchSize::PerIteration,
        );
    });
    let existing = unpivoted(&schema, 100_000, items, fields);
    group.bench_function(BenchmarkId::new("update", rows), |b| {
        b.iter(|| {
            rt.block_on(db.upsert_unpivoted(&existing, CREATED_AT))
                .unwrap()
        });
    });
    group.finish();
}

fn bench_backend(c: &mut Criterion, name: &str, rt: &Runtime, db: &mut ConsDb) {
    let schema = db.schema().clone();
    let mut group = c.benchmark_group(format!("upsert_473_columns/{name}"));
    group.sample_size(10);
    let mut next = 0;
    for rows in [100, 1000] {
        group.throughput(Throughput::Elements(u64::try_from(rows).unwrap()));
        group.bench_function(BenchmarkId::new("insert", rows), |b| {
            b.iter_batched(
                || {
                    let batch = batch(&schema, next, rows);
                    next += rows;
                    batch
                },
                |batch| rt.block_on(db.upsert_wide(&batch, CREATED_AT)).unwrap(),
                criterion::BatchSize::PerIteration,
            );
        });
        let existing = batch(&schema, 0, rows);
        group.bench_function(BenchmarkId::new("update", rows), |b| {
            b.iter(|| rt.block_on(db.upsert_wide(&existing, CREATED_AT)).unwrap());
        });
    }
    group.finish();
}

fn upsert(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let pg = test_support::Postgres::start();
    pg.create_database("consdb");
    let url = DbUrl::parse(&pg.url("consdb")).unwrap();
    let mut db = rt
        .block_on(ConsDb::connect(schema(), &[url], None))
        .unwrap();
    rt.block_on(db.migrate(MigrateMode::Apply)).unwrap();
    bench_unpivoted(c, "postgres", &rt, &mut db);
    bench_backend(c, "postgres", &rt, &mut db);

    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::parse(&format!(
        "sqlite:///{}",
        dir.path().join("consdb.sqlite3").display()
    ))
    .unwrap();
    let mut db = rt
        .block_on(ConsDb::connect(schema(), &[url], None))
        .unwrap();
    rt.block_on(db.migrate(MigrateMode::Apply)).unwrap();
    bench_backend(c, "sqlite", &rt, &mut db);
}

criterion_group!(benches, upsert);
criterion_main!(benches);
