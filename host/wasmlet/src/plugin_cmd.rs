//! `wasmlet plugin …`: component-level tools for plugin authors and operators.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1 as k8s;
use serde::Deserialize;
use wasmlet_plugin_host::{
    Decision, HostContext, Kind, Manifest, Mode, Plugin, PluginEngine, PluginMetrics, PluginSet,
    config_source, node_view, pod_view,
};

use crate::node_facts;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Show what a component declares: kind, WIT version, imports, and the
    /// capabilities its manifest (FILE.toml next to FILE.wasm) requests.
    Inspect {
        /// A `.wasm` component or its `.toml` manifest.
        file: PathBuf,
    },
    /// Call a plugin once and print its answer. Exits 0 if the pod is
    /// admitted (a monitor-mode plugin's rejection included: it "would
    /// reject"), 1 if it is rejected, 2 if the call could not be made.
    Run {
        /// A `.toml` manifest, or a bare `.wasm` (then --kind says what it is).
        plugin: PathBuf,
        #[arg(long, value_enum, default_value = "admission")]
        kind: KindArg,
        /// The pod to admit (YAML or JSON, a Kubernetes v1 Pod).
        #[arg(long)]
        pod: PathBuf,
        /// The node (a v1 Node); default: this machine.
        #[arg(long)]
        node: Option<PathBuf>,
        /// Settings (YAML or JSON) replacing the manifest's.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Run the table tests of a plugin directory (`tests/*.yaml`); exits non-zero
    /// on any mismatch.
    Test {
        /// A directory with the plugin's manifest(s), component(s) and `tests/`.
        dir: PathBuf,
    },
    /// Load a plugin directory as the agent does and print the plugin table.
    List { dir: PathBuf },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Admission,
    Probe,
    Lifecycle,
    PodSource,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Admission => Kind::Admission,
            KindArg::Probe => Kind::Probe,
            KindArg::Lifecycle => Kind::Lifecycle,
            KindArg::PodSource => Kind::PodSource,
        }
    }
}

/// Shared by the plugin commands: one engine, the local node's facts.
struct Tools {
    engine: Arc<PluginEngine>,
    host: Arc<HostContext>,
    metrics: PluginMetrics,
}

impl Tools {
    fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Ok(Self {
            engine: Arc::new(PluginEngine::new(cache_dir)?),
            host: Arc::new(HostContext {
                node_name: node_facts::hostname(),
                exec: None,
                kube: None,
            }),
            metrics: PluginMetrics::default(),
        })
    }

    async fn load_manifest(&self, path: &Path) -> anyhow::Result<Plugin> {
        Ok(Plugin::load(&self.engine, &self.host, &self.metrics, path, None).await?)
    }
}

pub async fn run(command: PluginCommand, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let tools = Tools::new(cache_dir)?;
    match command {
        PluginCommand::Inspect { file } => inspect(&tools, &file),
        PluginCommand::Run {
            plugin,
            kind,
            pod,
            node,
            settings,
        } => {
            let ran = run_once(
                &tools,
                &plugin,
                kind.into(),
                &pod,
                node.as_deref(),
                settings.as_deref(),
            )
            .await;
            // An error is neither an admission nor a rejection.
            Ok(ran.unwrap_or_else(|e| {
                eprintln!("wasmlet: {e:#}");
                ExitCode::from(2)
            }))
        }
        PluginCommand::Test { dir } => test_dir(&tools, &dir).await,
        PluginCommand::List { dir } => {
            let set = PluginSet::load_dir(
                &tools.engine,
                &tools.host,
                &tools.metrics,
                &dir,
                &BTreeMap::new(),
            )
            .await?;
            print!("{}", set.table());
            Ok(if set.skipped.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// The manifest next to a `.wasm` (same name, `.toml`), or the file itself;
/// and the component: the one the manifest names (relative to the
/// manifest's folder), else the `.wasm` beside it.
fn manifest_and_component(file: &Path) -> (Option<PathBuf>, PathBuf) {
    if file.extension().is_some_and(|e| e == "toml") {
        let dir = file.parent().unwrap_or(Path::new("."));
        let component = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| Manifest::parse(&t).ok())
            .and_then(|m| m.component)
            .map_or_else(|| file.with_extension("wasm"), |named| dir.join(named));
        (Some(file.to_path_buf()), component)
    } else {
        let manifest = file.with_extension("toml");
        (manifest.is_file().then_some(manifest), file.to_path_buf())
    }
}

fn inspect(tools: &Tools, file: &Path) -> anyhow::Result<ExitCode> {
    let (manifest_path, component) = manifest_and_component(file);
    let wasm =
        std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let facts = tools.engine.inspect(&wasm).map_err(anyhow::Error::msg)?;
    println!(
        "component     {} ({} KiB)",
        component.display(),
        wasm.len() / 1024
    );
    println!(
        "kind          {}",
        facts
            .kind
            .map_or("none (not a wasmlet plugin)".into(), |k| k.to_string())
    );
    println!(
        "wit           {}",
        facts
            .wit_version
            .as_deref()
            .map_or("-".into(), |v| format!("wasmlet:plugin@{v}"))
    );
    println!("exports       {}", facts.exports.join(", "));
    println!(
        "imports       {}",
        if facts.imports.is_empty() {
            "none".into()
        } else {
            facts.imports.join("\n              ")
        }
    );
    match manifest_path {
        None => println!("manifest      none (requests no capabilities)"),
        Some(path) => {
            let text = std::fs::read_to_string(&path)?;
            let manifest =
                Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let grant = wasmlet_plugin_host::Grant::effective(&manifest.capabilities, None)
                .map_err(anyhow::Error::msg)?;
            println!("manifest      {}", path.display());
            println!("capabilities  {}", grant.summary());
            println!(
                "limits        memory {} MiB, deadline {:?}, concurrency {}",
                manifest.limits.memory_mib,
                manifest.deadline(),
                manifest.limits.concurrency
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn node_or_local(node: Option<&Path>) -> anyhow::Result<wasmlet_plugin_host::types::NodeInfo> {
    let node = match node {
        Some(path) => read_yaml::<k8s::Node>(path)?,
        None => node_facts::local_node(&node_facts::hostname(), None),
    };
    node_view(&node).map_err(|e| anyhow::anyhow!("node: {e}"))
}

async fn run_once(
    tools: &Tools,
    plugin: &Path,
    kind: Kind,
    pod: &Path,
    node: Option<&Path>,
    settings: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (manifest_path, component) = manifest_and_component(plugin);
    let mut manifest = match &manifest_path {
        Some(path) if plugin.extension().is_some_and(|e| e == "toml") => {
            let text = std::fs::read_to_string(path)?;
            Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        // Named relative to its folder, which the plugin is loaded from.
        _ => Manifest::for_component(
            kind,
            component.file_name().map(PathBuf::from).unwrap_or_default(),
            serde_json::json!({}),
        ),
    };
    if let Some(settings) = settings {
        manifest.settings = read_yaml(settings)?;
    }
    if manifest.kind != kind {
        bail!(
            "{} is a {} plugin, not {kind}",
            plugin.display(),
            manifest.kind
        );
    }
    if kind != Kind::Admission {
        bail!("`plugin run` calls admission plugins; {kind} plugins are exercised by the agent");
    }
    let name = component
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let dir = plugin.parent().unwrap_or(Path::new("."));
    let plugin = Plugin::from_manifest(
        &tools.engine,
        &tools.host,
        &tools.metrics,
        &name,
        manifest,
        dir,
        None,
    )
    .await?;
    let pod: k8s::Pod = read_yaml(pod)?;
    let view =
        pod_view(&pod, config_source(&pod, "file")).map_err(|e| anyhow::anyhow!("pod: {e}"))?;
    let node = node_or_local(node)?;
    println!(
        "plugin    {} ({}, wit {})",
        plugin.name,
        plugin.kind(),
        plugin.wit_version
    );
    println!("pod       {}/{}", view.namespace, view.name);
    let decision = plugin.admit(&view, &node, &[]).await?;
    let monitor = plugin.manifest.mode == Mode::Monitor;
    if monitor && !decision.admit {
        println!(
            "decision  would reject  {}: {} (monitor mode: the agent admits it)",
            decision.reason, decision.message
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("decision  {}", describe(&decision));
    Ok(if decision.admit {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A decision with its message (an admitting plugin may say why, too).
fn describe(d: &Decision) -> String {
    match (d.admit, d.message.is_empty()) {
        (true, true) => "admitted".into(),
        (true, false) => format!("admitted  {}", d.message),
        (false, _) => format!("rejected  {}: {}", d.reason, d.message),
    }
}

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
fn validated_view(pod: &k8s::Pod, what: &str) -> anyhow::Result<wasmlet_plugin_host::types::Pod> {
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
async fn load_with(
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
    Ok(Plugin::from_manifest(
        &tools.engine,
        &tools.host,
        &tools.metrics,
        &name,
        manifest,
        dir,
        None,
    )
    .await?)
}

async fn test_dir(tools: &Tools, dir: &Path) -> anyhow::Result<ExitCode> {
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
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let tests: TestFile = read_yaml(file)?;
        let manifest = plugin_of(file, tests.plugin.as_deref(), &manifests)?;
        let node = match &tests.node {
            Some(n) => {
                node_view(n).map_err(|e| anyhow::anyhow!("{}: node: {e}", file.display()))?
            }
            None => node_or_local(None)?,
        };
        let views = |pods: &[k8s::Pod], what: &str| -> anyhow::Result<Vec<_>> {
            pods.iter()
                .enumerate()
                .map(|(i, p)| validated_view(p, &format!("{}: {what}[{i}]", file.display())))
                .collect()
        };
        let shared_active = views(&tests.active_pods, "active-pods")?;
        // Checked before anything runs: a broken fixture is no test.
        let mut prepared = Vec::new();
        for case in &tests.cases {
            let at = format!("{}: case {:?}", file.display(), case.name);
            case.expect
                .validate()
                .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            let pod = validated_view(&case.pod, &format!("{at}: pod"))?;
            let active = match &case.active_pods {
                Some(pods) => views(pods, &format!("case {:?}: active-pods", case.name))?,
                None => shared_active.clone(),
            };
            prepared.push((case, pod, active));
        }
        let name = manifest
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        // One plugin per distinct settings; a refusal of them is the outcome
        // of each case that uses them.
        let mut loaded: BTreeMap<String, Result<Plugin, String>> = BTreeMap::new();
        for (case, pod, active) in prepared {
            let settings = case.settings.as_ref().or(tests.settings.as_ref());
            let key = settings.map_or_else(String::new, ToString::to_string);
            if !loaded.contains_key(&key) {
                let plugin = load_with(tools, manifest, settings)
                    .await
                    .map_err(|e| format!("{e:#}"));
                loaded.insert(key.clone(), plugin);
            }
            let outcome = match loaded.get(&key) {
                Some(Ok(plugin)) => plugin
                    .admit(&pod, &node, &active)
                    .await
                    .map_err(|e| e.to_string()),
                Some(Err(refused)) => Err(refused.clone()),
                None => continue,
            };
            match check(&case.expect, &outcome) {
                Ok(()) => {
                    passed += 1;
                    println!("PASS  {name}: {}", case.name);
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL  {name}: {}\n      {why}", case.name);
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
