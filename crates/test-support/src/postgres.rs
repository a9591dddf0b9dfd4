//! A throwaway PostgreSQL cluster on loopback: `initdb` in a temp dir, trust auth, one `postgres`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{
    START_TIMEOUT, STOP_TIMEOUT, is_root, log_since, log_tail, open_log, shut_down, wait_timeout,
};

/// Where Debian's `postgresql-NN` packages install the server binaries, one directory per version.
const PG_LIB_DIR: &str = "/usr/lib/postgresql";
const INSTALL_HINT: &str = "apt-get install -y postgresql";
/// Why a server binary run as the `postgres` user may fail to start.
const RUN_AS_HINT: &str = "\n(running as root, so the cluster runs as the `postgres` OS user: every \
                           parent of the temp dir must be searchable by it; point TMPDIR at a \
                           directory such as /tmp if it is not)";
/// How many times `start` picks a fresh port when another process grabbed it first.
const PORT_ATTEMPTS: usize = 5;

/// A running PostgreSQL server for one test, listening on 127.0.0.1 only, with trust
/// authentication (any password is accepted) and superuser `postgres`.
///
/// The cluster (`data/`), the Unix socket and the log (`postgres.log`) live in a private temporary
/// directory. Durability against OS crashes is off (`fsync=off`, `full_page_writes=off`), which is
/// fine for tests; commits stay synchronous, so [`Postgres::kill`] followed by
/// [`Postgres::restart`] keeps every committed transaction (the OS keeps the written files). When
/// the test runs as root the cluster is created and run as the `postgres` OS user, since `initdb`
/// refuses to run as root. Dropping the handle stops the server (immediate shutdown) and removes
/// the directory.
#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    bin_dir: PathBuf,
    psql: PathBuf,
    port: u16,
    /// The uid and gid to run the server as (when the test runs as root).
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
    /// Offset in the log file where the current run's output starts.
    log_offset: u64,
}

/// Why one attempt to start the server failed.
enum StartError {
    /// The server exited because its port was taken: retry with another port.
    PortTaken,
    /// Anything else: the message for the panic.
    Fatal(String),
}

impl Postgres {
    /// Creates a fresh cluster and starts a server on a free port, waiting until it accepts
    /// connections.
    ///
    /// Panics if PostgreSQL is not installed, `initdb` fails, or the server does not come up
    /// within 30 s.
    pub fn start() -> Postgres {
        let bin_dir = find_bin_dir();
        let psql = Some(bin_dir.join("psql"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| crate::require_tool("psql", INSTALL_HINT));
        let dir = tempfile::Builder::new()
            .prefix("test-support-postgres-")
            .tempdir()
            .unwrap_or_else(|e| panic!("test-support: cannot create a temp dir for postgres: {e}"));
        let run_as = is_root().then(postgres_user);
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!(
                    "test-support: cannot chown {} to the postgres user: {e}",
                    dir.path().display()
                )
            });
        }
        let mut server = Postgres {
            dir,
            bin_dir,
            psql,
            port: 0,
            run_as,
            child: None,
            log_offset: 0,
        };
        server.initdb();
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = crate::free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::PortTaken) if attempt < PORT_ATTEMPTS => continue,
                Err(StartError::PortTaken) => panic!(
                    "test-support: postgres could not bind a free port {PORT_ATTEMPTS} times in a \
                     row\n{}",
                    server.log_tail()
                ),
                Err(StartError::Fatal(message)) => panic!("{message}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// A connection URL for `database` as the superuser:
    /// `postgresql://postgres@127.0.0.1:PORT/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file (stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Creates database `name`.
    pub fn create_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        );
    }

    /// Creates a login role `name` with `password`, a superuser if `superuser`.
    ///
    /// Authentication is `trust`, so the password is stored but any password is accepted.
    pub fn create_role(&self, name: &str, password: &str, superuser: bool) {
        let superuser = if superuser { " SUPERUSER" } else { "" };
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {} WITH LOGIN PASSWORD {}{superuser}",
                quote_ident(name),
                quote_literal(password)
            ),
        );
    }

    /// Sets the password of role `user`.
    pub fn set_password(&self, user: &str, password: &str) {
        self.psql(
            "postgres",
            &format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                quote_ident(user),
                quote_literal(password)
            ),
        );
    }

    /// Turns TLS on with a fresh self-signed certificate for `localhost` (so clients that encrypt
    /// without verifying connect, and clients that verify the certificate fail). Needs `openssl`.
    pub fn enable_tls(&self) {
        let data = self.data_dir();
        let openssl = crate::require_tool("openssl", "apt-get install -y openssl");
        let output = Command::new(openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.crt",
            ])
            .current_dir(&data)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("test-support: cannot run openssl: {e}"));
        assert!(
            output.status.success(),
            "test-support: openssl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for file in ["server.key", "server.crt"] {
            let path = data.join(file);
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("test-support: cannot chown {file}: {e}"));
            }
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap_or_else(|e| panic!("test-support: cannot chmod {file}: {e}"));
        }
        self.psql("postgres", "ALTER SYSTEM SET ssl = on");
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    /// Requires passwords (SCRAM) over TCP for every role but `postgres`, which the harness itself
    /// keeps using without one; reloads the server's configuration.
    pub fn require_password_auth(&self) {
        let hba = "local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(self.data_dir().join("pg_hba.conf"), hba)
            .unwrap_or_else(|e| panic!("test-support: cannot write pg_hba.conf: {e}"));
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    /// Runs `sql` with `psql -X -q -A -t -v ON_ERROR_STOP=1` in `database` as `postgres` and returns
    /// its stdout: unaligned, tuples only, fields separated by `|`, one row per line.
    ///
    /// Panics with psql's stderr if the statement fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .env_remove("PGSSLMODE")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "test-support: cannot run {}: {e} (install it with `{INSTALL_HINT}`)",
                    self.psql.display()
                )
            });
        if !output.status.success() {
            panic!(
                "test-support: psql failed ({}) in database {database:?} running:\n{sql}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the server with a fast shutdown (SIGINT: disconnects clients, checkpoints) and waits
    /// for it to exit (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            shut_down(&mut child, "INT", STOP_TIMEOUT);
        }
    }

    /// Kills the postmaster (SIGKILL) and waits for it to exit, as a crash would. The next
    /// [`Postgres::restart`] runs crash recovery.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            shut_down(&mut child, "KILL", STOP_TIMEOUT);
        }
    }

    /// Starts the server again on the same port with the same data, stopping it first (fast
    /// shutdown) if it is running, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartError::PortTaken) => panic!(
                "test-support: postgres could not restart: port {} is taken by another process\n{}",
                self.port,
                self.log_tail()
            ),
            Err(StartError::Fatal(message)) => panic!("{message}"),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for a server binary, run as the `postgres` user when the test runs as root.
    fn server_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            // std drops root's supplementary groups before setuid.
            command.uid(uid).gid(gid);
        }
        command
    }

    fn initdb(&self) {
        let log_path = self.dir.path().join("initdb.log");
        let (log, offset) = open_log(&log_path, "initdb");
        let stdout = log
            .try_clone()
            .unwrap_or_else(|e| panic!("test-support: cannot duplicate the log handle: {e}"));
        let status = self
            .server_command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C")
            .stdout(stdout)
            .stderr(log)
            .status()
            .unwrap_or_else(|e| panic!("{}", self.spawn_failure("initdb", &e)));
        if !status.success() {
            let hint = if self.run_as.is_some() {
                RUN_AS_HINT
            } else {
                ""
            };
            panic!(
                "test-support: initdb failed ({status}) in {}{hint}\n{}",
                self.data_dir().display(),
                log_tail(&log_path, offset)
            );
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_path = self.log_path();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let (log, offset) = open_log(&log_path, &format!("postgres on port {}", self.port));
            self.log_offset = offset;
            let stdout = log
                .try_clone()
                .unwrap_or_else(|e| panic!("test-support: cannot duplicate the log handle: {e}"));
            let mut child = self
                .server_command("postgres")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-k")
                .arg(self.dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off"])
                // Not `synchronous_commit=off`: with `fsync=off` a synchronous commit costs one
                // write(2), and it makes every committed transaction survive `kill` (an async
                // commit sits in shared memory for up to 200 ms and dies with the server).
                .args(["-c", "synchronous_commit=on"])
                .args(["-c", "full_page_writes=off"])
                .args(["-c", "max_connections=200"])
                .args(["-c", "logging_collector=off"])
                .stdout(stdout)
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{}", self.spawn_failure("postgres", &e)));
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = log_since(&log_path, offset);
                    if log.contains("Address already in use") {
                        return Err(StartError::PortTaken);
                    }
                    // After a kill, the old server's children may still hold its shared memory
                    // for a moment: try again.
                    if log.contains("pre-existing shared memory block") && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                    return Err(StartError::Fatal(format!(
                        "test-support: postgres exited during startup ({status})\n{}",
                        self.log_tail()
                    )));
                }
                if self.is_ready() {
                    self.child = Some(child);
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = wait_timeout(&mut child, Duration::from_secs(5));
                    return Err(StartError::Fatal(format!(
                        "test-support: postgres did not accept connections on 127.0.0.1:{} \
                         within {} s\n{}",
                        self.port,
                        START_TIMEOUT.as_secs(),
                        self.log_tail()
                    )));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }

    /// The panic message for a server binary that could not be started.
    fn spawn_failure(&self, program: &str, error: &std::io::Error) -> String {
        let path = self.bin_dir.join(program);
        if error.kind() == std::io::ErrorKind::NotFound {
            format!(
                "test-support: {} not found: install it with `{INSTALL_HINT}`",
                path.display()
            )
        } else if self.run_as.is_some() {
            format!(
                "test-support: cannot run {}: {error}{RUN_AS_HINT}",
                path.display()
            )
        } else {
            format!("test-support: cannot run {}: {error}", path.display())
        }
    }

    /// Whether the server accepts connections (`pg_isready` exits 0).
    fn is_ready(&self) -> bool {
        Command::new(self.bin_dir.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_path(), self.log_offset)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: immediate shutdown; the postmaster takes its children down with it.
            shut_down(&mut child, "QUIT", Duration::from_secs(10));
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, `postgres` and `pg_isready`.
fn find_bin_dir() -> PathBuf {
    let entries = std::fs::read_dir(PG_LIB_DIR).unwrap_or_else(|_| {
        panic!(
            "test-support: PostgreSQL not found in {PG_LIB_DIR}: install it with `{INSTALL_HINT}`"
        )
    });
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            let complete = ["initdb", "postgres", "pg_isready"]
                .iter()
                .all(|b| bin.join(b).is_file());
            complete.then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!(
                "test-support: initdb/postgres not found under {PG_LIB_DIR}/<version>/bin: install \
                 it with `{INSTALL_HINT}`"
            )
        })
}

/// The uid and gid of the `postgres` OS user.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        output.parse().unwrap_or_else(|_| {
            panic!(
                "test-support: running as root, initdb must run as the `postgres` OS user, which \
                 does not exist: install it with `{INSTALL_HINT}`"
            )
        })
    };
    (id("-u"), id("-g"))
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (standard-conforming strings).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
