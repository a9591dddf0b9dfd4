//! Additive migrations against a real PostgreSQL and SQLite: creating everything, idempotence, a
//! new config column on a table that holds rows, extra columns and type differences reported and
//! kept, dry runs that execute nothing, and the reference's own tables (made by the real
//! `felis create`) needing nothing.

mod common;

use common::{
    NOW, SHIPPED, column, config_of, pg_consdb, pg_migrated, pg_url, reference_schema_path,
    run_felis, shipped_schema, small_columns, small_schema, sqlite_url,
};
use consdb_writer::{
    ConsDb, EfdSchema, Extra, ItemKey, MigrateMode, Missing, SqlType, Value, WideBatch,
    sqlite_schema_path,
};
use diesel_async::SimpleAsyncConnection as _;
use test_support::Postgres;
use transform_core::{Instrument, Table};

fn key(seq_num: i32) -> ItemKey {
    ItemKey {
        day_obs: 20240601,
        seq_num,
        id: 2024060100000 + i64::from(seq_num),
    }
}

#[tokio::test]
async fn postgres_migration_creates_everything_once() {
    let pg = Postgres::start();
    let mut db = pg_consdb(&pg, "consdb", small_schema()).await;
    let missing = db.missing().await.unwrap();
    let shown: Vec<String> = missing.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "schema efd_latiss",
            "table efd_latiss.exposure_efd",
            "table efd_latiss.visit1_efd",
            "table efd_latiss.exposure_efd_unpivoted",
            "table efd_latiss.visit1_efd_unpivoted",
        ]
    );
    // Checking changed nothing.
    assert_eq!(
        pg.psql(
            "consdb",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'efd_latiss'"
        )
        .trim(),
        "0"
    );
    let report = db.migrate(MigrateMode::Apply).await.unwrap();
    assert!(report.applied);
    assert_eq!(report.primary.missing, missing);
    assert!(db.missing().await.unwrap().is_empty());
    let again = db.plan_migration().await.unwrap();
    assert!(
        again.statements.is_empty() && again.extra.is_empty(),
        "{again:?}"
    );
    db.require_complete().await.unwrap();

    let columns = pg.psql(
        "consdb",
        "SELECT column_name, data_type, is_nullable, coalesce(column_default, '') \
         FROM information_schema.columns WHERE table_schema = 'efd_latiss' \
         AND table_name = 'exposure_efd' ORDER BY ordinal_position",
    );
    assert_eq!(
        columns,
        "day_obs|integer|NO|\n\
         seq_num|integer|NO|\n\
         exposure_id|bigint|NO|\n\
         created_at|timestamp without time zone|YES|CURRENT_TIMESTAMP\n\
         temp_mean|double precision|YES|\n\
         temp_double|double precision|YES|\n\
         count_int|integer|YES|\n\
         count_long|bigint|YES|\n\
         count_short|smallint|YES|\n\
         count_byte|smallint|YES|\n\
         flag|boolean|YES|\n\
         jitter|double precision|YES|\n"
    );
    let unpivoted = pg.psql(
        "consdb",
        "SELECT column_name, data_type, coalesce(character_maximum_length, 0), is_nullable \
         FROM information_schema.columns WHERE table_schema = 'efd_latiss' \
         AND table_name = 'visit1_efd_unpivoted' ORDER BY ordinal_position",
    );
    assert_eq!(
        unpivoted,
        "day_obs|integer|0|NO\n\
         seq_num|integer|0|NO\n\
         visit_id|bigint|0|NO\n\
         property|character varying|64|NO\n\
         field|character varying|32|NO\n\
         value|double precision|0|YES\n\
         created_at|timestamp without time zone|0|YES\n"
    );
    let constraints = pg.psql(
        "consdb",
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE connamespace = 'efd_latiss'::regnamespace ORDER BY 1, 2",
    );
    assert_eq!(
        constraints,
        "efd_latiss.exposure_efd|exposure_efd_pkey|p|PRIMARY KEY (day_obs, seq_num)\n\
         efd_latiss.exposure_efd|un_exposure_efd_exposure_id|u|UNIQUE (exposure_id)\n\
         efd_latiss.exposure_efd_unpivoted|exposure_efd_unpivoted_pkey|p|PRIMARY KEY (day_obs, seq_num, exposure_id, property, field)\n\
         efd_latiss.visit1_efd|un_visit1_efd_visit_id|u|UNIQUE (visit_id)\n\
         efd_latiss.visit1_efd|visit1_efd_pkey|p|PRIMARY KEY (day_obs, seq_num)\n\
         efd_latiss.visit1_efd_unpivoted|visit1_efd_unpivoted_pkey|p|PRIMARY KEY (day_obs, seq_num, visit_id, property, field)\n"
    );
    assert_eq!(
        pg.psql(
            "consdb",
            "SELECT obj_description('efd_latiss.exposure_efd'::regclass), \
             col_description('efd_latiss.exposure_efd'::regclass, 5)"
        ),
        "Transformed EFD topics by exposure.|Column temp_mean.\n"
    );
}

#[tokio::test]
async fn postgres_adds_a_new_config_column_and_keeps_rows() {
    let pg = Postgres::start();
    let mut db = pg_migrated(&pg, "consdb", small_schema()).await;
    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean", "count_int"]);
    batch.push(key(1), vec![Some(1.5), Some(7.0)]);
    db.upsert_wide(&batch, NOW).await.unwrap();

    let mut columns = small_columns();
    columns.push(column(
        "new_col",
        "long",
        "[\"exposure_efd\", \"visit1_efd\"]",
        false,
    ));
    let schema = EfdSchema::new(&config_of(&columns), Instrument::Latiss).unwrap();
    let mut db = ConsDb::connect(schema, &[pg_url(&pg, "consdb")], None)
        .await
        .unwrap();
    assert_eq!(
        db.missing().await.unwrap(),
        [
            Missing::Column {
                table: "efd_latiss.exposure_efd".into(),
                column: "new_col".into(),
                sql_type: SqlType::BigInt,
            },
            Missing::Column {
                table: "efd_latiss.visit1_efd".into(),
                column: "new_col".into(),
                sql_type: SqlType::BigInt,
            },
        ]
    );
    let err = db.require_complete().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("lacks 2 schema item(s) the config needs, first: column efd_latiss.exposure_efd.new_col (BIGINT)"),
        "{err}"
    );
    let report = db.migrate(MigrateMode::Apply).await.unwrap();
    assert_eq!(
        report.primary.statements[0],
        "ALTER TABLE \"efd_latiss\".\"exposure_efd\" ADD COLUMN IF NOT EXISTS \"new_col\" BIGINT"
    );
    assert!(db.missing().await.unwrap().is_empty());
    let rows = db
        .select_rows(Table::ExposureEfd, &[key(1).id])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["temp_mean"], Value::Float(1.5));
    assert_eq!(rows[0]["count_int"], Value::Int(7));
    assert_eq!(rows[0]["new_col"], Value::Null);
}

#[tokio::test]
async fn postgres_reports_extra_columns_and_keeps_them() {
    let pg = Postgres::start();
    let mut db = pg_migrated(&pg, "consdb", small_schema()).await;
    pg.psql(
        "consdb",
        "ALTER TABLE efd_latiss.exposure_efd ADD COLUMN legacy text; \
         ALTER TABLE efd_latiss.visit1_efd ALTER COLUMN count_int TYPE bigint; \
         CREATE VIEW efd_latiss.exposure_view AS SELECT day_obs FROM efd_latiss.exposure_efd; \
         INSERT INTO efd_latiss.exposure_efd (day_obs, seq_num, exposure_id, legacy) \
         VALUES (20240601, 1, 1, 'kept')",
    );
    let plan = db.plan_migration().await.unwrap();
    assert!(plan.missing.is_empty(), "{plan:?}");
    assert_eq!(
        plan.extra,
        [
            Extra::Column {
                table: "efd_latiss.exposure_efd".into(),
                column: "legacy".into(),
                sql_type: "text".into(),
            },
            Extra::TypeMismatch {
                table: "efd_latiss.visit1_efd".into(),
                column: "count_int".into(),
                expected: SqlType::Integer,
                found: "bigint".into(),
            },
            Extra::Table {
                table: "efd_latiss.exposure_view".into(),
            },
        ]
    );
    assert_eq!(
        plan.extra[1].to_string(),
        "column efd_latiss.visit1_efd.count_int is bigint, the config says INTEGER"
    );
    let report = db.migrate(MigrateMode::Apply).await.unwrap();
    assert!(report.primary.statements.is_empty());
    assert_eq!(
        pg.psql("consdb", "SELECT legacy FROM efd_latiss.exposure_efd")
            .trim(),
        "kept"
    );
}

#[tokio::test]
async fn postgres_adds_missing_keys() {
    let pg = Postgres::start();
    pg.create_database("consdb");
    pg.psql(
        "consdb",
        "CREATE SCHEMA efd_latiss; \
         CREATE TABLE efd_latiss.exposure_efd (day_obs int NOT NULL, seq_num int NOT NULL, \
         exposure_id bigint NOT NULL, created_at timestamp DEFAULT CURRENT_TIMESTAMP)",
    );
    let schema = config_of(&[]);
    let schema = EfdSchema::new(&schema, Instrument::Latiss).unwrap();
    let mut db = ConsDb::connect(schema, &[pg_url(&pg, "consdb")], None)
        .await
        .unwrap();
    let missing: Vec<String> = db
        .missing()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        &missing[..2],
        [
            "primary key (day_obs, seq_num) of efd_latiss.exposure_efd",
            "unique key un_exposure_efd_exposure_id (exposure_id) of efd_latiss.exposure_efd",
        ]
    );
    db.migrate(MigrateMode::Apply).await.unwrap();
    assert!(db.missing().await.unwrap().is_empty());
    assert_eq!(
        pg.psql(
            "consdb",
            "SELECT conname FROM pg_constraint WHERE conrelid = 'efd_latiss.exposure_efd'::regclass ORDER BY 1"
        ),
        "exposure_efd_pkey\nun_exposure_efd_exposure_id\n"
    );
}

#[tokio::test]
async fn postgres_dry_run_executes_nothing() {
    let pg = Postgres::start();
    let mut db = pg_consdb(&pg, "consdb", small_schema()).await;
    let report = db.migrate(MigrateMode::DryRun).await.unwrap();
    assert!(!report.applied);
    let sql = report.primary.sql();
    assert!(
        sql.starts_with("CREATE SCHEMA IF NOT EXISTS \"efd_latiss\";\nCREATE TABLE IF NOT EXISTS \"efd_latiss\".\"exposure_efd\" (\n    \"day_obs\" INTEGER NOT NULL,"),
        "{sql}"
    );
    assert_eq!(
        pg.psql(
            "consdb",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'efd_latiss'"
        )
        .trim(),
        "0"
    );
    // The dry run's SQL is what an apply executes.
    pg.psql("consdb", &sql);
    assert!(db.missing().await.unwrap().is_empty());
}

#[tokio::test]
async fn reference_tables_made_by_felis_need_nothing() {
    // The Python service's tables, created by the real Felis from the reference YAML: the shipped
    // configs' schemas find every column with its type, every key, and nothing extra.
    let pg = Postgres::start();
    for instrument in SHIPPED {
        let db_name = format!("ref_{instrument}");
        pg.create_database(&db_name);
        let engine = format!(
            "postgresql+psycopg2://postgres@127.0.0.1:{}/{db_name}",
            pg.port()
        );
        let path = reference_schema_path(instrument).display().to_string();
        let (ok, output) = run_felis(&["create", "--initialize", "--engine-url", &engine, &path]);
        assert!(ok, "felis create failed:\n{output}");
        let mut db = ConsDb::connect(shipped_schema(instrument), &[pg_url(&pg, &db_name)], None)
            .await
            .unwrap();
        let plan = db.plan_migration().await.unwrap();
        assert!(plan.missing.is_empty(), "{instrument}: {:?}", plan.missing);
        assert!(plan.extra.is_empty(), "{instrument}: {:?}", plan.extra);
    }
}

/// Felis' own schema-versus-database comparison (alembic autogenerate, types and comments
/// included). `felis diff --engine-url` cannot name a PostgreSQL schema in this Felis version, so
/// this runs its `DatabaseDiff` on a session whose search path is the schema.
const FELIS_DIFF: &str = r#"
import sys
from sqlalchemy import create_engine
from felis.datamodel import Schema
from felis.diff import DatabaseDiff
schema = Schema.from_uri(sys.argv[2], context={"id_generation": True})
engine = create_engine(sys.argv[1], connect_args={"options": f"-csearch_path={schema.name}"})
diff = DatabaseDiff(schema, engine)
diff.print()
sys.exit(1 if diff.has_changes else 0)
"#;

#[tokio::test]
async fn our_tables_satisfy_felis_diff() {
    // The other way round: Felis compares our migrated database with the reference YAML.
    common::felis();
    let pg = Postgres::start();
    for instrument in SHIPPED {
        let db_name = format!("ours_{instrument}");
        let mut db = pg_migrated(&pg, &db_name, shipped_schema(instrument)).await;
        assert!(db.missing().await.unwrap().is_empty());
        let engine = format!(
            "postgresql+psycopg2://postgres@127.0.0.1:{}/{db_name}",
            pg.port()
        );
        let felis_diff = || {
            std::process::Command::new(common::repo_root().join(".venv/bin/python"))
                .args(["-c", FELIS_DIFF, &engine])
                .arg(reference_schema_path(instrument))
                .output()
                .unwrap()
        };
        let output = felis_diff();
        assert!(
            output.status.success(),
            "Felis finds differences for {instrument}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if instrument == Instrument::Latiss {
            // The comparison is live: a retyped column is a difference.
            pg.psql(
                &db_name,
                "ALTER TABLE efd_latiss.visit1_efd ALTER COLUMN at_salindex201_sonic_temperature_mean TYPE real",
            );
            assert!(!felis_diff().status.success());
        }
    }
}

#[tokio::test]
async fn sqlite_migration_attaches_a_schema_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("consdb.db");
    let schema_file = sqlite_schema_path(&main, "efd_latiss");
    assert_eq!(schema_file, dir.path().join("consdb.efd_latiss.sqlite3"));
    let url = sqlite_url(&main);
    let mut db = ConsDb::connect(small_schema(), std::slice::from_ref(&url), None)
        .await
        .unwrap();
    let missing = db.missing().await.unwrap();
    assert_eq!(missing.len(), 5);
    assert_eq!(
        missing[0],
        Missing::Schema {
            schema: "efd_latiss".into()
        }
    );
    let report = db.migrate(MigrateMode::DryRun).await.unwrap();
    assert_eq!(
        report.primary.statements[0],
        format!(
            "ATTACH DATABASE '{}' AS \"efd_latiss\"",
            schema_file.display()
        )
    );
    assert!(
        report.primary.statements.iter().any(|s| s
            == "CREATE UNIQUE INDEX IF NOT EXISTS \"efd_latiss\".\"un_exposure_efd_exposure_id\" ON \"exposure_efd\" (\"exposure_id\")"),
        "{:?}",
        report.primary.statements
    );
    assert!(!schema_file.exists(), "checks and dry runs create nothing");

    db.migrate(MigrateMode::Apply).await.unwrap();
    assert!(schema_file.is_file());
    assert!(db.missing().await.unwrap().is_empty());
    let again = db.migrate(MigrateMode::Apply).await.unwrap();
    assert!(again.primary.statements.is_empty(), "{again:?}");
    assert!(again.primary.extra.is_empty(), "{again:?}");

    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean"]);
    batch.push(key(1), vec![Some(2.5)]);
    db.upsert_wide(&batch, NOW).await.unwrap();

    // A new connection attaches the existing file; an extra column is reported and kept.
    let mut raw = db_connect::connect_sqlite(Some(&schema_file), false).unwrap();
    raw.batch_execute("ALTER TABLE exposure_efd ADD COLUMN legacy TEXT")
        .await
        .unwrap();
    drop(raw);
    let mut columns = small_columns();
    columns.push(column("new_col", "float", "[\"exposure_efd\"]", false));
    let schema = EfdSchema::new(&config_of(&columns), Instrument::Latiss).unwrap();
    let mut db = ConsDb::connect(schema, &[url], None).await.unwrap();
    let plan = db.plan_migration().await.unwrap();
    assert_eq!(
        plan.missing,
        [Missing::Column {
            table: "efd_latiss.exposure_efd".into(),
            column: "new_col".into(),
            sql_type: SqlType::DoublePrecision,
        }]
    );
    assert_eq!(
        plan.extra,
        [Extra::Column {
            table: "efd_latiss.exposure_efd".into(),
            column: "legacy".into(),
            sql_type: "TEXT".into(),
        }]
    );
    db.migrate(MigrateMode::Apply).await.unwrap();
    let rows = db
        .select_rows(Table::ExposureEfd, &[key(1).id])
        .await
        .unwrap();
    assert_eq!(rows[0]["temp_mean"], Value::Float(2.5));
    assert_eq!(rows[0]["new_col"], Value::Null);
    assert!(db.missing().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_in_memory_has_its_schema_attached() {
    let url = db_connect::DbUrl::parse("sqlite://").unwrap();
    let mut db = ConsDb::connect(small_schema(), &[url], None).await.unwrap();
    assert_eq!(db.missing().await.unwrap().len(), 4, "tables only");
    db.migrate(MigrateMode::Apply).await.unwrap();
    assert!(db.missing().await.unwrap().is_empty());
    // A permanent failure keeps the connection, and with it the in-memory database.
    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean"]);
    batch.push(key(1), vec![Some(1.0)]);
    db.upsert_wide(&batch, NOW).await.unwrap();
    let mut clash = WideBatch::new(Table::ExposureEfd, ["temp_mean"]);
    clash.push(
        ItemKey {
            seq_num: 2,
            ..key(1)
        },
        vec![Some(2.0)],
    );
    let err = db.upsert_wide(&clash, NOW).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        err.to_string().contains("UNIQUE constraint failed"),
        "{err}"
    );
    assert!(db.missing().await.unwrap().is_empty());
    let rows = db
        .select_rows(Table::ExposureEfd, &[key(1).id])
        .await
        .unwrap();
    assert_eq!(rows[0]["temp_mean"], Value::Float(1.0));
}
