//! Upserts against a real PostgreSQL and SQLite: 1,000 wide rows of the real LSSTCam config,
//! idempotent re-runs, absent columns left untouched and `None` written as NULL, `created_at` set on
//! insert only, typed columns, unpivoted rows, the monitor's id reads, and names that are refused
//! before any SQL runs.

mod common;

use common::{LATER, NOW, pg_migrated, shipped_schema, small_config, small_schema, sqlite_url};
use consdb_writer::{
    ConsDb, EfdSchema, ItemKey, MigrateMode, Row, UnpivotedBatch, Value, WideBatch, WriterError,
};
use test_support::Postgres;
use transform_core::{Instrument, Table, UtcNanos};

fn key(i: usize) -> ItemKey {
    let seq = i32::try_from(i).unwrap() + 1;
    ItemKey {
        day_obs: 20240601 + seq / 400,
        seq_num: seq,
        id: 2_024_060_100_000 + i64::from(seq),
    }
}

/// A deterministic value for row `i`, column `j`, with NULLs sprinkled in.
fn value(i: usize, j: usize, salt: f64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // Small test numbers.
    (!(i + j).is_multiple_of(17)).then_some(i as f64 * 1000.0 + j as f64 + salt)
}

/// Every config column of `table`, `rows` rows.
fn full_batch(schema: &EfdSchema, table: Table, rows: usize, salt: f64) -> WideBatch {
    let columns: Vec<String> = schema
        .table(table)
        .config_columns()
        .map(|c| c.name.to_string())
        .collect();
    let mut batch = WideBatch::new(table, columns.clone());
    for i in 0..rows {
        batch.push(
            key(i),
            (0..columns.len()).map(|j| value(i, j, salt)).collect(),
        );
    }
    batch
}

fn expect_value(row: &Row, column: &str, want: Option<f64>) {
    let got = &row[column];
    match want {
        None => assert!(got.is_null(), "{column}: {got:?}"),
        Some(v) => assert_eq!(got, &Value::Float(v), "{column}"),
    }
}

fn ids(rows: usize) -> Vec<i64> {
    (0..rows).map(|i| key(i).id).collect()
}

/// The LSSTCam scenario on any backend: 1,000 wide rows, a re-run, a partial update.
async fn lsstcam_scenario(db: &mut ConsDb, rows: usize) {
    let schema = db.schema().clone();
    let table = Table::ExposureEfd;
    let batch = full_batch(&schema, table, rows, 0.25);
    assert_eq!(batch.columns.len(), 473);
    let outcome = db.upsert_wide(&batch, NOW).await.unwrap();
    assert_eq!(outcome.rows, rows);
    assert_eq!(outcome.absent_columns, 0);
    assert_eq!(outcome.replica_failure_count(), 0);
    let stored = db.select_rows(table, &ids(rows)).await.unwrap();
    assert_eq!(stored.len(), rows);
    let check_all = |stored: &[Row]| {
        for (i, row) in stored.iter().enumerate() {
            assert_eq!(row["exposure_id"], Value::Int(key(i).id));
            for (j, column) in batch.columns.iter().enumerate() {
                expect_value(row, column, value(i, j, 0.25));
            }
        }
    };
    check_all(&stored);
    let created = stored[0]["created_at"].clone();
    assert!(
        matches!(&created, Value::Timestamp(t) if *t == NOW)
            || created == Value::Text("2024-06-01 12:00:00.000000".into()),
        "{created:?}"
    );

    // Again, a day later: same rows, same values, created_at kept.
    let outcome = db.upsert_wide(&batch, LATER).await.unwrap();
    assert_eq!(outcome.rows, rows);
    let again = db.select_rows(table, &ids(rows)).await.unwrap();
    assert_eq!(again, stored);
    assert_eq!(
        db.ids_for_day_obs(table, 20240601..=20240603)
            .await
            .unwrap(),
        ids(rows)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );

    // An update of ten columns of the first 100 rows: new values and NULLs where computed as None,
    // the 463 other columns untouched.
    let updated: Vec<String> = batch.columns[100..110].to_vec();
    let mut partial = WideBatch::new(table, updated.clone());
    for i in 0..100 {
        partial.push(
            key(i),
            (0..updated.len())
                .map(|j| (j % 3 != 0).then_some(-1.0 - f64::from(u32::try_from(j).unwrap())))
                .collect(),
        );
    }
    let outcome = db.upsert_wide(&partial, LATER).await.unwrap();
    assert_eq!(outcome.rows, 100);
    assert_eq!(outcome.absent_columns, 463);
    let after = db.select_rows(table, &ids(rows)).await.unwrap();
    assert_eq!(after.len(), rows);
    for (i, row) in after.iter().enumerate() {
        assert_eq!(row["created_at"], created);
        for (j, column) in batch.columns.iter().enumerate() {
            let want = if i < 100 && (100..110).contains(&j) {
                let k = j - 100;
                (k % 3 != 0).then_some(-1.0 - f64::from(u32::try_from(k).unwrap()))
            } else {
                value(i, j, 0.25)
            };
            expect_value(row, column, want);
        }
    }
}

#[tokio::test]
async fn postgres_lsstcam_wide_upserts() {
    let pg = Postgres::start();
    let mut db = pg_migrated(&pg, "consdb", shipped_schema(Instrument::LsstCam)).await;
    lsstcam_scenario(&mut db, 1000).await;
    assert_eq!(
        pg.psql("consdb", "SELECT count(*) FROM efd_lsstcam.exposure_efd")
            .trim(),
        "1000"
    );
    // The visit table takes its 465 columns the same way.
    let schema = db.schema().clone();
    let visits = full_batch(&schema, Table::VisitEfd, 50, 0.5);
    assert_eq!(visits.columns.len(), 465);
    assert_eq!(db.upsert_wide(&visits, NOW).await.unwrap().rows, 50);
}

#[tokio::test]
async fn sqlite_lsstcam_wide_upserts() {
    // 478 binds a row: 68 rows a statement, so 300 rows take five statements in one transaction.
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("consdb.sqlite3"));
    let mut db = ConsDb::connect(shipped_schema(Instrument::LsstCam), &[url], None)
        .await
        .unwrap();
    db.migrate(MigrateMode::Apply).await.unwrap();
    lsstcam_scenario(&mut db, 300).await;
}

/// Typed columns, duplicates in a batch, and an empty batch, on any backend.
async fn typed_scenario(db: &mut ConsDb) {
    let table = Table::VisitEfd;
    let columns = [
        "temp_mean",
        "temp_double",
        "count_int",
        "count_long",
        "count_short",
        "count_byte",
        "flag",
    ];
    let mut batch = WideBatch::new(table, columns);
    batch.push(key(0), vec![Some(0.0); 7]);
    // The same key again: the last row wins.
    batch.push(
        key(0),
        vec![
            Some(1.5),
            Some(f64::NAN),
            Some(2.5),
            Some(3e12),
            Some(-7.0),
            Some(255.0),
            Some(1.0),
        ],
    );
    batch.push(key(1), vec![None; 7]);
    let outcome = db.upsert_wide(&batch, NOW).await.unwrap();
    assert_eq!(outcome.rows, 2);
    let rows = db
        .select_rows(table, &[key(0).id, key(1).id])
        .await
        .unwrap();
    let r = &rows[0];
    assert_eq!(r["temp_mean"], Value::Float(1.5));
    assert_eq!(r["temp_double"], Value::Null, "NaN is stored as NULL");
    assert_eq!(r["count_int"], Value::Int(2), "rounded half to even");
    assert_eq!(r["count_long"], Value::Int(3_000_000_000_000));
    assert_eq!(r["count_short"], Value::Int(-7));
    assert_eq!(r["count_byte"], Value::Int(255));
    assert!(matches!(r["flag"], Value::Bool(true) | Value::Int(1)));
    assert!(
        rows[1]
            .iter()
            .filter(|(k, _)| columns.contains(&k.as_str()))
            .all(|(_, v)| v.is_null())
    );

    let mut too_big = WideBatch::new(table, ["count_short"]);
    too_big.push(key(2), vec![Some(1e6)]);
    let err = db.upsert_wide(&too_big, NOW).await.unwrap_err();
    assert!(err.to_string().contains("does not fit SMALLINT"), "{err}");
    assert!(!err.is_transient());

    // Another (day_obs, seq_num) with an id already stored breaks the unique key: permanent, and
    // nothing of the batch is written.
    let mut clash = WideBatch::new(table, ["temp_mean"]);
    clash.push(key(5), vec![Some(9.0)]);
    clash.push(
        ItemKey {
            seq_num: 99,
            ..key(0)
        },
        vec![Some(9.0)],
    );
    let err = db.upsert_wide(&clash, NOW).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(matches!(err, WriterError::Database { .. }), "{err:?}");
    assert!(
        db.select_rows(table, &[key(5).id])
            .await
            .unwrap()
            .is_empty()
    );

    let empty = WideBatch::new(table, ["temp_mean"]);
    let outcome = db.upsert_wide(&empty, NOW).await.unwrap();
    assert_eq!((outcome.rows, outcome.absent_columns), (0, 6));

    let mut wrong_width = WideBatch::new(table, ["temp_mean"]);
    wrong_width.push(key(3), vec![Some(1.0), Some(2.0)]);
    assert!(matches!(
        db.upsert_wide(&wrong_width, NOW).await,
        Err(WriterError::InvalidBatch { .. })
    ));
    let exposure_only = WideBatch::new(table, ["jitter"]);
    assert!(matches!(
        db.upsert_wide(&exposure_only, NOW).await,
        Err(WriterError::UnknownColumn { .. })
    ));
}

/// Unpivoted rows on any backend.
async fn unpivoted_scenario(db: &mut ConsDb) {
    let table = Table::ExposureEfdUnpivoted;
    let mut batch = UnpivotedBatch::new(table);
    for f in 0..3 {
        batch.push(
            key(0),
            "forces_mean",
            format!("appliedForce{f}"),
            Some(f64::from(f)),
        );
    }
    batch.push(key(1), "forces_mean", "appliedForce0", None);
    assert_eq!(db.upsert_unpivoted(&batch, NOW).await.unwrap().rows, 4);
    // Re-run with new values: updated in place, no new rows, created_at kept.
    let mut update = UnpivotedBatch::new(table);
    update.push(key(0), "forces_mean", "appliedForce1", Some(10.0));
    update.push(key(1), "forces_mean", "appliedForce0", Some(f64::NAN));
    update.push(key(1), "forces_mean", "appliedForce0", Some(5.0));
    assert_eq!(db.upsert_unpivoted(&update, LATER).await.unwrap().rows, 2);
    let rows = db
        .select_rows(table, &[key(0).id, key(1).id])
        .await
        .unwrap();
    let summary: Vec<(i64, String, String, Option<f64>)> = rows
        .iter()
        .map(|r| {
            let Value::Text(p) = &r["property"] else {
                panic!("{r:?}")
            };
            let Value::Text(f) = &r["field"] else {
                panic!("{r:?}")
            };
            (
                r["exposure_id"].as_i64().unwrap(),
                p.clone(),
                f.clone(),
                r["value"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                key(0).id,
                "forces_mean".into(),
                "appliedForce0".into(),
                Some(0.0)
            ),
            (
                key(0).id,
                "forces_mean".into(),
                "appliedForce1".into(),
                Some(10.0)
            ),
            (
                key(0).id,
                "forces_mean".into(),
                "appliedForce2".into(),
                Some(2.0)
            ),
            (
                key(1).id,
                "forces_mean".into(),
                "appliedForce0".into(),
                Some(5.0)
            ),
        ]
    );
    let created: Vec<&Value> = rows.iter().map(|r| &r["created_at"]).collect();
    assert!(created.iter().all(|c| *c == created[0]), "{created:?}");

    let mut unknown = UnpivotedBatch::new(table);
    unknown.push(key(0), "temp_mean", "x", Some(1.0));
    assert!(matches!(
        db.upsert_unpivoted(&unknown, NOW).await,
        Err(WriterError::UnknownColumn { .. })
    ));
    let mut long_field = UnpivotedBatch::new(table);
    long_field.push(key(0), "forces_mean", "f".repeat(33), Some(1.0));
    let err = db.upsert_unpivoted(&long_field, NOW).await.unwrap_err();
    assert!(err.to_string().contains("VARCHAR(32)"), "{err}");
    let mut wrong_table = UnpivotedBatch::new(Table::ExposureEfd);
    wrong_table.push(key(0), "forces_mean", "x", Some(1.0));
    assert!(matches!(
        db.upsert_unpivoted(&wrong_table, NOW).await,
        Err(WriterError::InvalidBatch { .. })
    ));
    assert_eq!(
        db.ids_for_day_obs(table, 20240601..=20240601)
            .await
            .unwrap(),
        [key(0).id, key(1).id]
    );
    assert!(
        db.ids_for_day_obs(table, 20240610..=20240620)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn postgres_typed_and_unpivoted_upserts() {
    let pg = Postgres::start();
    let mut db = pg_migrated(&pg, "consdb", small_schema()).await;
    typed_scenario(&mut db).await;
    unpivoted_scenario(&mut db).await;
    assert_eq!(
        pg.psql(
            "consdb",
            "SELECT DISTINCT created_at FROM efd_latiss.exposure_efd_unpivoted"
        )
        .trim(),
        "2024-06-01 12:00:00"
    );
}

#[tokio::test]
async fn sqlite_typed_and_unpivoted_upserts() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("consdb.db"));
    let mut db = ConsDb::connect(small_schema(), &[url], None).await.unwrap();
    db.migrate(MigrateMode::Apply).await.unwrap();
    typed_scenario(&mut db).await;
    unpivoted_scenario(&mut db).await;
}

#[tokio::test]
async fn hostile_names_never_reach_sql() {
    const HOSTILE: &str = "x\"; DROP TABLE t; --";
    let pg = Postgres::start();
    let mut db = pg_migrated(&pg, "consdb", small_schema()).await;
    pg.psql("consdb", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean"]);
    batch.push(key(0), vec![Some(1.0)]);
    db.upsert_wide(&batch, NOW).await.unwrap();

    // A column built by hand, bypassing the config loader's checks.
    let mut config = small_config();
    let mut hostile = config.columns[0].clone();
    hostile.name = HOSTILE.to_owned();
    config.columns.push(hostile.clone());
    let err = EfdSchema::new(&config, Instrument::Latiss).unwrap_err();
    assert!(
        matches!(err, WriterError::InvalidIdentifier { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("refusing identifier"), "{err}");

    // The same name in a batch is refused before anything runs.
    let mut batch = WideBatch::new(Table::ExposureEfd, [hostile.name.clone()]);
    batch.push(key(0), vec![Some(2.0)]);
    let err = db.upsert_wide(&batch, NOW).await.unwrap_err();
    assert!(
        matches!(err, WriterError::InvalidIdentifier { .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean", "not_a_column"]);
    batch.push(key(0), vec![Some(2.0), Some(3.0)]);
    assert!(matches!(
        db.upsert_wide(&batch, NOW).await,
        Err(WriterError::UnknownColumn { .. })
    ));

    assert_eq!(pg.psql("consdb", "SELECT v FROM t").trim(), "1");
    let rows = db
        .select_rows(Table::ExposureEfd, &[key(0).id])
        .await
        .unwrap();
    assert_eq!(
        rows[0]["temp_mean"],
        Value::Float(1.0),
        "nothing was written"
    );
}

#[tokio::test]
async fn created_at_is_utc_whatever_the_server_zone() {
    let pg = Postgres::start();
    pg.create_database("consdb");
    pg.psql(
        "consdb",
        "ALTER DATABASE consdb SET TIME ZONE 'America/Santiago'",
    );
    let mut db = ConsDb::connect(small_schema(), &[common::pg_url(&pg, "consdb")], None)
        .await
        .unwrap();
    db.migrate(MigrateMode::Apply).await.unwrap();
    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean"]);
    batch.push(key(0), vec![Some(1.0)]);
    db.upsert_wide(&batch, UtcNanos(NOW.0 + 123_456_789))
        .await
        .unwrap();
    assert_eq!(
        pg.psql("consdb", "SELECT created_at FROM efd_latiss.exposure_efd")
            .trim(),
        "2024-06-01 12:00:00.123456"
    );
}
