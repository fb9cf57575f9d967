//! `wasmlet plugin test`: a plugin's component tests, the fixture files in
//! its folder's `tests/` (the format: README, "Testing a plugin").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1 as k8s;
use serde::Deserialize;
use wasmlet_plugin_host::{Decision, Manifest, Plugin, config_source, node_view, pod_view, types};

use super::{Tools, describe, node_or_local, read_yaml};

/// One file of table tests (the format: README, "Testing a plugin").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TestFile {
    /// The plugin the cases are for (its manifest's name); needed when the
    /// folder holds more than one.
    #[serde(default)]
    plugin: Option<String>,
    /// Settings for every case, instead of the manifest's.
    #[serde(default)]
    settings: Option<serde_json::Value>,
    /// The node for every case; default: this machine.
    #[serde(default)]
    node: Option<k8s::Node>,
    /// Pods already running, for every case.
    #[serde(default)]
    active_pods: Vec<k8s::Pod>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Case {
    name: String,
    pod: k8s::Pod,
    /// Settings for this case, instead of the file's (or the manifest's).
    settings: Option<serde_json::Value>,
    /// Replaces the file's active pods.
    active_pods: Option<Vec<k8s::Pod>>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    admit: Option<bool>,
    reason: Option<String>,
    message_contains: Option<String>,
    /// The call must fail with an error containing this.
    error_contains: Option<String>,
}

impl Expect {
    /// An expectation that checks something, and nothing contradictory.
    fn validate(&self) -> Result<(), String> {
        let decision =
            self.admit.is_some() || self.reason.is_some() || self.message_contains.is_some();
        match (decision, &self.error_contains) {
            (false, None) => Err(
                "expect: checks nothing (give admit, reason, message-contains or error-contains)"
                    .into(),
            ),
            (true, Some(_)) => {
                Err("expect: error-contains goes alone (an error is no decision)".into())
            }
            _ if self.reason.is_some() && self.admit == Some(true) => {
                Err("expect: a reason is a rejection's (admit: false)".into())
            }
            _ => Ok(()),
        }
    }

    /// What was expected, as `describe` says what came.
    fn describe(&self) -> String {
        if let Some(error) = &self.error_contains {
            return format!("an error containing {error:?}");
        }
        let mut parts = Vec::new();
        match self.admit {
            Some(true) => parts.push("admitted".to_owned()),
            Some(false) => parts.push("rejected".to_owned()),
            None => {}
        }
        if let Some(reason) = &self.reason {
            parts.push(format!("reason {reason}"));
        }
        if let Some(message) = &self.message_contains {
            parts.push(format!("a message containing {message:?}"));
        }
        parts.join(", ")
    }
}

/// `outcome`: the decision, or the error (the call's, or the plugin's
/// refusal of the case's settings when it was loaded).
fn check(expect: &Expect, outcome: &Result<Decision, String>) -> Result<(), String> {
    let got = match outcome {
        Err(e) => format!("failed: {e}"),
        Ok(d) => describe(d),
    };
    let met = match (outcome, &expect.error_contains) {
        (Err(e), Some(want)) => e.contains(want.as_str()),
        (Err(_), None) | (Ok(_), Some(_)) => false,
        (Ok(d), None) => {
            expect.admit.is_none_or(|a| a == d.admit)
                && expect.reason.as_ref().is_none_or(|r| *r == d.reason)
                && expect
                    .message_contains
                    .as_ref()
                    .is_none_or(|m| d.message.contains(m.as_str()))
        }
    };
    if met {
        Ok(())
    } else {
        Err(format!(
            "expected {}\n      got      {got}",
            expect.describe()
        ))
    }
}

/// A fixture pod checked as the agent checks a static pod (names, UID,
/// containers); the error names the file, the case and the field.
fn validated_view(pod: &k8s::Pod, what: &str) -> anyhow::Result<types::Pod> {
    let mut checked = pod.clone();
    // The agent gives a static pod its UID; a fixture need not.
    if checked.metadata.uid.as_deref().is_none_or(str::is_empty) {
        checked.metadata.uid = Some("fixture".into());
    }
    pod_manifest::validate(&checked).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    pod_view(pod, config_source(pod, "file")).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// The plugin `file` tests: the one it names, else the folder's only one.
fn plugin_of<'a>(
    file: &Path,
    named: Option<&str>,
    manifests: &'a [PathBuf],
) -> anyhow::Result<&'a PathBuf> {
    let name_of = |m: &PathBuf| m.file_stem().map(|s| s.to_string_lossy().into_owned());
    match (named, manifests) {
        (Some(name), _) => manifests
            .iter()
            .find(|m| name_of(m).as_deref() == Some(name))
            .with_context(|| {
                format!(
                    "{}: plugin: {name:?} has no manifest ({name}.toml) here",
                    file.display()
                )
            }),
        (None, [only]) => Ok(only),
        (None, _) => bail!(
            "{}: plugin: required, the folder holds {} plugins",
            file.display(),
            manifests.len()
        ),
    }
}

/// The plugin of `manifest` with `settings` instead of its own, if given.
pub(super) async fn load_with(
    tools: &Tools,
    manifest_path: &Path,
    settings: Option<&serde_json::Value>,
) -> anyhow::Result<Plugin> {
    let Some(settings) = settings else {
        return tools.load_manifest(manifest_path).await;
    };
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let mut manifest =
        Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
    manifest.settings = settings.clone();
    let name = manifest_path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    tools.load_parsed(&name, dir, manifest).await
}

/// A plugin folder's manifests and component test files.
pub(super) struct Suite {
    pub manifests: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
}

impl Suite {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let mut manifests: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.ends_with("Cargo.toml"))
            .collect();
        manifests.sort();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if manifests.is_empty() {
            bail!("{}: no plugin manifest (*.toml)", dir.display());
        }
        if files.is_empty() {
            bail!(
                "{}: no component tests (tests/*.yaml); every plugin needs some",
                dir.display()
            );
        }
        Ok(Self { manifests, files })
    }
}

/// One case, checked and ready to call.
pub(super) struct Prepared {
    pub name: String,
    pub pod: types::Pod,
    pub active: Vec<types::Pod>,
    pub settings: Option<serde_json::Value>,
    expect: Expect,
}

/// A test file, checked: the plugin it is for, the node, and its cases.
pub(super) struct PreparedFile {
    pub manifest: PathBuf,
    pub plugin: String,
    pub node: types::NodeInfo,
    pub cases: Vec<Prepared>,
}

/// Reads and checks `file` before anything runs: a broken fixture is no test.
pub(super) fn prepare(file: &Path, manifests: &[PathBuf]) -> anyhow::Result<PreparedFile> {
    let tests: TestFile = read_yaml(file)?;
    let manifest = plugin_of(file, tests.plugin.as_deref(), manifests)?.clone();
    let node = match &tests.node {
        Some(n) => node_view(n).map_err(|e| anyhow::anyhow!("{}: node: {e}", file.display()))?,
        None => node_or_local(None)?,
    };
    let views = |pods: &[k8s::Pod], what: &str| -> anyhow::Result<Vec<_>> {
        pods.iter()
            .enumerate()
            .map(|(i, p)| validated_view(p, &format!("{}: {what}[{i}]", file.display())))
            .collect()
    };
    let shared_active = views(&tests.active_pods, "active-pods")?;
    let mut cases = Vec::new();
    for case in tests.cases {
        let at = format!("{}: case {:?}", file.display(), case.name);
        case.expect
            .validate()
            .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let pod = validated_view(&case.pod, &format!("{at}: pod"))?;
        let active = match &case.active_pods {
            Some(pods) => views(pods, &format!("case {:?}: active-pods", case.name))?,
            None => shared_active.clone(),
        };
        cases.push(Prepared {
            name: case.name,
            pod,
            active,
            settings: case.settings.or_else(|| tests.settings.clone()),
            expect: case.expect,
        });
    }
    let plugin = manifest
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Ok(PreparedFile {
        manifest,
        plugin,
        node,
        cases,
    })
}

/// The plugin with each distinct settings its cases use, loaded once; a
/// refusal of the settings is the outcome of each case that uses them.
#[derive(Default)]
pub(super) struct Loaded(BTreeMap<String, Result<Plugin, String>>);

impl Loaded {
    pub async fn get(
        &mut self,
        tools: &Tools,
        manifest: &Path,
        settings: Option<&serde_json::Value>,
    ) -> Result<&Plugin, String> {
        let key = settings.map_or_else(String::new, ToString::to_string);
        if !self.0.contains_key(&key) {
            let plugin = load_with(tools, manifest, settings)
                .await
                .map_err(|e| format!("{e:#}"));
            self.0.insert(key.clone(), plugin);
        }
        match self.0.get(&key) {
            Some(Ok(plugin)) => Ok(plugin),
            Some(Err(refused)) => Err(refused.clone()),
            None => Err("not loaded".into()),
        }
    }
}

pub(super) async fn test_dir(tools: &Tools, dir: &Path) -> anyhow::Result<ExitCode> {
    let suite = Suite::read(dir)?;
    let (mut passed, mut failed) = (0, 0);
    for file in &suite.files {
        let prepared = prepare(file, &suite.manifests)?;
        let mut loaded = Loaded::default();
        for case in &prepared.cases {
            let outcome = match loaded
                .get(tools, &prepared.manifest, case.settings.as_ref())
                .await
            {
                Ok(plugin) => plugin
                    .admit(&case.pod, &prepared.node, &case.active)
                    .await
                    .map_err(|e| e.to_string()),
                Err(refused) => Err(refused),
            };
            match check(&case.expect, &outcome) {
                Ok(()) => {
                    passed += 1;
                    println!("PASS  {}: {}", prepared.plugin, case.name);
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL  {}: {}\n      {why}", prepared.plugin, case.name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
