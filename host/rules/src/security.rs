//! The security a container runs with, as the kubelet works it out from the
//! pod's and the container's security contexts (its `securitycontext`
//! package and `determineEffectiveSecurityContext`): the container's setting
//! wins, the pod's fills in, and Kubernetes' defaults cover the rest.

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};

use crate::pod::PodExt;

/// The paths the kubelet masks in a container with the default `procMount`.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The paths the kubelet makes read-only with the default `procMount`.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn pod_context(pod: &Pod) -> Option<&PodSecurityContext> {
    pod.spec.as_ref()?.security_context.as_ref()
}

/// The container's security context with the pod's filled in where the
/// container sets nothing: user, group, non-root, SELinux and Windows
/// options come from the pod; everything else is the container's own.
pub fn effective(pod: &Pod, container: &Container) -> SecurityContext {
    let mut sc = container.security_context.clone().unwrap_or_default();
    if let Some(pod_sc) = pod_context(pod) {
        sc.run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
        sc.run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root);
        if sc.se_linux_options.is_none() {
            sc.se_linux_options.clone_from(&pod_sc.se_linux_options);
        }
        if sc.windows_options.is_none() {
            sc.windows_options.clone_from(&pod_sc.windows_options);
        }
    }
    sc
}

/// A seccomp or AppArmor profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile<'a> {
    Unconfined,
    RuntimeDefault,
    /// A profile on the node, by its path relative to the node's profile root.
    Localhost(&'a str),
}

impl<'a> Profile<'a> {
    fn parse(type_: &str, localhost: Option<&'a str>) -> Result<Self, String> {
        match type_ {
            "Unconfined" => Ok(Self::Unconfined),
            "RuntimeDefault" => Ok(Self::RuntimeDefault),
            "Localhost" => localhost
                .filter(|p| !p.is_empty())
                .map(Self::Localhost)
                .ok_or_else(|| "a Localhost profile needs localhostProfile".to_owned()),
            other => Err(format!("unknown profile type {other:?}")),
        }
    }
}

/// The container's seccomp profile, else the pod's; `None` when neither sets
/// one, which the kubelet (without `SeccompDefault`) runs unconfined.
pub fn seccomp<'a>(pod: &'a Pod, container: &'a Container) -> Result<Option<Profile<'a>>, String> {
    let own = container.security_context.as_ref();
    let own = own.and_then(|s| s.seccomp_profile.as_ref());
    own.or_else(|| pod_context(pod)?.seccomp_profile.as_ref())
        .map(|p| Profile::parse(&p.type_, p.localhost_profile.as_deref()))
        .transpose()
}

/// The annotation that set a container's AppArmor profile before the field
/// existed; the kubelet still reads it when no field is set.
pub const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The container's AppArmor profile, else the pod's, else the deprecated
/// annotation's; `None` when none sets one: the runtime's default applies
/// where AppArmor is enabled.
pub fn apparmor<'a>(pod: &'a Pod, container: &'a Container) -> Result<Option<Profile<'a>>, String> {
    let own = container.security_context.as_ref();
    let own = own.and_then(|s| s.app_armor_profile.as_ref());
    if let Some(p) = own.or_else(|| pod_context(pod)?.app_armor_profile.as_ref()) {
        return Profile::parse(&p.type_, p.localhost_profile.as_deref()).map(Some);
    }
    let key = format!("{APPARMOR_ANNOTATION_PREFIX}{}", container.name);
    let Some(value) = pod.metadata.annotations.as_ref().and_then(|a| a.get(&key)) else {
        return Ok(None);
    };
    match value.as_str() {
        "runtime/default" => Ok(Some(Profile::RuntimeDefault)),
        "unconfined" => Ok(Some(Profile::Unconfined)),
        other => match other.strip_prefix("localhost/") {
            Some(name) if !name.is_empty() => Ok(Some(Profile::Localhost(name))),
            _ => Err(format!(
                "annotation {key}: invalid AppArmor profile {other:?}"
            )),
        },
    }
}

/// Whether the pod asks for AppArmor confinement for any container (the
/// kubelet refuses such a pod where AppArmor is not enabled).
pub fn requires_apparmor(pod: &Pod) -> bool {
    pod.init_containers()
        .iter()
        .chain(pod.app_containers())
        .any(|c| !matches!(apparmor(pod, c), Ok(None | Some(Profile::Unconfined))))
}

/// The groups a container's processes also belong to: the pod's `fsGroup`
/// first, then its `supplementalGroups`, as the kubelet passes them.
pub fn supplemental_groups(pod: &Pod) -> Vec<i64> {
    let Some(sc) = pod_context(pod) else {
        return Vec::new();
    };
    sc.fs_group
        .into_iter()
        .chain(sc.supplemental_groups.iter().flatten().copied())
        .collect()
}

/// `no_new_privs` is set only when privilege escalation is explicitly off.
pub fn no_new_privs(sc: &SecurityContext) -> bool {
    sc.allow_privilege_escalation == Some(false)
}

/// The user an image runs as by default, as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUser<'a> {
    Uid(i64),
    Name(&'a str),
}

impl<'a> ImageUser<'a> {
    /// An image that names no user runs as root.
    pub fn new(uid: Option<i64>, username: &'a str) -> Self {
        match uid {
            Some(uid) => Self::Uid(uid),
            None if !username.is_empty() => Self::Name(username),
            None => Self::Uid(0),
        }
    }
}

/// The kubelet's `verifyRunAsNonRoot`: with `runAsNonRoot`, the container
/// must provably run as a user other than root. The error is the kubelet's.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image: ImageUser<'_>,
) -> Result<(), String> {
    let sc = effective(pod, container);
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let (who, name) = (pod.display_name(), &container.name);
    match (sc.run_as_user, image) {
        (Some(0), _) => Err(format!(
            "container's runAsUser breaks non-root policy (pod: \"{who}\", container: {name})"
        )),
        (Some(_), _) => Ok(()),
        (None, ImageUser::Uid(0)) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{who}\", container: {name})"
        )),
        (None, ImageUser::Name(user)) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{who}\", container: {name})"
        )),
        (None, ImageUser::Uid(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{AppArmorProfile, PodSpec, SeccompProfile};

    use super::*;

    fn pod(pod_sc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> (Pod, Container) {
        let container = Container {
            name: "app".into(),
            security_context: sc,
            ..Default::default()
        };
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container.clone()],
                security_context: pod_sc,
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some("web".into());
        pod.metadata.uid = Some("u1".into());
        (pod, container)
    }

    #[test]
    fn the_container_wins_and_the_pod_fills_in() {
        let (p, c) = pod(
            Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(2000),
                fs_group: Some(3000),
                supplemental_groups: Some(vec![4000, 4001]),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Some(SecurityContext {
                run_as_user: Some(1001),
                allow_privilege_escalation: Some(false),
                ..Default::default()
            }),
        );
        let sc = effective(&p, &c);
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(1001), Some(2000)));
        assert!(no_new_privs(&sc));
        assert_eq!(supplemental_groups(&p), [3000, 4000, 4001]);
        assert_eq!(seccomp(&p, &c), Ok(Some(Profile::RuntimeDefault)));

        let (p, c) = pod(None, None);
        assert_eq!(effective(&p, &c), SecurityContext::default());
        assert!(!no_new_privs(&effective(&p, &c)));
        assert_eq!(seccomp(&p, &c), Ok(None));
    }

    #[test]
    fn profiles_are_checked() {
        let with = |type_: &str, localhost: Option<&str>| {
            pod(
                None,
                Some(SecurityContext {
                    seccomp_profile: Some(SeccompProfile {
                        type_: type_.into(),
                        localhost_profile: localhost.map(Into::into),
                    }),
                    ..Default::default()
                }),
            )
        };
        let (p, c) = with("Localhost", Some("my.json"));
        assert_eq!(seccomp(&p, &c), Ok(Some(Profile::Localhost("my.json"))));
        let (p, c) = with("Localhost", None);
        assert!(seccomp(&p, &c).is_err());
        let (p, c) = with("Strict", None);
        assert!(seccomp(&p, &c).is_err());
    }

    #[test]
    fn apparmor_comes_from_the_field_else_the_old_annotation() {
        let (mut p, c) = pod(None, None);
        assert_eq!(apparmor(&p, &c), Ok(None));
        assert!(!requires_apparmor(&p));
        let key = format!("{APPARMOR_ANNOTATION_PREFIX}app");
        for (value, want) in [
            ("runtime/default", Ok(Some(Profile::RuntimeDefault))),
            ("localhost/strict", Ok(Some(Profile::Localhost("strict")))),
            ("unconfined", Ok(Some(Profile::Unconfined))),
        ] {
            p.metadata.annotations = Some([(key.clone(), value.to_owned())].into());
            assert_eq!(apparmor(&p, &c), want, "{value}");
            assert_eq!(requires_apparmor(&p), value != "unconfined", "{value}");
        }
        p.metadata.annotations = Some([(key.clone(), "localhost/".to_owned())].into());
        assert!(apparmor(&p, &c).is_err());
        assert!(
            requires_apparmor(&p),
            "an unreadable profile is not unconfined"
        );
        // The field wins over the annotation.
        if let Some(spec) = p.spec.as_mut() {
            spec.security_context = Some(PodSecurityContext {
                app_armor_profile: Some(AppArmorProfile {
                    type_: "Unconfined".into(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        assert_eq!(apparmor(&p, &c), Ok(Some(Profile::Unconfined)));
    }

    #[test]
    fn run_as_non_root_needs_proof() {
        let non_root = |user: Option<i64>| {
            pod(
                Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    ..Default::default()
                }),
                Some(SecurityContext {
                    run_as_user: user,
                    ..Default::default()
                }),
            )
        };
        let (p, c) = non_root(Some(0));
        let e = verify_run_as_non_root(&p, &c, ImageUser::Uid(1000)).expect_err("refused");
        assert_eq!(
            e,
            "container's runAsUser breaks non-root policy (pod: \"web_default(u1)\", container: app)"
        );
        let (p, c) = non_root(Some(1000));
        assert_eq!(verify_run_as_non_root(&p, &c, ImageUser::Uid(0)), Ok(()));
        let (p, c) = non_root(None);
        assert!(
            verify_run_as_non_root(&p, &c, ImageUser::new(None, ""))
                .expect_err("refused")
                .contains("image will run as root")
        );
        assert!(
            verify_run_as_non_root(&p, &c, ImageUser::new(None, "nobody"))
                .expect_err("refused")
                .contains("non-numeric user (nobody)")
        );
        assert_eq!(
            verify_run_as_non_root(&p, &c, ImageUser::new(Some(65534), "")),
            Ok(())
        );
        let (p, c) = pod(None, None);
        assert_eq!(verify_run_as_non_root(&p, &c, ImageUser::Uid(0)), Ok(()));
    }
}
