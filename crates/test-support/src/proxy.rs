//! [`SlowProxy`]: a loopback TCP proxy in front of a real server that holds back every response for
//! a configurable time, so tests can catch a client in the middle of a slow request (shutdown
//! during a long task, timeouts), and can cut responses short.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes copied per read.
const BUFFER_BYTES: usize = 64 * 1024;

/// What the proxy does to each response. Every fault is a field here, read when a response
/// starts, so a new one (e.g. cutting responses short) is one more field and one more step in
/// `Connection::forward_responses`.
#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    /// How long the first bytes of each response are held back.
    delay: Duration,
    /// Bytes of each response let through before the connection is closed, if any.
    truncate: Option<usize>,
}

/// State shared by the handle, the accept loop and every connection.
#[derive(Debug, Default)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    /// Notified when the behaviour changes or the proxy stops, so held responses re-check.
    changed: Condvar,
    stopping: AtomicBool,
    connections: AtomicUsize,
    requests: AtomicUsize,
    held: AtomicUsize,
    responses: AtomicUsize,
    /// Both sockets of every connection, to shut them down when the proxy stops.
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TCP proxy on 127.0.0.1 that forwards every connection to `upstream` and holds back the
/// start of every response by [`SlowProxy::delay`].
///
/// A response is what the server sends after the client last sent something: the proxy notes each
/// request (client bytes) and holds the first upstream bytes that follow it, then lets the rest of
/// that response through at full speed. This fits request/response protocols such as HTTP/1.1,
/// including keep-alive connections and chunked responses. Requests are never delayed.
///
/// The delay can be changed at any time with [`SlowProxy::set_delay`]; responses already held
/// then wait only for the new delay counted from when they arrived (so `set_delay(ZERO)` lets
/// them all through at once). [`SlowProxy::wait_until_held`] tells a test that a client is now
/// waiting on a held response. Dropping the proxy closes every connection and joins its threads.
///
/// ```no_run
/// use std::time::Duration;
///
/// let influx = test_support::Influxd::start();
/// let proxy = test_support::SlowProxy::start(
///     ([127, 0, 0, 1], influx.port()).into(),
///     Duration::from_secs(30),
/// );
/// // Point the client under test at `proxy.url()`; its next request takes 30 s to answer.
/// assert!(proxy.wait_until_held(Duration::from_secs(10)));
/// proxy.set_delay(Duration::ZERO); // let it through now
/// ```
#[derive(Debug)]
pub struct SlowProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl SlowProxy {
    /// Starts a proxy on a free port of 127.0.0.1 that forwards to `upstream` and holds each
    /// response back for `delay`.
    ///
    /// Panics if no port can be bound.
    pub fn start(upstream: SocketAddr, delay: Duration) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("test-support: the proxy cannot bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test-support: cannot read the proxy's address: {e}"));
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour {
                delay,
                truncate: None,
            }),
            ..Shared::default()
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("slow-proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, upstream, &accept_shared))
            .unwrap_or_else(|e| panic!("test-support: cannot start the proxy thread: {e}"));
        SlowProxy {
            addr,
            upstream,
            shared,
            accept: Some(accept),
        }
    }

    /// The base URL for HTTP clients, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// How long each response is held back now.
    pub fn delay(&self) -> Duration {
        lock(&self.shared.behaviour).delay
    }

    /// Changes the delay, for new responses and for those held now (see the type's docs).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.shared.behaviour).delay = delay;
        self.shared.changed.notify_all();
    }

    /// Cuts every response that starts from now on after `bytes` bytes (headers included) by
    /// closing the connection, as a server or network dying mid-answer would; `None` lets whole
    /// responses through again.
    pub fn set_truncate(&self, bytes: Option<usize>) {
        lock(&self.shared.behaviour).truncate = bytes;
        self.shared.changed.notify_all();
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests forwarded so far (client sends that follow a response or open a connection).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Responses being held back right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Responses that have started: their hold is over and their first bytes were forwarded (or
    /// dropped, when the client had gone).
    pub fn responses(&self) -> usize {
        self.shared.responses.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` until at least one response is being held back; `false` on timeout.
    pub fn wait_until_held(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.held() == 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake the accept loop, which then sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for socket in lock(&self.shared.sockets).drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(10)) else {
            // The upstream is down: the client sees its connection closed.
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let connection = Arc::new(Connection {
            shared: Arc::clone(shared),
            awaiting_response: AtomicBool::new(false),
        });
        let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        {
            let mut sockets = lock(&shared.sockets);
            for socket in [&client, &server] {
                if let Ok(clone) = socket.try_clone() {
                    sockets.push(clone);
                }
            }
        }
        let requests = {
            let connection = Arc::clone(&connection);
            std::thread::spawn(move || connection.forward_requests(client_read, server))
        };
        let responses =
            std::thread::spawn(move || connection.forward_responses(server_read, client));
        lock(&shared.threads).extend([requests, responses]);
    }
}

/// One proxied connection.
#[derive(Debug)]
struct Connection {
    shared: Arc<Shared>,
    /// The client sent something since the last response started: the next upstream bytes start
    /// a response.
    awaiting_response: AtomicBool,
}

impl Connection {
    /// Client to server, as fast as it comes.
    fn forward_requests(&self, mut from: TcpStream, mut to: TcpStream) {
        let mut buffer = vec![0u8; BUFFER_BYTES];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !self.awaiting_response.swap(true, Ordering::SeqCst) {
                        self.shared.requests.fetch_add(1, Ordering::SeqCst);
                    }
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    /// Server to client, holding back the start of each response.
    fn forward_responses(&self, mut from: TcpStream, mut to: TcpStream) {
        let mut buffer = vec![0u8; BUFFER_BYTES];
        // Bytes of the current response the client may still get, when it is to be cut.
        let mut allowance: Option<usize> = None;
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if self.awaiting_response.swap(false, Ordering::SeqCst) {
                self.hold();
                allowance = lock(&self.shared.behaviour).truncate;
            }
            let send = allowance.map_or(n, |left| left.min(n));
            if self.shared.stopping.load(Ordering::SeqCst) || to.write_all(&buffer[..send]).is_err()
            {
                break;
            }
            if let Some(left) = allowance.as_mut() {
                *left -= send;
                if *left == 0 {
                    // Cut: the client sees the connection close mid-response.
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    /// Waits until the current delay has passed since the response arrived (re-read whenever it
    /// changes), or the proxy stops.
    fn hold(&self) {
        let arrived = Instant::now();
        self.shared.held.fetch_add(1, Ordering::SeqCst);
        let mut behaviour = lock(&self.shared.behaviour);
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let elapsed = arrived.elapsed();
            let Some(left) = behaviour
                .delay
                .checked_sub(elapsed)
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            behaviour = self
                .shared
                .changed
                .wait_timeout(behaviour, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(behaviour);
        self.shared.held.fetch_sub(1, Ordering::SeqCst);
        self.shared.responses.fetch_add(1, Ordering::SeqCst);
    }
}
