//! The runtime's security settings for a container (the kubelet's
//! `kuberuntime/security_context.go`): the effective security context of
//! [`wasmlet_rules::security`], the image's user where the pod names none,
//! the kubelet's masked and read-only paths, and `runAsNonRoot` enforced.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_core::{ContainerSecurity, Namespaces, SecurityProfile};
use wasmlet_rules::security::{self, ImageUser, Profile};

use crate::pod_ext::PodExt;

/// Whether any container of the pod is privileged: its sandbox must be too,
/// or the runtime refuses the container (the kubelet's `HasPrivilegedContainer`).
pub fn has_privileged_container(pod: &Pod) -> bool {
    pod.init_containers()
        .iter()
        .chain(pod.app_containers())
        .any(|c| security::effective(pod, c).privileged == Some(true))
}

fn profile(profile: Profile<'_>) -> SecurityProfile {
    match profile {
        Profile::Unconfined => SecurityProfile::Unconfined,
        Profile::RuntimeDefault => SecurityProfile::RuntimeDefault,
        Profile::Localhost(name) => SecurityProfile::Localhost(name.to_owned()),
    }
}

/// The security `container` of `pod` runs with, its Localhost seccomp
/// profile under `seccomp_root` (the kubelet's `<root-dir>/seccomp`). An error is the kubelet's
/// container config error (e.g. `runAsNonRoot` with an image that runs as
/// root): the container is not created.
pub fn container_security(
    pod: &Pod,
    container: &Container,
    namespaces: Namespaces,
    image: ImageUser<'_>,
    seccomp_root: &Path,
) -> Result<ContainerSecurity, String> {
    security::verify_run_as_non_root(pod, container, image)?;
    let sc = security::effective(pod, container);
    let capabilities = sc.capabilities.as_ref();
    let names = |list: Option<&Vec<String>>| list.cloned().unwrap_or_default();
    // Without a user of its own the container runs as the image's, which
    // the runtime needs to know alongside a group.
    let (run_as_user, run_as_username) = match (sc.run_as_user, image) {
        (Some(uid), _) => (Some(uid), String::new()),
        (None, ImageUser::Uid(uid)) => (Some(uid), String::new()),
        (None, ImageUser::Name(name)) => (None, name.to_owned()),
    };
    // A Localhost seccomp profile is a file under the node's profile root
    // (admission checked the name stays inside it); the runtime loads it.
    let seccomp = match security::seccomp(pod, container)? {
        None => SecurityProfile::Unconfined,
        Some(Profile::Localhost(name)) => {
            SecurityProfile::Localhost(seccomp_root.join(name).display().to_string())
        }
        Some(p) => profile(p),
    };
    let apparmor = security::apparmor(pod, container)?.map(profile);
    let paths = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect();
    Ok(ContainerSecurity {
        privileged: sc.privileged.unwrap_or(false),
        run_as_user,
        run_as_group: sc.run_as_group,
        run_as_username,
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: security::supplemental_groups(pod),
        add_capabilities: names(capabilities.and_then(|c| c.add.as_ref())),
        drop_capabilities: names(capabilities.and_then(|c| c.drop.as_ref())),
        no_new_privs: security::no_new_privs(&sc),
        namespaces,
        seccomp: Some(seccomp),
        apparmor,
        masked_paths: paths(security::DEFAULT_MASKED_PATHS),
        readonly_paths: paths(security::DEFAULT_READONLY_PATHS),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
    };

    use super::*;

    fn pod(pod_sc: PodSecurityContext, sc: SecurityContext) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    security_context: Some(sc),
                    ..Default::default()
                }],
                security_context: Some(pod_sc),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn security(pod: &Pod, image: ImageUser<'_>) -> Result<ContainerSecurity, String> {
        let root = Path::new("/var/lib/wasmlet/seccomp");
        container_security(
            pod,
            &pod.app_containers()[0],
            Namespaces::default(),
            image,
            root,
        )
    }

    #[test]
    fn the_effective_context_reaches_the_runtime() {
        let p = pod(
            PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                fs_group: Some(2000),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            },
        );
        let s = security(&p, ImageUser::Uid(0)).expect("config");
        assert_eq!((s.run_as_user, s.run_as_group), (Some(1000), Some(3000)));
        assert_eq!(s.supplemental_groups, [2000]);
        assert!(s.no_new_privs && s.readonly_rootfs && !s.privileged);
        assert_eq!(
            (s.add_capabilities, s.drop_capabilities),
            (vec!["NET_ADMIN".to_owned()], vec!["ALL".to_owned()])
        );
        assert_eq!(s.seccomp, Some(SecurityProfile::RuntimeDefault));
        assert_eq!(s.apparmor, None);
        assert!(s.masked_paths.iter().any(|p| p == "/proc/kcore"));
        assert!(!has_privileged_container(&p));
    }

    #[test]
    fn without_settings_the_kubelet_defaults_apply() {
        let p = pod(PodSecurityContext::default(), SecurityContext::default());
        let s = security(&p, ImageUser::Name("nobody")).expect("config");
        assert_eq!(s.run_as_user, None);
        assert_eq!(s.run_as_username, "nobody");
        assert_eq!(s.seccomp, Some(SecurityProfile::Unconfined));
        assert!(!s.no_new_privs);
    }

    #[test]
    fn a_localhost_seccomp_profile_is_a_file_under_the_profile_root() {
        let p = pod(
            PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "Localhost".into(),
                    localhost_profile: Some("profiles/audit.json".into()),
                }),
                ..Default::default()
            },
            SecurityContext::default(),
        );
        let s = security(&p, ImageUser::Uid(0)).expect("config");
        assert_eq!(
            s.seccomp,
            Some(SecurityProfile::Localhost(
                "/var/lib/wasmlet/seccomp/profiles/audit.json".into()
            ))
        );
    }

    #[test]
    fn run_as_non_root_is_enforced() {
        let p = pod(
            PodSecurityContext {
                run_as_non_root: Some(true),
                ..Default::default()
            },
            SecurityContext {
                privileged: Some(true),
                ..Default::default()
            },
        );
        let e = security(&p, ImageUser::Uid(0)).expect_err("refused");
        assert!(e.contains("image will run as root"), "{e}");
        assert!(security(&p, ImageUser::Uid(65534)).is_ok());
        assert!(has_privileged_container(&p));
    }
}
