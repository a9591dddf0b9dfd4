//! The fixture every test runs on, once per backend: a fresh PostgreSQL server or a temp dir of
//! SQLite files, a manual clock, and raw SQL access that bypasses the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use db_connect::DbUrl;
use diesel::connection::SimpleConnection as _;
use diesel::sql_types::Text;
use diesel::{Connection as _, QueryableByName, RunQueryDsl as _, SqliteConnection};
use scheduler_store::{
    Clock as _, ManualClock, SchedulerStore, SchedulerTable, StoreOptions, TaskSpec, TaskStatus,
    sqlite_schema_file,
};
use tempfile::TempDir;
use test_support::Postgres;
use transform_core::UtcNanos;

/// 2025-06-01T00:00:00Z, where every clock starts.
pub(crate) const T0: UtcNanos = UtcNanos(1_748_736_000_000_000_000);
pub(crate) const MINUTE: i64 = 60_000_000_000;
pub(crate) const REPO: &str = "s3://rubin-summit-users/butler.yaml";

/// `T0 + minutes`.
pub(crate) fn at(minutes: i64) -> UtcNanos {
    T0.offset(minutes * MINUTE)
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Tasks for `REPO` of `minutes` each.
pub(crate) fn spec(minutes: i64, status: TaskStatus) -> TaskSpec {
    TaskSpec {
        butler_repo: REPO.to_owned(),
        interval_minutes: minutes,
        timewindow: 1,
        status,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Postgres,
    Sqlite,
}

/// One backend with a manual clock; databases are created on demand.
pub(crate) struct Fixture {
    pub(crate) kind: Kind,
    pub(crate) pg: Option<Postgres>,
    pub(crate) dir: TempDir,
    pub(crate) clock: Arc<ManualClock>,
    next: AtomicUsize,
}

impl Fixture {
    pub(crate) fn new(kind: Kind) -> Fixture {
        Fixture {
            kind,
            pg: (kind == Kind::Postgres).then(Postgres::start),
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(T0)),
            next: AtomicUsize::new(0),
        }
    }

    /// A new, empty database.
    pub(crate) fn database(&self) -> DbUrl {
        let name = format!("db{}", self.next.fetch_add(1, Ordering::SeqCst));
        match &self.pg {
            Some(pg) => {
                pg.create_database(&name);
                DbUrl::parse(&pg.url(&name)).unwrap()
            }
            None => DbUrl::Sqlite(Some(self.dir.path().join(format!("{name}.db")))),
        }
    }

    pub(crate) fn clock_now(&self) -> UtcNanos {
        self.clock.now()
    }

    pub(crate) fn options(&self) -> StoreOptions {
        StoreOptions::new(SchedulerTable::new("efd_scheduler", "latiss").unwrap())
            .with_clock(self.clock.clone())
    }

    pub(crate) async fn store(&self, url: &DbUrl) -> SchedulerStore {
        SchedulerStore::open(std::slice::from_ref(url), self.options())
            .await
            .unwrap()
    }

    /// A fresh database and a store on it.
    pub(crate) async fn fresh(&self) -> (DbUrl, SchedulerStore) {
        let url = self.database();
        let store = self.store(&url).await;
        (url, store)
    }

    /// Runs statements outside the store (`efd_scheduler.latiss` works on both backends).
    pub(crate) fn exec(&self, url: &DbUrl, sql: &str) {
        match url {
            DbUrl::Postgres(target) => {
                self.pg
                    .as_ref()
                    .unwrap()
                    .psql(target.database.as_deref().unwrap(), sql);
            }
            DbUrl::Sqlite(Some(path)) => {
                sqlite_raw(path).batch_execute(sql).unwrap();
            }
            DbUrl::Sqlite(None) => unreachable!("tests use files"),
        }
    }

    /// Rows of a query whose one column is `line`.
    pub(crate) fn lines(&self, url: &DbUrl, sql: &str) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Line {
            #[diesel(sql_type = Text)]
            line: String,
        }
        match url {
            DbUrl::Postgres(target) => self
                .pg
                .as_ref()
                .unwrap()
                .psql(target.database.as_deref().unwrap(), sql)
                .lines()
                .map(str::to_owned)
                .collect(),
            DbUrl::Sqlite(Some(path)) => diesel::sql_query(sql)
                .load::<Line>(&mut sqlite_raw(path))
                .unwrap()
                .into_iter()
                .map(|l| l.line)
                .collect(),
            DbUrl::Sqlite(None) => unreachable!("tests use files"),
        }
    }
}

/// A plain diesel connection to an SQLite main file with the scheduler file attached.
fn sqlite_raw(main: &std::path::Path) -> SqliteConnection {
    let mut conn = SqliteConnection::establish(main.to_str().unwrap()).unwrap();
    let schema_file = sqlite_schema_file(Some(main), "efd_scheduler");
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = 10000; ATTACH DATABASE '{}' AS efd_scheduler",
        schema_file.display()
    ))
    .unwrap();
    conn
}

/// Runs `check` once on PostgreSQL and once on SQLite, as two tests.
macro_rules! both_backends {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let fixture = crate::common::Fixture::new(crate::common::Kind::Postgres);
                super::$check(&fixture).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let fixture = crate::common::Fixture::new(crate::common::Kind::Sqlite);
                super::$check(&fixture).await;
            }
        }
    )*};
}
pub(crate) use both_backends;
