//! `wasmlet run`'s flags, named as the kubelet's where it has them, and the
//! one way they are applied over the config file.

use std::path::PathBuf;
use std::time::Duration;

use super::config::{AgentFileConfig, AuthorizationMode};

/// A path flag whose empty value (`""`) is meaningful: it turns the thing off.
pub fn path_or_empty(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

/// Flags of `wasmlet run`; each overrides the config file's field.
#[derive(Debug, Default, clap::Args)]
pub struct RunArgs {
    /// The config file (YAML, KubeletConfiguration-style). Without it, the
    /// embedded defaults apply.
    #[arg(long, env = "WASMLET_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's name (the kubelet's `--hostname-override`).
    #[arg(long, alias = "hostname-override")]
    pub node_name: Option<String>,
    /// Directory of static pod manifests (the kubelet's `--pod-manifest-path`;
    /// "" for none).
    #[arg(long, alias = "pod-manifest-path", value_parser = path_or_empty)]
    pub static_pod_path: Option<PathBuf>,
    /// URL of a Pod or PodList manifest.
    #[arg(long)]
    pub manifest_url: Option<String>,
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    #[arg(long)]
    pub pod_logs_dir: Option<PathBuf>,
    /// The unauthenticated HTTP port (0: off).
    #[arg(long)]
    pub read_only_port: Option<u16>,
    /// The kubelet port (HTTPS).
    #[arg(long)]
    pub port: Option<u16>,
    /// The address the kubelet port and the read-only port listen on.
    #[arg(long)]
    pub address: Option<std::net::IpAddr>,
    /// The healthz port (0: off), on `--healthz-bind-address`.
    #[arg(long)]
    pub healthz_port: Option<u16>,
    #[arg(long)]
    pub healthz_bind_address: Option<std::net::IpAddr>,
    /// The kubelet port's certificate and key (PEM).
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CAs whose client certificates authenticate on the kubelet port.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Requests with no credentials are `system:anonymous`.
    #[arg(long)]
    pub anonymous_auth: Option<bool>,
    /// Bearer tokens are reviewed by the API server (TokenReview).
    #[arg(long)]
    pub authentication_token_webhook: Option<bool>,
    /// `AlwaysAllow` or `Webhook` (SubjectAccessReview).
    #[arg(long, value_parser = ["AlwaysAllow", "Webhook"])]
    pub authorization_mode: Option<String>,
    /// The agent's state (pod directories, the self-signed certificate).
    #[arg(long)]
    pub root_dir: Option<PathBuf>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub file_check_frequency: Option<Duration>,
    /// How often the plugin directory is looked at for changes (0s: never).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub plugin_reload_period: Option<Duration>,
    /// A kubeconfig: join that cluster (register the Node, keep its Lease);
    /// "" for standalone.
    #[arg(long, value_parser = path_or_empty)]
    pub kubeconfig: Option<PathBuf>,
}

/// What the global flags say, when given.
#[derive(Debug, Default)]
pub struct GlobalOverrides {
    pub runtime_endpoint: Option<PathBuf>,
    pub runtime_request_timeout: Option<Duration>,
    pub plugin_cache: Option<PathBuf>,
}

/// The config file (if any), then every flag given over it: the one way
/// flags are applied, for every command.
pub fn effective_config(
    args: &RunArgs,
    globals: GlobalOverrides,
) -> anyhow::Result<AgentFileConfig> {
    let mut config = match &args.config {
        Some(path) => AgentFileConfig::load(path)?,
        None => AgentFileConfig::without_file(),
    };
    if let Some(v) = &args.node_name {
        config.node_name = Some(v.clone());
    }
    if let Some(v) = &args.static_pod_path {
        config.static_pod_path = (!v.as_os_str().is_empty()).then(|| v.clone());
    }
    if let Some(v) = &args.manifest_url {
        config.static_pod_url = (!v.is_empty()).then(|| v.clone());
    }
    if let Some(v) = &args.plugin_dir {
        config.plugin_dir = v.clone();
    }
    if let Some(v) = &args.pod_logs_dir {
        config.pod_logs_dir = v.clone();
    }
    if let Some(v) = args.read_only_port {
        config.read_only_port = v;
    }
    if let Some(v) = args.file_check_frequency {
        config.file_check_frequency = v;
    }
    if let Some(v) = args.plugin_reload_period {
        config.plugin_reload_period = v;
    }
    if let Some(v) = args.port {
        config.port = v;
    }
    if let Some(v) = args.address {
        config.address = v;
    }
    if let Some(v) = args.healthz_port {
        config.healthz_port = v;
    }
    if let Some(v) = args.healthz_bind_address {
        config.healthz_bind_address = v;
    }
    if let Some(v) = &args.tls_cert_file {
        config.tls_cert_file = Some(v.clone());
    }
    if let Some(v) = &args.tls_private_key_file {
        config.tls_private_key_file = Some(v.clone());
    }
    if let Some(v) = &args.client_ca_file {
        config.authentication.x509.client_ca_file = Some(v.clone());
    }
    if let Some(v) = args.anonymous_auth {
        config.authentication.anonymous.enabled = v;
    }
    if let Some(v) = args.authentication_token_webhook {
        config.authentication.webhook.enabled = v;
    }
    if let Some(v) = &args.authorization_mode {
        config.authorization.mode = if v == "Webhook" {
            AuthorizationMode::Webhook
        } else {
            AuthorizationMode::AlwaysAllow
        };
    }
    if let Some(v) = &args.root_dir {
        config.root_dir = v.clone();
    }
    if let Some(v) = &args.kubeconfig {
        config.kubeconfig = (!v.as_os_str().is_empty()).then(|| v.clone());
    }
    if let Some(v) = globals.runtime_endpoint {
        config.container_runtime_endpoint = v;
    }
    if let Some(v) = globals.runtime_request_timeout {
        config.runtime_request_timeout = v;
    }
    if let Some(v) = globals.plugin_cache {
        config.plugin_cache_dir = v;
    }
    config
        .validate()
        .and_then(|()| config.check_webhooks_have_a_cluster())
        .map_err(|e| match &args.config {
            Some(path) => anyhow::anyhow!("{} (or its flag): {e}", path.display()),
            None => anyhow::anyhow!("{e}"),
        })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let args = RunArgs {
            node_name: Some("flag-node".into()),
            read_only_port: Some(1234),
            static_pod_path: Some(PathBuf::new()),
            ..Default::default()
        };
        let config = effective_config(&args, GlobalOverrides::default()).expect("config");
        assert_eq!(config.node_name.as_deref(), Some("flag-node"));
        assert_eq!(config.read_only_port, 1234);
        assert_eq!(
            config.static_pod_path, None,
            "an empty path turns the file source off"
        );
    }

    #[test]
    fn the_kubelet_s_port_flags_set_the_port_s_fields() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let cli = Cli::try_parse_from([
            "run",
            "--port",
            "11250",
            "--anonymous-auth=false",
            "--authorization-mode",
            "Webhook",
            "--authentication-token-webhook=true",
            "--client-ca-file",
            "/ca.pem",
            "--kubeconfig",
            "/kc",
        ])
        .expect("flags");
        let config = effective_config(&cli.run, GlobalOverrides::default()).expect("config");
        assert_eq!(config.port, 11250);
        assert!(!config.authentication.anonymous.enabled);
        assert!(config.authentication.webhook.enabled);
        assert_eq!(config.authorization.mode, AuthorizationMode::Webhook);
        assert_eq!(
            config.authentication.x509.client_ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        // Webhooks without a cluster are refused, naming the field.
        let alone = Cli::try_parse_from(["run", "--authorization-mode", "Webhook"]).expect("flags");
        let e = effective_config(&alone.run, GlobalOverrides::default()).expect_err("refused");
        assert!(e.to_string().contains("authorization.mode"), "{e}");
        assert!(Cli::try_parse_from(["run", "--authorization-mode", "Node"]).is_err());
    }
}
