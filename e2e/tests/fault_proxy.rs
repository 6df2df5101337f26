//! The fault proxy against a small echo server: bytes pass, cut() breaks live connections
//! and refuses new ones, restore() heals, slow() adds latency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strata_e2e::fault_proxy::{FaultMode, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Generous bound for things that should happen "promptly"; only failures wait this long.
const PROMPTLY: Duration = Duration::from_secs(5);

struct EchoServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            connections.spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    EchoServer { addr, task }
}

async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    // Write and read at once: a large message would otherwise fill every socket buffer
    // on the way and deadlock.
    let (mut read, mut write) = stream.split();
    let mut echoed = vec![0u8; message.len()];
    tokio::try_join!(write.write_all(message), read.read_exact(&mut echoed))?;
    Ok(echoed)
}

/// True if the connection is dead: a read gives EOF or an error (not data, not a hang).
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(PROMPTLY, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("read neither failed nor ended within {PROMPTLY:?}"),
    }
}

/// A new connection through the proxy either fails to connect or is closed at once.
async fn new_connection_refused(addr: SocketAddr) -> bool {
    match tokio::time::timeout(PROMPTLY, TcpStream::connect(addr)).await {
        Ok(Err(_)) => true,
        Ok(Ok(mut stream)) => {
            // Writing may succeed (into the socket buffer) before the reset arrives.
            let _ = stream.write_all(b"anyone?").await;
            is_closed(&mut stream).await
        }
        Err(_) => panic!("connect neither succeeded nor failed within {PROMPTLY:?}"),
    }
}

#[tokio::test]
async fn bytes_pass_both_ways_and_are_counted() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    assert_eq!(proxy.upstream(), echo.addr);
    assert_eq!(proxy.addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_eq!(proxy.url_for("https"), format!("https://{}", proxy.addr()));

    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"hello").await.unwrap(), b"hello");
    // Larger than the proxy's buffer, so it crosses in several chunks.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut stream, &big).await.unwrap(), big);

    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.bytes_to_upstream, 5 + big.len() as u64);
    assert_eq!(stats.bytes_to_client, 5 + big.len() as u64);

    // A clean close by the client is passed on and the connection ends.
    stream.shutdown().await.unwrap();
    assert!(is_closed(&mut stream).await);
    let deadline = Instant::now() + PROMPTLY;
    while proxy.stats().active != 0 {
        assert!(
            Instant::now() < deadline,
            "the connection is still active in the proxy"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn cut_drops_live_connections_and_refuses_new_ones_until_restored() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();

    let mut live = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut live, b"before").await.unwrap(), b"before");

    proxy.cut();
    assert_eq!(proxy.mode(), FaultMode::Cut);
    // The client is blocked in a read when the cut happens, as a watch would be.
    let started = Instant::now();
    assert!(
        is_closed(&mut live).await,
        "the live connection got data after the cut"
    );
    assert!(started.elapsed() < PROMPTLY);
    assert_eq!(proxy.stats().cut, 1);

    assert!(new_connection_refused(proxy.addr()).await);
    assert!(new_connection_refused(proxy.addr()).await);
    assert!(proxy.stats().refused >= 2);

    proxy.restore();
    assert_eq!(proxy.mode(), FaultMode::Normal);
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"after").await.unwrap(), b"after");
    assert_eq!(proxy.stats().accepted, 2);
}

#[tokio::test]
async fn slow_adds_latency_to_each_direction_and_restore_removes_it() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();

    // Opened before slow(): the latency applies to live connections too.
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut stream, b"warm-up").await.unwrap(),
        b"warm-up"
    );

    let latency = Duration::from_millis(200);
    proxy.slow(latency);
    assert_eq!(proxy.mode(), FaultMode::Slow(latency));
    let started = Instant::now();
    assert_eq!(round_trip(&mut stream, b"ping").await.unwrap(), b"ping");
    let elapsed = started.elapsed();
    // One chunk each way, each held `latency`; only the lower bound is asserted.
    assert!(elapsed >= latency * 2, "round trip took {elapsed:?}");

    // New connections are slowed as well.
    let mut other = TcpStream::connect(proxy.addr()).await.unwrap();
    let started = Instant::now();
    assert_eq!(round_trip(&mut other, b"pong").await.unwrap(), b"pong");
    assert!(started.elapsed() >= latency);

    proxy.restore();
    assert_eq!(round_trip(&mut stream, b"normal").await.unwrap(), b"normal");
}

#[tokio::test]
async fn cut_during_slow_forwarding_still_drops_at_once() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.slow(Duration::from_secs(3600));
    stream.write_all(b"stuck").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.cut();
    assert!(is_closed(&mut stream).await);
}

#[tokio::test]
async fn upstream_down_closes_the_client() {
    // A port nothing listens on: bind, note it, and close.
    let unused = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(unused).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(is_closed(&mut stream).await);
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    let addr = proxy.addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"x").await.unwrap(), b"x");
    drop(proxy);
    assert!(is_closed(&mut stream).await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener outlived the proxy"
    );
}
