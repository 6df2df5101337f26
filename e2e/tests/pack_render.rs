//! `strata pack render` and `strata pack validate` with the real Helm engine (e2e's `helm`,
//! on `libhelm_sdkpy.so`, as `$STRATA_HELM`): what Strata renders is compared with what
//! `helm template` renders from charts this test writes by hand from the same templates and
//! values; the rendered objects go to a real 1.20 apiserver as a server-side dry run; bad
//! templates fail naming the pack, the file and the line; validation without helm says
//! what it could not check.
//!
//! Needs the engine library (`scripts/helm-engine.sh`), the `strata` binary (`cargo build
//! --workspace --bins`) and, for the apiserver, the Kubernetes binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::Value;
use serde_yaml::Value as Yaml;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::dynamic_objects::{get_dynamic, resource};
use strata_e2e::management::{repo_root, strata_binary};
use strata_shared::pack_render::DEFAULTS_DO_NOT_RENDER;

const HELM: &str = env!("CARGO_BIN_EXE_helm");

/// The sample packs whose manifests and chart use Helm's template forms: `hello-manifests`
/// (`if not`, `default`, `quote`, `toJson | indent`, its `manifests.hello-universe` values
/// section and whole-values lookups, beside a plain manifest) and `hello-chart` (a chart
/// taking the pack's `charts.hello-web` section). The sim demo installs both as add-ons.
const TEMPLATE_PACKS: [&str; 2] = ["hello-chart", "hello-manifests"];

fn compat_packs() -> PathBuf {
    repo_root().join("manifests/samples/compat-packs")
}

fn sample_packs() -> PathBuf {
    repo_root().join("manifests/samples/packs")
}

/// What one process printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn success(self, what: &str) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn failure(self, what: &str) -> Self {
        assert_eq!(
            self.code,
            Some(1),
            "{what} was expected to fail\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn output(command: &mut Command) -> Run {
    let output = command.output().expect("the process runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `strata <args>` with e2e's helm as `$STRATA_HELM`.
fn strata(args: &[&str]) -> Run {
    let binary = strata_binary();
    assert!(
        binary.is_file(),
        "build strata first: cargo build --workspace --bins ({})",
        binary.display()
    );
    output(Command::new(binary).args(args).env("STRATA_HELM", HELM))
}

/// `strata <args>` with no helm to find.
fn strata_without_helm(args: &[&str]) -> Run {
    let empty = tempfile::tempdir().unwrap();
    output(
        Command::new(strata_binary())
            .args(args)
            .env_remove("STRATA_HELM")
            .env("PATH", empty.path()),
    )
}

/// `helm template <release> <chart> --namespace <ns> [-f <values>]`, run by the test.
fn helm_template(release: &str, chart: &Path, namespace: &str, values: Option<&Path>) -> String {
    let mut command = Command::new(HELM);
    command
        .arg("template")
        .arg(release)
        .arg(chart)
        .args(["--namespace", namespace]);
    if let Some(values) = values {
        command.arg("-f").arg(values);
    }
    output(&mut command)
        .success(&format!("helm template {}", chart.display()))
        .stdout
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// The YAML documents of a rendered output, without the empty ones.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .filter(|document: &Value| !document.is_null())
        .collect()
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect()
}

fn object<'o>(objects: &'o [Value], kind: &str) -> &'o Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {objects:#?}"))
}

/// What `.Values` of `manifests/hello-universe.yaml` must be, written out by hand from the
/// pack's values.yaml: the `manifests.hello-universe` section over the whole file.
const HELLO_UNIVERSE_VALUES: &str = "pack:
  namespace: hello-universe
  content:
    images:
      - ghcr.io/spectrocloud/hello-universe:1.1.0
greeting: Hello from the whole values
manifests:
  hello-universe:
    namespace: hello-universe
    apiEnabled: false
    replicas: 2
    image: ghcr.io/spectrocloud/hello-universe:1.1.0
    port: 8080
    config:
      title: Hello Universe
      features: [counter, api]
namespace: hello-universe
apiEnabled: false
replicas: 2
image: ghcr.io/spectrocloud/hello-universe:1.1.0
port: 8080
config:
  title: Hello Universe
  features: [counter, api]
";

/// A chart as a person would write one for a manifest: Chart.yaml, the template, values.
fn hand_written_chart(dir: &Path, template: &str, manifest: &Path, values: &str) -> PathBuf {
    let chart = dir.join(template);
    write(
        &chart.join("Chart.yaml"),
        "apiVersion: v2\nname: hello-manifests\nversion: 1.0.0\nappVersion: \"1.0.0\"\n",
    );
    write(
        &chart.join("templates").join(template),
        &fs::read_to_string(manifest).unwrap(),
    );
    write(&chart.join("values.yaml"), values);
    chart
}

#[test]
fn a_manifest_pack_renders_as_helm_renders_its_templates_and_values() {
    let pack = sample_packs().join("hello-manifests");
    let rendered = strata(&["pack", "render", pack.to_str().unwrap()])
        .success("strata pack render hello-manifests")
        .stdout;

    let work = tempfile::tempdir().unwrap();
    let universe = hand_written_chart(
        work.path(),
        "hello-universe.yaml",
        &pack.join("manifests/hello-universe.yaml"),
        HELLO_UNIVERSE_VALUES,
    );
    let namespace = hand_written_chart(
        work.path(),
        "namespace.yaml",
        &pack.join("manifests/namespace.yaml"),
        "{}\n",
    );
    let expected = helm_template("hello-manifests", &universe, "hello-universe", None)
        + &helm_template("hello-manifests", &namespace, "hello-universe", None);
    assert_eq!(
        rendered, expected,
        "byte for byte what helm template renders"
    );

    // And it is what the template means, not only the same as helm.
    let objects = documents(&rendered);
    assert_eq!(
        kinds(&objects),
        ["ConfigMap", "Service", "Deployment", "Namespace"]
    );
    let config = object(&objects, "ConfigMap");
    assert_eq!(config["metadata"]["namespace"], "hello-universe");
    assert_eq!(
        config["metadata"]["labels"]["app.kubernetes.io/version"],
        "1.0.0"
    );
    assert_eq!(config["data"]["greeting"], "Hello from the whole values");
    assert_eq!(config["data"]["api-enabled"], "false");
    let json: Value =
        serde_json::from_str(config["data"]["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"title": "Hello Universe", "features": ["counter", "api"]})
    );
    let deployment = object(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/spectrocloud/hello-universe:1.1.0"
    );
    assert_eq!(
        object(&objects, "Service")["spec"]["ports"][0]["targetPort"],
        8080
    );
}

#[test]
fn values_files_merge_over_the_packs_values_with_helms_rules() {
    let pack = sample_packs().join("hello-manifests");
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first.yaml");
    write(
        &first,
        "manifests:\n  hello-universe:\n    apiEnabled: true\n    config:\n      title: Overridden\n",
    );
    let second = work.path().join("second.yaml");
    write(
        &second,
        "greeting: null\nmanifests:\n  hello-universe:\n    port: 9090\n",
    );
    let rendered = strata(&[
        "pack",
        "render",
        pack.to_str().unwrap(),
        "--values",
        first.to_str().unwrap(),
        "-f",
        second.to_str().unwrap(),
    ])
    .success("strata pack render --values")
    .stdout;
    let objects = documents(&rendered);
    assert_eq!(
        kinds(&objects),
        ["ConfigMap", "Service", "Namespace"],
        "`if not .Values.apiEnabled` leaves the Deployment out"
    );
    let config = object(&objects, "ConfigMap");
    assert_eq!(config["data"]["api-enabled"], "true");
    // Maps merge key by key: the title changed, the features stayed.
    let json: Value =
        serde_json::from_str(config["data"]["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"title": "Overridden", "features": ["counter", "api"]})
    );
    // A null removes the key, as with helm -f; `quote` of nothing is nothing.
    assert!(config["data"]["greeting"].is_null(), "{config:#?}");
    assert_eq!(
        object(&objects, "Service")["spec"]["ports"][0]["targetPort"],
        9090
    );
}

#[test]
fn a_chart_pack_renders_its_chart_with_its_section_as_helm_does() {
    let pack = sample_packs().join("hello-chart");
    let rendered = strata(&["pack", "render", pack.to_str().unwrap()])
        .success("strata pack render hello-chart")
        .stdout;
    let work = tempfile::tempdir().unwrap();
    let values = work.path().join("values.yaml");
    write(&values, "replicaCount: 3\nextraLabels:\n  team: platform\n");
    let expected = helm_template(
        "hello-web",
        &pack.join("charts/hello-web"),
        "hello-web",
        Some(&values),
    );
    assert_eq!(
        rendered, expected,
        "byte for byte what helm template renders"
    );
    let objects = documents(&rendered);
    assert_eq!(kinds(&objects), ["ConfigMap", "Service", "Deployment"]);
    let deployment = object(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "hello-web-hello-web");
    assert_eq!(deployment["metadata"]["namespace"], "hello-web");
    assert_eq!(
        deployment["spec"]["replicas"], 3,
        "the pack's section over the chart's default"
    );
    assert_eq!(deployment["metadata"]["labels"]["team"], "platform");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "docker.io/library/nginx:1.25",
        "the chart's own default values still apply"
    );
    // A values file reaches the chart through its section.
    let overlay = work.path().join("overlay.yaml");
    write(&overlay, "charts:\n  hello-web:\n    replicaCount: 5\n");
    let rendered = strata(&[
        "pack",
        "render",
        pack.to_str().unwrap(),
        "-f",
        overlay.to_str().unwrap(),
    ])
    .success("strata pack render hello-chart -f")
    .stdout;
    let objects = documents(&rendered);
    assert_eq!(object(&objects, "Deployment")["spec"]["replicas"], 5);
    assert_eq!(
        object(&objects, "Deployment")["metadata"]["labels"]["team"],
        "platform"
    );
}

/// A `{{ .Values.<path> }}` lookup done as Strata's earlier plain substitution did it:
/// the value's text, from the manifest's `.Values`.
fn plain_lookups(text: &str, values: &Yaml) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..].find("}}").unwrap() + open;
        let path = rest[open + 2..close]
            .trim()
            .strip_prefix(".Values.")
            .unwrap();
        let value = path.split('.').fold(values, |value, key| {
            value.get(key).unwrap_or_else(|| panic!("{path}"))
        });
        out.push_str(&match value {
            Yaml::String(text) => text.clone(),
            Yaml::Number(number) => number.to_string(),
            Yaml::Bool(flag) => flag.to_string(),
            other => panic!("{path} is {other:?}"),
        });
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

fn sorted(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by_key(|o| o.to_string());
    objects
}

#[test]
fn sample_packs_render_as_their_plain_lookups_did() {
    for name in ["kubeflow", "cni-calico", "csi-hostpath"] {
        let pack = sample_packs().join(name);
        let rendered = strata(&["pack", "render", pack.to_str().unwrap()])
            .success(&format!("strata pack render {name}"))
            .stdout;
        let values: Yaml =
            serde_yaml::from_str(&fs::read_to_string(pack.join("values.yaml")).unwrap()).unwrap();
        let mut expected = Vec::new();
        for entry in fs::read_dir(pack.join("manifests")).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            let own = strata_shared::pack::render::manifest_values(&values, &stem);
            expected.extend(documents(&plain_lookups(
                &fs::read_to_string(&path).unwrap(),
                &own,
            )));
        }
        assert_eq!(sorted(documents(&rendered)), sorted(expected), "{name}");
    }
    let istio = sample_packs().join("istio");
    let rendered = strata(&["pack", "render", istio.to_str().unwrap()])
        .success("strata pack render istio")
        .stdout;
    let objects = documents(&rendered);
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "istio-controlplane-istio-controlplane",
            "istio-operator-istio-operator"
        ]
    );
    assert!(
        objects.iter().all(|o| o["metadata"]["namespace"].is_null()
            || o["metadata"]["namespace"] == "istio-system")
    );
}

#[tokio::test]
async fn rendered_objects_are_accepted_by_a_real_apiserver() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("render")
    })
    .await
    .expect("control plane starts");
    let client = cp.client();
    let mut objects = Vec::new();
    for pack in ["hello-manifests", "hello-chart"] {
        let dir = sample_packs().join(pack);
        let rendered = strata(&["pack", "render", dir.to_str().unwrap()])
            .success(&format!("strata pack render {pack}"))
            .stdout;
        objects.extend(documents(&rendered));
    }
    assert_eq!(objects.len(), 7, "{objects:#?}");
    // A create with dryRun=All: the apiserver admits and validates the object as it would
    // store it, and stores nothing. (1.20's server-side apply refuses a Service port
    // without `protocol`, which a create defaults.) Namespaces are created for real first:
    // a namespaced object's dry run needs its namespace; the chart pack renders none.
    let test_namespace: Value = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hello-web"}
    });
    objects.push(test_namespace);
    let accepted: BTreeSet<String> = dry_run_create(&client, &objects, "hello-web")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        accepted.iter().map(String::as_str).collect::<Vec<_>>(),
        [
            "ConfigMap/hello-universe-config",
            "ConfigMap/hello-web-hello-web",
            "Deployment/hello-universe",
            "Deployment/hello-web-hello-web",
            "Namespace/hello-universe",
            "Namespace/hello-web",
            "Service/hello-universe",
            "Service/hello-web-hello-web",
        ]
    );
    // A dry run writes nothing.
    assert!(
        get_dynamic(
            &client,
            "apps/v1",
            "Deployment",
            Some("hello-web"),
            "hello-web-hello-web"
        )
        .await
        .is_none()
    );
}

/// A copy of hello-manifests whose hello-universe.yaml is `manifest`.
fn broken_pack(root: &Path, manifest: &str) -> PathBuf {
    let source = sample_packs().join("hello-manifests");
    let dir = root.join("hello-manifests");
    for file in [
        "pack.json",
        "values.yaml",
        "logo.png",
        "manifests/namespace.yaml",
    ] {
        fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
        fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    write(&dir.join("manifests/hello-universe.yaml"), manifest);
    dir
}

const HEADER: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n";

#[test]
fn bad_templates_fail_naming_the_pack_the_file_and_the_line() {
    let cases = [
        (
            "does not parse",
            format!("{HEADER}data:\n  a: {{{{ if .Values.apiEnabled }}}}\n"),
            "strata: error: pack hello-manifests:1.0.0: manifests/hello-universe.yaml line 7: parse error at (manifests/hello-universe.yaml:7): unexpected EOF (if manifests/hello-universe.yaml carries another tool's templates, to be installed as written, list \"hello-universe\" under pack.\"strata.dev/verbatim-manifests\" in the pack's or the layer's values)\n",
        ),
        (
            "unknown function",
            format!("{HEADER}data:\n  a: {{{{ .Values.greeting | shout }}}}\n"),
            "strata: error: pack hello-manifests:1.0.0: manifests/hello-universe.yaml line 6: parse error at (manifests/hello-universe.yaml:6): function \"shout\" not defined (if manifests/hello-universe.yaml carries another tool's templates, to be installed as written, list \"hello-universe\" under pack.\"strata.dev/verbatim-manifests\" in the pack's or the layer's values)\n",
        ),
        (
            "missing required value",
            format!(
                "{HEADER}  namespace: {{{{ required \"manifests.hello-universe.targetNamespace is required\" .Values.targetNamespace }}}}\n"
            ),
            "strata: error: pack hello-manifests:1.0.0: manifests/hello-universe.yaml line 5 column 16: execution error at (manifests/hello-universe.yaml:5:16): manifests.hello-universe.targetNamespace is required\n",
        ),
        (
            "nil value",
            format!("{HEADER}data:\n  a: {{{{ .Values.config.nested.deeper }}}}\n"),
            "strata: error: pack hello-manifests:1.0.0: manifests/hello-universe.yaml line 6 column 15: manifests/hello-universe.yaml:6:15 executing \"manifests/hello-universe.yaml\" at <.Values.config.nested.deeper>: nil pointer evaluating interface {}.deeper\n",
        ),
    ];
    for (what, manifest, expected) in cases {
        let root = tempfile::tempdir().unwrap();
        let pack = broken_pack(root.path(), &manifest);
        let run = strata(&["pack", "render", pack.to_str().unwrap()]).failure(what);
        assert_eq!(run.stdout, "", "{what}: nothing half-rendered");
        assert_eq!(run.stderr, expected, "{what}");
    }
}

#[test]
fn validation_renders_with_helm_and_says_what_it_could_not_check_without() {
    let pack = sample_packs().join("hello-manifests");
    let input = pack.to_str().unwrap();
    // Without helm: the templated manifest is a warning, the plain one is checked.
    let run = strata_without_helm(&["pack", "validate", input]).success("validate without helm");
    assert_eq!(
        run.stderr,
        format!(
            "{input}: warning: manifests/hello-universe.yaml: has template actions ({{{{ … }}}}) that were not rendered, so its objects were not checked: no helm binary was found (set STRATA_HELM or put helm on PATH to check it, or see its output with `strata pack render`)\n"
        )
    );
    assert_eq!(
        run.stdout,
        format!("{input}: ok: hello-manifests:1.0.0 (addon layer)\n")
    );
    // With helm: rendered and checked, nothing to say.
    let run = strata(&["pack", "validate", input]).success("validate with helm");
    assert_eq!(run.stderr, "");
    let chart_pack = sample_packs().join("hello-chart");
    strata(&["pack", "validate", chart_pack.to_str().unwrap()]).success("validate a chart pack");

    // A template that renders an object Kubernetes would refuse is an error, with helm
    // only: the namespace is rendered from the greeting.
    let root = tempfile::tempdir().unwrap();
    let broken = broken_pack(
        root.path(),
        &format!("{HEADER}  namespace: {{{{ .Values.greeting | replace \" \" \"_\" }}}}\n"),
    );
    let broken_input = broken.to_str().unwrap();
    let run = strata(&["pack", "validate", broken_input]).failure("validate a bad namespace");
    assert_eq!(
        run.stderr,
        format!(
            "{broken_input}: error: manifests/hello-universe.yaml (rendered): document 1: kind ConfigMap: metadata.namespace \"Hello_from_the_whole_values\" is not a valid namespace name: it contains 'H'\n"
        )
    );
    strata_without_helm(&["pack", "validate", broken_input]).success("the same without helm");
    // A template that fails with the pack's defaults (a required value the pack leaves to
    // the cluster) is a warning located in the file: the pack is valid.
    let broken = broken_pack(
        root.path(),
        &format!(
            "{HEADER}  namespace: {{{{ required \"set targetNamespace\" .Values.targetNamespace }}}}\n"
        ),
    );
    let run = strata(&["pack", "validate", broken.to_str().unwrap()])
        .success("validate a required value");
    assert_eq!(
        run.stderr,
        format!(
            "{}: warning: manifests/hello-universe.yaml: line 5, column 16: execution error at (manifests/hello-universe.yaml:5:16): set targetNamespace; {DEFAULTS_DO_NOT_RENDER}\n",
            broken.display()
        )
    );
    // A template that does not parse is an error: no values mend it.
    let broken = broken_pack(
        root.path(),
        &format!("{HEADER}  namespace: {{{{ nosuchfunction .Values.greeting }}}}\n"),
    );
    let run = strata(&["pack", "validate", broken.to_str().unwrap()])
        .failure("validate an unknown function");
    assert!(
        run.stderr
            .contains(": error: manifests/hello-universe.yaml: line 5: parse error"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("function \"nosuchfunction\" not defined"),
        "{}",
        run.stderr
    );
}

/// Kinds a dry run creates without a namespace.
const CLUSTER_SCOPED: [&str; 6] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
];

/// Creates each object with dryRun=All (Namespaces for real, first, as a namespaced
/// object's dry run needs its namespace; so are the namespaces the objects name and do not
/// create); an object without a namespace goes to `namespace`. Returns `Kind/name` of each
/// accepted object, Namespaces first.
async fn dry_run_create(client: &kube::Client, objects: &[Value], namespace: &str) -> Vec<String> {
    // The namespaces the objects go to that they do not create themselves.
    let rendered: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let mut namespaces: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str().map(str::to_string))
        .collect();
    namespaces.insert(namespace.to_string());
    namespaces.retain(|name| !rendered.contains(name.as_str()));
    let namespace_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for name in &namespaces {
        let object =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        match namespace_api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("namespace {name}: {e}"),
        }
    }
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut accepted = Vec::new();
    // A rendered Namespace is created for real, before the objects that go in it.
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| o["kind"] != "Namespace");
    for object in ordered {
        let api_version = object["apiVersion"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let resource = resource(api_version, kind);
        let api: Api<DynamicObject> = if CLUSTER_SCOPED.contains(&kind) {
            Api::all_with(client.clone(), &resource)
        } else {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace);
            Api::namespaced_with(client.clone(), ns, &resource)
        };
        let sent: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        let params = if kind == "Namespace" {
            PostParams::default()
        } else {
            dry_run.clone()
        };
        let answer = api
            .create(&params, &sent)
            .await
            .unwrap_or_else(|e| panic!("{kind} {name} refused by the apiserver: {e}\n{object:#}"));
        assert_eq!(answer.metadata.name.as_deref(), Some(name));
        accepted.push(format!("{kind}/{name}"));
    }
    accepted
}

/// The pack's namespace (`pack.namespace` in its values.yaml), else `default`.
fn pack_namespace(dir: &Path) -> String {
    let values: Yaml =
        serde_yaml::from_str(&fs::read_to_string(dir.join("values.yaml")).unwrap()).unwrap();
    values["pack"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string()
}

/// Every test pack (the published forms under compat-packs/, the template forms of
/// [`TEMPLATE_PACKS`]) validates, warnings allowed, and renders with its defaults to objects a
/// 1.20 apiserver accepts in a dry run, or fails with exactly the documented error for a
/// value its schema requires; that pack then renders and is accepted once the value is set.
#[tokio::test]
async fn every_test_pack_validates_and_renders_to_objects_the_apiserver_accepts() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("render-all")
    })
    .await
    .expect("control plane starts");
    let client = cp.client();
    let mut dirs: Vec<PathBuf> = fs::read_dir(compat_packs())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("pack.json").is_file())
        .chain(TEMPLATE_PACKS.iter().map(|pack| sample_packs().join(pack)))
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 10, "{dirs:?}");
    let mut outcome = Vec::new();
    for dir in &dirs {
        let path = dir.to_str().unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        strata(&["pack", "validate", path]).success(&format!("strata pack validate {name}"));
        let rendered = strata(&["pack", "render", path]);
        let rendered = if rendered.code == Some(1)
            && rendered.stderr.contains(
                "its values do not satisfy its schema.yaml (set them with --values FILE):\n  manifests.console.licenseKey is required and not set (hint: The license key from your account page.)",
            ) {
            outcome.push(format!("{name}: requires manifests.console.licenseKey"));
            let values = tempfile::NamedTempFile::new().unwrap();
            write(
                values.path(),
                "manifests:\n  console:\n    licenseKey: KEY-1\n    apiToken: s3cretTOKEN0123456789\n",
            );
            let set = values.path().to_str().unwrap();
            let masked = strata(&["pack", "render", path, "-f", set]).success("render masked");
            assert!(!masked.stdout.contains("s3cretTOKEN0123456789"), "{}", masked.stdout);
            assert!(masked.stdout.contains("token: \"<secret>\""), "{}", masked.stdout);
            let shown = strata(&["pack", "render", path, "-f", set, "--show-secrets"]);
            assert!(shown.stdout.contains("token: \"s3cretTOKEN0123456789\""), "{}", shown.stdout);
            shown
        } else {
            rendered
        };
        let objects = documents(
            &rendered
                .success(&format!("strata pack render {name}"))
                .stdout,
        );
        assert!(!objects.is_empty(), "{name} renders no object");
        let accepted = dry_run_create(&client, &objects, &pack_namespace(dir)).await;
        outcome.push(format!("{name}: {}", accepted.join(" ")));
    }
    assert_eq!(
        outcome,
        [
            "addon-kubeadmconfig: ConfigMap/nfs-client",
            "empty-bounds: ConfigMap/empty-bounds",
            "foreign-templates: ConfigMap/injector-settings ConfigMap/injector-templates",
            "leading-v: ConfigMap/leading-v",
            "mapping-images: ConfigMap/mapping-images",
            "presets-groups: ConfigMap/gateway Service/gateway",
            "schema-values: requires manifests.console.licenseKey",
            "schema-values: Secret/console-token ConfigMap/console",
            "unknown-vocabulary: ConfigMap/unknown-vocabulary",
            "hello-chart: ConfigMap/hello-web-hello-web Service/hello-web-hello-web Deployment/hello-web-hello-web",
            "hello-manifests: Namespace/hello-universe ConfigMap/hello-universe-config Service/hello-universe Deployment/hello-universe",
        ]
    );
}

/// `--preset` changes what the pack renders: the compat pack's own choice is a load
/// balancer; `expose-ingress` gives a ClusterIP service and the ingress host.
#[test]
fn presets_change_what_a_pack_renders() {
    let dir = compat_packs().join("presets-groups");
    let path = dir.to_str().unwrap();
    let own = documents(&strata(&["pack", "render", path]).success("render").stdout);
    assert_eq!(object(&own, "Service")["spec"]["type"], "LoadBalancer");
    assert_eq!(object(&own, "ConfigMap")["data"]["logLevel"], "info");
    assert!(object(&own, "ConfigMap")["data"]["host"].is_null());
    let chosen = documents(
        &strata(&[
            "pack",
            "render",
            path,
            "--preset",
            "expose-ingress",
            "--preset",
            "Log level:logs-debug",
        ])
        .success("render with presets")
        .stdout,
    );
    assert_eq!(object(&chosen, "Service")["spec"]["type"], "ClusterIP");
    assert_eq!(object(&chosen, "ConfigMap")["data"]["logLevel"], "debug");
    assert_eq!(
        object(&chosen, "ConfigMap")["data"]["host"],
        "gateway.example"
    );
    let refused = strata(&[
        "pack",
        "render",
        path,
        "--preset",
        "expose-ingress",
        "--preset",
        "expose-loadbalancer",
    ])
    .failure("two presets of one group");
    assert!(
        refused.stderr.contains(
            "which are both in group \"Exposure\"; presets of one group exclude each other"
        ),
        "{}",
        refused.stderr
    );
}

/// A manifest that carries another tool's templates (as kubeflow 1.5.0 carries Istio's) is
/// installed as written once the pack's or the layer's values name it verbatim; unnamed, it
/// fails validation and rendering with a message that says how to name it.
#[test]
fn a_manifest_of_another_tools_templates_is_installed_as_written() {
    let pack = compat_packs().join("foreign-templates");
    let written = fs::read_to_string(pack.join("manifests/injector-templates.yaml")).unwrap();
    let rendered = strata(&["pack", "render", pack.to_str().unwrap()]).success("render");
    let verbatim =
        "---\n# Source: foreign-templates/manifests/injector-templates.yaml (verbatim)\n";
    let at = rendered
        .stdout
        .find(verbatim)
        .expect("the verbatim unit is in the output");
    assert_eq!(
        &rendered.stdout[at + verbatim.len()..],
        written,
        "byte for byte"
    );
    assert!(
        rendered.stdout.contains("logLevel: \"info\""),
        "{}",
        rendered.stdout
    );

    // The same pack without the key, as a publisher who never heard of Strata wrote it.
    let root = tempfile::tempdir().unwrap();
    let copy = root.path().join("foreign-templates");
    for file in [
        "pack.json",
        "logo.png",
        "README.md",
        "manifests/injector-templates.yaml",
        "manifests/injector-settings.yaml",
    ] {
        fs::create_dir_all(copy.join(file).parent().unwrap()).unwrap();
        fs::copy(pack.join(file), copy.join(file)).unwrap();
    }
    write(
        &copy.join("values.yaml"),
        "pack:\n  namespace: mesh-system\nmanifests:\n  injector-settings:\n    logLevel: info\n",
    );
    let copy_path = copy.to_str().unwrap();
    let hint = "(if manifests/injector-templates.yaml carries another tool's templates, to be installed as written, list \"injector-templates\" under pack.\"strata.dev/verbatim-manifests\" in the pack's or the layer's values)";
    let refused = strata(&["pack", "validate", copy_path]).failure("validate unnamed");
    assert!(
        refused.stderr.contains("manifests/injector-templates.yaml")
            && refused
                .stderr
                .contains("function \"Template_Version_Check\" not defined")
            && refused.stderr.contains(hint),
        "{}",
        refused.stderr
    );
    let refused = strata(&["pack", "render", copy_path]).failure("render unnamed");
    assert!(refused.stderr.contains(hint), "{}", refused.stderr);
    assert_eq!(refused.stdout, "", "nothing half-rendered");

    // A layer (here a values file) names it: the published pack is used unchanged.
    let layer = root.path().join("layer.yaml");
    write(
        &layer,
        "pack:\n  strata.dev/verbatim-manifests: [injector-templates]\n",
    );
    let rendered = strata(&["pack", "render", copy_path, "-f", layer.to_str().unwrap()])
        .success("render with the layer's choice");
    assert!(rendered.stdout.ends_with(&written), "{}", rendered.stdout);

    // A name that is no manifest of the pack is refused, naming the key and the choices.
    write(
        &layer,
        "pack:\n  strata.dev/verbatim-manifests: [injector]\n",
    );
    let refused = strata(&["pack", "render", copy_path, "-f", layer.to_str().unwrap()])
        .failure("render with a wrong name");
    assert_eq!(
        refused.stderr,
        "strata: error: pack foreign-templates:1.0.0: values pack.strata.dev/verbatim-manifests: [0] is \"injector\", which names no manifest of the pack; expected names of the pack's manifests: injector-settings, injector-templates\n"
    );
}

/// System macros in a layer's values are resolved by Helm's engine with the cluster's
/// facts, Sprig functions and all, as published packs write them; other templates in
/// values are left alone, and a macro that does not render names the layer.
#[test]
fn system_macros_in_values_resolve_through_helms_engine() {
    use strata_shared::crd::workload_cluster::ClusterCloud;
    use strata_shared::helm_cli::Helm;
    use strata_shared::layer::macros::ClusterFacts;
    use strata_shared::pack_render::resolve_macros;

    let facts = ClusterFacts {
        name: "edge-1".into(),
        namespace: "strata-edge-1".into(),
        uid: "0c4f-uid".into(),
        pod_cidrs: vec!["10.244.0.0/16".into(), "fd00::/104".into()],
        service_cidrs: vec!["10.96.0.0/12".into()],
        endpoint_host: "10.0.0.5".into(),
        endpoint_port: 6443,
        kubernetes_version: "v1.20.2".into(),
        cloud_type: ClusterCloud::Sim,
    };
    let values: Yaml = serde_yaml::from_str(
        "namespaceLabels:\n  piraeus-system: \"pod-security.kubernetes.io/enforce-version=v{{ .spectro.system.kubernetes.version | substr 0 4 }}\"\n\
         splunk:\n  clusterName: \"{{.spectro.system.cluster.name}}\"\n  endpoint: \"https://{{ .spectro.system.cluster.kubevip }}:{{ .spectro.system.cluster.endpoint.port }}\"\n\
         pods: \"{{ .spectro.system.cluster.podCidrs }}\"\n\
         alert: \"{{ $labels.instance }} is down\"\n\
         replicas: 2\n",
    )
    .unwrap();
    let helm = Helm::new(HELM);
    let resolved = resolve_macros(&helm, "piraeus", &values, &facts).unwrap();
    let expected: Yaml = serde_yaml::from_str(
        "namespaceLabels:\n  piraeus-system: pod-security.kubernetes.io/enforce-version=v1.20\n\
         splunk:\n  clusterName: edge-1\n  endpoint: https://10.0.0.5:6443\n\
         pods: 10.244.0.0/16,fd00::/104\n\
         alert: \"{{ $labels.instance }} is down\"\n\
         replicas: 2\n",
    )
    .unwrap();
    assert_eq!(resolved, expected);

    let broken: Yaml =
        serde_yaml::from_str("name: \"{{ .spectro.system.cluster.name | shout }}\"\n").unwrap();
    let error = resolve_macros(&helm, "piraeus", &broken, &facts).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("pack layer piraeus: ")
            && message.contains("function \"shout\" not defined"),
        "{message}"
    );
}
