//! The pod spec fields wasmlet does not carry out yet. A pod that sets one
//! is rejected at admission, naming the field, before any plugin is asked:
//! "Running" must mean running as specified, never a pod with its volumes,
//! env references or security settings silently dropped.
//!
//! The list shrinks as the runtime learns each field; it is checked in the
//! host, not by a plugin, so that no plugin directory can switch it off.

use std::path::Path;

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, Pod, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
    Volume, VolumeMount,
};
use wasmlet_rules::FieldError;
use wasmlet_rules::pod::PodExt;
use wasmlet_rules::security;

use crate::sysctl::{self, Allowlist};

/// The admission reason of a pod this rejects.
pub const REASON: &str = "UnsupportedPodSpec";

/// What this node can enforce beyond what every Linux node can, and what
/// its operator lets pods set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSupport {
    pub apparmor: bool,
    /// The sysctls pods may set.
    pub sysctls: Allowlist,
}

impl NodeSupport {
    /// Reads it off the kernel, as the kubelet does, with `sysctls`.
    /// Blocking (sysfs): call it while building the agent, not on the
    /// runtime's threads.
    pub fn detect(sysctls: Allowlist) -> Self {
        let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled");
        Self {
            apparmor: Path::new("/sys/kernel/security/apparmor").is_dir()
                && enabled.is_ok_and(|e| e.starts_with('Y')),
            sysctls,
        }
    }
}

/// Why the node will not run a pod: an admission reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// Whether `pod` can run here as specified: what wasmlet does not carry
/// out yet, then what the node cannot enforce or does not allow (the
/// kubelet's AppArmor and sysctl admission, with their reasons and messages).
pub fn refusal(pod: &Pod, node: &NodeSupport) -> Option<Refusal> {
    if let Some(field) = first_unsupported(pod) {
        return Some(Refusal {
            reason: REASON,
            message: field.to_string(),
        });
    }
    if let Some(refusal) = os_refusal(pod) {
        return Some(refusal);
    }
    if !node.apparmor && security::requires_apparmor(pod) {
        return Some(Refusal {
            reason: "AppArmor",
            message: "Cannot enforce AppArmor: AppArmor is not enabled on the host".into(),
        });
    }
    node.sysctls.check(pod).err().map(|message| Refusal {
        reason: sysctl::FORBIDDEN_REASON,
        message,
    })
}

/// API objects (ConfigMaps, Secrets, claims, tokens) exist only in a
/// cluster: a static pod must not name them, as the API server refuses its
/// mirror pod ("a mirror pod may not reference secrets").
const API_OBJECT_KINDS: [&str; 6] = [
    "configMap",
    "secret",
    "persistentVolumeClaim",
    "serviceAccountToken",
    "clusterTrustBundle",
    "ephemeral",
];

/// What of the API wasmlet reads for an API server's pod: ConfigMaps,
/// Secrets and service account tokens.
const READ_FROM_THE_API: [&str; 3] = ["configMap", "secret", "serviceAccountToken"];

/// A reference to an API object: a static pod may not have one (the
/// kubelet's message); an API server's pod may, but wasmlet does not read
/// them for pods yet.
fn api_object(static_pod: bool, field: impl Into<String>, what: &str) -> FieldError {
    if static_pod {
        FieldError::new(
            field,
            format!("a static pod may not reference {what}: API objects exist only in a cluster"),
        )
    } else {
        unsupported(field, &format!("reading {what} from the API server"))
    }
}

/// A reference to a ConfigMap, Secret or token: refused for a static pod,
/// read from the API for an API server's pod.
fn readable_api_object(
    static_pod: bool,
    field: impl Into<String>,
    what: &str,
) -> Option<FieldError> {
    static_pod.then(|| api_object(true, field, what))
}

/// The kubelet's OS checks: a pod for another OS, by `spec.os` or by a
/// `kubernetes.io/os` node selector, is not for this node.
fn os_refusal(pod: &Pod) -> Option<Refusal> {
    const OS: &str = "linux";
    let spec = pod.spec.as_ref()?;
    let selected = spec
        .node_selector
        .as_ref()
        .and_then(|s| s.get("kubernetes.io/os"));
    if selected.is_some_and(|os| os != OS) {
        return Some(Refusal {
            reason: "PodOSSelectorNodeLabelDoesNotMatch",
            message: "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
                .into(),
        });
    }
    spec.os
        .as_ref()
        .filter(|os| os.name != OS)
        .map(|_| Refusal {
            reason: "PodOSNotSupported",
            message: "Failed to admit pod as the OS field doesn't match node OS".into(),
        })
}

fn unsupported(field: impl Into<String>, what: &str) -> FieldError {
    FieldError::new(
        field,
        format!("{what} is not implemented by wasmlet yet; the pod would not run as specified"),
    )
}

/// The first field of `pod` wasmlet would not honour, if any.
pub fn first_unsupported(pod: &Pod) -> Option<FieldError> {
    let spec = pod.spec.as_ref()?;
    let static_pod = pod.is_static();
    pod_level(spec, static_pod).or_else(|| {
        let init = spec.init_containers.iter().flatten().enumerate();
        let app = spec.containers.iter().enumerate();
        init.map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
            .chain(app.map(|(i, c)| (format!("spec.containers[{i}]"), c)))
            .find_map(|(at, c)| container_level(&at, c, static_pod))
    })
}

/// The first of `checks` (set, field, what) that is set, named at `at.field`.
fn first_set<'a>(
    at: &str,
    checks: impl IntoIterator<Item = (bool, &'a str, &'a str)>,
) -> Option<FieldError> {
    checks
        .into_iter()
        .find(|(is_set, _, _)| *is_set)
        .map(|(_, field, what)| unsupported(format!("{at}.{field}"), what))
}

fn set<T>(list: &Option<Vec<T>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

fn pod_level(spec: &PodSpec, static_pod: bool) -> Option<FieldError> {
    if set(&spec.image_pull_secrets) && static_pod {
        return Some(api_object(true, "spec.imagePullSecrets", "secrets"));
    }
    if set(&spec.resource_claims) {
        return Some(api_object(
            static_pod,
            "spec.resourceClaims",
            "resource claims",
        ));
    }
    let checks: [(bool, &str, &str); 7] = [
        (
            set(&spec.readiness_gates) && static_pod,
            "readinessGates",
            "readiness gates (no one can set a static pod's conditions)",
        ),
        (
            spec.overhead.is_some(),
            "overhead",
            "pod overhead (it comes with a RuntimeClass)",
        ),
        (
            spec.hostname_override.is_some(),
            "hostnameOverride",
            "a hostname override (alpha in Kubernetes 1.34)",
        ),
        (
            set(&spec.ephemeral_containers),
            "ephemeralContainers",
            "ephemeral containers (the API adds them to a running pod; no pod is created with them)",
        ),
        (
            spec.runtime_class_name.is_some(),
            "runtimeClassName",
            "a runtime class (a RuntimeClass is an API object; the node has one handler)",
        ),
        (
            spec.host_users == Some(false),
            "hostUsers",
            "user namespaces (they need containerd 2.0 or later)",
        ),
        (
            spec.resources.is_some(),
            "resources",
            "pod-level resources (the PodLevelResources feature)",
        ),
    ];
    let mut volumes = spec.volumes.iter().flatten().enumerate();
    volumes
        .find_map(|(i, v)| volume(&format!("spec.volumes[{i}]"), v, static_pod))
        .or_else(|| first_set("spec", checks))
        .or_else(|| spec.security_context.as_ref().and_then(pod_security))
}

/// The volume kinds the node provides by itself: `emptyDir` (without a
/// disk `sizeLimit`, which the kubelet enforces only by evicting a pod that
/// is not static), `hostPath`,
/// `downwardAPI` and `projected` downward API items.
fn volume(at: &str, v: &Volume, static_pod: bool) -> Option<FieldError> {
    if let Some(dir) = &v.empty_dir {
        return match dir.medium.as_deref() {
            None | Some("") if dir.size_limit.is_some() => Some(unsupported(
                format!("{at}.emptyDir.sizeLimit"),
                "a sizeLimit on a disk-backed emptyDir (the kubelet enforces it by evicting the pod, and it never evicts a static pod)",
            )),
            None | Some("" | "Memory") => None,
            Some(medium) => Some(unsupported(
                format!("{at}.emptyDir.medium"),
                &format!("emptyDir medium {medium}"),
            )),
        };
    }
    if v.host_path.is_some() || v.downward_api.is_some() {
        return None;
    }
    if let Some(projected) = &v.projected {
        // Only downward API items: the rest needs the API server.
        let mut sources = projected.sources.iter().flatten().enumerate();
        return sources.find_map(|(j, source)| {
            let json = serde_json::to_value(source).unwrap_or_default();
            let kind = json
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "downwardAPI").cloned())?;
            let field = format!("{at}.projected.sources[{j}].{kind}");
            if READ_FROM_THE_API.contains(&kind.as_str()) {
                readable_api_object(static_pod, field, &format!("{kind} sources"))
            } else if API_OBJECT_KINDS.contains(&kind.as_str()) {
                Some(api_object(static_pod, field, &format!("{kind} sources")))
            } else {
                Some(unsupported(field, &format!("projected {kind}")))
            }
        });
    }
    // Any other source, named by its field (there are dozens).
    let json = serde_json::to_value(v).unwrap_or_default();
    let kind = json
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        .unwrap_or_else(|| "source".into());
    let field = format!("{at}.{kind}");
    if READ_FROM_THE_API.contains(&kind.as_str()) {
        readable_api_object(static_pod, field, &format!("{kind} volumes"))
    } else if API_OBJECT_KINDS.contains(&kind.as_str()) {
        Some(api_object(static_pod, field, &format!("{kind} volumes")))
    } else {
        Some(unsupported(field, &format!("{kind} volumes")))
    }
}

fn container_level(at: &str, c: &Container, static_pod: bool) -> Option<FieldError> {
    // fieldRef and resourceFieldRef are the downward API's; ConfigMaps and
    // Secrets are API objects; files are not read yet.
    let sources = c.env.iter().flatten().enumerate();
    let other = sources.filter_map(|(i, e)| Some((i, e.value_from.as_ref()?)));
    for (i, source) in other {
        let at = format!("{at}.env[{i}].valueFrom");
        if source.config_map_key_ref.is_some() {
            if let Some(e) =
                readable_api_object(static_pod, format!("{at}.configMapKeyRef"), "configmaps")
            {
                return Some(e);
            }
        } else if source.secret_key_ref.is_some() {
            if let Some(e) =
                readable_api_object(static_pod, format!("{at}.secretKeyRef"), "secrets")
            {
                return Some(e);
            }
        } else if source.field_ref.is_none() && source.resource_field_ref.is_none() {
            return Some(unsupported(at, "an env value from a file"));
        }
    }
    if let Some(policy) = c.termination_message_policy.as_deref()
        && !matches!(policy, "File" | "FallbackToLogsOnError")
    {
        return Some(FieldError::new(
            format!("{at}.terminationMessagePolicy"),
            format!(
                "Unsupported value: {policy:?}: supported values: \"File\", \"FallbackToLogsOnError\""
            ),
        ));
    }
    if set(&c.env_from)
        && let Some(e) =
            readable_api_object(static_pod, format!("{at}.envFrom"), "configmaps or secrets")
    {
        return Some(e);
    }
    if c.resources.as_ref().is_some_and(|r| set(&r.claims)) {
        return Some(api_object(
            static_pod,
            format!("{at}.resources.claims"),
            "resource claims",
        ));
    }
    let checks: [(bool, &str, &str); 3] = [
        (
            set(&c.volume_devices),
            "volumeDevices",
            "volume devices (raw block volumes come from PersistentVolumeClaims)",
        ),
        (
            set(&c.restart_policy_rules),
            "restartPolicyRules",
            "container restart rules (alpha in Kubernetes 1.34)",
        ),
        (
            c.lifecycle
                .as_ref()
                .is_some_and(|l| l.stop_signal.is_some()),
            "lifecycle.stopSignal",
            "a stop signal (containerd before 2.1 takes it from the image)",
        ),
    ];
    let mounts = c.volume_mounts.iter().flatten().enumerate();
    let recursive = |(i, m): (usize, &VolumeMount)| {
        (m.recursive_read_only.as_deref() == Some("Enabled")).then(|| {
            unsupported(
                format!("{at}.volumeMounts[{i}].recursiveReadOnly"),
                "recursiveReadOnly Enabled (it needs containerd 2.0 or later)",
            )
        })
    };
    first_set(at, checks)
        .or_else(|| mounts.into_iter().find_map(recursive))
        .or_else(|| container_security(at, c.security_context.as_ref()?))
}

/// The seccomp and AppArmor profiles a security context at `at` asks for,
/// checked.
fn profiles(
    at: &str,
    seccomp: Option<&SeccompProfile>,
    apparmor: Option<&AppArmorProfile>,
) -> Option<FieldError> {
    let unknown = |field: &str, kind: &str, type_: &str| {
        Some(FieldError::new(
            format!("{at}.{field}.type"),
            format!("unknown {kind} profile type {type_:?}"),
        ))
    };
    let no_name = |field: &str| {
        Some(FieldError::new(
            format!("{at}.{field}.localhostProfile"),
            "a Localhost profile needs localhostProfile",
        ))
    };
    // A Localhost seccomp profile is a file under the node's profile root,
    // so its name must stay inside it (the API's rule).
    let seccomp = seccomp.and_then(|p| match p.type_.as_str() {
        "Unconfined" | "RuntimeDefault" => None,
        "Localhost" => match p.localhost_profile.as_deref() {
            None | Some("") => no_name("seccompProfile"),
            Some(name)
                if Path::new(name).is_absolute()
                    || Path::new(name)
                        .components()
                        .any(|c| c == std::path::Component::ParentDir) =>
            {
                Some(FieldError::new(
                    format!("{at}.seccompProfile.localhostProfile"),
                    format!("Invalid value {name:?}: must be a relative path without '..'"),
                ))
            }
            Some(_) => None,
        },
        other => unknown("seccompProfile", "seccomp", other),
    });
    seccomp.or_else(|| {
        apparmor.and_then(|p| match p.type_.as_str() {
            "Unconfined" | "RuntimeDefault" => None,
            "Localhost"
                if p.localhost_profile
                    .as_deref()
                    .is_some_and(|n| !n.is_empty()) =>
            {
                None
            }
            "Localhost" => no_name("appArmorProfile"),
            other => unknown("appArmorProfile", "AppArmor", other),
        })
    })
}

fn pod_security(sc: &PodSecurityContext) -> Option<FieldError> {
    let at = "spec.securityContext".to_owned();
    let checks: [(bool, &str, &str); 3] = [
        (sc.se_linux_options.is_some(), "seLinuxOptions", "SELinux"),
        (
            sc.windows_options.is_some(),
            "windowsOptions",
            "Windows options (on a Linux node)",
        ),
        (
            sc.supplemental_groups_policy.as_deref() == Some("Strict"),
            "supplementalGroupsPolicy",
            "supplementalGroupsPolicy Strict (it needs containerd 2.0 or later)",
        ),
    ];
    first_set(&at, checks).or_else(|| {
        profiles(
            &at,
            sc.seccomp_profile.as_ref(),
            sc.app_armor_profile.as_ref(),
        )
    })
}

fn container_security(at: &str, sc: &SecurityContext) -> Option<FieldError> {
    let at = format!("{at}.securityContext");
    let checks: [(bool, &str, &str); 3] = [
        (sc.se_linux_options.is_some(), "seLinuxOptions", "SELinux"),
        (
            sc.windows_options.is_some(),
            "windowsOptions",
            "Windows options (on a Linux node)",
        ),
        (
            sc.proc_mount.as_deref().is_some_and(|m| m != "Default"),
            "procMount",
            "a procMount other than Default (it needs user namespaces)",
        ),
    ];
    first_set(&at, checks).or_else(|| {
        profiles(
            &at,
            sc.seccomp_profile.as_ref(),
            sc.app_armor_profile.as_ref(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, ConfigMapKeySelector, EmptyDirVolumeSource, EnvVar, EnvVarSource,
        HostPathVolumeSource, ObjectFieldSelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            spec: Some(spec),
            ..Default::default()
        }
    }

    fn container() -> Container {
        Container {
            name: "app".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }
    }

    fn field(p: &Pod) -> Option<String> {
        first_unsupported(p).map(|e| e.field)
    }

    #[test]
    fn what_the_runtime_honours_passes() {
        let mut c = container();
        c.env = Some(vec![
            EnvVar {
                name: "A".into(),
                value: Some("1".into()),
                ..Default::default()
            },
            EnvVar {
                name: "NODE".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "spec.nodeName".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        c.security_context = Some(SecurityContext {
            privileged: Some(true),
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            proc_mount: Some("Default".into()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.volume_mounts = Some(vec![VolumeMount {
            name: "cache".into(),
            mount_path: "/cache".into(),
            sub_path_expr: Some("$(A)".into()),
            ..Default::default()
        }]);
        let spec = PodSpec {
            containers: vec![c],
            volumes: Some(vec![
                Volume {
                    name: "cache".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        size_limit: Some(Quantity("64Mi".into())),
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "host".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/var/log".into(),
                        type_: Some("Directory".into()),
                    }),
                    ..Default::default()
                },
            ]),
            dns_policy: Some("ClusterFirst".into()),
            dns_config: Some(Default::default()),
            hostname: Some("front".into()),
            subdomain: Some("web".into()),
            set_hostname_as_fqdn: Some(true),
            host_network: Some(true),
            security_context: Some(PodSecurityContext {
                fs_group: Some(2000),
                supplemental_groups: Some(vec![3000]),
                seccomp_profile: Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    ..Default::default()
                }),
                app_armor_profile: Some(AppArmorProfile {
                    type_: "Unconfined".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod(spec);
        assert_eq!(field(&p), None);
        assert_eq!(refusal(&p, &NodeSupport::default()), None);
    }

    #[test]
    fn a_pod_for_another_os_is_not_for_this_node() {
        let mut spec = PodSpec {
            containers: vec![container()],
            os: Some(k8s_openapi::api::core::v1::PodOS {
                name: "windows".into(),
            }),
            ..Default::default()
        };
        let node = NodeSupport::default();
        let refused = refusal(&pod(spec.clone()), &node).map(|r| r.reason);
        assert_eq!(refused, Some("PodOSNotSupported"));
        spec.os = None;
        spec.node_selector = Some([("kubernetes.io/os".into(), "windows".into())].into());
        let refused = refusal(&pod(spec.clone()), &node).map(|r| r.reason);
        assert_eq!(refused, Some("PodOSSelectorNodeLabelDoesNotMatch"));
        spec.node_selector = Some([("kubernetes.io/os".into(), "linux".into())].into());
        assert_eq!(refusal(&pod(spec), &node), None);
    }

    #[test]
    fn apparmor_needs_a_node_that_enforces_it() {
        let mut c = container();
        c.security_context = Some(SecurityContext {
            app_armor_profile: Some(AppArmorProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let p = pod(PodSpec {
            containers: vec![c],
            ..Default::default()
        });
        let refused = refusal(&p, &NodeSupport::default()).expect("refused");
        assert_eq!(refused.reason, "AppArmor");
        let enforced = NodeSupport {
            apparmor: true,
            ..Default::default()
        };
        assert_eq!(refusal(&p, &enforced), None);
    }

    #[test]
    fn an_unsupported_field_is_named() {
        let volumes = PodSpec {
            volumes: Some(vec![
                Volume {
                    name: "cache".into(),
                    empty_dir: Some(Default::default()),
                    ..Default::default()
                },
                Volume {
                    name: "settings".into(),
                    config_map: Some(Default::default()),
                    ..Default::default()
                },
            ]),
            containers: vec![container()],
            ..Default::default()
        };
        let mut from_api = pod(volumes);
        let e = first_unsupported(&from_api).expect("rejected");
        assert_eq!(e.field, "spec.volumes[1].configMap");
        assert!(
            e.problem.contains("may not reference configMap volumes"),
            "{e}"
        );
        // The API server's pod may name one: it is read from the API. A
        // claim is not.
        from_api.metadata.annotations = Some(
            [(
                wasmlet_rules::pod::CONFIG_SOURCE.to_owned(),
                "api".to_owned(),
            )]
            .into(),
        );
        assert_eq!(first_unsupported(&from_api), None);
        if let Some(volumes) = from_api.spec.as_mut().and_then(|s| s.volumes.as_mut()) {
            volumes[1] = Volume {
                name: "data".into(),
                persistent_volume_claim: Some(Default::default()),
                ..Default::default()
            };
        }
        let e = first_unsupported(&from_api).expect("rejected");
        assert_eq!(e.field, "spec.volumes[1].persistentVolumeClaim");
        assert!(
            e.problem
                .contains("reading persistentVolumeClaim volumes from the API server"),
            "{e}"
        );
        let sized = PodSpec {
            volumes: Some(vec![Volume {
                name: "cache".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("1Gi".into())),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            containers: vec![container()],
            ..Default::default()
        };
        assert_eq!(
            field(&pod(sized)).as_deref(),
            Some("spec.volumes[0].emptyDir.sizeLimit")
        );

        let mut env = container();
        env.env = Some(vec![
            EnvVar {
                name: "A".into(),
                value: Some("1".into()),
                ..Default::default()
            },
            EnvVar {
                name: "NODE".into(),
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "settings".into(),
                        key: "node".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        let spec = PodSpec {
            init_containers: Some(vec![container()]),
            containers: vec![container(), env],
            ..Default::default()
        };
        let e = first_unsupported(&pod(spec)).expect("rejected");
        assert_eq!(
            e.field,
            "spec.containers[1].env[1].valueFrom.configMapKeyRef"
        );
        assert!(
            e.problem
                .contains("a static pod may not reference configmaps"),
            "{e}"
        );

        let mut secure = container();
        secure.security_context = Some(SecurityContext {
            run_as_user: Some(1000),
            se_linux_options: Some(Default::default()),
            ..Default::default()
        });
        let spec = PodSpec {
            init_containers: Some(vec![secure]),
            containers: vec![container()],
            ..Default::default()
        };
        let e = first_unsupported(&pod(spec)).expect("rejected");
        assert_eq!(
            e.field,
            "spec.initContainers[0].securityContext.seLinuxOptions"
        );
        assert!(e.to_string().contains("not implemented"), "{e}");

        let mut typo = container();
        typo.termination_message_policy = Some("FallbackToLog".into());
        let spec = PodSpec {
            containers: vec![typo],
            ..Default::default()
        };
        assert_eq!(
            field(&pod(spec)).as_deref(),
            Some("spec.containers[0].terminationMessagePolicy")
        );
        let gated = PodSpec {
            containers: vec![container()],
            readiness_gates: Some(vec![Default::default()]),
            ..Default::default()
        };
        assert_eq!(field(&pod(gated)).as_deref(), Some("spec.readinessGates"));
        let mut stopping = container();
        stopping.lifecycle = Some(k8s_openapi::api::core::v1::Lifecycle {
            stop_signal: Some("SIGUSR1".into()),
            ..Default::default()
        });
        let spec = PodSpec {
            containers: vec![stopping],
            ..Default::default()
        };
        assert_eq!(
            field(&pod(spec)).as_deref(),
            Some("spec.containers[0].lifecycle.stopSignal")
        );

        let localhost = PodSpec {
            containers: vec![container()],
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "Localhost".into(),
                    localhost_profile: Some("audit.json".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(field(&pod(localhost.clone())), None);
        let mut escaping = localhost;
        if let Some(sc) = escaping.security_context.as_mut() {
            sc.seccomp_profile = Some(SeccompProfile {
                type_: "Localhost".into(),
                localhost_profile: Some("../audit.json".into()),
            });
        }
        assert_eq!(
            field(&pod(escaping)).as_deref(),
            Some("spec.securityContext.seccompProfile.localhostProfile")
        );
        let mut typo = container();
        typo.security_context = Some(SecurityContext {
            app_armor_profile: Some(AppArmorProfile {
                type_: "Runtimedefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let spec = PodSpec {
            containers: vec![typo],
            ..Default::default()
        };
        assert_eq!(
            field(&pod(spec)).as_deref(),
            Some("spec.containers[0].securityContext.appArmorProfile.type")
        );
    }
}
