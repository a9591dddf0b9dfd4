//! Integration tests for [`test_support::Influxd`]: a real `influxd` per test.

use test_support::{Influxd, http_request};

const THREE_POINTS: &str = "\
m,topic=a value=1.5 1000000000
m,topic=a value=2.5 2000000000
m,topic=b value=3.5 3000000000
";

#[test]
fn writes_and_queries_three_points() {
    let influx = Influxd::start();
    assert_eq!(influx.url(), format!("http://127.0.0.1:{}", influx.port()));
    influx.create_database("efd");
    influx.write("efd", THREE_POINTS);

    let json = influx.query("efd", "SELECT value FROM m");
    for expected in ["[1000000000,1.5]", "[2000000000,2.5]", "[3000000000,3.5]"] {
        assert!(json.contains(expected), "{expected} missing from {json}");
    }
    let grouped = influx.query("efd", "SELECT count(value) FROM m GROUP BY topic");
    assert!(grouped.contains(r#""topic":"a""#), "{grouped}");
    assert!(grouped.contains(r#""topic":"b""#), "{grouped}");
}

#[test]
fn ping_answers_204() {
    let influx = Influxd::start();
    let response = http_request("GET", &format!("{}/ping", influx.url()), &[], &[]).unwrap();
    assert_eq!(response.status, 204);
    assert!(response.header("X-Influxdb-Version").is_some());
}

#[test]
fn auth_refuses_anonymous_queries_and_accepts_users() {
    let influx = Influxd::start_with_auth("admin", "s3cret'\"pw");
    assert_eq!(influx.admin_credentials(), Some(("admin", "s3cret'\"pw")));
    influx.create_database("efd");
    influx.write("efd", THREE_POINTS);

    let anonymous = influx.query_with("efd", "SELECT value FROM m", None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let wrong = influx.query_with("efd", "SELECT value FROM m", Some(("admin", "nope")));
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    let admin = influx.query("efd", "SELECT value FROM m");
    assert!(admin.contains("[3000000000,3.5]"), "{admin}");

    influx.create_user("reader", "pw", Some("efd"));
    let reader = influx.query_with("efd", "SELECT value FROM m", Some(("reader", "pw")));
    assert_eq!(reader.status, 200, "{}", reader.body);
    assert!(reader.body.contains("[1000000000,1.5]"), "{}", reader.body);

    // A reader may not write.
    let write = http_request(
        "POST",
        &format!("{}/write?db=efd&u=reader&p=pw", influx.url()),
        &[],
        b"m value=9 4000000000\n",
    )
    .unwrap();
    assert_eq!(write.status, 403, "{}", write.body);
}

#[test]
fn restart_keeps_data_after_stop_and_kill() {
    let mut influx = Influxd::start();
    let port = influx.port();
    influx.create_database("efd");
    influx.write("efd", THREE_POINTS);

    influx.restart();
    assert_eq!(influx.port(), port);
    let json = influx.query("efd", "SELECT count(value) FROM m");
    assert!(json.contains("[0,3]"), "{json}");

    influx.write("efd", "m,topic=c value=4.5 4000000000\n");
    influx.kill();
    assert!(http_request("GET", &format!("{}/ping", influx.url()), &[], &[]).is_err());
    influx.restart();
    let json = influx.query("efd", "SELECT count(value) FROM m");
    assert!(json.contains("[0,4]"), "{json}");
}

#[test]
fn large_writes_are_batched() {
    let influx = Influxd::start();
    influx.create_database("efd");
    let lines: String = (0..12_345)
        .map(|i| format!("big,topic=t{} value={i} {}\n", i % 7, 1_000_000_000 + i))
        .collect();
    influx.write("efd", &lines);
    let json = influx.query("efd", "SELECT count(value) FROM big");
    assert!(json.contains("[0,12345]"), "{json}");
}

#[test]
#[should_panic(expected = "database not found")]
fn write_to_a_missing_database_panics_with_the_reason() {
    let influx = Influxd::start();
    influx.write("nope", THREE_POINTS);
}

#[test]
#[should_panic(expected = "influxd query")]
fn bad_query_panics() {
    let influx = Influxd::start();
    influx.query("efd", "SELECT FROM WHERE");
}

#[test]
fn two_servers_do_not_collide() {
    let a = Influxd::start();
    let b = Influxd::start();
    assert_ne!(a.port(), b.port());
    a.create_database("efd");
    a.write("efd", THREE_POINTS);
    b.create_database("efd");
    let json = b.query("efd", "SELECT * FROM m");
    assert!(!json.contains("3000000000"), "{json}");
}
