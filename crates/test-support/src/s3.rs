//! A throwaway S3-compatible server (`s3s-fs`) on loopback, serving a private temporary directory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Component, Path, PathBuf};
use std::thread::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A running S3-compatible server for one test, listening on 127.0.0.1 only.
///
/// Built on [`s3s-fs`](https://docs.rs/s3s-fs): buckets are directories of a private temporary
/// directory and objects are files in them. Requests are path-style (`/bucket/key`). Start it with
/// [`S3Server::start`] (AWS Signature V2/V4 verified against one access key and secret key;
/// unsigned requests get `403 AccessDenied`) or [`S3Server::start_public`] (no authentication).
/// The API is blocking: the server runs on its own Tokio runtime on a background thread, so it
/// works from plain `#[test]` and `#[tokio::test]` functions alike. Dropping the handle stops the
/// server and removes the directory.
///
/// ```no_run
/// let s3 = test_support::S3Server::start("AKID", "secret/key+1");
/// s3.create_bucket("repo");
/// s3.put("repo", "main/butler.yaml", b"registry: {}\n");
/// let endpoint = s3.endpoint(); // "http://127.0.0.1:PORT"
/// # let _ = endpoint;
/// ```
#[derive(Debug)]
pub struct S3Server {
    dir: TempDir,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl S3Server {
    /// Starts a server that accepts only requests signed with `access_key` and `secret_key`.
    ///
    /// The listening socket is bound before this returns, so the server accepts connections at
    /// once. Panics if the temporary directory, the socket or the runtime cannot be created.
    pub fn start(access_key: &str, secret_key: &str) -> S3Server {
        Self::start_inner(Some(SimpleAuth::from_single(access_key, secret_key)))
    }

    /// Starts a server without authentication, for anonymous access: unsigned requests are
    /// served (s3s refuses signed ones when it has no authentication provider).
    pub fn start_public() -> S3Server {
        Self::start_inner(None)
    }

    fn start_inner(auth: Option<SimpleAuth>) -> S3Server {
        let dir = tempfile::Builder::new()
            .prefix("test-support-s3-")
            .tempdir()
            .unwrap_or_else(|e| panic!("test-support: cannot create a temp dir for S3: {e}"));
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap_or_else(|e| {
            panic!(
                "test-support: s3s-fs cannot serve {}: {e:?}",
                dir.path().display()
            )
        });
        let mut builder = S3ServiceBuilder::new(fs);
        if let Some(auth) = auth {
            builder.set_auth(auth);
        }
        let service = builder.build();

        // Binding port 0 here (and keeping the socket) leaves no window for another process.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| {
            panic!("test-support: cannot bind a free port on 127.0.0.1 for S3: {e}")
        });
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test-support: cannot read the S3 server's port: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| {
            panic!("test-support: cannot make the S3 socket non-blocking: {e}")
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("test-support: cannot build a Tokio runtime for S3: {e}"));

        let (shutdown, mut stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("s3s-fs-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .unwrap_or_else(|e| panic!("test-support: cannot register S3 socket: {e}"));
                    let http = ConnBuilder::new(TokioExecutor::new());
                    loop {
                        let socket = tokio::select! {
                            accepted = listener.accept() => match accepted {
                                Ok((socket, _)) => socket,
                                // A failed accept (e.g. too many open files) must not stop the
                                // server; the client sees its own connection error.
                                Err(_) => continue,
                            },
                            _ = &mut stop => break,
                        };
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        tokio::spawn(async move {
                            // A client that hangs up mid-request is not the server's problem.
                            let _ = conn.await;
                        });
                    }
                });
                // Dropping the runtime here cancels the connections still open.
            })
            .unwrap_or_else(|e| panic!("test-support: cannot spawn the S3 server thread: {e}"));

        S3Server {
            dir,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory the server serves: one subdirectory per bucket, one file per object.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Creates bucket `name` (a no-op if it exists).
    pub fn create_bucket(&self, name: &str) {
        let path = self.bucket_path(name);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| {
            panic!(
                "test-support: cannot create bucket {name:?} at {}: {e}",
                path.display()
            )
        });
    }

    /// Stores `bytes` as object `key` of `bucket`, replacing any previous object.
    ///
    /// Panics if the bucket does not exist (call [`S3Server::create_bucket`] first) or if `key` is
    /// not a relative path of normal components (`a/b.yaml`; no `..`, no leading `/`).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let bucket_path = self.bucket_path(bucket);
        if !bucket_path.is_dir() {
            panic!("test-support: S3 bucket {bucket:?} does not exist: call create_bucket first");
        }
        let relative = Path::new(key);
        let normal = !key.is_empty()
            && !key.ends_with('/')
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !normal {
            panic!("test-support: S3 key {key:?} must be a relative path like \"a/b.yaml\"");
        }
        let path = bucket_path.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| {
                panic!("test-support: cannot create {}: {e}", parent.display())
            });
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| {
            panic!(
                "test-support: cannot write s3://{bucket}/{key} to {}: {e}",
                path.display()
            )
        });
    }

    fn bucket_path(&self, name: &str) -> PathBuf {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            panic!("test-support: {name:?} is not a valid S3 bucket name for the test server");
        }
        self.dir.path().join(name)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The receiver is gone only if the server thread already ended (it panicked).
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Re-raising a server panic inside drop would abort; the test sees failed requests.
            let _ = thread.join();
        }
    }
}
