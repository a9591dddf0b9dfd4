//! Connections to a real PostgreSQL: passwords from the target, wrong passwords as permanent errors
//! that do not quote them, read-only sessions, UTC sessions, and a stopped server as transient.

use db_connect::{DbUrl, PgTarget, connect_postgres};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl as _;
use test_support::Postgres;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The error of a connection attempt that must fail (connections have no `Debug`).
fn must_fail<T>(result: Result<T, db_connect::DbError>) -> db_connect::DbError {
    match result {
        Ok(_) => panic!("the connection must fail"),
        Err(e) => e,
    }
}

fn target(pg: &Postgres, user: &str, password: &str) -> PgTarget {
    let url = format!(
        "postgresql://{user}:{password}@127.0.0.1:{}/postgres?sslmode=prefer",
        pg.port()
    );
    match DbUrl::parse(&url).unwrap() {
        DbUrl::Postgres(t) => t,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connects_with_a_password_read_only_and_in_utc() {
    const PASSWORD: &str = "pw-Qz8!x";
    let pg = Postgres::start();
    pg.psql("postgres", "CREATE TABLE t (x int)");
    pg.create_role("reader", PASSWORD, false);
    pg.psql("postgres", "GRANT ALL ON t TO reader");
    pg.psql(
        "postgres",
        "ALTER DATABASE postgres SET TIME ZONE 'America/Santiago'",
    );
    let mut conn = connect_postgres(&target(&pg, "reader", PASSWORD), true)
        .await
        .unwrap();
    let tz: Setting = diesel::sql_query("SELECT current_setting('TimeZone') AS value")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(tz.value, "UTC");
    let err = diesel::sql_query("INSERT INTO t VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let mut rw = connect_postgres(&target(&pg, "reader", PASSWORD), false)
        .await
        .unwrap();
    diesel::sql_query("INSERT INTO t VALUES (1)")
        .execute(&mut rw)
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_passwords_are_permanent_and_never_quoted() {
    let pg = Postgres::start();
    pg.create_role("reader", "right-pw-1", false);
    // The harness trusts local connections; require passwords for this role over TCP.
    pg.require_password_auth();
    let err = must_fail(connect_postgres(&target(&pg, "reader", "Wrong-Pw-Zz9"), false).await);
    assert!(!err.is_transient(), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("Wrong-Pw-Zz9"), "{shown}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    connect_postgres(&target(&pg, "reader", "right-pw-1"), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stopped_server_is_transient() {
    let mut pg = Postgres::start();
    let t = target(&pg, "postgres", "x");
    pg.stop();
    let err = must_fail(connect_postgres(&t, false).await);
    assert!(err.is_transient(), "{err:?}");
}

#[derive(QueryableByName)]
struct Encrypted {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

#[tokio::test]
async fn tls_by_sslmode() {
    let pg = Postgres::start();
    pg.enable_tls();
    let with = |mode: &str| {
        let url = format!(
            "postgresql://postgres@localhost:{}/postgres?sslmode={mode}",
            pg.port()
        );
        match DbUrl::parse(&url).unwrap() {
            DbUrl::Postgres(t) => t,
            other => panic!("{other:?}"),
        }
    };
    for (mode, encrypted) in [("require", true), ("prefer", true), ("disable", false)] {
        let mut conn = connect_postgres(&with(mode), false).await.unwrap();
        let row: Encrypted =
            diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .get_result(&mut conn)
                .await
                .unwrap();
        assert_eq!(row.ssl, encrypted, "sslmode={mode}");
    }
    // A self-signed certificate fails verification: permanent, and said so.
    let err = must_fail(connect_postgres(&with("verify-full"), false).await);
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}
