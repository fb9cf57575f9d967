//! `wasmlet plugin bench` and `wasmlet plugin compile`: what a plugin costs.
//! The bench times fresh-store calls on the plugin's own fixture pods (each
//! call instantiates the component anew, as the agent calls it) and the
//! instantiation alone (validate-settings: an instance and a call that
//! judges nothing); compile fills the compile cache ahead of the agent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Tools;
use super::test::{Loaded, Suite, prepare};

/// p50, p99 and mean of `samples`.
fn summary(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    let total: Duration = samples.iter().sum();
    let mean = total / u32::try_from(samples.len()).unwrap_or(u32::MAX).max(1);
    (at(0.50), at(0.99), mean)
}

fn shown(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 10_000.0 {
        format!("{:.1} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}

fn row(plugin: &str, call: &str, samples: Vec<Duration>) {
    let calls = samples.len();
    let (p50, p99, mean) = summary(samples);
    println!(
        "{plugin:<20} {call:<50} {calls:>6} {:>10} {:>10} {:>10}",
        shown(p50),
        shown(p99),
        shown(mean)
    );
}

pub(super) async fn bench(tools: &Tools, dir: &Path, calls: usize) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(calls > 0, "--calls: at least 1");
    let suite = Suite::read(dir)?;
    println!(
        "{:<20} {:<50} {:>6} {:>10} {:>10} {:>10}",
        "PLUGIN", "CALL", "CALLS", "P50", "P99", "MEAN"
    );
    for file in &suite.files {
        let prepared = prepare(file, &suite.manifests)?;
        let mut loaded = Loaded::default();
        let started = Instant::now();
        let plugin = loaded
            .get(tools, &prepared.manifest, None)
            .await
            .map_err(anyhow::Error::msg)?;
        row(
            &prepared.plugin,
            "load (compile, or the compile cache)",
            vec![started.elapsed()],
        );
        let mut instantiate = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            plugin
                .validate_settings()
                .await
                .context("validate-settings")?;
            instantiate.push(started.elapsed());
        }
        row(
            &prepared.plugin,
            "instantiate (validate-settings)",
            instantiate,
        );
        for case in &prepared.cases {
            let Ok(plugin) = loaded
                .get(tools, &prepared.manifest, case.settings.as_ref())
                .await
            else {
                println!(
                    "{:<20} {:<50} refused its settings",
                    prepared.plugin, case.name
                );
                continue;
            };
            let mut samples = Vec::with_capacity(calls);
            for _ in 0..calls {
                let started = Instant::now();
                // An error is an outcome too: its cost is measured the same.
                let _ = plugin.admit(&case.pod, &prepared.node, &case.active).await;
                samples.push(started.elapsed());
            }
            let name: String = case.name.chars().take(50).collect();
            row(&prepared.plugin, &name, samples);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The components `paths` name: `.wasm` files, and those in folders.
fn components(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut here: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                .collect();
            here.sort();
            found.extend(here);
        } else {
            found.push(path.clone());
        }
    }
    anyhow::ensure!(!found.is_empty(), "no components (*.wasm) to compile");
    Ok(found)
}

/// Compiles each component into the cache; then loads it from there, to
/// show what the agent's load will cost.
pub(super) fn compile(tools: &Tools, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    for path in components(paths)? {
        let wasm = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let started = Instant::now();
        let (artifact, compiled) = tools
            .engine
            .precompile(&wasm)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let compile = started.elapsed();
        let started = Instant::now();
        tools
            .engine
            .inspect(&wasm)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let load = started.elapsed();
        let how = if compiled {
            format!("compiled in {}", shown(compile))
        } else {
            "already compiled".to_owned()
        };
        println!(
            "{}: {how}; loads in {} ({})",
            path.display(),
            shown(load),
            artifact.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
