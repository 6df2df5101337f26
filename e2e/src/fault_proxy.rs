//! A TCP proxy on loopback that tests put between a client and a server (an apiserver, a
//! registry) to break the network on purpose: cut every connection, refuse new ones, or
//! add latency, while the connections are live. It works on bytes, so TLS passes through
//! untouched (the test PKI's serving certificates are valid for 127.0.0.1 whatever the
//! port).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum FaultProxyError {
    #[error("cannot listen on 127.0.0.1 for a fault proxy to {upstream}: {source}")]
    Bind {
        upstream: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the local address of the fault proxy to {upstream}: {source}")]
    LocalAddr {
        upstream: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// What the proxy currently does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward bytes as they come.
    Normal,
    /// Hold every chunk this long before forwarding it, in each direction.
    Slow(Duration),
    /// Every connection is dropped and new ones are closed as soon as they are accepted.
    Cut,
}

/// A snapshot of the proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultProxyStats {
    /// Connections accepted and forwarded (those closed at once while cut not included).
    pub accepted: u64,
    /// Connections closed at once because the proxy was cut.
    pub refused: u64,
    /// Connections being forwarded now.
    pub active: u64,
    /// Connections dropped by `cut()` while live.
    pub cut: u64,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_to_upstream: u64,
    /// Bytes forwarded from the upstream to clients.
    pub bytes_to_client: u64,
}

#[derive(Debug)]
struct Shared {
    // A watch channel rather than a mutex: connection tasks wait on it to learn of a cut
    // immediately, and read it per chunk to learn the current latency.
    mode: watch::Sender<FaultMode>,
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    cut: AtomicU64,
    bytes_to_upstream: AtomicU64,
    bytes_to_client: AtomicU64,
}

/// A running proxy; it stops (dropping every connection) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    // The accept loop owns the connection tasks (in a JoinSet), so aborting it ends them.
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy, FaultProxyError> {
        // Port 0: the kernel picks a free port, so parallel tests never race for one.
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|source| FaultProxyError::Bind { upstream, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FaultProxyError::LocalAddr { upstream, source })?;
        let (mode, _) = watch::channel(FaultMode::Normal);
        let shared = Arc::new(Shared {
            mode,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            active: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            bytes_to_upstream: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)));
        info!(%addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address traffic is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `scheme://127.0.0.1:PORT`, e.g. to point a kubeconfig at the proxy.
    pub fn url_for(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// Drops every open connection now (with a reset, as a broken network would surface)
    /// and closes new ones as soon as they are accepted, until `restore()`.
    pub fn cut(&self) {
        info!(addr = %self.addr, "fault proxy: cut");
        self.shared.mode.send_replace(FaultMode::Cut);
    }

    /// Holds every chunk `latency` before forwarding it, in each direction, on open and new
    /// connections. A request/response round trip therefore takes at least twice that.
    pub fn slow(&self, latency: Duration) {
        info!(addr = %self.addr, ?latency, "fault proxy: slow");
        self.shared.mode.send_replace(FaultMode::Slow(latency));
    }

    /// Back to forwarding as it comes; connections dropped by a cut stay dropped.
    pub fn restore(&self) {
        info!(addr = %self.addr, "fault proxy: restore");
        self.shared.mode.send_replace(FaultMode::Normal);
    }

    /// The current mode.
    pub fn mode(&self) -> FaultMode {
        *self.shared.mode.borrow()
    }

    /// The counters, as of now.
    pub fn stats(&self) -> FaultProxyStats {
        let s = &self.shared;
        FaultProxyStats {
            accepted: s.accepted.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
            active: s.active.load(Ordering::SeqCst),
            cut: s.cut.load(Ordering::SeqCst),
            bytes_to_upstream: s.bytes_to_upstream.load(Ordering::SeqCst),
            bytes_to_client: s.bytes_to_client.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task;
        // their sockets close when the tasks are dropped.
        self.accept_task.abort();
        debug!(addr = %self.addr, "fault proxy stopped");
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    if *shared.mode.borrow() == FaultMode::Cut {
                        // Accept-then-reset rather than closing the listener: the port
                        // stays ours, so restore() cannot lose it to another test.
                        shared.refused.fetch_add(1, Ordering::SeqCst);
                        reset(client);
                        debug!(%peer, "fault proxy: refused a connection while cut");
                        continue;
                    }
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(serve(client, peer, upstream, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Typically EMFILE; back off instead of spinning, and keep serving.
                    warn!(%error, "fault proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            // Reap finished connections so the set does not grow over a long test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Closes with a reset (SO_LINGER 0) so the peer sees the connection break, not end.
fn reset(stream: TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        debug!(%error, "fault proxy: cannot set SO_LINGER, closing normally");
    }
    drop(stream);
}

/// Decrements the active count however the connection task ends (including abort).
struct ActiveGuard<'a>(&'a AtomicU64);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(client: TcpStream, peer: SocketAddr, upstream: SocketAddr, shared: Arc<Shared>) {
    shared.active.fetch_add(1, Ordering::SeqCst);
    let _active = ActiveGuard(&shared.active);
    let mut mode = shared.mode.subscribe();
    let mut client = client;
    // The upstream connection is made inside the select so that a cut during connect
    // drops the client as well.
    let mut upstream_stream: Option<TcpStream> = None;
    let outcome = tokio::select! {
        _ = mode.wait_for(|m| *m == FaultMode::Cut) => Outcome::Cut,
        result = forward(&mut client, &mut upstream_stream, upstream, &shared) => Outcome::Done(result),
    };
    match outcome {
        Outcome::Cut => {
            shared.cut.fetch_add(1, Ordering::SeqCst);
            debug!(%peer, "fault proxy: connection cut");
            reset(client);
            if let Some(stream) = upstream_stream {
                reset(stream);
            }
        }
        Outcome::Done(Ok(())) => debug!(%peer, "fault proxy: connection closed"),
        Outcome::Done(Err(error)) => {
            debug!(%peer, %error, "fault proxy: connection ended with an error")
        }
    }
}

enum Outcome {
    Cut,
    Done(io::Result<()>),
}

async fn forward(
    client: &mut TcpStream,
    upstream_slot: &mut Option<TcpStream>,
    upstream: SocketAddr,
    shared: &Shared,
) -> io::Result<()> {
    let stream = TcpStream::connect(upstream).await?;
    // Nagle would add its own delay on top of (or instead of) the one asked for.
    let _ = stream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let upstream_stream = upstream_slot.insert(stream);
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream_stream.split();
    // Both directions until both have ended, as copy_bidirectional does: a half-close in
    // one direction is passed on and the other keeps flowing.
    tokio::try_join!(
        pump(
            &mut client_read,
            &mut upstream_write,
            shared,
            &shared.bytes_to_upstream
        ),
        pump(
            &mut upstream_read,
            &mut client_write,
            shared,
            &shared.bytes_to_client
        ),
    )?;
    Ok(())
}

async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    shared: &Shared,
    counter: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        // Read per chunk so that slow()/restore() apply to connections already open.
        let latency = match *shared.mode.borrow() {
            FaultMode::Slow(latency) => Some(latency),
            FaultMode::Normal | FaultMode::Cut => None,
        };
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }
}
