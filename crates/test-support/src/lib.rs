//! Test harness: starts real servers (InfluxDB 1.x, PostgreSQL, S3) on loopback for integration
//! tests.
//!
//! Everything here is blocking (std only) and fails loudly: a missing binary, a server that does
//! not come up or a request that fails panics with a message saying what went wrong and how to fix
//! it, including the tail of the server's log. Each server lives in its own temporary directory on
//! its own free loopback ports, so tests running in parallel (even in separate processes, as
//! `cargo nextest` runs them) do not collide. Dropping a server handle kills the server and
//! removes its directory.
//!
//! [`SlowProxy`] sits in front of a server and holds back its responses, to catch a client in the
//! middle of a slow request.
//!
//! [`report`] records what the fault-injection and fuzzing tests injected and found, for
//! `docs/reliability.md`.
//!
//! [`butler`] makes Butler registries with the real `lsst-daf-butler` (in `<repo>/.venv`) and
//! returns what daf_butler itself answers for them.
//!
//! ```no_run
//! let influx = test_support::Influxd::start();
//! influx.create_database("efd");
//! influx.write("efd", "m,t=a v=1 1000000000\n");
//! assert!(influx.query("efd", "SELECT v FROM m").contains("1000000000"));
//!
//! let pg = test_support::Postgres::start();
//! pg.create_database("consdb");
//! assert_eq!(pg.psql("consdb", "SELECT 40 + 2").trim(), "42");
//! ```

pub mod butler;
pub mod cli_cases;
mod http;
mod influxd;
mod logs;
mod postgres;
mod process;
mod proxy;
pub mod report;
mod rng;
mod s3;
pub mod secrets;

pub use http::{HttpResponse, http_request};
pub use influxd::{Influxd, SERVER_GOMAXPROCS};
pub use logs::{CapturedLogs, LogGuard, capture_logs};
pub use postgres::Postgres;
pub use process::service_command;
pub use proxy::SlowProxy;
pub use rng::Rng;
pub use s3::S3Server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0` and releasing it, so another process may grab it
/// before the caller binds it; the servers in this crate retry with fresh ports when that happens.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// Returns `N` distinct TCP ports on 127.0.0.1 that were free a moment ago (see [`free_port`]).
pub fn free_ports<const N: usize>() -> [u16; N] {
    // Hold every listener until all ports are chosen, so the kernel cannot hand out one twice.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| {
                panic!("test-support: cannot bind a free port on 127.0.0.1: {e} (is loopback up?)")
            })
        })
        .collect();
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test-support: cannot read a bound port: {e}"))
            .port();
    }
    ports
}

/// Finds the executable `name` and returns its path, or panics with "`name` not found: install it
/// with `install_hint`".
///
/// `name` may be a path (anything containing `/`), which must exist, or a bare name, looked up in
/// `PATH`.
pub fn require_tool(name: &str, install_hint: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("test-support: {name} not found: install it with `{install_hint}`")
    })
}

/// Like [`require_tool`], but returns `None` instead of panicking.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = Path::new(name);
        return is_executable(path).then(|| path.to_path_buf());
    }
    let paths = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
