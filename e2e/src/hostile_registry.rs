//! A registry that misbehaves on purpose, for the tests of Strata's registry limits.
//!
//! It serves the pack layout (`/v2/<base>/spectro-packs/archive/<pack>/…`) for the packs
//! it is given, each with one [`Hostility`]: a manifest far over any limit, a blob that
//! trickles a byte at a time, a `401` naming a token realm of its choice. It records every
//! request it reads (with its `Authorization` header) and counts every connection, even
//! one that never sends a request, so that it also serves as the "other host" a test
//! checks received nothing.
//!
//! Plain HTTP, or HTTPS with a certificate from a [`TestCa`] (valid for `127.0.0.1` and
//! `localhost`). One request per connection (`Connection: close`). It runs on a thread of
//! its own with its own Tokio runtime, so it keeps answering (and trickling) while a test
//! blocks its own runtime.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ring::digest::{SHA256, digest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tracing::debug;

use crate::pki::{CertUse, PkiError, TestCa};

const MAX_HEAD_BYTES: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Where packs live below the base path, as in every pack registry.
const ARCHIVE: &str = "/spectro-packs/archive/";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Written by the hundred kilobytes, so that a client that stops reading is noticed.
const WRITE_PIECE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HostileRegistryError {
    #[error("cannot listen on 127.0.0.1 for the hostile registry: {source}")]
    Bind {
        #[source]
        source: io::Error,
    },
    #[error("cannot issue the hostile registry's certificate: {source}")]
    Certificate {
        #[source]
        source: PkiError,
    },
    #[error("cannot configure TLS for the hostile registry: {reason}")]
    Tls { reason: String },
    #[error("cannot start the hostile registry's runtime: {source}")]
    Runtime {
        #[source]
        source: io::Error,
    },
}

/// How the registry treats one pack.
#[derive(Debug, Clone)]
pub enum Hostility {
    /// Its manifests and its tag list are `size` bytes of JSON; `declared`: with a
    /// `Content-Length`, else without one (the body ends when the connection closes).
    Oversized { size: usize, declared: bool },
    /// A valid pack manifest for every tag, whose layer of `size` bytes trickles one
    /// byte every `interval` (with an honest `Content-Length`).
    SlowBlob { size: u64, interval: Duration },
    /// `401` with `WWW-Authenticate: Bearer realm="<realm>"` for every request about it.
    Challenge { realm: String },
}

/// What the registry serves.
#[derive(Debug, Clone, Default)]
pub struct HostileOptions {
    /// By pack name.
    pub packs: Vec<(String, Hostility)>,
    /// Answer every request, `/v2/` included, with a `401` naming this realm.
    pub challenge_everything: Option<String>,
}

/// A request the registry read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Log {
    requests: Mutex<Vec<SeenRequest>>,
    connections: AtomicUsize,
    trickles_open: AtomicUsize,
    /// `<pack>@<digest>` of every trickle begun.
    trickles_started: Mutex<Vec<String>>,
}

struct State {
    options: HostileOptions,
    log: Log,
}

pub struct HostileRegistry {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostileRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileRegistry")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Names certificate files apart when one CA serves several registries.
static SERVERS: AtomicUsize = AtomicUsize::new(0);

impl HostileRegistry {
    /// Binds a free port on 127.0.0.1 and serves: HTTPS with a certificate from `ca`,
    /// plain HTTP without one.
    pub fn start(
        options: HostileOptions,
        ca: Option<&TestCa>,
    ) -> Result<HostileRegistry, HostileRegistryError> {
        let acceptor = match ca {
            Some(ca) => {
                let stem = format!("hostile-{}", SERVERS.fetch_add(1, Ordering::Relaxed));
                let files = ca
                    .issue(&stem, CertUse::Server { dns_names: &[] })
                    .map_err(|source| HostileRegistryError::Certificate { source })?;
                Some(tls_acceptor(&files.cert_pem, &files.key_pem)?)
            }
            None => None,
        };
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| HostileRegistryError::Bind { source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| HostileRegistryError::Bind { source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| HostileRegistryError::Bind { source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HostileRegistryError::Runtime { source })?;
        let state = Arc::new(State {
            options,
            log: Log::default(),
        });
        let (shutdown, mut stop) = watch::channel(false);
        let serving = Arc::clone(&state);
        let tls = acceptor.is_some();
        let thread = std::thread::Builder::new()
            .name(format!("hostile-registry-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            accepted = listener.accept() => {
                                let Ok((stream, peer)) = accepted else { continue };
                                serving.log.connections.fetch_add(1, Ordering::SeqCst);
                                let state = Arc::clone(&serving);
                                let acceptor = acceptor.clone();
                                tokio::spawn(async move {
                                    let result = match acceptor {
                                        Some(acceptor) => {
                                            match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(stream)).await {
                                                Ok(Ok(stream)) => serve(stream, &state).await,
                                                Ok(Err(error)) => Err(error),
                                                Err(_) => Err(io::ErrorKind::TimedOut.into()),
                                            }
                                        }
                                        None => serve(stream, &state).await,
                                    };
                                    if let Err(error) = result {
                                        debug!(%peer, %error, "hostile registry connection ended");
                                    }
                                });
                            }
                        }
                    }
                });
            })
            .map_err(|source| HostileRegistryError::Runtime { source })?;
        Ok(HostileRegistry {
            addr,
            tls,
            state,
            shutdown,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.state.log.requests).clone()
    }

    /// Connections accepted so far, whether or not they sent a request.
    pub fn connections(&self) -> usize {
        self.state.log.connections.load(Ordering::SeqCst)
    }

    /// Blobs being trickled right now.
    pub fn trickles_open(&self) -> usize {
        self.state.log.trickles_open.load(Ordering::SeqCst)
    }

    /// `<pack>@<digest>` of every trickle begun.
    pub fn trickles_started(&self) -> Vec<String> {
        lock(&self.state.log.trickles_started).clone()
    }

    /// The layer digest the manifest of a [`Hostility::SlowBlob`] pack names for `tag`.
    pub fn slow_layer_digest(pack: &str, tag: &str) -> String {
        let sum = digest(&SHA256, format!("strata-hostile-{pack}:{tag}").as_bytes());
        let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

fn tls_acceptor(
    cert_pem: &str,
    key_pem: &str,
) -> Result<tokio_rustls::TlsAcceptor, HostileRegistryError> {
    let tls = |reason: String| HostileRegistryError::Tls { reason };
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("cannot read the serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| tls(format!("cannot read the serving key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reads the request line and headers (a GET or HEAD has no body to read).
async fn read_request<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
) -> io::Result<Option<SeenRequest>> {
    let mut line = String::new();
    let mut head_bytes = 0;
    let mut request: Option<SeenRequest> = None;
    loop {
        line.clear();
        let n = tokio::io::AsyncReadExt::take(&mut *reader, (MAX_HEAD_BYTES - head_bytes) as u64)
            .read_line(&mut line)
            .await?;
        head_bytes += n;
        if n == 0 || head_bytes >= MAX_HEAD_BYTES {
            return Ok(None);
        }
        let text = line.trim_end_matches(['\r', '\n']);
        match &mut request {
            None => {
                let mut words = text.split_whitespace();
                request = Some(SeenRequest {
                    method: words.next().unwrap_or_default().to_owned(),
                    target: words.next().unwrap_or_default().to_owned(),
                    authorization: None,
                });
            }
            Some(_) if text.is_empty() => return Ok(request),
            Some(request) => {
                if let Some((name, value)) = text.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    request.authorization = Some(value.trim().to_owned());
                }
            }
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: &State) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let Some(request) = tokio::time::timeout(IO_TIMEOUT, read_request(&mut reader))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??
    else {
        return Ok(());
    };
    lock(&state.log.requests).push(request.clone());
    let writer = reader.get_mut();
    if let Some(realm) = &state.options.challenge_everything {
        return challenge(writer, realm).await;
    }
    let path = request.target.split('?').next().unwrap_or_default();
    if path == "/v2/" {
        return respond(writer, 200, "application/json", b"{}").await;
    }
    // /v2/<base>/spectro-packs/archive/<pack>/<kind>/<rest>
    let route = path.split_once(ARCHIVE).map(|(_, rest)| {
        let mut parts = rest.splitn(3, '/');
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    });
    let Some((pack, kind, rest)) = route else {
        return not_found(writer).await;
    };
    let hostility = state
        .options
        .packs
        .iter()
        .find(|(name, _)| name == pack)
        .map(|(_, hostility)| hostility);
    match (hostility, kind) {
        (None, _) => not_found(writer).await,
        (Some(Hostility::Challenge { realm }), _) => challenge(writer, realm).await,
        (Some(Hostility::Oversized { size, declared }), "manifests" | "tags") => {
            oversized(writer, *size, *declared).await
        }
        (Some(Hostility::SlowBlob { size, .. }), "manifests") => {
            let manifest = slow_manifest(pack, rest, *size);
            respond(writer, 200, OCI_MANIFEST, manifest.as_bytes()).await
        }
        (Some(Hostility::SlowBlob { size, interval }), "blobs") => {
            trickle(writer, state, pack, rest, *size, *interval).await
        }
        (Some(_), _) => not_found(writer).await,
    }
}

async fn respond<W: AsyncWrite + Unpin>(
    writer: &mut W,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Docker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await?;
    writer.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    }
}

async fn not_found<W: AsyncWrite + Unpin>(writer: &mut W) -> io::Result<()> {
    respond(
        writer,
        404,
        "application/json",
        br#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository here"}]}"#,
    )
    .await
}

async fn challenge<W: AsyncWrite + Unpin>(writer: &mut W, realm: &str) -> io::Result<()> {
    let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    let head = format!(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         WWW-Authenticate: Bearer realm=\"{realm}\",service=\"hostile\"\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await?;
    writer.shutdown().await
}

/// `size` bytes of JSON: a manifest whose annotation is padding.
async fn oversized<W: AsyncWrite + Unpin>(
    writer: &mut W,
    size: usize,
    declared: bool,
) -> io::Result<()> {
    let start = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"tags\":[],\"annotations\":{{\"padding\":\""
    );
    let end = "\"}}";
    let padding = size.saturating_sub(start.len() + end.len());
    let length = if declared {
        format!("Content-Length: {}\r\n", start.len() + padding + end.len())
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {OCI_MANIFEST}\r\n{length}Connection: close\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(start.as_bytes()).await?;
    let piece = vec![b'x'; WRITE_PIECE];
    let mut left = padding;
    while left > 0 {
        let n = left.min(WRITE_PIECE);
        writer.write_all(&piece[..n]).await?;
        left -= n;
    }
    writer.write_all(end.as_bytes()).await?;
    writer.flush().await?;
    writer.shutdown().await
}

fn slow_manifest(pack: &str, tag: &str, size: u64) -> String {
    let config = digest(&SHA256, b"{}");
    let config_hex: String = config.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.unknown.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": 2,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": HostileRegistry::slow_layer_digest(pack, tag),
            "size": size,
            "annotations": { "org.opencontainers.image.title": format!("{pack}-{tag}.tar.gz") },
        }],
    })
    .to_string()
}

/// Sends the head at once, then one byte every `interval` until `size` bytes or the
/// client hangs up.
async fn trickle<W: AsyncWrite + Unpin>(
    writer: &mut W,
    state: &State,
    pack: &str,
    digest: &str,
    size: u64,
    interval: Duration,
) -> io::Result<()> {
    lock(&state.log.trickles_started).push(format!("{pack}@{digest}"));
    state.log.trickles_open.fetch_add(1, Ordering::SeqCst);
    let result = async {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \
             {size}\r\nConnection: close\r\n\r\n"
        );
        writer.write_all(head.as_bytes()).await?;
        writer.flush().await?;
        for _ in 0..size {
            tokio::time::sleep(interval).await;
            writer.write_all(b"x").await?;
            writer.flush().await?;
        }
        writer.shutdown().await
    }
    .await;
    state.log.trickles_open.fetch_sub(1, Ordering::SeqCst);
    result
}
