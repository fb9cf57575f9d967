//! `wasmlet plugin …`: component-level tools for plugin authors and operators.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1 as k8s;
use wasmlet_plugin_host::{
    Decision, HostContext, Kind, Manifest, Mode, Plugin, PluginEngine, PluginMetrics, PluginSet,
    config_source, node_view, pod_view,
};

use crate::node_facts;

mod bench;
mod scaffold;
mod test;

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
    /// Time a plugin's calls on its component tests' pods: p50, p99 and mean
    /// of fresh-store calls (as the agent makes them), and instantiation.
    Bench {
        /// A directory with the plugin's manifest(s), component(s) and `tests/`.
        dir: PathBuf,
        /// Calls per row.
        #[arg(long, default_value_t = 200)]
        calls: usize,
    },
    /// Create a plugin folder that builds with the language's tool and passes
    /// its own tests: an admission plugin requiring the labels it is set up
    /// with, its manifest, tests and this wasmlet's WIT.
    New {
        /// The plugin's name (a DNS label): its folder and manifest.
        name: String,
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// Where the folder is made.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Compile components into the plugin cache ahead of the agent, so that a
    /// Python or JavaScript plugin loads in milliseconds rather than seconds
    /// at start (the artifact is used only by this wasmlet build).
    Compile {
        /// `.wasm` components, or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
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

    /// A plugin from a manifest already read (and maybe changed): `name`'s
    /// component, found from `dir`.
    async fn load_parsed(
        &self,
        name: &str,
        dir: &Path,
        manifest: Manifest,
    ) -> anyhow::Result<Plugin> {
        let plugin = Plugin::from_manifest(
            &self.engine,
            &self.host,
            &self.metrics,
            name,
            manifest,
            dir,
            None,
        );
        Ok(plugin.await?)
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
        PluginCommand::Test { dir } => test::test_dir(&tools, &dir).await,
        PluginCommand::Bench { dir, calls } => bench::bench(&tools, &dir, calls).await,
        PluginCommand::Compile { paths } => bench::compile(&tools, &paths),
        PluginCommand::New { name, lang, dir } => scaffold::new(lang, &name, &dir),
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
    let plugin = tools.load_parsed(&name, dir, manifest).await?;
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
