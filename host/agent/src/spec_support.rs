//! The pod spec fields wasmlet does not carry out yet. A pod that sets one
//! is rejected at admission, naming the field, before any plugin is asked:
//! "Running" must mean running as specified, never a pod with its volumes,
//! env references or security settings silently dropped.
//!
//! The list shrinks as the runtime learns each field; it is checked in the
//! host, not by a plugin, so that no plugin directory can switch it off.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SecurityContext};
use wasmlet_rules::FieldError;

/// The admission reason of a pod this rejects.
pub const REASON: &str = "UnsupportedPodSpec";

fn unsupported(field: impl Into<String>, what: &str) -> FieldError {
    FieldError::new(
        field,
        format!("{what} is not implemented by wasmlet yet; the pod would not run as specified"),
    )
}

/// The first field of `pod` wasmlet would not honour, if any.
pub fn first_unsupported(pod: &Pod) -> Option<FieldError> {
    let spec = pod.spec.as_ref()?;
    pod_level(spec).or_else(|| {
        let init = spec.init_containers.iter().flatten().enumerate();
        let app = spec.containers.iter().enumerate();
        init.map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
            .chain(app.map(|(i, c)| (format!("spec.containers[{i}]"), c)))
            .find_map(|(at, c)| container_level(&at, c))
    })
}

fn set<T>(list: &Option<Vec<T>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

fn pod_level(spec: &PodSpec) -> Option<FieldError> {
    let checks: [(bool, &str, &str); 13] = [
        (set(&spec.volumes), "spec.volumes", "volumes"),
        (
            spec.security_context
                .as_ref()
                .is_some_and(|s| *s != Default::default()),
            "spec.securityContext",
            "a pod security context",
        ),
        (spec.dns_config.is_some(), "spec.dnsConfig", "a DNS config"),
        (
            spec.dns_policy.as_deref() == Some("None"),
            "spec.dnsPolicy",
            "dnsPolicy None",
        ),
        (set(&spec.host_aliases), "spec.hostAliases", "host aliases"),
        (spec.hostname.is_some(), "spec.hostname", "a hostname"),
        (spec.subdomain.is_some(), "spec.subdomain", "a subdomain"),
        (
            spec.active_deadline_seconds.is_some(),
            "spec.activeDeadlineSeconds",
            "an active deadline",
        ),
        (
            set(&spec.image_pull_secrets),
            "spec.imagePullSecrets",
            "image pull secrets",
        ),
        (
            set(&spec.ephemeral_containers),
            "spec.ephemeralContainers",
            "ephemeral containers",
        ),
        (
            spec.runtime_class_name.is_some(),
            "spec.runtimeClassName",
            "a runtime class",
        ),
        (
            spec.host_users == Some(false),
            "spec.hostUsers",
            "user namespaces",
        ),
        (
            spec.resources.is_some(),
            "spec.resources",
            "pod-level resources",
        ),
    ];
    checks
        .into_iter()
        .find(|(is_set, _, _)| *is_set)
        .map(|(_, field, what)| unsupported(field, what))
}

fn container_level(at: &str, c: &Container) -> Option<FieldError> {
    if let Some(i) = c.env.iter().flatten().position(|e| e.value_from.is_some()) {
        return Some(unsupported(
            format!("{at}.env[{i}].valueFrom"),
            "an env value from a field, resource or object",
        ));
    }
    let checks: [(bool, &str, &str); 4] = [
        (set(&c.env_from), "envFrom", "env from objects"),
        (set(&c.volume_mounts), "volumeMounts", "volume mounts"),
        (set(&c.volume_devices), "volumeDevices", "volume devices"),
        (
            c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
            "terminationMessagePolicy",
            "FallbackToLogsOnError",
        ),
    ];
    if let Some((_, field, what)) = checks.into_iter().find(|(is_set, _, _)| *is_set) {
        return Some(unsupported(format!("{at}.{field}"), what));
    }
    let security = c.security_context.as_ref()?;
    // What the runtime applies today: privileged and runAsUser.
    let rest = SecurityContext {
        privileged: None,
        run_as_user: None,
        ..security.clone()
    };
    (rest != SecurityContext::default()).then(|| {
        unsupported(
            format!("{at}.securityContext"),
            "a security context beyond privileged and runAsUser",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Volume};

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
        c.env = Some(vec![EnvVar {
            name: "A".into(),
            value: Some("1".into()),
            ..Default::default()
        }]);
        c.security_context = Some(SecurityContext {
            privileged: Some(true),
            run_as_user: Some(1000),
            ..Default::default()
        });
        let spec = PodSpec {
            containers: vec![c],
            dns_policy: Some("ClusterFirst".into()),
            host_network: Some(true),
            ..Default::default()
        };
        assert_eq!(field(&pod(spec)), None);
    }

    #[test]
    fn an_unsupported_field_is_named() {
        let volumes = PodSpec {
            volumes: Some(vec![Volume {
                name: "data".into(),
                ..Default::default()
            }]),
            containers: vec![container()],
            ..Default::default()
        };
        assert_eq!(field(&pod(volumes)).as_deref(), Some("spec.volumes"));

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
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "spec.nodeName".into(),
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
        assert_eq!(
            field(&pod(spec)).as_deref(),
            Some("spec.containers[1].env[1].valueFrom")
        );

        let mut secure = container();
        secure.security_context = Some(SecurityContext {
            run_as_user: Some(1000),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        });
        let spec = PodSpec {
            init_containers: Some(vec![secure]),
            containers: vec![container()],
            ..Default::default()
        };
        let e = first_unsupported(&pod(spec)).expect("rejected");
        assert_eq!(e.field, "spec.initContainers[0].securityContext");
        assert!(e.to_string().contains("not implemented"), "{e}");
    }
}
