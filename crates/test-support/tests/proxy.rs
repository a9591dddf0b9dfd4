//! Integration tests for [`test_support::SlowProxy`] in front of a real `influxd`: responses arrive
//! intact, each one (also on a kept-alive connection) is held until the delay passes or is lifted,
//! and truncated ones stop after the bytes allowed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use test_support::{Influxd, SlowProxy, http_request};

const LONG: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

fn proxy_for(influx: &Influxd, delay: Duration) -> SlowProxy {
    SlowProxy::start(([127, 0, 0, 1], influx.port()).into(), delay)
}

#[test]
fn a_held_response_arrives_intact_once_the_delay_is_lifted() {
    let influx = Influxd::start();
    influx.create_database("efd");
    influx.write("efd", "m value=1.5 1000000000\nm value=2.5 2000000000\n");
    let proxy = proxy_for(&influx, LONG);
    assert_eq!(proxy.delay(), LONG);
    assert_eq!(proxy.upstream().port(), influx.port());
    let url = format!(
        "{}/query?db=efd&epoch=ns&q=SELECT%20value%20FROM%20m",
        proxy.url()
    );
    let client = std::thread::spawn(move || http_request("GET", &url, &[], &[]));
    assert!(proxy.wait_until_held(WAIT), "the response was never held");
    // While held, the client cannot have its answer.
    assert!(!client.is_finished());
    assert_eq!((proxy.requests(), proxy.responses()), (1, 0));
    proxy.set_delay(Duration::ZERO);
    let response = client.join().unwrap().unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let direct = influx.query("efd", "SELECT value FROM m");
    assert_eq!(response.body.trim(), direct.trim());
    assert_eq!(proxy.held(), 0);
    assert_eq!(proxy.responses(), 1);
    assert_eq!(proxy.connections(), 1);
}

/// Reads one response without a body (`/ping` answers 204) from a kept-alive connection.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).unwrap();
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn every_response_of_a_kept_alive_connection_is_held() {
    let influx = Influxd::start();
    let proxy = proxy_for(&influx, Duration::ZERO);
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let ping = b"GET /ping HTTP/1.1\r\nHost: influx\r\n\r\n";
    stream.write_all(ping).unwrap();
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 204"));

    proxy.set_delay(LONG);
    stream.write_all(ping).unwrap();
    assert!(
        proxy.wait_until_held(WAIT),
        "the second response was never held"
    );
    assert_eq!((proxy.requests(), proxy.responses()), (2, 1));
    proxy.set_delay(Duration::ZERO);
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 204"));
    assert_eq!(proxy.responses(), 2);
    assert_eq!(proxy.connections(), 1);
}

#[test]
fn dropping_the_proxy_closes_its_connections() {
    let influx = Influxd::start();
    let proxy = proxy_for(&influx, LONG);
    let url = format!("{}/ping", proxy.url());
    let client = std::thread::spawn(move || http_request("GET", &url, &[], &[]));
    assert!(proxy.wait_until_held(WAIT));
    drop(proxy);
    // The held response is dropped with the proxy: the client sees the connection end, not a 204.
    let outcome = client.join().unwrap();
    assert!(
        outcome.as_ref().map_or(true, |r| r.status != 204),
        "{outcome:?}"
    );
}

#[test]
fn truncated_responses_stop_after_the_bytes_allowed_and_whole_ones_return() {
    let influx = Influxd::start();
    let proxy = proxy_for(&influx, Duration::ZERO);
    proxy.set_truncate(Some(20));
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: influx\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 20, "{:?}", String::from_utf8_lossy(&got));
    assert!(got.starts_with(b"HTTP/1.1 204"));

    proxy.set_truncate(None);
    let response = http_request("GET", &format!("{}/ping", proxy.url()), &[], &[]).unwrap();
    assert_eq!(response.status, 204);
}
