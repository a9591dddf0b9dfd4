//! Integration tests for [`test_support::S3Server`]: an in-process `s3s-fs` server per test.
//!
//! Signed requests are exercised by butler-reader's S3 client tests; here plain HTTP shows that
//! objects are served, that unsigned requests are refused when authentication is on, and that
//! dropping the handle stops the server.

use test_support::{S3Server, http_request};

#[test]
fn public_server_serves_objects() {
    let s3 = S3Server::start_public();
    assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port()));
    s3.create_bucket("repo");
    s3.put("repo", "main/butler.yaml", b"registry: {}\n");
    s3.put("repo", "main/butler.yaml", b"registry: {db: x}\n");
    assert!(s3.root().join("repo/main/butler.yaml").is_file());

    let url = format!("{}/repo/main/butler.yaml", s3.endpoint());
    let response = http_request("GET", &url, &[], b"").unwrap();
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "registry: {db: x}\n")
    );

    let missing = http_request("GET", &format!("{}/repo/nope", s3.endpoint()), &[], b"").unwrap();
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.body.contains("NoSuchKey"), "{}", missing.body);
}

#[test]
fn authenticated_server_refuses_unsigned_requests() {
    let s3 = S3Server::start("AKID", "secret");
    s3.create_bucket("repo");
    s3.put("repo", "butler.yaml", b"x");
    let url = format!("{}/repo/butler.yaml", s3.endpoint());
    let response = http_request("GET", &url, &[], b"").unwrap();
    assert_eq!(response.status, 403, "{}", response.body);
    assert!(response.body.contains("AccessDenied"), "{}", response.body);
}

#[test]
fn drop_stops_the_server() {
    let s3 = S3Server::start_public();
    let endpoint = s3.endpoint();
    drop(s3);
    assert!(http_request("GET", &format!("{endpoint}/x/y"), &[], b"").is_err());
}

#[test]
#[should_panic(expected = "call create_bucket first")]
fn put_needs_a_bucket() {
    S3Server::start_public().put("nope", "k", b"x");
}

#[test]
#[should_panic(expected = "must be a relative path")]
fn put_refuses_escaping_keys() {
    let s3 = S3Server::start_public();
    s3.create_bucket("b");
    s3.put("b", "../outside", b"x");
}
