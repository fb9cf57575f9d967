//! Pod sysctls, as the kubelet's sysctl admission allows them: the safe set
//! (namespaced, and isolated from the node and other pods) always, and the
//! operator's `allowedUnsafeSysctls` (exact names or `prefix*` patterns,
//! each namespaced); a network sysctl is refused on the host's network and
//! an IPC one on the host's IPC. Allowed sysctls go to the sandbox.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

/// The admission reason of a pod whose sysctls are not allowed.
pub const FORBIDDEN_REASON: &str = "SysctlForbidden";

/// The kubelet's safe sysctls (its kernel-version gates are all met by the
/// kernels containerd 1.6 runs on).
pub const SAFE: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The kernel namespace a sysctl belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Ipc,
    Net,
}

impl Namespace {
    /// `name`'s namespace; `None`: not namespaced, so never for a pod.
    pub fn of(name: &str) -> Option<Self> {
        const IPC_PREFIXES: [&str; 3] = ["kernel.shm", "kernel.msg", "fs.mqueue."];
        if name == "kernel.sem" || IPC_PREFIXES.iter().any(|p| name.starts_with(p)) {
            Some(Self::Ipc)
        } else if name.starts_with("net.") {
            Some(Self::Net)
        } else {
            None
        }
    }

    fn host_word(self) -> &'static str {
        match self {
            Self::Ipc => "ipc",
            Self::Net => "net",
        }
    }
}

/// `net/ipv4/ip_forward` → `net.ipv4.ip_forward`: a name with `/`
/// separators (where `.` may then occur inside a part, as in an interface
/// name) written the dotted way.
pub fn normalize(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(at) if name.as_bytes()[at] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_owned(),
    }
}

/// What pods may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    exact: BTreeMap<String, Namespace>,
    prefixes: Vec<(String, Namespace)>,
}

impl Default for Allowlist {
    /// The safe set only.
    fn default() -> Self {
        Self::new(&[]).unwrap_or_else(|_| Self {
            exact: BTreeMap::new(),
            prefixes: Vec::new(),
        })
    }
}

impl Allowlist {
    /// The safe set plus `unsafe_allowed`; a pattern that is not namespaced
    /// is an error naming it (the kubelet refuses to start with one).
    pub fn new(unsafe_allowed: &[String]) -> Result<Self, String> {
        let mut list = Self {
            exact: BTreeMap::new(),
            prefixes: Vec::new(),
        };
        let patterns = SAFE
            .iter()
            .copied()
            .chain(unsafe_allowed.iter().map(String::as_str));
        for pattern in patterns {
            let pattern = normalize(pattern);
            let (name, prefix) = match pattern.strip_suffix('*') {
                Some(prefix) => (prefix, true),
                None => (pattern.as_str(), false),
            };
            let namespace = Namespace::of(name)
                .ok_or_else(|| format!("the sysctl {pattern:?} is not known to be namespaced"))?;
            if prefix {
                list.prefixes.push((name.to_owned(), namespace));
            } else {
                list.exact.insert(name.to_owned(), namespace);
            }
        }
        Ok(list)
    }

    /// Whether every sysctl of `pod` is allowed; the error is the
    /// kubelet's admission message.
    pub fn check(&self, pod: &Pod) -> Result<(), String> {
        let spec = pod.spec.as_ref();
        let host_net = spec.and_then(|s| s.host_network).unwrap_or(false);
        let host_ipc = spec.and_then(|s| s.host_ipc).unwrap_or(false);
        for sysctl in sysctls(pod) {
            let name = normalize(&sysctl.name);
            let namespace = self.exact.get(&name).copied().or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(p, _)| name.starts_with(p.as_str()))
                    .map(|(_, ns)| *ns)
            });
            let on_host = match namespace {
                None => return Err(format!("forbidden sysctl: {name:?} not allowlisted")),
                Some(Namespace::Net) => host_net,
                Some(Namespace::Ipc) => host_ipc,
            };
            if let Some(ns) = namespace.filter(|_| on_host) {
                return Err(format!(
                    "forbidden sysctl: {name:?} not allowed with host {} enabled",
                    ns.host_word()
                ));
            }
        }
        Ok(())
    }
}

fn sysctls(pod: &Pod) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Sysctl> {
    pod.spec
        .iter()
        .filter_map(|s| s.security_context.as_ref())
        .flat_map(|sc| sc.sysctls.iter().flatten())
}

/// The sandbox's sysctls: `pod`'s, by their dotted names.
pub fn for_sandbox(pod: &Pod) -> BTreeMap<String, String> {
    sysctls(pod)
        .map(|s| (normalize(&s.name), s.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, Sysctl};

    fn pod(names: &[&str], host_network: bool) -> Pod {
        Pod {
            spec: Some(PodSpec {
                host_network: Some(host_network),
                security_context: Some(PodSecurityContext {
                    sysctls: Some(
                        names
                            .iter()
                            .map(|n| Sysctl {
                                name: n.to_string(),
                                value: "1".into(),
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn safe_sysctls_pass_and_others_need_the_operator() {
        let safe = Allowlist::default();
        assert_eq!(
            safe.check(&pod(&["net.ipv4.tcp_syncookies"], false)),
            Ok(())
        );
        assert_eq!(
            safe.check(&pod(&["kernel.msgmax"], false)),
            Err("forbidden sysctl: \"kernel.msgmax\" not allowlisted".into())
        );
        let operator = Allowlist::new(&["kernel.msg*".into(), "net.core.somaxconn".into()])
            .expect("namespaced");
        assert_eq!(
            operator.check(&pod(&["kernel.msgmax", "net.core.somaxconn"], false)),
            Ok(())
        );
        let e = Allowlist::new(&["vm.swappiness".into()]).expect_err("not namespaced");
        assert!(e.contains("vm.swappiness"), "{e}");
    }

    #[test]
    fn a_network_sysctl_is_not_for_the_host_network() {
        let e = Allowlist::default()
            .check(&pod(&["net.ipv4.ip_local_port_range"], true))
            .expect_err("host net");
        assert!(e.ends_with("not allowed with host net enabled"), "{e}");
    }

    #[test]
    fn slashed_names_are_the_dotted_ones() {
        assert_eq!(
            normalize("net/ipv4/tcp_syncookies"),
            "net.ipv4.tcp_syncookies"
        );
        assert_eq!(
            normalize("net/ipv4/conf/eno2.100/rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
        assert_eq!(
            normalize("kernel.shm_rmid_forced"),
            "kernel.shm_rmid_forced"
        );
        let p = pod(&["net/ipv4/tcp_syncookies"], false);
        assert_eq!(Allowlist::default().check(&p), Ok(()));
        assert_eq!(
            for_sandbox(&p).keys().collect::<Vec<_>>(),
            ["net.ipv4.tcp_syncookies"]
        );
    }
}
