//! A throwaway InfluxDB 1.x server (`influxd`) on loopback, with a private config and data directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http::{HttpResponse, basic_auth, http_request, percent_encode};
use crate::process::{
    START_TIMEOUT, STOP_TIMEOUT, log_since, log_tail, open_log, shut_down, wait_timeout,
};

/// Where Debian's `influxdb` package installs the server.
const INFLUXD_PATHS: [&str; 2] = ["/usr/bin/influxd", "influxd"];
const INSTALL_HINT: &str = "apt-get install -y influxdb";
/// At most this many lines go into one `/write` request.
const WRITE_BATCH_LINES: usize = 5_000;
/// At most about this many bytes go into one `/write` request (influxd's default limit is 25 MB).
const WRITE_BATCH_BYTES: usize = 4 << 20;
/// How many times `start` picks fresh ports when another process grabbed one first.
const PORT_ATTEMPTS: usize = 5;

/// `GOMAXPROCS` of every influxd the harness starts.
pub const SERVER_GOMAXPROCS: usize = 8;

/// A running InfluxDB 1.x server for one test, listening on 127.0.0.1 only.
///
/// Start it with [`Influxd::start`] or [`Influxd::start_with_auth`]. Its config, data, WAL and log
/// (`influxd.log`) live in a private temporary directory. Dropping the handle kills the server and
/// removes the directory. Every helper panics with the status, body and log tail on failure.
#[derive(Debug)]
pub struct Influxd {
    dir: TempDir,
    binary: PathBuf,
    http_port: u16,
    rpc_port: u16,
    admin: Option<(String, String)>,
    child: Option<Child>,
    /// Offset in the log file where the current run's output starts.
    log_offset: u64,
}

/// Why one attempt to start the server failed.
enum StartError {
    /// The server exited because one of its ports was taken: retry with other ports.
    PortTaken,
    /// Anything else: the message for the panic.
    Fatal(String),
}

impl Influxd {
    /// Starts a server with authentication disabled and waits until `GET /ping` answers.
    ///
    /// Panics if `influxd` is not installed or does not come up within 30 s.
    pub fn start() -> Influxd {
        Self::start_inner(None)
    }

    /// Starts a server with authentication enabled and creates the admin user `admin_user` with
    /// `admin_password` (all privileges). The helpers ([`Influxd::write`], [`Influxd::query`], ...)
    /// authenticate as that admin.
    pub fn start_with_auth(admin_user: &str, admin_password: &str) -> Influxd {
        let server = Self::start_inner(Some((admin_user.into(), admin_password.into())));
        // With no user yet, influxd accepts exactly this statement unauthenticated.
        let statement = format!(
            "CREATE USER {} WITH PASSWORD {} WITH ALL PRIVILEGES",
            quote_ident(admin_user),
            quote_string(admin_password)
        );
        let response = server.query_with("", &statement, None);
        server.check_query(&statement, &response);
        server
    }

    fn start_inner(admin: Option<(String, String)>) -> Influxd {
        let binary = INFLUXD_PATHS
            .iter()
            .find_map(|p| crate::find_tool(p))
            .unwrap_or_else(|| {
                panic!("test-support: influxd not found: install it with `{INSTALL_HINT}`")
            });
        let dir = tempfile::Builder::new()
            .prefix("test-support-influxd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("test-support: cannot create a temp dir for influxd: {e}"));
        let mut server = Influxd {
            dir,
            binary,
            http_port: 0,
            rpc_port: 0,
            admin,
            child: None,
            log_offset: 0,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            [server.http_port, server.rpc_port] = crate::free_ports();
            server.write_config();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::PortTaken) if attempt < PORT_ATTEMPTS => continue,
                Err(StartError::PortTaken) => panic!(
                    "test-support: influxd could not bind free ports {PORT_ATTEMPTS} times in a \
                     row\n{}",
                    server.log_tail()
                ),
                Err(StartError::Fatal(message)) => panic!("{message}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The base URL of the HTTP API, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The HTTP API port.
    pub fn port(&self) -> u16 {
        self.http_port
    }

    /// The admin user and password when started with [`Influxd::start_with_auth`].
    pub fn admin_credentials(&self) -> Option<(&str, &str)> {
        self.admin
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The server's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("influxd.log")
    }

    /// Creates database `db` (a no-op if it exists).
    pub fn create_database(&self, db: &str) {
        self.exec(&format!("CREATE DATABASE {}", quote_ident(db)));
    }

    /// Creates a (non-admin) user; with `read_database`, grants it `READ` on that database.
    pub fn create_user(&self, user: &str, password: &str, read_database: Option<&str>) {
        self.exec(&format!(
            "CREATE USER {} WITH PASSWORD {}",
            quote_ident(user),
            quote_string(password)
        ));
        if let Some(db) = read_database {
            self.exec(&format!(
                "GRANT READ ON {} TO {}",
                quote_ident(db),
                quote_ident(user)
            ));
        }
    }

    /// Writes line protocol (timestamps in nanoseconds) to database `db`.
    ///
    /// The lines are sent in batches of at most 5,000 lines / 4 MiB, so a seed of any size works.
    /// Panics with the status and body unless every batch answers 204.
    pub fn write(&self, db: &str, line_protocol: &str) {
        let path = format!("/write?db={}&precision=ns", percent_encode(db));
        let mut batch = String::new();
        let mut lines = 0;
        for line in line_protocol.lines().filter(|l| !l.trim().is_empty()) {
            batch.push_str(line);
            batch.push('\n');
            lines += 1;
            if lines >= WRITE_BATCH_LINES || batch.len() >= WRITE_BATCH_BYTES {
                self.write_batch(&path, &batch);
                batch.clear();
                lines = 0;
            }
        }
        if !batch.is_empty() {
            self.write_batch(&path, &batch);
        }
    }

    fn write_batch(&self, path: &str, batch: &str) {
        let response = self.request(path, "text/plain; charset=utf-8", batch.as_bytes());
        if response.status != 204 {
            let first = batch.lines().next().unwrap_or_default();
            panic!(
                "test-support: influxd refused a write to {path}: HTTP {}: {}\n(first line of the \
                 batch: {first:?})",
                response.status,
                response.body.trim()
            );
        }
    }

    /// Runs InfluxQL `q` against database `db` (`POST /query`, `epoch=ns`) as the admin, and returns
    /// the raw JSON.
    ///
    /// Panics unless the status is 200 and the JSON holds no `"error"`; use
    /// [`Influxd::query_with`] to see failures instead.
    pub fn query(&self, db: &str, q: &str) -> String {
        let response = self.query_with(db, q, self.admin_credentials());
        self.check_query(q, &response);
        response.body
    }

    /// Runs InfluxQL `q` against database `db` (empty: none) with the given credentials (`None`:
    /// unauthenticated), and returns the response whatever its status.
    pub fn query_with(&self, db: &str, q: &str, credentials: Option<(&str, &str)>) -> HttpResponse {
        let mut form = format!("q={}&epoch=ns", percent_encode(q));
        if !db.is_empty() {
            form.push_str("&db=");
            form.push_str(&percent_encode(db));
        }
        let auth = credentials.map(|(user, password)| basic_auth(user, password));
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let url = format!("{}/query", self.url());
        http_request("POST", &url, &headers, form.as_bytes()).unwrap_or_else(|e| {
            panic!(
                "test-support: influxd query {q:?} failed: {e}\n{}",
                self.log_tail()
            )
        })
    }

    /// Runs a statement that needs no database as the admin; panics on any error.
    fn exec(&self, statement: &str) {
        self.query("", statement);
    }

    fn check_query(&self, q: &str, response: &HttpResponse) {
        if response.status != 200 || response.body.contains("\"error\":") {
            panic!(
                "test-support: influxd query {q:?} failed: HTTP {}: {}",
                response.status,
                response.body.trim()
            );
        }
    }

    /// Sends one request with the admin credentials (if any); panics on transport errors.
    fn request(&self, path: &str, content_type: &str, body: &[u8]) -> HttpResponse {
        let auth = self
            .admin_credentials()
            .map(|(user, password)| basic_auth(user, password));
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let url = format!("{}{path}", self.url());
        http_request("POST", &url, &headers, body).unwrap_or_else(|e| {
            panic!(
                "test-support: request to influxd {url} failed: {e}\n{}",
                self.log_tail()
            )
        })
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            shut_down(&mut child, "TERM", STOP_TIMEOUT);
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            shut_down(&mut child, "KILL", STOP_TIMEOUT);
        }
    }

    /// Starts the server again on the same ports with the same data, stopping it first (SIGTERM)
    /// if it is running, and waits until it answers `/ping`.
    pub fn restart(&mut self) {
        self.stop();
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartError::PortTaken) => panic!(
                "test-support: influxd could not restart: port {} or {} is taken by another \
                 process\n{}",
                self.http_port,
                self.rpc_port,
                self.log_tail()
            ),
            Err(StartError::Fatal(message)) => panic!("{message}"),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("influxd.conf")
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        let path_of = |name: &str| quote_toml(&dir.join(name));
        let config = format!(
            "reporting-enabled = false\n\
             bind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = {meta}\n  logging-enabled = false\n\
             [data]\n  dir = {data}\n  wal-dir = {wal}\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http}\"\n  \
             auth-enabled = {auth}\n  log-enabled = false\n\
             [continuous_queries]\n  enabled = false\n",
            rpc = self.rpc_port,
            http = self.http_port,
            meta = path_of("meta"),
            data = path_of("data"),
            wal = path_of("wal"),
            auth = self.admin.is_some(),
        );
        std::fs::write(self.config_path(), config)
            .unwrap_or_else(|e| panic!("test-support: cannot write the influxd config: {e}"));
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_path = self.log_path();
        let (log, offset) = open_log(&log_path, &format!("influxd on port {}", self.http_port));
        self.log_offset = offset;
        let stdout = log
            .try_clone()
            .unwrap_or_else(|e| panic!("test-support: cannot duplicate the log handle: {e}"));
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .arg("-config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            // A fixed parallelism makes the server's query merge order the same on every machine
            // (the file source emulates it for up to this many series per bucket).
            .env("GOMAXPROCS", SERVER_GOMAXPROCS.to_string());
        // INFLUXDB_* variables override the config file; keep the test's environment out.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("INFLUXDB_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "test-support: cannot run {}: {e} (install it with `{INSTALL_HINT}`)",
                self.binary.display()
            )
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let ping = format!("{}/ping", self.url());
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = log_since(&log_path, offset);
                if log.contains("address already in use") {
                    return Err(StartError::PortTaken);
                }
                return Err(StartError::Fatal(format!(
                    "test-support: influxd exited during startup ({status})\n{}",
                    self.log_tail()
                )));
            }
            if http_request("GET", &ping, &[], &[]).is_ok_and(|r| r.status == 204) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = wait_timeout(&mut child, Duration::from_secs(5));
                return Err(StartError::Fatal(format!(
                    "test-support: influxd did not answer GET {ping} with 204 within {} s\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_path(), self.log_offset)
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_timeout(&mut child, Duration::from_secs(10));
        }
    }
}

/// Quotes an InfluxQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Quotes an InfluxQL string literal.
fn quote_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Quotes a path as a TOML basic string.
fn quote_toml(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
