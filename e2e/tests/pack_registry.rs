//! The pack registry client against a real registry (distribution, TLS with its own CA,
//! htpasswd), and against small fake registries for the answers a real one does not give
//! (403, 5xx, a wrong or cut-off blob).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use strata_e2e::registry::{RegistryOptions as TestRegistryOptions, TestRegistry, TokenAuth};
use strata_e2e::token_server::AccessRule;
use strata_shared::pack::Pack;
use strata_shared::pack::archive::{ArchiveError, sha256_digest};
use strata_shared::registry::address::RegistryAddress;
use strata_shared::registry::cache::PackCache;
use strata_shared::registry::client::{
    CONTENT_DIGEST_ANNOTATION, PACK_CONFIG_MEDIA_TYPE, PACK_LAYER_MEDIA_TYPE, PackDescriptor,
    PackRegistryClient, RegistryError, RegistryOptions, RetryPolicy, TITLE_ANNOTATION,
};
use strata_shared::registry::credentials::{Credentials, resolve_credentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The base path every test registry address uses, so that the layout below it is
/// exercised too.
const BASE: &str = "team";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/packs")
}

/// Quick retries: the tests count attempts, they do not need to wait for them.
fn fast_retry(attempts: usize) -> RetryPolicy {
    RetryPolicy {
        attempts,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
    }
}

fn options_for(registry: &TestRegistry) -> RegistryOptions {
    RegistryOptions {
        plain_http: registry.ca_pem().is_none(),
        ca_pem: registry.ca_pem().map(str::to_owned),
        credentials: Credentials::Basic {
            username: registry.username().to_owned(),
            password: registry.password().to_owned(),
        },
        retry: fast_retry(3),
        ..RegistryOptions::default()
    }
}

fn address_of(host: &str) -> RegistryAddress {
    format!("{host}/{BASE}").parse().unwrap()
}

fn client_with(registry: &TestRegistry, options: RegistryOptions) -> PackRegistryClient {
    PackRegistryClient::new(address_of(registry.host()), options).unwrap()
}

fn client_for(registry: &TestRegistry) -> PackRegistryClient {
    client_with(registry, options_for(registry))
}

async fn start_registry() -> TestRegistry {
    TestRegistry::start(TestRegistryOptions::default())
        .await
        .unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of a sample pack in a temporary folder (the samples stay untouched).
fn sample_pack(name: &str) -> (tempfile::TempDir, Pack) {
    let dir = tempfile::tempdir().unwrap();
    let pack_dir = dir.path().join(name);
    copy_tree(&samples().join(name), &pack_dir);
    let (pack, findings) = Pack::load(&pack_dir);
    let pack = pack.unwrap_or_else(|| panic!("sample {name} is not valid: {findings:?}"));
    (dir, pack)
}

/// Relative path → (kind, content or link target) for every entry below `root`.
fn tree(root: &Path) -> BTreeMap<PathBuf, (&'static str, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (&'static str, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                out.insert(rel, ("dir", Vec::new()));
                walk(root, &path, out);
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(
                    rel,
                    ("symlink", target.as_os_str().as_encoded_bytes().to_vec()),
                );
            } else {
                out.insert(rel, ("file", fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_nothing_cached(cache: &PackCache, digest: &str) {
    assert!(!cache.contains(digest), "{digest} must not be cached");
    assert_eq!(
        cache.layer_of_content(digest).unwrap(),
        None,
        "{digest} must not be in the content index"
    );
    assert!(
        cache.temp_files().unwrap().is_empty(),
        "temporary files left in the cache: {:?}",
        cache.temp_files().unwrap()
    );
}

/// No staging folders left next to a pull destination.
fn assert_no_staging_left(parent: &Path) {
    let leftovers: Vec<String> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".strata"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

// ---------------------------------------------------------------------------------------
// Raw registry access, for artifacts Strata would never push.
// ---------------------------------------------------------------------------------------

async fn raw_push_blob(registry: &TestRegistry, repository: &str, blob: &[u8]) -> String {
    let client = registry.http_client().unwrap();
    let digest = sha256_digest(blob);
    let response = client
        .post(format!("{}/v2/{repository}/blobs/uploads/", registry.url()))
        .basic_auth(registry.username(), Some(registry.password()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let mut location = Url::parse(registry.url()).unwrap().join(&location).unwrap();
    location.query_pairs_mut().append_pair("digest", &digest);
    let response = client
        .put(location)
        .basic_auth(registry.username(), Some(registry.password()))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    digest
}

async fn raw_put_manifest(
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
    media_type: &str,
    manifest: &serde_json::Value,
) {
    let response = registry
        .http_client()
        .unwrap()
        .put(format!(
            "{}/v2/{repository}/manifests/{tag}",
            registry.url()
        ))
        .basic_auth(registry.username(), Some(registry.password()))
        .header(CONTENT_TYPE, media_type)
        .body(serde_json::to_vec(manifest).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
}

/// Pushes an oras-style artifact with the given (title, blob) layers; returns the
/// manifest.
async fn raw_push_artifact(
    registry: &TestRegistry,
    name: &str,
    tag: &str,
    layers: &[(Option<&str>, &[u8])],
) -> serde_json::Value {
    let repository = format!("{BASE}/spectro-packs/archive/{name}");
    let config_digest = raw_push_blob(registry, &repository, b"{}").await;
    let mut descriptors = Vec::new();
    for (title, blob) in layers {
        let digest = raw_push_blob(registry, &repository, blob).await;
        let mut descriptor = serde_json::json!({
            "mediaType": PACK_LAYER_MEDIA_TYPE,
            "digest": digest,
            "size": blob.len(),
        });
        if let Some(title) = title {
            descriptor["annotations"] = serde_json::json!({ TITLE_ANNOTATION: title });
        }
        descriptors.push(descriptor);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": PACK_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": 2 },
        "layers": descriptors,
    });
    raw_put_manifest(registry, &repository, tag, OCI_MANIFEST, &manifest).await;
    manifest
}

/// One entry of a hand-made tar archive. Headers are written byte by byte because the
/// tar crate refuses to write the hostile paths these tests need.
enum RawEntry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn tar_gz(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gzip);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (path, data, link): (&str, &[u8], Option<&str>) = match entry {
            RawEntry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (path, &[], None)
            }
            RawEntry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                (path, data, None)
            }
            RawEntry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                (path, &[], Some(target))
            }
        };
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

const MINIMAL_PACK_JSON: &[u8] =
    br#"{"name": "evil", "displayName": "Evil", "version": "1.0.0", "layer": "os"}"#;

// ---------------------------------------------------------------------------------------
// A fake registry: a tiny HTTP/1.1 responder, one request per connection.
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
enum Reply {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Declares `declared` bytes, sends `body`, closes the connection.
    Cut { declared: usize, body: Vec<u8> },
    /// `reply` with a `Location` header.
    Located { reply: Box<Reply>, location: String },
}

impl Reply {
    fn with_location(self, location: &str) -> Reply {
        Reply::Located {
            reply: Box::new(self),
            location: location.to_owned(),
        }
    }

    fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status: 200,
            content_type,
            body,
        }
    }

    fn status(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            content_type: "application/json",
            body: body.as_bytes().to_vec(),
        }
    }
}

type Handler = Arc<dyn Fn(&str, &str) -> Reply + Send + Sync>;

struct FakeRegistry {
    addr: SocketAddr,
    /// "METHOD PATH" of every request, in order.
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeRegistry {
    async fn start(handler: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> FakeRegistry {
        let handler: Handler = Arc::new(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let handler = Arc::clone(&handler);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move { serve(socket, handler, seen).await });
            }
        });
        FakeRegistry {
            addr,
            requests,
            task,
        }
    }

    /// Anonymous: plain HTTP never carries credentials.
    fn client(&self, retry: RetryPolicy) -> PackRegistryClient {
        PackRegistryClient::new(
            address_of(&self.addr.to_string()),
            RegistryOptions {
                plain_http: true,
                retry,
                ..RegistryOptions::default()
            },
        )
        .unwrap()
    }

    fn count(&self, prefix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: tokio::net::TcpStream, handler: Handler, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    drain_body(&mut socket, &mut head).await;
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    seen.lock().unwrap().push(format!("{method} {path}"));
    let mut reply = handler(&method, &path);
    let mut location_header = String::new();
    if let Reply::Located {
        reply: inner,
        location,
    } = reply
    {
        location_header = format!("location: {location}\r\n");
        reply = *inner;
    }
    let (status, content_type, declared, body) = match reply {
        Reply::Full {
            status,
            content_type,
            body,
        } => (status, content_type, body.len(), body),
        Reply::Cut { declared, body } => (200, "application/octet-stream", declared, body),
        Reply::Located { .. } => (500, "text/plain", 0, Vec::new()),
    };
    // A request's body is not read: answered early, a client sending one may see the
    // connection close before it is done.
    let mut response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {declared}\r\n\
         {location_header}docker-distribution-api-version: registry/2.0\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(&body);
    }
    let _ = socket.write_all(&response).await;
    let _ = socket.shutdown().await;
}

/// Reads the rest of a request's body (by its length, or to the end of its chunks), so
/// that the answer is not cut off by a reset for bytes left unread. `received` holds the
/// head and what came with it; bounded in time, as a test's fake.
async fn drain_body(socket: &mut tokio::net::TcpStream, received: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(received).to_lowercase();
    let Some(head_end) = text.find("\r\n\r\n").map(|i| i + 4) else {
        return;
    };
    let length = text[..head_end]
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = text[..head_end].contains("transfer-encoding: chunked");
    let done = |received: &[u8]| match length {
        Some(length) => received.len() >= head_end + length,
        None if chunked => received.ends_with(b"0\r\n\r\n"),
        None => true,
    };
    let mut buf = [0u8; 65536];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !done(received) {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
}

/// The decompressed stream of a gzipped archive.
fn gunzip(archive: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(archive)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A fake registry serving one pack manifest (for `archive`) whose blob is `blob`.
async fn fake_serving(archive: &[u8], blob: Reply) -> (FakeRegistry, String) {
    fake_serving_annotated(archive, blob, None).await
}

/// `fake_serving`, the layer carrying `content_annotation` as Strata's content-digest
/// annotation (which a registry may set to anything).
async fn fake_serving_annotated(
    archive: &[u8],
    blob: Reply,
    content_annotation: Option<&str>,
) -> (FakeRegistry, String) {
    let layer_digest = sha256_digest(archive);
    let mut annotations = serde_json::json!({ TITLE_ANNOTATION: "evil-1.0.0.tar.gz" });
    if let Some(claimed) = content_annotation {
        annotations[CONTENT_DIGEST_ANNOTATION] = claimed.into();
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": PACK_CONFIG_MEDIA_TYPE,
            "digest": sha256_digest(b"{}"),
            "size": 2,
        },
        "layers": [{
            "mediaType": PACK_LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": archive.len(),
            "annotations": annotations,
        }],
    }))
    .unwrap();
    let blob_path = format!("/v2/{BASE}/spectro-packs/archive/evil/blobs/{layer_digest}");
    let fake = FakeRegistry::start(move |_, path| {
        if path == "/v2/" {
            Reply::ok("application/json", b"{}".to_vec())
        } else if path.ends_with("/manifests/1.0.0") {
            Reply::ok(OCI_MANIFEST, manifest.clone())
        } else if path == blob_path {
            blob.clone()
        } else {
            Reply::status(
                404,
                r#"{"errors":[{"code":"NOT_FOUND","message":"nothing here"}]}"#,
            )
        }
    })
    .await;
    (fake, layer_digest)
}

fn minimal_pack_archive() -> Vec<u8> {
    tar_gz(&[
        RawEntry::Dir("evil/"),
        RawEntry::File("evil/pack.json", MINIMAL_PACK_JSON),
        RawEntry::File("evil/values.yaml", b"# nothing\n"),
    ])
}

// ---------------------------------------------------------------------------------------
// Tests against the real registry.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn push_list_inspect_and_pull_round_trip() {
    let registry = start_registry().await;
    let client = client_for(&registry);
    let (_istio_dir, istio) = sample_pack("istio");
    let (_calico_dir, calico) = sample_pack("cni-calico");

    let pushed = client.push(&istio, false).await.unwrap();
    println!(
        "pushed {} digest {} (pack digest {:?}, layer digest {})",
        pushed.descriptor.reference,
        pushed.descriptor.manifest_digest,
        pushed.descriptor.content_digest,
        pushed.descriptor.layer_digest
    );
    assert!(!pushed.replaced);
    let descriptor = &pushed.descriptor;
    assert_eq!(
        descriptor.reference,
        format!(
            "{}/{BASE}/spectro-packs/archive/istio:1.6.2",
            registry.host()
        )
    );
    // The pack's identity is its content digest; the layer is its archive as it travels.
    assert_eq!(descriptor.content_digest, Some(istio.digest().unwrap()));
    assert_eq!(
        descriptor.layer_digest,
        sha256_digest(&istio.archive().unwrap())
    );
    assert_ne!(descriptor.layer_digest, istio.digest().unwrap());
    assert_eq!(descriptor.layer_size, istio.archive().unwrap().len() as u64);
    assert_eq!(descriptor.file_name, "istio-1.6.2.tar.gz");
    // The layer went as a stream (one PATCH, as it was archived), then committed.
    let log = std::fs::read_to_string(registry.log_path()).unwrap();
    let patched = log
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "\"PATCH /v2/{BASE}/spectro-packs/archive/istio/blobs/uploads/"
            )) && l.contains("\" 202 ")
        })
        .count();
    assert_eq!(patched, 1, "one streamed PATCH of the layer: {log}");
    client.push(&calico, false).await.unwrap();

    // The manifest as stored: oras' shape, and its digest is what push returned.
    let response = registry
        .http_client()
        .unwrap()
        .get(format!(
            "{}/v2/{BASE}/spectro-packs/archive/istio/manifests/1.6.2",
            registry.url()
        ))
        .basic_auth(registry.username(), Some(registry.password()))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap().to_vec();
    println!("manifest: {}", String::from_utf8_lossy(&body));
    assert_eq!(sha256_digest(&body), descriptor.manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.unknown.config.v1+json",
                "digest": sha256_digest(b"{}"),
                "size": 2,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": descriptor.layer_digest,
                "size": descriptor.layer_size,
                "annotations": {
                    "org.opencontainers.image.title": "istio-1.6.2.tar.gz",
                    "dev.strata.pack.content-digest": istio.digest().unwrap(),
                },
            }],
        })
    );

    // list and versions.
    let listed = client.list().await.unwrap();
    assert_eq!(
        listed,
        BTreeMap::from([
            ("cni-calico".to_owned(), vec!["3.19.0".to_owned()]),
            ("istio".to_owned(), vec!["1.6.2".to_owned()]),
        ])
    );
    assert_eq!(client.versions("istio").await.unwrap(), vec!["1.6.2"]);

    // resolve (which reads no layer, so knows no content digest) and inspect (which
    // computes it from the layer's bytes).
    assert_eq!(
        client.resolve("istio", "1.6.2").await.unwrap(),
        PackDescriptor {
            content_digest: None,
            ..descriptor.clone()
        }
    );
    let (inspected, manifest) = client.inspect("istio", "1.6.2", None).await.unwrap();
    assert_eq!(&inspected, descriptor);
    assert_eq!(manifest.name, "istio");
    assert_eq!(manifest.version, "1.6.2");
    assert_eq!(manifest.charts, istio.manifest.charts);

    // pull: the same files, byte for byte, and the blob cached.
    let work = tempfile::tempdir().unwrap();
    let cache = PackCache::open(&work.path().join("cache")).unwrap();
    let dest = work.path().join("pulled-istio");
    let pulled = client
        .pull("istio", "1.6.2", &dest, Some(&cache))
        .await
        .unwrap();
    assert_eq!(&pulled.descriptor, descriptor);
    assert_eq!(pulled.content_digest, istio.digest().unwrap());
    assert_eq!(pulled.dir, dest);
    assert_eq!(tree(&dest), tree(&istio.dir));
    assert!(cache.contains(&descriptor.layer_digest));
    assert_eq!(
        cache.layer_of_content(&pulled.content_digest).unwrap(),
        Some(descriptor.layer_digest.clone())
    );
    assert!(cache.temp_files().unwrap().is_empty());
    assert_no_staging_left(work.path());
    let (reloaded, _) = Pack::load(&dest);
    assert_eq!(
        Some(reloaded.unwrap().digest().unwrap()),
        descriptor.content_digest
    );

    // Pulling into a folder that is not empty is refused before anything is fetched.
    let error = client
        .pull("istio", "1.6.2", &dest, Some(&cache))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Archive {
                source: ArchiveError::DestinationExists { .. },
                ..
            }
        ),
        "{error}"
    );

    // fetch: the archive itself; from the cache once the registry is gone.
    let bytes = client.fetch(descriptor, Some(&cache)).await.unwrap();
    assert_eq!(bytes, istio.archive().unwrap());
    drop(registry);
    let offline = client.fetch(descriptor, Some(&cache)).await.unwrap();
    assert_eq!(offline, bytes);
    let error = client.fetch(descriptor, None).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 3, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn push_refuses_an_existing_version_unless_forced() {
    let registry = start_registry().await;
    let client = client_for(&registry);
    let (_dir, pack) = sample_pack("csi-hostpath");
    let first = client.push(&pack, false).await.unwrap();
    assert!(!first.replaced);

    let error = client.push(&pack, false).await.unwrap_err();
    match &error {
        RegistryError::Exists { reference } => assert_eq!(reference, &first.descriptor.reference),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert!(error.to_string().contains("force"), "{error}");

    // The same pack again: the same bytes, so the same digests; nothing replaced.
    let again = client.push(&pack, true).await.unwrap();
    assert_eq!(again.descriptor, first.descriptor);
    assert!(!again.replaced);

    // Changed content, forced: replaced, new digests, and a pull gets the new content.
    let values = pack.dir.join("values.yaml");
    let mut file = fs::OpenOptions::new().append(true).open(&values).unwrap();
    writeln!(file, "# changed for the force push test").unwrap();
    drop(file);
    let (changed, _) = Pack::load(&pack.dir);
    let changed = changed.unwrap();
    let replaced = client.push(&changed, true).await.unwrap();
    assert!(replaced.replaced);
    assert_ne!(
        replaced.descriptor.layer_digest,
        first.descriptor.layer_digest
    );
    assert_ne!(
        replaced.descriptor.content_digest,
        first.descriptor.content_digest
    );
    assert_ne!(
        replaced.descriptor.manifest_digest,
        first.descriptor.manifest_digest
    );
    assert_eq!(
        replaced.descriptor.content_digest,
        Some(changed.digest().unwrap())
    );
    assert_eq!(
        replaced.descriptor.layer_digest,
        sha256_digest(&changed.archive().unwrap())
    );
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("p");
    client
        .pull("csi-hostpath", "1.7.3", &dest, None)
        .await
        .unwrap();
    assert_eq!(
        fs::read(dest.join("values.yaml")).unwrap(),
        fs::read(&values).unwrap()
    );
    assert_eq!(
        client.versions("csi-hostpath").await.unwrap(),
        vec!["1.7.3"]
    );
}

/// Plain HTTP is anonymous only: a registry that lets anonymous users push (here through
/// tokens from a plain HTTP token server) works end to end; credentials are refused.
#[tokio::test]
async fn plain_http_registry() {
    let registry = TestRegistry::start(TestRegistryOptions {
        tls: false,
        ..TestRegistryOptions::token(TokenAuth {
            anonymous: Some(vec![AccessRule::everything()]),
            ..TokenAuth::default()
        })
    })
    .await
    .unwrap();
    assert!(registry.ca_pem().is_none());
    let anonymous = RegistryOptions {
        plain_http: true,
        retry: fast_retry(3),
        ..RegistryOptions::default()
    };
    let client = client_with(&registry, anonymous.clone());
    let (_dir, pack) = sample_pack("kubernetes");
    let pushed = client.push(&pack, false).await.unwrap();
    assert_eq!(
        pushed.descriptor.content_digest,
        Some(pack.digest().unwrap())
    );
    assert_eq!(
        pushed.descriptor.layer_digest,
        sha256_digest(&pack.archive().unwrap())
    );
    assert_eq!(
        client.list().await.unwrap(),
        BTreeMap::from([("kubernetes".to_owned(), vec!["1.20.2".to_owned()])])
    );
    let work = tempfile::tempdir().unwrap();
    // An existing empty folder is an acceptable destination.
    let dest = work.path().join("k8s");
    fs::create_dir(&dest).unwrap();
    client
        .pull("kubernetes", "1.20.2", &dest, None)
        .await
        .unwrap();
    assert_eq!(tree(&dest), tree(&pack.dir));

    // Credentials over plain HTTP are refused before anything is sent.
    let error =
        PackRegistryClient::new(address_of(registry.host()), options_for(&registry)).unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsOverPlainHttp { .. }),
        "{error}"
    );

    // Speaking TLS to a plain HTTP registry fails the handshake, which no retry fixes.
    let tls = client_with(
        &registry,
        RegistryOptions {
            plain_http: false,
            ..anonymous
        },
    );
    let error = tls.resolve("kubernetes", "1.20.2").await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 1, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn credentials_wrong_missing_and_from_docker_config() {
    let registry = start_registry().await;
    let (_dir, pack) = sample_pack("kubeflow");

    // From a docker config.json, as `docker login` writes it.
    let config_dir = tempfile::tempdir().unwrap();
    fs::write(
        config_dir.path().join("config.json"),
        registry.docker_config_json(),
    )
    .unwrap();
    let credentials = resolve_credentials(None, registry.host(), Some(config_dir.path())).unwrap();
    assert_eq!(credentials.username(), Some(registry.username()));
    let client = client_with(
        &registry,
        RegistryOptions {
            credentials,
            ..options_for(&registry)
        },
    );
    client.push(&pack, false).await.unwrap();

    // A wrong password: Unauthorized with the user, never the password; not retried.
    let wrong = client_with(
        &registry,
        RegistryOptions {
            credentials: Credentials::Basic {
                username: registry.username().to_owned(),
                password: "not-the-password".to_owned(),
            },
            retry: fast_retry(3),
            ..options_for(&registry)
        },
    );
    for error in [
        wrong.push(&pack, true).await.unwrap_err(),
        wrong.resolve("kubeflow", "1.2.0").await.unwrap_err(),
        wrong.list().await.unwrap_err(),
    ] {
        match &error {
            RegistryError::Unauthorized {
                registry: host,
                username,
            } => {
                assert_eq!(host, registry.host());
                assert_eq!(username.as_deref(), Some(registry.username()));
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains("wrong or missing credentials"),
            "{message}"
        );
        assert!(!message.contains("not-the-password"), "{message}");
    }

    // No credentials at all.
    let anonymous = client_with(
        &registry,
        RegistryOptions {
            credentials: Credentials::Anonymous,
            ..options_for(&registry)
        },
    );
    for error in [
        anonymous.push(&pack, false).await.unwrap_err(),
        anonymous.resolve("kubeflow", "1.2.0").await.unwrap_err(),
        anonymous.versions("kubeflow").await.unwrap_err(),
    ] {
        assert!(
            matches!(error, RegistryError::Unauthorized { username: None, .. }),
            "{error}"
        );
    }

    // A registry whose CA is not trusted: the handshake fails, once.
    let untrusting = client_with(
        &registry,
        RegistryOptions {
            ca_pem: None,
            ..options_for(&registry)
        },
    );
    match untrusting.resolve("kubeflow", "1.2.0").await.unwrap_err() {
        RegistryError::Unreachable {
            attempts,
            last_error,
            ..
        } => {
            assert_eq!(attempts, 1);
            assert!(last_error.contains("certificate"), "{last_error}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_names_and_versions_list_what_exists() {
    let registry = start_registry().await;
    let client = client_for(&registry);
    for name in ["istio", "cni-calico"] {
        let (_dir, pack) = sample_pack(name);
        client.push(&pack, false).await.unwrap();
    }

    match client.resolve("kubeflow", "1.2.0").await.unwrap_err() {
        RegistryError::UnknownPack {
            name, available, ..
        } => {
            assert_eq!(name, "kubeflow");
            assert_eq!(available, vec!["cni-calico", "istio"]);
        }
        other => panic!("expected UnknownPack, got {other:?}"),
    }
    let error = client.resolve("istio", "9.9.9").await.unwrap_err();
    match &error {
        RegistryError::UnknownVersion {
            name,
            version,
            available,
            ..
        } => {
            assert_eq!((name.as_str(), version.as_str()), ("istio", "9.9.9"));
            assert_eq!(available, &vec!["1.6.2".to_owned()]);
        }
        other => panic!("expected UnknownVersion, got {other:?}"),
    }
    assert!(
        error.to_string().contains("versions there: 1.6.2"),
        "{error}"
    );
    assert!(matches!(
        client.versions("nope").await.unwrap_err(),
        RegistryError::UnknownPack { .. }
    ));

    // A failed pull leaves the destination as it was (absent).
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("istio");
    let error = client
        .pull("istio", "9.9.9", &dest, None)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::UnknownVersion { .. }));
    assert!(!dest.exists());

    // Names and versions that cannot be references are refused before any request.
    assert!(matches!(
        client.resolve("Istio", "1.6.2").await.unwrap_err(),
        RegistryError::Address(_)
    ));
    assert!(matches!(
        client.resolve("istio", "1.6.2+build").await.unwrap_err(),
        RegistryError::Address(_)
    ));
}

#[tokio::test]
async fn artifacts_that_are_not_packs() {
    let registry = start_registry().await;
    let client = client_for(&registry);
    let work = tempfile::tempdir().unwrap();
    let cache = PackCache::open(&work.path().join("cache")).unwrap();

    // A tar.gz without pack.json.
    let no_pack_json = tar_gz(&[
        RawEntry::Dir("stuff/"),
        RawEntry::File("stuff/README.md", b"not a pack\n"),
    ]);
    raw_push_artifact(
        &registry,
        "readme",
        "1.0.0",
        &[(Some("readme-1.0.0.tar.gz"), &no_pack_json)],
    )
    .await;
    let dest = work.path().join("readme");
    let error = client
        .pull("readme", "1.0.0", &dest, Some(&cache))
        .await
        .unwrap_err();
    match &error {
        RegistryError::NotAPack { reason, .. } => {
            assert!(reason.contains("no pack.json"), "{reason}");
            assert!(reason.contains("README.md"), "{reason}");
        }
        other => panic!("expected NotAPack, got {other:?}"),
    }
    assert!(!dest.exists());
    assert_nothing_cached(&cache, &sha256_digest(&no_pack_json));
    assert_no_staging_left(work.path());
    assert!(matches!(
        client
            .inspect("readme", "1.0.0", Some(&cache))
            .await
            .unwrap_err(),
        RegistryError::NotAPack { .. }
    ));

    // Two pack archives in one manifest.
    let archive = minimal_pack_archive();
    raw_push_artifact(
        &registry,
        "evil",
        "1.0.0",
        &[(Some("a.tar.gz"), &archive), (Some("b.tar.gz"), b"other")],
    )
    .await;
    match client.resolve("evil", "1.0.0").await.unwrap_err() {
        RegistryError::NotAPack { reason, .. } => {
            assert!(reason.contains("2 layers are titled"), "{reason}");
        }
        other => panic!("expected NotAPack, got {other:?}"),
    }

    // Several layers, none of them an archive.
    raw_push_artifact(
        &registry,
        "evil",
        "1.0.1",
        &[(Some("a.txt"), b"a"), (None, b"b")],
    )
    .await;
    match client.resolve("evil", "1.0.1").await.unwrap_err() {
        RegistryError::NotAPack { reason, .. } => {
            assert!(reason.contains("none of its 2 layers"), "{reason}")
        }
        other => panic!("expected NotAPack, got {other:?}"),
    }

    // An image index.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
    });
    raw_put_manifest(
        &registry,
        &format!("{BASE}/spectro-packs/archive/evil"),
        "2.0.0",
        OCI_INDEX,
        &index,
    )
    .await;
    match client.resolve("evil", "2.0.0").await.unwrap_err() {
        RegistryError::NotAPack { reason, .. } => assert!(reason.contains("index"), "{reason}"),
        other => panic!("expected NotAPack, got {other:?}"),
    }

    // A pack whose pack.json is not the pack the registry names.
    raw_push_artifact(
        &registry,
        "evil",
        "3.0.0",
        &[(Some("evil-3.0.0.tar.gz"), &archive)],
    )
    .await;
    let dest = work.path().join("evil");
    match client
        .pull("evil", "3.0.0", &dest, Some(&cache))
        .await
        .unwrap_err()
    {
        RegistryError::InvalidPack { problems, .. } => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].subject, "pack.json: version");
        }
        other => panic!("expected InvalidPack, got {other:?}"),
    }
    assert!(!dest.exists());
    assert_nothing_cached(&cache, &sha256_digest(&archive));

    // An invalid pack: its findings come back.
    let invalid = tar_gz(&[
        RawEntry::Dir("evil/"),
        RawEntry::File(
            "evil/pack.json",
            br#"{"name": "evil", "displayName": "Evil", "version": "4.0.0", "layer": "addon"}"#,
        ),
        RawEntry::File("evil/values.yaml", b""),
    ]);
    raw_push_artifact(
        &registry,
        "evil",
        "4.0.0",
        &[(Some("evil-4.0.0.tar.gz"), &invalid)],
    )
    .await;
    match client
        .pull("evil", "4.0.0", &dest, Some(&cache))
        .await
        .unwrap_err()
    {
        RegistryError::InvalidPack { problems, .. } => {
            assert!(
                problems.iter().any(|p| p.message.contains("charts")),
                "{problems:?}"
            );
        }
        other => panic!("expected InvalidPack, got {other:?}"),
    }
    assert!(!dest.exists());
    assert_nothing_cached(&cache, &sha256_digest(&invalid));

    // The matching pack pulls fine from the same repository.
    let good = tar_gz(&[
        RawEntry::Dir("evil/"),
        RawEntry::File(
            "evil/pack.json",
            br#"{"name": "evil", "displayName": "Evil", "version": "5.0.0", "layer": "os"}"#,
        ),
        RawEntry::File("evil/values.yaml", b""),
    ]);
    raw_push_artifact(&registry, "evil", "5.0.0", &[(None, &good)]).await;
    let pulled = client
        .pull("evil", "5.0.0", &dest, Some(&cache))
        .await
        .unwrap();
    assert!(pulled.dir.join("pack.json").is_file());
    assert!(cache.contains(&sha256_digest(&good)));
}

#[tokio::test]
async fn hostile_archives_are_refused_and_not_cached() {
    let registry = start_registry().await;
    let client = client_for(&registry);
    let work = tempfile::tempdir().unwrap();
    let cache = PackCache::open(&work.path().join("cache")).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "1.0.1",
            tar_gz(&[
                RawEntry::Dir("evil/"),
                RawEntry::File("evil/pack.json", MINIMAL_PACK_JSON),
                RawEntry::File("evil/values.yaml", b""),
                RawEntry::File("evil/../../escaped", b"owned"),
            ]),
        ),
        (
            "1.0.2",
            tar_gz(&[
                RawEntry::Dir("evil/"),
                RawEntry::File("evil/pack.json", MINIMAL_PACK_JSON),
                RawEntry::File("evil/values.yaml", b""),
                RawEntry::Symlink("evil/passwd", "../../../../etc/passwd"),
            ]),
        ),
        (
            "1.0.3",
            tar_gz(&[
                RawEntry::Dir("evil/"),
                RawEntry::File("evil/pack.json", MINIMAL_PACK_JSON),
                RawEntry::File("evil/values.yaml", b""),
                RawEntry::Symlink("evil/abs", "/etc/passwd"),
            ]),
        ),
    ];
    for (tag, archive) in &cases {
        raw_push_artifact(
            &registry,
            "evil",
            tag,
            &[(Some("evil.tar.gz"), archive.as_slice())],
        )
        .await;
        let dest = work.path().join(format!("evil-{tag}"));
        let error = client
            .pull("evil", tag, &dest, Some(&cache))
            .await
            .unwrap_err();
        match &error {
            RegistryError::Archive { source, .. } => assert!(
                matches!(
                    source,
                    ArchiveError::ParentComponent { .. } | ArchiveError::UnsafeSymlink { .. }
                ),
                "{tag}: {source}"
            ),
            other => panic!("{tag}: expected Archive, got {other:?}"),
        }
        assert!(!dest.exists(), "{tag}");
        assert!(!work.path().join("escaped").exists());
        assert_nothing_cached(&cache, &sha256_digest(archive));
        assert_no_staging_left(work.path());
    }

    // Over the size limit: the blob itself, and content that unpacks past it.
    let (_dir, istio) = sample_pack("istio");
    let big = istio.archive().unwrap();
    // Just under the archive, so that it is refused by one byte.
    let limit = big.len() as u64 - 1;
    let small = client_with(
        &registry,
        RegistryOptions {
            max_pack_bytes: limit,
            ..options_for(&registry)
        },
    );
    client.push(&istio, false).await.unwrap();
    let dest = work.path().join("istio");
    match small
        .pull("istio", "1.6.2", &dest, Some(&cache))
        .await
        .unwrap_err()
    {
        RegistryError::TooLarge { size, limit: l, .. } => {
            assert_eq!(size, big.len() as u64);
            assert_eq!(l, limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Refused whole, with the archive's full size, though its upload had begun.
    match small.push(&istio, true).await.unwrap_err() {
        RegistryError::TooLarge { size, limit: l, .. } => {
            assert_eq!(size, big.len() as u64);
            assert_eq!(l, limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_nothing_cached(&cache, &sha256_digest(&big));
    assert_nothing_cached(&cache, &istio.digest().unwrap());
    assert!(!dest.exists());

    let zeros = vec![0u8; 1024 * 1024];
    let bomb = tar_gz(&[
        RawEntry::Dir("evil/"),
        RawEntry::File("evil/pack.json", MINIMAL_PACK_JSON),
        RawEntry::File("evil/values.yaml", b""),
        RawEntry::File("evil/zeros", &zeros),
    ]);
    assert!(
        (bomb.len() as u64) < limit,
        "bomb {} limit {limit}",
        bomb.len()
    );
    raw_push_artifact(&registry, "evil", "1.0.4", &[(Some("evil.tar.gz"), &bomb)]).await;
    let dest = work.path().join("bomb");
    match small
        .pull("evil", "1.0.4", &dest, Some(&cache))
        .await
        .unwrap_err()
    {
        RegistryError::Archive { source, .. } => assert!(
            matches!(
                source,
                ArchiveError::FileTooLarge { .. } | ArchiveError::TotalTooLarge { .. }
            ),
            "{source}"
        ),
        other => panic!("expected Archive, got {other:?}"),
    }
    assert!(!dest.exists());
    assert_nothing_cached(&cache, &sha256_digest(&bomb));
    assert_no_staging_left(work.path());
}

// ---------------------------------------------------------------------------------------
// Tests against fake registries.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn forbidden_is_not_unauthorized() {
    let fake = FakeRegistry::start(|_, path| {
        if path == "/v2/" {
            Reply::ok("application/json", b"{}".to_vec())
        } else if path.contains("/plain/") {
            // 403 without an OCI error body.
            Reply::status(403, "forbidden")
        } else {
            Reply::status(
                403,
                r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
            )
        }
    })
    .await;
    let client = fake.client(fast_retry(3));
    let (_dir, pack) = sample_pack("golden-ubuntu-vsphere");
    for error in [
        client.resolve("istio", "1.6.2").await.unwrap_err(),
        client.push(&pack, false).await.unwrap_err(),
    ] {
        match &error {
            RegistryError::Forbidden {
                registry,
                repository,
                username,
            } => {
                assert_eq!(registry, &fake.addr.to_string());
                assert!(
                    repository.starts_with(&format!("{BASE}/spectro-packs/archive/")),
                    "{repository}"
                );
                assert_eq!(username.as_deref(), None);
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains("an anonymous user may not access"),
            "{message}"
        );
    }
    // Not retried: one manifest request per call.
    assert_eq!(
        fake.count("GET /v2/team/spectro-packs/archive/istio/manifests"),
        1
    );

    let plain = PackRegistryClient::new(
        format!("{}/plain", fake.addr).parse().unwrap(),
        RegistryOptions {
            plain_http: true,
            retry: fast_retry(3),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    let error = plain.resolve("istio", "1.6.2").await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Forbidden { username: None, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("an anonymous user may not access")
    );
}

#[tokio::test]
async fn a_registry_that_refuses_the_streamed_upload_gets_the_layer_whole() {
    let fake = FakeRegistry::start(|method, path| {
        let upload = |location: &str| {
            Reply::Full {
                status: 202,
                content_type: "text/plain",
                body: Vec::new(),
            }
            .with_location(location)
        };
        match method {
            _ if path == "/v2/" => Reply::ok("application/json", b"{}".to_vec()),
            "GET" | "HEAD" if path.contains("/manifests/") => Reply::status(
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
            "POST" => upload("/v2/upload/session-1"),
            // A registry that only takes a blob in one piece.
            "PATCH" => Reply::status(405, "method not allowed"),
            "PUT" if path.starts_with("/v2/upload/session-1?digest=") => Reply::Full {
                status: 201,
                content_type: "text/plain",
                body: Vec::new(),
            }
            .with_location("/v2/blob"),
            "PUT" if path.contains("/manifests/") => Reply::Full {
                status: 201,
                content_type: "text/plain",
                body: Vec::new(),
            }
            .with_location("/v2/manifest"),
            _ => Reply::status(400, "unexpected"),
        }
    })
    .await;
    let client = fake.client(fast_retry(1));
    let (_dir, pack) = sample_pack("golden-ubuntu-vsphere");
    let pushed = client.push(&pack, false).await.unwrap();
    assert_eq!(
        pushed.descriptor.layer_digest,
        sha256_digest(&pack.archive().unwrap())
    );
    let requests = fake.requests.lock().unwrap().clone();
    let layer_put = format!(
        "PUT /v2/upload/session-1?digest={}",
        pushed.descriptor.layer_digest
    )
    .replace(':', "%3A");
    assert_eq!(fake.count("PATCH /v2/upload/session-1"), 1, "{requests:?}");
    let after_patch = requests
        .iter()
        .skip_while(|r| !r.starts_with("PATCH "))
        .any(|r| r == &layer_put);
    assert!(after_patch, "the layer was then put whole: {requests:?}");
    assert_eq!(
        fake.count(&format!("PUT /v2/{BASE}/spectro-packs/archive/")),
        1,
        "{requests:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_unreachable() {
    let fake = FakeRegistry::start(|_, path| {
        if path == "/v2/" {
            Reply::ok("application/json", b"{}".to_vec())
        } else {
            Reply::status(503, "try later")
        }
    })
    .await;
    let client = fake.client(fast_retry(3));
    match client.resolve("istio", "1.6.2").await.unwrap_err() {
        RegistryError::Unreachable {
            attempts,
            last_error,
            ..
        } => {
            assert_eq!(attempts, 3);
            assert!(last_error.contains("503"), "{last_error}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert_eq!(
        fake.count("GET /v2/team/spectro-packs/archive/istio/manifests"),
        3
    );
}

#[tokio::test]
async fn unreachable_registry_after_the_retry_attempts() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = PackRegistryClient::new(
        address_of(&addr.to_string()),
        RegistryOptions {
            plain_http: true,
            retry: RetryPolicy {
                attempts: 4,
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(100),
            },
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    let error = client.resolve("istio", "1.6.2").await.unwrap_err();
    match &error {
        RegistryError::Unreachable {
            registry,
            attempts,
            last_error,
        } => {
            assert_eq!(registry, &addr.to_string());
            assert_eq!(*attempts, 4);
            assert!(
                last_error.to_lowercase().contains("connect")
                    || last_error.to_lowercase().contains("refused"),
                "{last_error}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // Three backoff sleeps of at least 50, 100 and 100 ms happened.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("after 4 attempt(s)"), "{error}");
}

#[tokio::test]
async fn digest_mismatch_and_truncated_blobs_are_not_cached() {
    let archive = minimal_pack_archive();
    let work = tempfile::tempdir().unwrap();
    let cache = PackCache::open(&work.path().join("cache")).unwrap();

    // The same length, different bytes.
    let mut wrong = archive.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    let (fake, digest) = fake_serving(
        &archive,
        Reply::ok("application/octet-stream", wrong.clone()),
    )
    .await;
    let client = fake.client(fast_retry(3));
    let dest = work.path().join("evil");
    match client
        .pull("evil", "1.0.0", &dest, Some(&cache))
        .await
        .unwrap_err()
    {
        RegistryError::DigestMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, digest);
            assert_eq!(found, sha256_digest(&wrong));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(!dest.exists());
    assert_nothing_cached(&cache, &digest);
    // fetch() caches verified blobs only.
    let descriptor = client.resolve("evil", "1.0.0").await.unwrap();
    assert!(matches!(
        client.fetch(&descriptor, Some(&cache)).await.unwrap_err(),
        RegistryError::DigestMismatch { .. }
    ));
    assert_nothing_cached(&cache, &digest);
    // A mismatch is the content's fault, not the network's: never retried.
    assert_eq!(
        fake.count("GET /v2/team/spectro-packs/archive/evil/blobs/"),
        2
    );
    drop(fake);

    // The connection closes halfway through the blob.
    let half = archive[..archive.len() / 2].to_vec();
    let (fake, digest) = fake_serving(
        &archive,
        Reply::Cut {
            declared: archive.len(),
            body: half.clone(),
        },
    )
    .await;
    let client = fake.client(fast_retry(3));
    match client
        .pull("evil", "1.0.0", &dest, Some(&cache))
        .await
        .unwrap_err()
    {
        RegistryError::Truncated {
            expected, found, ..
        } => {
            assert_eq!(expected, archive.len() as u64);
            assert_eq!(found, half.len() as u64);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // A cut connection may be the network's fault: retried.
    assert_eq!(
        fake.count("GET /v2/team/spectro-packs/archive/evil/blobs/"),
        3
    );
    assert!(!dest.exists());
    assert_nothing_cached(&cache, &digest);
    drop(fake);

    // A short body that ends cleanly (a lying Content-Length) is truncated too.
    let (fake, digest) = fake_serving(
        &archive,
        Reply::ok("application/octet-stream", half.clone()),
    )
    .await;
    let client = fake.client(fast_retry(2));
    let descriptor = client.resolve("evil", "1.0.0").await.unwrap();
    assert!(matches!(
        client.fetch(&descriptor, Some(&cache)).await.unwrap_err(),
        RegistryError::Truncated { .. }
    ));
    assert_nothing_cached(&cache, &digest);
    drop(fake);

    // And the right blob goes through and is cached.
    let (fake, digest) = fake_serving(
        &archive,
        Reply::ok("application/octet-stream", archive.clone()),
    )
    .await;
    let client = fake.client(fast_retry(2));
    let pulled = client
        .pull("evil", "1.0.0", &dest, Some(&cache))
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.layer_digest, digest);
    assert!(cache.contains(&digest));
    assert!(dest.join("pack.json").is_file());
    let kept: BTreeSet<String> = BTreeSet::new();
    assert_eq!(cache.collect_garbage(&kept).unwrap().removed, vec![digest]);
}

/// What a site does with a revision's pin: pulls the pack only when the registry still
/// serves the pinned archive, caches it, and later gets it from its cache alone with the
/// registry gone; with neither, the error names the registry.
#[tokio::test]
async fn pinned_pulls_verify_the_pin_and_work_from_the_cache_alone() {
    let registry = start_registry().await;
    let client = client_for(&registry);
    let (_dir, pack) = sample_pack("csi-hostpath");
    let pushed = client.push(&pack, false).await.unwrap();
    // A revision pins the content digest.
    let pinned = pack.digest().unwrap();
    assert_eq!(
        pushed.descriptor.content_digest.as_deref(),
        Some(pinned.as_str())
    );
    let layer = pushed.descriptor.layer_digest.clone();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = PackCache::open(cache_dir.path()).unwrap();
    let work = tempfile::tempdir().unwrap();

    // A pin the registry no longer serves (the tag was pushed again): the content found is
    // named, and nothing is cached or unpacked.
    let stale = format!("sha256:{}", "0".repeat(64));
    let dest = work.path().join("stale");
    let error = client
        .pull_pinned("csi-hostpath", "1.7.3", &stale, &dest, Some(&cache))
        .await
        .unwrap_err();
    match &error {
        RegistryError::PinChanged {
            reference,
            pinned: p,
            found,
        } => {
            assert_eq!(reference, &pushed.descriptor.reference);
            assert_eq!(p, &stale);
            assert_eq!(found, &pinned);
        }
        other => panic!("expected PinChanged, got {other:?}"),
    }
    assert!(!dest.exists());
    assert!(cache.entries().unwrap().is_empty());
    assert_nothing_cached(&cache, &pinned);
    assert_no_staging_left(work.path());

    // The right pin: from the registry, then cached.
    let dest = work.path().join("first");
    let first = client
        .pull_pinned("csi-hostpath", "1.7.3", &pinned, &dest, Some(&cache))
        .await
        .unwrap();
    assert!(!first.from_cache);
    assert!(!first.legacy_pin);
    assert_eq!(first.content_digest, pinned);
    assert_eq!(tree(&dest), tree(&pack.dir));
    assert!(cache.contains(&layer));
    assert_eq!(
        cache.layer_of_content(&pinned).unwrap(),
        Some(layer.clone())
    );

    // The registry gone: the cache alone serves the pin.
    let host = registry.host().to_owned();
    registry.stop().unwrap();
    let dest = work.path().join("offline");
    let offline = client
        .pull_pinned("csi-hostpath", "1.7.3", &pinned, &dest, Some(&cache))
        .await
        .unwrap();
    assert!(offline.from_cache);
    assert_eq!(offline.content_digest, pinned);
    assert_eq!(tree(&dest), tree(&pack.dir));

    // A corrupt cache entry is not served: it is removed, and with the registry gone the
    // pull fails naming the registry.
    fs::write(cache.path_of(&layer).unwrap(), b"not the pack").unwrap();
    let dest = work.path().join("corrupt");
    let error = client
        .pull_pinned("csi-hostpath", "1.7.3", &pinned, &dest, Some(&cache))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegistryError::Unreachable { registry: r, .. } if *r == host),
        "{error:?}"
    );
    assert!(!cache.contains(&layer));
    assert!(!dest.exists());
    assert_no_staging_left(work.path());
}

/// The pin is checked against what the layer unpacks to, hashed here: the registry's
/// content-digest annotation is not evidence either way. A legacy pin (the layer digest,
/// what revisions made before content digests hold) is honoured, from the registry and
/// from the cache; a damaged cache index costs a download, never a wrong pack; blobs
/// cached before the index existed still serve content pins with no registry.
#[tokio::test]
async fn pinned_pulls_check_the_content_never_the_annotation_and_honour_legacy_pins() {
    let archive = minimal_pack_archive();
    let content = sha256_digest(&gunzip(&archive));
    let other = tar_gz(&[
        RawEntry::Dir("evil/"),
        RawEntry::File("evil/pack.json", MINIMAL_PACK_JSON),
        RawEntry::File("evil/values.yaml", b"# something else\n"),
    ]);
    let other_content = sha256_digest(&gunzip(&other));
    assert_ne!(content, other_content);
    let work = tempfile::tempdir().unwrap();
    let cache = PackCache::open(&work.path().join("cache")).unwrap();

    // The annotation names the pin, the layer holds other content: refused, naming both
    // content digests; nothing unpacked, nothing cached.
    let (fake, other_layer) = fake_serving_annotated(
        &other,
        Reply::ok("application/octet-stream", other.clone()),
        Some(&content),
    )
    .await;
    let client = fake.client(fast_retry(2));
    let dest = work.path().join("lying");
    let error = client
        .pull_pinned("evil", "1.0.0", &content, &dest, Some(&cache))
        .await
        .unwrap_err();
    match &error {
        RegistryError::PinChanged { pinned, found, .. } => {
            assert_eq!(pinned, &content);
            assert_eq!(found, &other_content);
        }
        other => panic!("expected PinChanged, got {other:?}"),
    }
    assert!(
        error.to_string().contains("the tag was pushed again"),
        "{error}"
    );
    assert!(!dest.exists());
    assert!(cache.entries().unwrap().is_empty());
    assert_nothing_cached(&cache, &other_layer);
    assert_nothing_cached(&cache, &content);
    assert_no_staging_left(work.path());
    drop(fake);

    // The annotation names something else, the layer holds the pinned content: pulled.
    let (fake, layer) = fake_serving_annotated(
        &archive,
        Reply::ok("application/octet-stream", archive.clone()),
        Some(&format!("sha256:{}", "0".repeat(64))),
    )
    .await;
    let client = fake.client(fast_retry(2));
    let dest = work.path().join("content-pin");
    let pulled = client
        .pull_pinned("evil", "1.0.0", &content, &dest, Some(&cache))
        .await
        .unwrap();
    assert!(!pulled.from_cache && !pulled.legacy_pin);
    assert_eq!(pulled.content_digest, content);
    assert!(dest.join("pack.json").is_file());
    assert!(cache.contains(&layer));
    assert_eq!(
        cache.layer_of_content(&content).unwrap(),
        Some(layer.clone())
    );

    // A legacy pin, from the registry (with a cache of its own): the exact layer, accepted.
    let legacy_cache = PackCache::open(&work.path().join("legacy-cache")).unwrap();
    let dest = work.path().join("legacy-pin");
    let pulled = client
        .pull_pinned("evil", "1.0.0", &layer, &dest, Some(&legacy_cache))
        .await
        .unwrap();
    assert!(!pulled.from_cache && pulled.legacy_pin);
    assert_eq!(pulled.content_digest, content);
    assert!(legacy_cache.contains(&layer));
    // The registry gone: both kinds of pin from the cache alone.
    drop(fake);
    for (pin, legacy) in [(&content, false), (&layer, true)] {
        let dest = work.path().join(format!("offline-{legacy}"));
        let pulled = client
            .pull_pinned("evil", "1.0.0", pin, &dest, Some(&cache))
            .await
            .unwrap();
        assert!(pulled.from_cache, "{pin}");
        assert_eq!(pulled.legacy_pin, legacy, "{pin}");
        assert_eq!(pulled.content_digest, content);
        assert!(dest.join("pack.json").is_file());
    }
    // A pin the cache cannot serve, offline: not served by anything else.
    let dest = work.path().join("unknown-pin");
    let error = client
        .pull_pinned("evil", "1.0.0", &other_content, &dest, Some(&cache))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(!dest.exists());

    // A damaged index: the entry for `content` names a valid blob of other content. The
    // blob unpacks to the wrong content, so the entry is dropped and the registry asked.
    cache.put(&other_layer, &other).unwrap();
    cache.record_content(&content, &other_layer).unwrap();
    let (fake, _) = fake_serving(
        &archive,
        Reply::ok("application/octet-stream", archive.clone()),
    )
    .await;
    let client = fake.client(fast_retry(2));
    let dest = work.path().join("damaged-index");
    let pulled = client
        .pull_pinned("evil", "1.0.0", &content, &dest, Some(&cache))
        .await
        .unwrap();
    assert!(!pulled.from_cache);
    assert_eq!(pulled.content_digest, content);
    assert_eq!(
        fs::read(dest.join("values.yaml")).unwrap(),
        b"# nothing\n",
        "the pinned pack, not the blob the damaged index named"
    );
    assert_eq!(
        cache.layer_of_content(&content).unwrap(),
        Some(layer.clone())
    );
    drop(fake);

    // A cache written before content digests (the blob alone, no index) serves a content
    // pin with no registry: the blob is indexed from its bytes on first need.
    let old_scheme = PackCache::open(&work.path().join("old-cache")).unwrap();
    old_scheme.put(&layer, &archive).unwrap();
    let dest = work.path().join("old-scheme");
    let pulled = client
        .pull_pinned("evil", "1.0.0", &content, &dest, Some(&old_scheme))
        .await
        .unwrap();
    assert!(pulled.from_cache && !pulled.legacy_pin);
    assert_eq!(old_scheme.layer_of_content(&content).unwrap(), Some(layer));
    assert_no_staging_left(work.path());
}
