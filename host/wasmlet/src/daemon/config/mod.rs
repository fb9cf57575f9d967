//! The agent's configuration: a YAML file read as the kubelet reads its
//! KubeletConfiguration (`kubelet.config.k8s.io/v1beta1`: the same field
//! names, durations and zero-means-default), plus wasmlet's own fields;
//! flags that override it, and defaults for everything, so it runs with
//! neither. A KubeletConfiguration field wasmlet does not carry out is read
//! and named in one warning at start, never refused (a kubeadm node's file
//! loads); a field that is neither the kubelet's nor wasmlet's is an error.

mod kubelet;
mod server;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use serde::Deserialize;
use wasmlet_agent::AgentConfig;
use wasmlet_agent::image_gc::ImageGcPolicy;
use wasmlet_agent::logs::rotation::RotationPolicy;
use wasmlet_agent::network::DnsSettings;
use wasmlet_cri::CriConfig;
use wasmlet_plugin_host::{Capabilities, FieldError, LimitCaps};

use crate::node_facts;

pub use server::{Authentication, Authorization, AuthorizationMode, TlsVersion};

/// What is wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not YAML of the config's shape; the message names the field.
    #[error("{0}")]
    Syntax(String),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("{}: {source}", path.display())]
    In {
        path: PathBuf,
        source: Box<ConfigError>,
    },
}

/// The kubelet's default runtime: containerd at its standard socket.
pub const DEFAULT_ENDPOINT: &str = "/run/containerd/containerd.sock";

use kubelet::{API_VERSION, KIND, KUBELET_ONLY_FIELDS};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentFileConfig {
    /// `kubelet.config.k8s.io/v1beta1`, if given.
    pub api_version: Option<String>,
    /// `KubeletConfiguration`, if given.
    pub kind: Option<String>,
    /// Default: the host name.
    pub node_name: Option<String>,
    /// The node's address (host-network pods' IP). Default: none.
    #[serde(rename = "nodeIP")]
    pub node_ip: Option<IpAddr>,
    /// Labels of the node, for admission (node selectors, affinity); the
    /// well-known ones (hostname, os, arch) are always there.
    pub node_labels: BTreeMap<String, String>,
    /// Taints of the node, for admission.
    pub register_with_taints: Vec<Taint>,
    /// Static pod manifests (the file source). Empty: no file source.
    pub static_pod_path: Option<PathBuf>,
    /// A URL serving a Pod or PodList (the http source). Empty: none.
    #[serde(rename = "staticPodURL")]
    pub static_pod_url: Option<String>,
    /// Headers for the manifest URL, as the kubelet's `staticPodURLHeader`.
    #[serde(rename = "staticPodURLHeader")]
    pub static_pod_url_header: BTreeMap<String, Vec<String>>,
    #[serde(with = "humantime_serde")]
    pub file_check_frequency: Duration,
    #[serde(with = "humantime_serde")]
    pub http_check_frequency: Duration,
    /// Periodic resync of every pod.
    #[serde(with = "humantime_serde")]
    pub sync_frequency: Duration,
    /// The PLEG's relist period.
    #[serde(with = "humantime_serde")]
    pub relist_period: Duration,
    pub container_runtime_endpoint: PathBuf,
    #[serde(with = "humantime_serde")]
    pub runtime_request_timeout: Duration,
    /// The plugin directory: manifests (`*.toml`) next to their components.
    pub plugin_dir: PathBuf,
    /// Where compiled plugins are cached ("" for none).
    pub plugin_cache_dir: PathBuf,
    /// Admission plugins, in the order they run. Default: every admission
    /// plugin in the directory, by name.
    pub admission_plugins: Option<Vec<String>>,
    /// How often the plugin directory is looked at for added, changed or
    /// removed plugins (`0s`: never; plugins load at start only).
    #[serde(with = "humantime_serde")]
    pub plugin_reload_period: Duration,
    /// The operator's grants, by plugin name: a plugin gets at most what its
    /// manifest asks for and what is granted here.
    pub plugin_grants: BTreeMap<String, Capabilities>,
    /// The most any plugin may ask for in its manifest's `[limits]`.
    pub plugin_limits: PluginLimits,
    /// Container logs: `<podLogsDir>/<namespace>_<name>_<uid>/<container>/<n>.log`.
    pub pod_logs_dir: PathBuf,
    /// Links to every container's log, named
    /// `<pod>_<namespace>_<container>-<id>.log`, where log collectors look
    /// on a kubelet node (the kubelet's fixed `/var/log/containers`).
    pub container_logs_dir: PathBuf,
    /// A container log bigger than this is rotated (a quantity: `10Mi`).
    pub container_log_max_size: String,
    /// Log files kept per container, the live one included (at least 2).
    pub container_log_max_files: usize,
    /// How often container logs are checked for rotation.
    #[serde(with = "humantime_serde")]
    pub container_log_monitor_interval: Duration,
    /// The agent's state: pod directories with their volumes, as the
    /// kubelet's `--root-dir`.
    pub root_dir: PathBuf,
    /// Sysctls pods may set beyond the safe set: names or `prefix*`
    /// patterns, each namespaced (`net.*`, `kernel.shm*`, `kernel.msg*`,
    /// `kernel.sem`, `fs.mqueue.*`).
    pub allowed_unsafe_sysctls: Vec<String>,
    /// The cluster's DNS servers, for `ClusterFirst` pods. Empty: they get
    /// the node's resolver (with a MissingClusterDNS warning, as the kubelet).
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster's domain (e.g. `cluster.local`): pods' search path and FQDN.
    pub cluster_domain: String,
    /// The resolver file `Default` pods get; `""` for none.
    pub resolv_conf: PathBuf,
    /// The kubelet port's (and the read-only port's) address.
    pub address: IpAddr,
    /// The authenticated HTTPS port (the kubelet's 10250).
    pub port: u16,
    /// Serve it at all (the kubelet's `enableServer`).
    pub enable_server: bool,
    /// The unauthenticated HTTP port; 0 (a config file's default): off.
    pub read_only_port: u16,
    /// `/healthz` alone, over HTTP; port 0: off.
    pub healthz_bind_address: IpAddr,
    pub healthz_port: u16,
    /// The kubelet port's certificate and key (PEM). Unset: a self-signed
    /// pair kept in `<rootDir>/pki`, made on first start.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// `VersionTLS12` or `VersionTLS13`; "" for TLS 1.2.
    pub tls_min_version: String,
    pub authentication: Authentication,
    pub authorization: Authorization,
    /// How long shutdown waits for the pod workers.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
    /// A kubeconfig: cluster mode (the Node, its Lease). Default: none,
    /// standalone.
    pub kubeconfig: Option<PathBuf>,
    /// Register the Node in cluster mode.
    pub register_node: bool,
    /// The node Lease's duration; it is renewed every quarter of it.
    pub node_lease_duration_seconds: u32,
    /// How often the Node's status is computed (and patched when it changed).
    #[serde(with = "humantime_serde")]
    pub node_status_update_frequency: Duration,
    /// How often an unchanged Node status is patched anyway.
    #[serde(with = "humantime_serde")]
    pub node_status_report_frequency: Duration,
    /// Resources held back for Kubernetes' own daemons and for the
    /// system's (`cpu: 100m`, `memory: 1Gi`, ...): the Node's allocatable is
    /// its capacity less both.
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    /// Image GC starts when the image filesystem is this full (percent)...
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: u8,
    /// ... and frees it down to this.
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: u8,
    /// An image younger than this is never removed.
    #[serde(rename = "imageMinimumGCAge", with = "humantime_serde")]
    pub image_minimum_gc_age: Duration,
    /// An image unused this long is removed (`0s`: never for its age).
    #[serde(rename = "imageMaximumGCAge", with = "humantime_serde")]
    pub image_maximum_gc_age: Duration,
    /// How often image GC runs (wasmlet's; the kubelet's is fixed at 5m).
    #[serde(rename = "imageGCPeriod", with = "humantime_serde")]
    pub image_gc_period: Duration,
    /// Every other field: a KubeletConfiguration field wasmlet does not
    /// carry out (checked against [`KUBELET_ONLY_FIELDS`]).
    #[serde(flatten)]
    kubelet_only: BTreeMap<String, serde::de::IgnoredAny>,
}

/// The agent's and the CRI client's own defaults are the file's: one
/// definition each, in the library that uses it.
impl Default for AgentFileConfig {
    fn default() -> Self {
        let agent = AgentConfig::new(String::new());
        let cri = CriConfig::new(DEFAULT_ENDPOINT);
        Self {
            api_version: None,
            kind: None,
            node_name: None,
            node_ip: agent.host_ip,
            node_labels: BTreeMap::new(),
            register_with_taints: Vec::new(),
            static_pod_path: Some("/etc/wasmlet/manifests".into()),
            static_pod_url: None,
            static_pod_url_header: BTreeMap::new(),
            file_check_frequency: Duration::from_secs(20),
            http_check_frequency: Duration::from_secs(20),
            sync_frequency: agent.resync,
            relist_period: agent.relist_period,
            container_runtime_endpoint: cri.endpoint,
            runtime_request_timeout: cri.call_timeout,
            plugin_dir: "/usr/lib/wasmlet/plugins".into(),
            plugin_cache_dir: "/var/cache/wasmlet/plugins".into(),
            admission_plugins: None,
            plugin_reload_period: Duration::from_secs(5),
            plugin_grants: BTreeMap::new(),
            plugin_limits: PluginLimits::default(),
            pod_logs_dir: agent.log_root,
            container_logs_dir: agent.container_logs_dir,
            container_log_max_size: format!("{}Mi", agent.log_rotation.max_size >> 20),
            container_log_max_files: agent.log_rotation.max_files,
            container_log_monitor_interval: agent.log_rotation.interval,
            root_dir: agent.root_dir,
            allowed_unsafe_sysctls: Vec::new(),
            cluster_dns: agent.dns.cluster_dns,
            cluster_domain: agent.dns.cluster_domain,
            resolv_conf: agent.dns.resolv_conf.unwrap_or_default(),
            address: IpAddr::from([0, 0, 0, 0]),
            port: 10250,
            enable_server: true,
            read_only_port: 0,
            healthz_bind_address: IpAddr::from([127, 0, 0, 1]),
            healthz_port: 10248,
            tls_cert_file: None,
            tls_private_key_file: None,
            tls_min_version: String::new(),
            authentication: Authentication::default(),
            authorization: Authorization::default(),
            shutdown_grace_period: agent.drain,
            kubeconfig: None,
            register_node: true,
            node_lease_duration_seconds: 40,
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            kube_reserved: BTreeMap::new(),
            system_reserved: BTreeMap::new(),
            image_gc_high_threshold_percent: agent.image_gc.high_threshold_percent,
            image_gc_low_threshold_percent: agent.image_gc.low_threshold_percent,
            image_minimum_gc_age: agent.image_gc.min_age,
            image_maximum_gc_age: agent.image_gc.max_age,
            image_gc_period: agent.image_gc.period,
            kubelet_only: BTreeMap::new(),
        }
    }
}

impl From<&AgentFileConfig> for CriConfig {
    fn from(config: &AgentFileConfig) -> Self {
        CriConfig::new(&config.container_runtime_endpoint)
            .with_call_timeout(config.runtime_request_timeout)
    }
}

/// Everything but the sources, which come from the loaded plugins.
impl From<&AgentFileConfig> for AgentConfig {
    fn from(config: &AgentFileConfig) -> Self {
        let mut agent = AgentConfig::new(config.node_name());
        agent.host_ip = config.node_ip;
        agent.log_root = config.pod_logs_dir.clone();
        agent.container_logs_dir = config.container_logs_dir.clone();
        agent.root_dir = config.root_dir.clone();
        agent.dns = DnsSettings {
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            resolv_conf: (!config.resolv_conf.as_os_str().is_empty())
                .then(|| config.resolv_conf.clone()),
        };
        // Checked when the file was loaded.
        agent.log_rotation = config.log_rotation().unwrap_or_default();
        agent.relist_period = config.relist_period;
        agent.resync = config.sync_frequency;
        agent.drain = config.shutdown_grace_period;
        agent.image_gc = ImageGcPolicy {
            high_threshold_percent: config.image_gc_high_threshold_percent,
            low_threshold_percent: config.image_gc_low_threshold_percent,
            min_age: config.image_minimum_gc_age,
            max_age: config.image_maximum_gc_age,
            period: config.image_gc_period,
        };
        agent
    }
}

impl AgentFileConfig {
    /// `nodeName`, else the host name; lowercased, as the kubelet's.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(node_facts::hostname)
            .to_lowercase()
    }

    /// The compiled-plugin cache, if there is to be one (`""`: none). The
    /// default is the system's, which only root may write: another user's
    /// is `$XDG_CACHE_HOME/wasmlet/plugins` (else `~/.cache/wasmlet/plugins`),
    /// so a Python or JS plugin is compiled once, not at every start.
    pub fn plugin_cache(&self) -> Option<PathBuf> {
        if self.plugin_cache_dir.as_os_str().is_empty() {
            return None;
        }
        let is_default = self.plugin_cache_dir == Self::default().plugin_cache_dir;
        if is_default && !rustix::process::geteuid().is_root() {
            let user = user_cache(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"));
            if user.is_some() {
                return user;
            }
        }
        Some(self.plugin_cache_dir.clone())
    }

    /// The defaults without a config file: the kubelet's command-line ones
    /// (its `applyLegacyDefaults`): anonymous requests always allowed, and
    /// the read-only port 10255. Unlike the kubelet's, both ports then listen
    /// on 127.0.0.1 only: unauthenticated, they serve this machine alone.
    pub fn without_file() -> Self {
        Self {
            address: IpAddr::from([127, 0, 0, 1]),
            read_only_port: 10255,
            authentication: Authentication::legacy(),
            authorization: Authorization::legacy(),
            ..Self::default()
        }
    }

    /// The defaults as `--help` shows them, by flag id: from the one
    /// definition above, so help and behaviour cannot drift apart.
    pub fn help_defaults() -> Vec<(&'static str, String)> {
        let d = Self::without_file();
        let duration = |v: Duration| humantime::format_duration(v).to_string();
        vec![
            (
                "runtime_endpoint",
                d.container_runtime_endpoint.display().to_string(),
            ),
            (
                "runtime_request_timeout",
                duration(d.runtime_request_timeout),
            ),
            ("plugin_cache", d.plugin_cache_dir.display().to_string()),
            (
                "static_pod_path",
                d.static_pod_path
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string()),
            ),
            ("plugin_dir", d.plugin_dir.display().to_string()),
            ("pod_logs_dir", d.pod_logs_dir.display().to_string()),
            ("read_only_port", d.read_only_port.to_string()),
            ("file_check_frequency", duration(d.file_check_frequency)),
        ]
    }

    /// Reads `path`; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| ConfigError::In {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut config: Self =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        config.check_kind()?;
        config.default_zero_values();
        config.validate()?;
        Ok(config)
    }

    /// The KubeletConfiguration fields the file set that wasmlet does not
    /// carry out, for the warning at start.
    pub fn not_implemented(&self) -> Vec<&str> {
        self.kubelet_only.keys().map(String::as_str).collect()
    }

    fn check_kind(&self) -> Result<(), FieldError> {
        if let Some(v) = self.api_version.as_deref().filter(|v| *v != API_VERSION) {
            return Err(FieldError::new(
                "apiVersion",
                format!("{v:?}: expected {API_VERSION}"),
            ));
        }
        if let Some(k) = self.kind.as_deref().filter(|k| *k != KIND) {
            return Err(FieldError::new("kind", format!("{k:?}: expected {KIND}")));
        }
        match self
            .kubelet_only
            .keys()
            .find(|field| !KUBELET_ONLY_FIELDS.contains(&field.as_str()))
        {
            Some(unknown) => Err(FieldError::new(
                unknown.as_str(),
                "unknown field: neither a KubeletConfiguration field nor one of wasmlet's",
            )),
            None => Ok(()),
        }
    }

    /// The kubelet's defaulting: a zero (or empty) value of a field the
    /// kubelet defaults means its default (kubeadm writes `0s` for them).
    fn default_zero_values(&mut self) {
        let d = Self::default();
        let durations = [
            (&mut self.sync_frequency, d.sync_frequency),
            (&mut self.file_check_frequency, d.file_check_frequency),
            (&mut self.http_check_frequency, d.http_check_frequency),
            (&mut self.runtime_request_timeout, d.runtime_request_timeout),
            (
                &mut self.node_status_update_frequency,
                d.node_status_update_frequency,
            ),
            (
                &mut self.node_status_report_frequency,
                d.node_status_report_frequency,
            ),
            (
                &mut self.container_log_monitor_interval,
                d.container_log_monitor_interval,
            ),
            (&mut self.shutdown_grace_period, d.shutdown_grace_period),
            (&mut self.image_minimum_gc_age, d.image_minimum_gc_age),
        ];
        for (value, default) in durations {
            if value.is_zero() {
                *value = default;
            }
        }
        if self.node_lease_duration_seconds == 0 {
            self.node_lease_duration_seconds = d.node_lease_duration_seconds;
        }
        if self.port == 0 {
            self.port = d.port;
        }
        self.authentication.default_zero_values();
        self.authorization.default_zero_values();
        if self.container_log_max_size.is_empty() {
            self.container_log_max_size = d.container_log_max_size;
        }
        if self.container_log_max_files == 0 {
            self.container_log_max_files = d.container_log_max_files;
        }
        // (A `unix://` endpoint is the CRI client's to read.)
        if self.container_runtime_endpoint.as_os_str().is_empty() {
            self.container_runtime_endpoint = d.container_runtime_endpoint;
        }
    }

    /// `containerLogMaxSize`, `containerLogMaxFiles` and
    /// `containerLogMonitorInterval`, checked.
    pub fn log_rotation(&self) -> Result<RotationPolicy, FieldError> {
        let size = wasmlet_rules::quantity::milli(&self.container_log_max_size)
            .map_err(|e| FieldError::new("containerLogMaxSize", e))?
            / 1000;
        if size <= 0 {
            return Err(FieldError::new(
                "containerLogMaxSize",
                "must be greater than 0",
            ));
        }
        if self.container_log_max_files < 2 {
            return Err(FieldError::new(
                "containerLogMaxFiles",
                "must be greater than 1",
            ));
        }
        Ok(RotationPolicy {
            max_size: u64::try_from(size).unwrap_or(u64::MAX),
            max_files: self.container_log_max_files,
            interval: self.container_log_monitor_interval,
        })
    }

    /// What no deserializer checks: errors name the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let periods = [
            ("fileCheckFrequency", self.file_check_frequency),
            ("httpCheckFrequency", self.http_check_frequency),
            ("syncFrequency", self.sync_frequency),
            ("relistPeriod", self.relist_period),
            ("runtimeRequestTimeout", self.runtime_request_timeout),
            (
                "containerLogMonitorInterval",
                self.container_log_monitor_interval,
            ),
            (
                "nodeStatusUpdateFrequency",
                self.node_status_update_frequency,
            ),
            (
                "nodeStatusReportFrequency",
                self.node_status_report_frequency,
            ),
        ];
        for (field, value) in periods {
            if value.is_zero() {
                return Err(FieldError::new(field, "must be longer than 0s"));
            }
        }
        self.log_rotation()?;
        if self.image_gc_period.is_zero() {
            return Err(FieldError::new("imageGCPeriod", "must be longer than 0s"));
        }
        for (field, percent) in [
            (
                "imageGCHighThresholdPercent",
                self.image_gc_high_threshold_percent,
            ),
            (
                "imageGCLowThresholdPercent",
                self.image_gc_low_threshold_percent,
            ),
        ] {
            if percent > 100 {
                return Err(FieldError::new(field, "must be from 0 to 100"));
            }
        }
        if self.image_gc_low_threshold_percent >= self.image_gc_high_threshold_percent {
            return Err(FieldError::new(
                "imageGCLowThresholdPercent",
                "must be less than imageGCHighThresholdPercent",
            ));
        }
        for (field, reserved) in [
            ("kubeReserved", &self.kube_reserved),
            ("systemReserved", &self.system_reserved),
        ] {
            for (resource, amount) in reserved {
                match wasmlet_rules::quantity::milli(amount) {
                    Ok(m) if m >= 0 => {}
                    Ok(_) => {
                        return Err(FieldError::new(
                            format!("{field}.{resource}"),
                            "must not be negative",
                        ));
                    }
                    Err(e) => return Err(FieldError::new(format!("{field}.{resource}"), e)),
                }
            }
        }
        if self.node_lease_duration_seconds == 0 {
            return Err(FieldError::new(
                "nodeLeaseDurationSeconds",
                "must be greater than 0",
            ));
        }
        TlsVersion::parse(&self.tls_min_version)
            .map_err(|e| FieldError::new("tlsMinVersion", e))?;
        if self.tls_cert_file.is_some() != self.tls_private_key_file.is_some() {
            return Err(FieldError::new(
                "tlsPrivateKeyFile",
                "tlsCertFile and tlsPrivateKeyFile are set together or not at all",
            ));
        }
        let paths = [
            ("staticPodPath", self.static_pod_path.as_deref()),
            ("rootDir", Some(self.root_dir.as_path())),
        ];
        for (field, path) in paths {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return Err(FieldError::new(
                    field,
                    format!("{} is not absolute", path.display()),
                ));
            }
        }
        self.plugin_limits
            .caps()
            .validate()
            .map_err(|e| e.within("pluginLimits"))?;
        for (plugin, grant) in &self.plugin_grants {
            grant
                .validate()
                .map_err(|e| e.within(&format!("pluginGrants.{plugin}")))?;
        }
        Ok(())
    }
}

impl AgentFileConfig {
    /// The webhooks ask the API server: without a kubeconfig there is none.
    /// Checked once the flags are in (`--kubeconfig` may give it).
    pub fn check_webhooks_have_a_cluster(&self) -> Result<(), FieldError> {
        if self.enable_server && self.kubeconfig.is_none() && self.authentication.webhook.enabled {
            return Err(FieldError::new(
                "authentication.webhook.enabled",
                "webhook authentication asks the API server: it needs a kubeconfig \
                 (set it to false, or `enableServer: false`, for a standalone node)",
            ));
        }
        if self.enable_server
            && self.kubeconfig.is_none()
            && self.authorization.mode == AuthorizationMode::Webhook
        {
            return Err(FieldError::new(
                "authorization.mode",
                "Webhook asks the API server: it needs a kubeconfig \
                 (AlwaysAllow, or `enableServer: false`, for a standalone node)",
            ));
        }
        Ok(())
    }
}

/// A user's own plugin cache: under `XDG_CACHE_HOME`, else `~/.cache`.
fn user_cache(
    xdg_cache_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let base = xdg_cache_home
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmlet/plugins"))
}

/// `pluginLimits`: the operator's caps on what plugins ask for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PluginLimits {
    #[serde(with = "humantime_serde")]
    pub max_admission_deadline: Duration,
    #[serde(with = "humantime_serde")]
    pub max_source_deadline: Duration,
    #[serde(with = "humantime_serde")]
    pub max_handler_deadline: Duration,
    #[serde(rename = "maxMemoryMiB")]
    pub max_memory_mib: u32,
    pub max_concurrency: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        let caps = LimitCaps::default();
        Self {
            max_admission_deadline: caps.admission_deadline,
            max_source_deadline: caps.source_deadline,
            max_handler_deadline: caps.handler_deadline,
            max_memory_mib: caps.memory_mib,
            max_concurrency: caps.concurrency,
        }
    }
}

impl PluginLimits {
    pub fn caps(&self) -> LimitCaps {
        LimitCaps {
            admission_deadline: self.max_admission_deadline,
            source_deadline: self.max_source_deadline,
            handler_deadline: self.max_handler_deadline,
            memory_mib: self.max_memory_mib,
            concurrency: self.max_concurrency,
        }
    }
}

/// Durations as `20s`, `1m30s`.
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
