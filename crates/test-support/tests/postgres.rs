//! Integration tests for [`test_support::Postgres`]: a real PostgreSQL cluster per test.

use test_support::Postgres;

#[test]
fn creates_inserts_and_selects() {
    let pg = Postgres::start();
    assert_eq!(
        pg.url("consdb"),
        format!("postgresql://postgres@127.0.0.1:{}/consdb", pg.port())
    );
    pg.create_database("consdb");
    pg.psql(
        "consdb",
        "CREATE TABLE t (id int PRIMARY KEY, name text); \
         INSERT INTO t VALUES (1, 'one'), (2, 'two|x');",
    );
    assert_eq!(
        pg.psql("consdb", "SELECT id, name FROM t ORDER BY id"),
        "1|one\n2|two|x\n"
    );
    assert_eq!(pg.psql("postgres", "SHOW server_encoding").trim(), "UTF8");
    assert_eq!(pg.psql("postgres", "SHOW fsync").trim(), "off");
}

#[test]
fn roles_and_passwords() {
    let pg = Postgres::start();
    pg.create_role("writer", "pw'1", false);
    pg.create_role("boss", "pw2", true);
    pg.set_password("writer", "pw'3");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles \
             WHERE rolname IN ('writer', 'boss') ORDER BY rolname"
        ),
        "boss|t|t\nwriter|f|t\n"
    );
}

#[test]
fn restart_keeps_data() {
    let mut pg = Postgres::start();
    let port = pg.port();
    pg.psql(
        "postgres",
        "CREATE TABLE t (v int); INSERT INTO t VALUES (7)",
    );
    pg.restart();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("postgres", "SELECT sum(v) FROM t").trim(), "7");
    pg.stop();
    pg.restart();
    assert_eq!(pg.psql("postgres", "SELECT sum(v) FROM t").trim(), "7");
}

#[test]
fn kill_then_restart_recovers() {
    let mut pg = Postgres::start();
    pg.psql(
        "postgres",
        "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2)",
    );
    pg.kill();
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_err());
    pg.restart();
    assert_eq!(pg.psql("postgres", "SELECT sum(v) FROM t").trim(), "3");
    pg.psql("postgres", "INSERT INTO t VALUES (4)");
    pg.kill();
    pg.restart();
    assert_eq!(pg.psql("postgres", "SELECT sum(v) FROM t").trim(), "7");
}

#[test]
#[should_panic(expected = "relation \"missing\" does not exist")]
fn failing_sql_panics_with_stderr() {
    let pg = Postgres::start();
    pg.psql("postgres", "SELECT * FROM missing");
}

#[test]
fn two_servers_do_not_collide() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.port(), b.port());
    a.psql("postgres", "CREATE TABLE only_in_a (v int)");
    assert_eq!(
        b.psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        )
        .trim(),
        "0"
    );
}
