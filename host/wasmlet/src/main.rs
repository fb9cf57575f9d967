//! `wasmlet`: the node agent's command line.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wasmlet_core::{RuntimeInfo, RuntimeStatus, SandboxFilter, SandboxRuntime};
use wasmlet_cri::{CriClient, CriConfig};

mod daemon;
mod exec_cmd;
mod kubelet_client;
mod logs_cmd;
mod node_facts;
mod plugin_cmd;
mod pods_cmd;

/// A Kubernetes node agent whose policy points are WebAssembly components.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The CRI runtime's unix socket (`unix://` prefix optional).
    #[arg(
        long,
        global = true,
        env = "WASMLET_RUNTIME_ENDPOINT",
        alias = "container-runtime-endpoint"
    )]
    runtime_endpoint: Option<PathBuf>,

    /// Deadline of each runtime call except image pulls.
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    runtime_request_timeout: Option<Duration>,

    /// Where compiled plugins are cached between runs ("" for no cache).
    #[arg(
        long,
        global = true,
        env = "WASMLET_PLUGIN_CACHE",
        value_parser = daemon::path_or_empty
    )]
    plugin_cache: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node agent: pods from the sources, admitted by the admission
    /// plugins, kept running on the runtime. Stops on SIGTERM; pods keep running.
    Run(daemon::RunArgs),
    /// Print the runtime's name, version, CRI API version and readiness conditions.
    ///
    /// Exits non-zero when the runtime cannot be reached or a condition a node
    /// needs (RuntimeReady, NetworkReady) is false.
    RuntimeInfo,
    /// Stop and remove every pod sandbox (and so every container) the runtime has.
    ///
    /// For tearing down a development or test node; the runtime must be one
    /// wasmlet owns alone.
    RuntimeReset,
    /// List the pods of a running agent (its `/pods`) as a table.
    Pods(kubelet_client::KubeletFlags),
    /// Print a container's log, as `kubectl logs` (from the agent's kubelet port).
    Logs(logs_cmd::LogsArgs),
    /// Run a command in a container, as `kubectl exec` (through the agent's
    /// kubelet port); exits with the command's exit code.
    Exec(exec_cmd::ExecArgs),
    /// Attach to a running container's streams, as `kubectl attach`.
    Attach(exec_cmd::AttachArgs),
    /// Forward local ports to a pod's, as `kubectl port-forward`.
    PortForward(exec_cmd::PortForwardArgs),
    /// Inspect, run and test plugins on their own, without the agent.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
}

fn parse_cli() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&cli_command().try_get_matches()?)
}

/// The command line, with each flag's default in its help taken from the
/// config's defaults (flags are options: given, they override the file).
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    let defaults = daemon::AgentFileConfig::help_defaults();
    let with_defaults = |mut command: clap::Command| {
        for (id, default) in &defaults {
            if command.get_arguments().any(|a| a.get_id() == id) {
                command = command.mut_arg(*id, |arg| {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    arg.help(format!("{help} [default: {default}]"))
                });
            }
        }
        command
    };
    with_defaults(Cli::command()).mut_subcommand("run", with_defaults)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "wasmlet=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let globals = daemon::GlobalOverrides {
        runtime_endpoint: cli.runtime_endpoint,
        runtime_request_timeout: cli.runtime_request_timeout,
        plugin_cache: cli.plugin_cache,
    };
    let command = match cli.command {
        Command::Run(args) => {
            return match daemon::run(args, globals).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wasmlet: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        other => other,
    };
    // The other commands use the defaults and the global flags only.
    let config = match daemon::effective_config(&daemon::RunArgs::default(), globals) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wasmlet: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = CriClient::new(CriConfig::from(&config));
    let cache = config.plugin_cache();
    // The agent's own certificate, when it made it itself.
    let agent_ca = config.root_dir.join("pki/kubelet.crt");
    let outcome = match command {
        Command::Run(_) => Ok(ExitCode::SUCCESS), // handled above
        Command::RuntimeInfo => runtime_info(&runtime).await,
        Command::RuntimeReset => runtime_reset(&runtime).await,
        Command::Plugin(command) => plugin_cmd::run(command, cache).await,
        Command::Pods(flags) => pods_cmd::run(&flags, agent_ca)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Logs(args) => logs_cmd::run(args, agent_ca)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Exec(args) => exec_cmd::exec(args, agent_ca).await,
        Command::Attach(args) => exec_cmd::attach(args, agent_ca).await,
        Command::PortForward(args) => exec_cmd::port_forward(args, agent_ca).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmlet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn runtime_info(runtime: &CriClient) -> anyhow::Result<ExitCode> {
    let endpoint = runtime.config().endpoint.display().to_string();
    let version = runtime
        .version()
        .await
        .with_context(|| format!("runtime at {endpoint}"))?;
    let status = runtime.status().await?;
    print!("{}", render_info(&endpoint, &version, &status));
    let unmet = status.unmet();
    if unmet.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("wasmlet: runtime not ready: {}", unmet.join(", "));
        Ok(ExitCode::from(2))
    }
}

fn render_info(
    endpoint: &str,
    version: &wasmlet_core::RuntimeVersion,
    status: &RuntimeStatus,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "endpoint      {endpoint}");
    let _ = writeln!(
        out,
        "runtime       {} {}",
        version.runtime_name, version.runtime_version
    );
    let _ = writeln!(
        out,
        "CRI API       {} (CRI version {})",
        version.runtime_api_version, version.version
    );
    let _ = writeln!(out, "conditions");
    for c in &status.conditions {
        let detail = [c.reason.as_str(), c.message.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let line = format!("  {:<14}{:<7}{detail}", c.kind, c.status);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

async fn runtime_reset(runtime: &CriClient) -> anyhow::Result<ExitCode> {
    let sandboxes = runtime.list_sandboxes(&SandboxFilter::default()).await?;
    let mut failed = 0;
    for sandbox in &sandboxes {
        let outcome = async {
            runtime.stop_sandbox(&sandbox.id).await?;
            runtime.remove_sandbox(&sandbox.id).await
        }
        .await;
        if let Err(e) = outcome {
            failed += 1;
            eprintln!(
                "wasmlet: sandbox {} ({}): {e}",
                sandbox.id, sandbox.metadata.name
            );
        }
    }
    println!(
        "removed {} of {} pod sandboxes",
        sandboxes.len() - failed,
        sandboxes.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlet_core::{RuntimeCondition, RuntimeVersion};

    #[test]
    fn info_lists_every_condition_with_its_reason() {
        let version = RuntimeVersion {
            version: "0.1.0".into(),
            runtime_name: "containerd".into(),
            runtime_version: "1.6.20".into(),
            runtime_api_version: "v1".into(),
        };
        let status = RuntimeStatus {
            conditions: vec![
                RuntimeCondition {
                    kind: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                RuntimeCondition {
                    kind: "NetworkReady".into(),
                    status: false,
                    reason: "NetworkPluginNotReady".into(),
                    message: "cni config uninitialized".into(),
                },
            ],
        };
        let text = render_info("/run/x.sock", &version, &status);
        assert!(text.contains("runtime       containerd 1.6.20"), "{text}");
        assert!(text.contains("CRI API       v1"), "{text}");
        assert!(
            text.contains("NetworkReady  false  NetworkPluginNotReady: cni config uninitialized"),
            "{text}"
        );
        assert_eq!(status.unmet(), vec!["NetworkReady"]);
    }

    #[test]
    fn help_shows_the_configs_own_defaults() {
        let mut command = cli_command();
        let top = command.render_long_help().to_string();
        assert!(top.contains("[default: 2m]"), "{top}");
        assert!(
            top.contains("[default: /run/containerd/containerd.sock]"),
            "{top}"
        );
        let run = command
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        assert!(run.contains("[default: 10255]"), "{run}");
        assert!(run.contains("[default: /etc/wasmlet/manifests]"), "{run}");
    }

    #[test]
    fn cli_parses_timeouts_and_endpoint() {
        let cli = Cli::try_parse_from([
            "wasmlet",
            "runtime-info",
            "--runtime-endpoint",
            "unix:///tmp/c.sock",
            "--runtime-request-timeout",
            "30s",
        ])
        .expect("valid command line");
        assert_eq!(cli.runtime_request_timeout, Some(Duration::from_secs(30)));
        assert!(matches!(cli.command, Command::RuntimeInfo));
    }

    #[test]
    fn an_empty_path_turns_a_thing_off_and_kubelet_flag_names_are_accepted() {
        let cli = Cli::try_parse_from([
            "wasmlet",
            "--plugin-cache",
            "",
            "run",
            "--static-pod-path",
            "",
            "--kubeconfig",
            "",
            "--hostname-override",
            "n1",
            "--container-runtime-endpoint",
            "unix:///tmp/c.sock",
        ])
        .expect("valid command line");
        assert_eq!(cli.plugin_cache, Some(PathBuf::new()));
        assert_eq!(
            cli.runtime_endpoint,
            Some(PathBuf::from("unix:///tmp/c.sock"))
        );
        let Command::Run(args) = cli.command else {
            panic!("run");
        };
        assert_eq!(args.static_pod_path, Some(PathBuf::new()));
        assert_eq!(args.kubeconfig, Some(PathBuf::new()));
        assert_eq!(args.node_name.as_deref(), Some("n1"));
    }
}
