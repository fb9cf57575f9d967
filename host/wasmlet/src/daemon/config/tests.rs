//! The config file's reading and checks.

use super::*;

#[test]
fn an_empty_file_is_all_defaults() {
    assert_eq!(
        AgentFileConfig::parse("").ok(),
        Some(AgentFileConfig::default())
    );
}

#[test]
fn reads_kubelet_style_fields() {
    let config = AgentFileConfig::parse(
        "nodeName: n1\nstaticPodPath: /m\nstaticPodURL: http://10.0.0.1/pods\nfileCheckFrequency: 5s\nreadOnlyPort: 12000\nadmissionPlugins: [taints, host-ports]\npluginGrants:\n  file-source:\n    read-dirs: [/m]\n",
    )
    .expect("valid");
    assert_eq!(config.node_name.as_deref(), Some("n1"));
    assert_eq!(config.file_check_frequency, Duration::from_secs(5));
    assert_eq!(config.read_only_port, 12000);
    assert_eq!(
        config.admission_plugins,
        Some(vec!["taints".into(), "host-ports".into()])
    );
    assert_eq!(
        config.plugin_grants["file-source"].read_dirs,
        [PathBuf::from("/m")]
    );
}

/// What `kubeadm init` (1.34) writes to /var/lib/kubelet/config.yaml.
const KUBEADM_CONFIG: &str = r#"apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
crashLoopBackOff: {}
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
"#;

#[test]
fn a_kubeadm_kubelet_configuration_loads_with_the_kubelet_s_defaults() {
    let config = AgentFileConfig::parse(KUBEADM_CONFIG).expect("kubeadm's file loads");
    let d = AgentFileConfig::default();
    assert_eq!(
        config.static_pod_path.as_deref(),
        Some(Path::new("/etc/kubernetes/manifests"))
    );
    assert_eq!(config.cluster_dns, [IpAddr::from([10, 96, 0, 10])]);
    assert_eq!(config.cluster_domain, "cluster.local");
    // `0s` and "" are the kubelet's defaults.
    assert_eq!(config.sync_frequency, d.sync_frequency);
    assert_eq!(config.image_minimum_gc_age, Duration::from_secs(120));
    assert_eq!(config.image_maximum_gc_age, Duration::ZERO, "no maximum");
    assert_eq!(config.file_check_frequency, d.file_check_frequency);
    assert_eq!(config.runtime_request_timeout, d.runtime_request_timeout);
    assert_eq!(config.node_status_update_frequency, Duration::from_secs(10));
    assert_eq!(
        config.container_runtime_endpoint,
        d.container_runtime_endpoint
    );
    // The kubelet port as kubeadm sets it up.
    assert_eq!(
        config.authentication.x509.client_ca_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/ca.crt"))
    );
    assert!(config.authentication.webhook.enabled);
    assert!(!config.authentication.anonymous.enabled);
    assert_eq!(
        config.authentication.webhook.cache_ttl,
        Duration::from_secs(120)
    );
    assert_eq!(config.authorization.mode, AuthorizationMode::Webhook);
    assert_eq!(
        config.authorization.webhook.cache_unauthorized_ttl,
        Duration::from_secs(30)
    );
    assert_eq!((config.port, config.read_only_port), (10250, 0));
    assert_eq!(config.healthz_port, 10248);
    assert_eq!(
        config.check_webhooks_have_a_cluster().map_err(|e| e.to_string()),
        Err("authentication.webhook.enabled: webhook authentication asks the API server: \
             it needs a kubeconfig (set it to false, or `enableServer: false`, for a standalone node)"
            .into()),
        "the webhooks need a cluster"
    );
    assert_eq!(
        config.not_implemented(),
        [
            "cgroupDriver",
            "cpuManagerReconcilePeriod",
            "crashLoopBackOff",
            "evictionPressureTransitionPeriod",
            "logging",
            "memorySwap",
            "rotateCertificates",
            "shutdownGracePeriodCriticalPods",
            "streamingConnectionIdleTimeout",
            "volumeStatsAggPeriod",
        ]
    );
}

#[test]
fn a_user_s_plugin_cache_is_under_their_cache_home() {
    assert_eq!(
        user_cache(Some("/x".into()), Some("/home/u".into())),
        Some(PathBuf::from("/x/wasmlet/plugins"))
    );
    assert_eq!(
        user_cache(Some("".into()), Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.cache/wasmlet/plugins"))
    );
    assert_eq!(user_cache(None, None), None);
    if rustix::process::geteuid().is_root() {
        assert_eq!(
            AgentFileConfig::default().plugin_cache(),
            Some(PathBuf::from("/var/cache/wasmlet/plugins")),
            "root keeps the system's"
        );
    }
}

#[test]
fn another_kind_or_an_unknown_field_is_refused_by_name() {
    let cases = [
        ("apiVersion: kubelet.config.k8s.io/v1\n", "apiVersion"),
        ("kind: KubeProxyConfiguration\n", "kind"),
        ("cgroupDriver: systemd\nnodeNmae: x\n", "nodeNmae"),
    ];
    for (text, field) in cases {
        let e = AgentFileConfig::parse(text).expect_err(text).to_string();
        assert!(e.contains(field), "{text:?} → {e}");
    }
}

#[test]
fn zero_periods_ports_and_escaping_grants_are_refused_by_name() {
    let cases = [
        ("relistPeriod: 0s\n", "relistPeriod"),
        ("tlsMinVersion: VersionTLS11\n", "tlsMinVersion"),
        ("tlsCertFile: /c.pem\n", "tlsPrivateKeyFile"),
        ("authorization:\n  mode: Node\n", "Node"),
        (
            "authentication:\n  x509:\n    clientCaFile: /ca\n",
            "clientCaFile",
        ),
        (
            "imageGCHighThresholdPercent: 50\nimageGCLowThresholdPercent: 50\n",
            "imageGCLowThresholdPercent",
        ),
        (
            "imageGCHighThresholdPercent: 101\n",
            "imageGCHighThresholdPercent",
        ),
        ("imageGCPeriod: 0s\n", "imageGCPeriod"),
        ("readOnlyPort: -1\n", "readOnlyPort"),
        ("relistPeriod: -1s\n", "relistPeriod"),
        ("staticPodPath: manifests\n", "staticPodPath"),
        (
            "pluginLimits:\n  maxAdmissionDeadline: 0s\n",
            "pluginLimits.maxAdmissionDeadline",
        ),
        (
            "pluginLimits:\n  maxMemoryMiB: 0\n",
            "pluginLimits.maxMemoryMiB",
        ),
        (
            "pluginGrants:\n  file-source:\n    read-dirs: [/etc/../root]\n",
            "pluginGrants.file-source.read-dirs",
        ),
    ];
    for (text, field) in cases {
        let e = AgentFileConfig::parse(text).expect_err(text).to_string();
        assert!(e.contains(field), "{text:?} → {e}");
    }
}

#[test]
fn errors_name_the_field() {
    let e = AgentFileConfig::parse("fileCheckFrequency: soon\n")
        .expect_err("bad")
        .to_string();
    assert!(
        e.contains("soon") || e.contains("fileCheckFrequency"),
        "{e}"
    );
    let e = AgentFileConfig::parse("nodeNmae: x\n")
        .expect_err("typo")
        .to_string();
    assert!(e.contains("nodeNmae"), "{e}");
}

#[test]
fn without_a_file_the_ports_have_the_kubelet_s_command_line_defaults() {
    let legacy = AgentFileConfig::without_file();
    assert_eq!(legacy.read_only_port, 10255);
    assert!(legacy.authentication.anonymous.enabled);
    assert!(!legacy.authentication.webhook.enabled);
    assert_eq!(legacy.authorization.mode, AuthorizationMode::AlwaysAllow);
    // wasmlet's: unauthenticated ports serve this machine only.
    assert_eq!(legacy.address, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(legacy.check_webhooks_have_a_cluster(), Ok(()));
    // A file's defaults are the v1beta1 ones.
    let file = AgentFileConfig::parse("nodeName: n\n").expect("valid");
    assert_eq!((file.read_only_port, file.port), (0, 10250));
    assert_eq!(file.address, IpAddr::from([0, 0, 0, 0]));
    assert_eq!(
        file.container_runtime_endpoint,
        PathBuf::from("/run/containerd/containerd.sock")
    );
}
