//! A primary and replicas on real PostgreSQL servers: a replica that is down is counted and logged
//! by host without stopping the others or the write; a primary that is down fails the write, which
//! succeeds again once it is back. No password ever shows.

mod common;

use std::sync::{Arc, Mutex};

use common::{NOW, pg_url, small_schema};
use consdb_writer::{ConsDb, ItemKey, MigrateMode, UnpivotedBatch, WideBatch};
use db_connect::DbUrl;
use test_support::Postgres;
use transform_core::Table;

const PASSWORD: &str = "Sup3r-Secret-pw";

/// Everything logged on this thread while the guard lives.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

fn key(seq_num: i32) -> ItemKey {
    ItemKey {
        day_obs: 20240601,
        seq_num,
        id: 2_024_060_100_000 + i64::from(seq_num),
    }
}

#[tokio::test]
async fn a_replica_down_is_counted_and_the_others_are_written() {
    let pg = Postgres::start();
    pg.create_database("primary_db");
    pg.create_database("replica_db");
    let dead_port = test_support::free_port();
    let dead = DbUrl::parse(&format!(
        "postgresql+psycopg2://writer:{PASSWORD}@127.0.0.1:{dead_port}/consdb?sslmode=disable"
    ))
    .unwrap();
    let urls = [pg_url(&pg, "primary_db"), dead, pg_url(&pg, "replica_db")];
    let (logs, _guard) = capture_logs();
    let mut db = ConsDb::connect(small_schema(), &urls, None).await.unwrap();
    let dead_host = format!("127.0.0.1:{dead_port}");
    assert_eq!(db.databases()[1], dead_host);

    let report = db.migrate(MigrateMode::Apply).await.unwrap();
    assert_eq!(report.replicas.len(), 1);
    assert_eq!(report.replica_failures.len(), 1);
    assert_eq!(report.replica_failures[0].replica, dead_host);

    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean", "count_int"]);
    batch.push(key(1), vec![Some(1.5), Some(3.0)]);
    batch.push(key(2), vec![None, Some(4.0)]);
    let outcome = db.upsert_wide(&batch, NOW).await.unwrap();
    assert_eq!(outcome.rows, 2);
    assert_eq!(outcome.replica_failure_count(), 1);
    let failure = &outcome.replica_failures[0];
    assert_eq!(failure.replica, dead_host);
    assert!(failure.transient, "{failure:?}");
    assert!(!failure.error.contains(PASSWORD), "{}", failure.error);

    let mut unpivoted = UnpivotedBatch::new(Table::VisitEfdUnpivoted);
    unpivoted.push(key(1), "forces_mean", "f0", Some(2.0));
    let outcome = db.upsert_unpivoted(&unpivoted, NOW).await.unwrap();
    assert_eq!((outcome.rows, outcome.replica_failure_count()), (1, 1));

    // Primary and live replica hold the same rows.
    let ids = [key(1).id, key(2).id];
    let primary = db.select_rows(Table::ExposureEfd, &ids).await.unwrap();
    let replica = db
        .select_rows_from(2, Table::ExposureEfd, &ids)
        .await
        .unwrap();
    assert_eq!(primary.len(), 2);
    assert_eq!(primary, replica);
    assert_eq!(
        pg.psql(
            "replica_db",
            "SELECT count(*) FROM efd_latiss.visit1_efd_unpivoted"
        )
        .trim(),
        "1"
    );

    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("Replica write failed."), "{logged}");
    assert!(logged.contains(&format!("replica={dead_host}")), "{logged}");
    assert!(!logged.contains(PASSWORD), "{logged}");
}

#[tokio::test]
async fn a_primary_down_fails_the_write_until_it_is_back() {
    let mut pg = Postgres::start();
    pg.create_database("consdb");
    let url = DbUrl::parse(&format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/consdb",
        pg.port()
    ))
    .unwrap();
    let mut db = ConsDb::connect(small_schema(), &[url], None).await.unwrap();
    db.migrate(MigrateMode::Apply).await.unwrap();
    let mut batch = WideBatch::new(Table::ExposureEfd, ["temp_mean"]);
    batch.push(key(1), vec![Some(1.0)]);
    db.upsert_wide(&batch, NOW).await.unwrap();

    pg.stop();
    let err = db.upsert_wide(&batch, NOW).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("127.0.0.1"), "{shown}");

    pg.restart();
    // The failed connection was dropped; the next write reconnects.
    let outcome = db.upsert_wide(&batch, NOW).await.unwrap();
    assert_eq!(outcome.rows, 1);
}

#[tokio::test]
async fn no_urls_is_an_error() {
    let err = ConsDb::connect(small_schema(), &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no ConsDB URL given");
}
