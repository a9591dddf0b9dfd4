//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, enough to talk to test servers.
//!
//! One request per connection (`Connection: close`), plain `http://` only, fixed-length or chunked
//! responses.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Timeout for connecting to a test server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout for each read or write on the socket (large writes to a slow server take a while).
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The response headers, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunked encoding if needed, converted to text (lossily).
    pub body: String,
}

impl HttpResponse {
    /// The value of the first header called `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP request to `url` (`http://host:port/path?query`) and reads the whole response.
///
/// `headers` are sent as given; `Host`, `Content-Length` and `Connection: close` are added. Returns
/// an error only for transport failures (connection refused, timeout, malformed response); any
/// status code, including 4xx and 5xx, is an `Ok` response.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let (authority, path) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{authority} resolves to no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = stream.set_nodelay(true);

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(
        head,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A server may answer (e.g. 401, 403) and close without reading the whole body, and the
    // kernel may then reset the connection: keep whatever response arrived before the error.
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush());
    let mut raw = Vec::new();
    let received = stream.read_to_end(&mut raw);
    match parse_response(&raw) {
        Ok(response) if sent.is_ok() && received.is_ok() => Ok(response),
        Ok(response) if complete(&response) => Ok(response),
        parsed => {
            sent?;
            received?;
            parsed
        }
    }
}

/// Whether `response` was known to be complete when it was parsed: its length was announced
/// (fixed or chunked; a truncated body fails to parse) or it has no body (204).
fn complete(response: &HttpResponse) -> bool {
    response.status == 204
        || response.header("content-length").is_some()
        || response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
}

/// Splits `http://host:port/path` into `("host:port", "/path")`.
fn split_url(url: &str) -> io::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only http:// URLs are supported, got {url:?}")))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

fn parse_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let head_end = find(raw, b"\r\n\r\n")
        .ok_or_else(|| invalid("response ended before the end of its headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("malformed status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut response = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    let rest = &raw[head_end + 4..];
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = response
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        rest.get(..len)
            .ok_or_else(|| invalid(format!("body shorter than Content-Length {len}")))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    response.body = String::from_utf8_lossy(&body).into_owned();
    Ok(response)
}

fn decode_chunked(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end =
            find(rest, b"\r\n").ok_or_else(|| invalid("truncated chunk size line".into()))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("malformed chunk size {size_text:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| invalid("truncated chunk".into()))?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Percent-encodes `value` for a query string or an `application/x-www-form-urlencoded` body.
pub(crate) fn percent_encode(value: &str) -> String {
    percent_encode_keeping(value, b"-_.~", true)
}

/// Percent-encodes every byte of `value` but ASCII letters, digits and `keep`, with upper- or
/// lower-case hex digits.
pub(crate) fn percent_encode_keeping(value: &str, keep: &[u8], upper: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || keep.contains(&byte) {
            out.push(char::from(byte));
        } else if upper {
            let _ = write!(out, "%{byte:02X}");
        } else {
            let _ = write!(out, "%{byte:02x}");
        }
    }
    out
}

/// Encodes `user:password` as the value of an `Authorization: Basic` header.
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("{user}:{password}").as_bytes(), false)
    )
}

/// Standard base64 (RFC 4648 §4) with padding; with `url_safe`, the `-_` alphabet (§5).
pub(crate) fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(basic_auth("", ""), "Basic Og==");
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
        assert_eq!(basic_auth("ad", "min"), "Basic YWQ6bWlu");
        assert_eq!(basic_auth("admin", "secret"), "Basic YWRtaW46c2VjcmV0");
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(percent_encode("a b&c=d\"é~"), "a%20b%26c%3Dd%22%C3%A9~");
    }

    #[test]
    fn parses_fixed_and_chunked_bodies() {
        let fixed = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!((fixed.status, fixed.body.as_str()), (200, "abc"));
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, "abcde");
        assert_eq!(chunked.header("Transfer-Encoding"), Some("chunked"));
        let empty = parse_response(b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n").unwrap();
        assert_eq!((empty.status, empty.body.as_str()), (204, ""));
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:1/a?b=c").unwrap(),
            ("127.0.0.1:1", "/a?b=c")
        );
        assert_eq!(split_url("http://h:2").unwrap(), ("h:2", "/"));
        assert!(split_url("https://h").is_err());
    }
}
