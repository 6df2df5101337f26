//! Push and pull a ~50 MB pack with Strata's registry client and with the ORAS Python SDK,
//! against the test registry (distribution 2.8, TLS from its own CA, Basic credentials),
//! and print the medians and the Strata/ORAS ratios. A benchmark, not a test: nothing is
//! asserted about time.
//!
//!     cargo bench -p strata-e2e --bench registry_push_pull
//!
//! Needs what `scripts/install-test-deps.sh` installs (docker-registry, the SDK's venv).
//! `STRATA_BENCH_RUNS` changes the number of runs (default 3), `STRATA_BENCH_MB` the size
//! of the random payload in MiB (default 50).
//!
//! # Fresh content for every push
//!
//! Registries store blobs by digest, and clients skip what is already there (the ORAS SDK
//! sends `HEAD /v2/<repo>/blobs/<digest>` first and uploads nothing on 200). Re-pushing
//! one pack would then time a few small requests. Each push (3 by Strata, 3 by the SDK)
//! therefore gets a pack of its own, with its own random payload, to a repository of its
//! own: every push uploads the whole archive, and no registry deduplication, no client
//! skip and no cross-repository mount can shorten it. Each pull reads the pack its tool
//! pushed, into a fresh folder, with no cache.
//!
//! # What is timed
//!
//! - Strata push: `PackRegistryClient::push(&Pack)`, which archives the folder
//!   (tar + gzip) and uploads (manifest check, layer, config, manifest). The archiving
//!   alone is also timed (`Pack::archive`), so the upload part can be told apart.
//! - SDK push: `Registry.push()` of that same kind of archive (`<name>-<version>.tar.gz`,
//!   made beforehand by `Pack::archive`, as `tar -czf` would), timed inside Python (the
//!   SDK call) and around the process (with interpreter start-up and imports).
//! - Strata pull: `PackRegistryClient::pull` (manifest, download with digest check,
//!   unpack into a fresh folder, pack validation). `fetch` (download + digest check only)
//!   is timed too, as the SDK's pull does no more than that.
//! - SDK pull: `Registry.pull()` into a fresh folder (writes the archive file, no untar).
//!
//! The ratios compare Strata with the SDK call (interpreter start-up excluded); below 1
//! Strata is faster. MB/s are archive bytes (10^6 bytes per MB) per second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use strata_e2e::bench_table::BenchRow;
use strata_e2e::registry::{RegistryOptions, TestRegistry};
use strata_shared::pack::Pack;
use strata_shared::registry::client::{self as pack_client, PackRegistryClient};
use strata_shared::registry::credentials::Credentials;

const BASE: &str = "bench";
const VERSION: &str = "1.0.0";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

fn oras_python() -> PathBuf {
    // Fails (never skips) when the SDK is not installed.
    strata_e2e::binaries::oras_python().unwrap_or_else(|e| panic!("{e}"))
}

fn fixture_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oras_interop.py")
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A valid addon pack `name` with a manifest, and a chart archive holding `payload_bytes`
/// of fresh random data (incompressible, so the pack archive is about that size).
fn make_pack(root: &Path, name: &str, payload_bytes: usize) -> Pack {
    let dir = root.join(name);
    write(
        &dir.join("pack.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "name": name,
            "displayName": "Benchmark pack",
            "version": VERSION,
            "layer": "addon",
            "addonType": "system app",
            "cloudTypes": ["all"],
            "charts": ["charts/payload-1.0.0.tgz"],
            "kubeManifests": ["manifests/settings.yaml"],
        }))
        .unwrap()
        .as_bytes(),
    );
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/packs/istio/logo.png"),
        dir.join("logo.png"),
    )
    .unwrap();
    write(
        &dir.join("values.yaml"),
        b"pack:\n  namespace: bench\ncharts:\n  payload:\n    replicaCount: 1\n\
          manifests:\n  settings:\n    greeting: hello\n",
    );
    write(
        &dir.join("manifests/settings.yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-settings\n  \
          namespace: bench\ndata:\n  greeting: hello\n",
    );

    // The chart, packed like `helm package` would: payload/ in a .tgz.
    let chart_src = root.join(format!("{name}-chart"));
    write(
        &chart_src.join("payload/Chart.yaml"),
        b"apiVersion: v2\nname: payload\nversion: 1.0.0\ntype: application\n",
    );
    write(&chart_src.join("payload/values.yaml"), b"replicaCount: 1\n");
    write(
        &chart_src.join("payload/templates/configmap.yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: payload\ndata:\n  \
          replicas: \"{{ .Values.replicaCount }}\"\n",
    );
    let mut random = vec![0u8; payload_bytes];
    SystemRandom::new().fill(&mut random).unwrap();
    write(&chart_src.join("payload/files/payload.bin"), &random);
    drop(random);
    std::fs::create_dir_all(dir.join("charts")).unwrap();
    let tgz = dir.join("charts/payload-1.0.0.tgz");
    run(
        &chart_src,
        "tar",
        &["-czf", tgz.to_str().unwrap(), "payload"],
    );
    std::fs::remove_dir_all(&chart_src).unwrap();

    let (pack, findings) = Pack::load(&dir);
    pack.unwrap_or_else(|| panic!("the benchmark pack is not valid: {findings:?}"))
}

struct SdkRun {
    process: Duration,
    call: Duration,
    result: serde_json::Value,
}

fn sdk(registry: &TestRegistry, command: &str, reference: &str, path: &Path) -> SdkRun {
    let started = Instant::now();
    let output = Command::new(oras_python())
        .arg(fixture_script())
        .arg(command)
        .arg("--registry")
        .arg(registry.host())
        .arg("--ca")
        .arg(registry.ca_file().unwrap())
        .arg("--user")
        .arg(registry.username())
        .arg("--password")
        .arg(registry.password())
        .arg(reference)
        .arg(path)
        .output()
        .unwrap();
    let process = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "oras_interop.py {command} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    let call = Duration::from_secs_f64(result["seconds"].as_f64().unwrap());
    SdkRun {
        process,
        call,
        result,
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

struct Row {
    label: &'static str,
    times: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let runs = env_number("STRATA_BENCH_RUNS", 3);
    let payload_mib = env_number("STRATA_BENCH_MB", 50);
    let payload_bytes = payload_mib << 20;

    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let address = format!("{}/{BASE}", registry.host()).parse().unwrap();
    let client = PackRegistryClient::new(
        address,
        pack_client::RegistryOptions {
            ca_pem: registry.ca_pem().map(str::to_owned),
            credentials: Credentials::Basic {
                username: registry.username().to_owned(),
                password: registry.password().to_owned(),
            },
            ..pack_client::RegistryOptions::default()
        },
    )
    .unwrap();
    let work = tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir()
        .unwrap();

    // Fresh packs for every push (see the module documentation); made before any timing.
    eprintln!(
        "building {} packs with {payload_mib} MiB of random data each…",
        2 * runs
    );
    let strata_packs: Vec<Pack> = (0..runs)
        .map(|i| {
            make_pack(
                &work.path().join("src"),
                &format!("strata-bench-{i}"),
                payload_bytes,
            )
        })
        .collect();
    let oras_archives: Vec<(String, PathBuf, usize)> = (0..runs)
        .map(|i| {
            let name = format!("oras-bench-{i}");
            let pack = make_pack(&work.path().join("src"), &name, payload_bytes);
            let bytes = pack.archive().unwrap();
            let file = work
                .path()
                .join(format!("oras-archives/{i}/{name}-{VERSION}.tar.gz"));
            write(&file, &bytes);
            (name, file, bytes.len())
        })
        .collect();

    let mut archive = Row {
        label: "strata archive only (Pack::archive)",
        times: Vec::new(),
    };
    let mut strata_push = Row {
        label: "strata push (archive + upload)",
        times: Vec::new(),
    };
    let mut strata_pull = Row {
        label: "strata pull (download, verify, unpack, validate)",
        times: Vec::new(),
    };
    let mut strata_fetch = Row {
        label: "strata fetch (download, verify; no unpack)",
        times: Vec::new(),
    };
    let mut oras_push = Row {
        label: "oras-py push (SDK call)",
        times: Vec::new(),
    };
    let mut oras_push_process = Row {
        label: "oras-py push (whole python process)",
        times: Vec::new(),
    };
    let mut oras_pull = Row {
        label: "oras-py pull (SDK call; writes the file)",
        times: Vec::new(),
    };
    let mut oras_pull_process = Row {
        label: "oras-py pull (whole python process)",
        times: Vec::new(),
    };
    let mut strata_sizes = Vec::new();

    for i in 0..runs {
        eprintln!("run {}/{runs}", i + 1);
        let pack = &strata_packs[i];
        let name = pack.manifest.name.clone();

        let started = Instant::now();
        let bytes = pack.archive().unwrap();
        archive.times.push(started.elapsed());
        strata_sizes.push(bytes.len());
        drop(bytes);

        let started = Instant::now();
        let pushed = client.push(pack, false).await.unwrap();
        strata_push.times.push(started.elapsed());

        let dest = work.path().join(format!("strata-pulled/{i}"));
        std::fs::create_dir_all(&dest).unwrap();
        let started = Instant::now();
        let pulled = client
            .pull(&name, VERSION, &dest.join(&name), None)
            .await
            .unwrap();
        strata_pull.times.push(started.elapsed());
        assert_eq!(
            pulled.descriptor.layer_digest,
            pushed.descriptor.layer_digest
        );
        assert_eq!(
            Some(&pulled.content_digest),
            pushed.descriptor.content_digest.as_ref()
        );
        std::fs::remove_dir_all(&dest).unwrap();

        let started = Instant::now();
        let fetched = client.fetch(&pushed.descriptor, None).await.unwrap();
        strata_fetch.times.push(started.elapsed());
        assert_eq!(fetched.len() as u64, pushed.descriptor.layer_size);
        drop(fetched);

        let (oras_name, file, size) = &oras_archives[i];
        let reference = format!("{BASE}/spectro-packs/archive/{oras_name}:{VERSION}");
        let pushed = sdk(&registry, "push", &reference, file);
        assert_eq!(pushed.result["status"], 201, "{}", pushed.result);
        assert_eq!(pushed.result["size"].as_u64(), Some(*size as u64));
        oras_push.times.push(pushed.call);
        oras_push_process.times.push(pushed.process);

        let outdir = work.path().join(format!("oras-pulled/{i}"));
        let pulled = sdk(&registry, "pull", &reference, &outdir);
        assert_eq!(
            pulled.result["files"][0]["digest"], pushed.result["layer_digest"],
            "{}",
            pulled.result
        );
        oras_pull.times.push(pulled.call);
        oras_pull_process.times.push(pulled.process);
        std::fs::remove_dir_all(&outdir).unwrap();
    }

    let mb = |bytes: usize| bytes as f64 / 1e6;
    let strata_mb = mb(strata_sizes.iter().sum::<usize>() / strata_sizes.len());
    let oras_mb = mb(oras_archives.iter().map(|(_, _, s)| s).sum::<usize>() / runs);
    let version = Command::new(oras_python())
        .args(["-c", "import oras.version; print(oras.version.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    println!();
    println!(
        "registry_push_pull: distribution 2.8 on loopback (TLS, Basic auth), ORAS Python SDK {version}"
    );
    println!(
        "pack archives: {strata_mb:.1} MB (Strata's), {oras_mb:.1} MB (the SDK's); \
         {payload_mib} MiB of random data each; {runs} runs; fresh content and repository per push"
    );
    println!();
    let mut header = format!("{:<50}", "");
    for i in 0..runs {
        header.push_str(&format!("{:>9}", format!("run {}", i + 1)));
    }
    header.push_str(&format!("{:>9}{:>9}", "median", "MB/s"));
    println!("{header}");
    let rows: [(&Row, f64); 8] = [
        (&archive, strata_mb),
        (&strata_push, strata_mb),
        (&oras_push, oras_mb),
        (&oras_push_process, oras_mb),
        (&strata_pull, strata_mb),
        (&strata_fetch, strata_mb),
        (&oras_pull, oras_mb),
        (&oras_pull_process, oras_mb),
    ];
    for (row, size) in rows {
        let mut line = format!("{:<50}", row.label);
        for time in &row.times {
            line.push_str(&format!("{:>8.3}s", time.as_secs_f64()));
        }
        let m = median(&row.times).as_secs_f64();
        line.push_str(&format!("{:>8.3}s{:>9.1}", m, size / m));
        println!("{line}");
    }
    let ratio = |a: &Row, b: &Row| median(&a.times).as_secs_f64() / median(&b.times).as_secs_f64();
    println!();
    println!("ratios of medians, Strata / ORAS SDK call (below 1: Strata faster):");
    println!(
        "  push: {:.2}  (Strata's upload alone, push minus archiving: {:.2})",
        ratio(&strata_push, &oras_push),
        (median(&strata_push.times).as_secs_f64() - median(&archive.times).as_secs_f64())
            / median(&oras_push.times).as_secs_f64()
    );
    println!(
        "  pull: {:.2}  (Strata's fetch, download and verify only: {:.2})",
        ratio(&strata_pull, &oras_pull),
        ratio(&strata_fetch, &oras_pull)
    );
    println!(
        "ratios against the whole python process: push {:.2}, pull {:.2}",
        ratio(&strata_push, &oras_push_process),
        ratio(&strata_pull, &oras_pull_process)
    );
    let seconds = |row: &Row| format!("{:.3} s", median(&row.times).as_secs_f64());
    let push_what = format!("pack push, a {payload_mib} MiB chart (archive and upload)");
    let pull_what =
        format!("pack pull, a {payload_mib} MiB chart (download, verify, unpack, validate)");
    BenchRow {
        what: &push_what,
        figure: seconds(&strata_push),
        against: "ORAS Python SDK push of the same archive",
        against_figure: seconds(&oras_push),
        ratio: ratio(&strata_push, &oras_push),
        goal: "≤ 1.0×",
    }
    .print();
    BenchRow {
        what: &pull_what,
        figure: seconds(&strata_pull),
        against: "ORAS Python SDK pull (download only)",
        against_figure: seconds(&oras_pull),
        ratio: ratio(&strata_pull, &oras_pull),
        goal: "≤ 1.2×",
    }
    .print();
}
