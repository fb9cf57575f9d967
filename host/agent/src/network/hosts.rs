//! The kubelet-managed `/etc/hosts`: one file per pod, `<pod dir>/etc-hosts`,
//! bind-mounted into each container that does not mount `/etc/hosts`
//! itself. A pod on its own network gets localhost, its IPs under its
//! hostname (and FQDN with a subdomain) and its `hostAliases`; a
//! host-network pod gets the node's own file plus its `hostAliases`.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, HostAlias, Pod};
use wasmlet_core::{Mount, MountPropagation};
use wasmlet_rules::PodExt;

/// Where containers see it.
pub const CONTAINER_PATH: &str = "/etc/hosts";
/// The node's own file, which a host-network pod starts from.
pub const NODE_HOSTS: &str = "/etc/hosts";

/// `<pod dir>/etc-hosts`.
pub fn path(pod_dir: &Path) -> PathBuf {
    pod_dir.join("etc-hosts")
}

/// Whether the kubelet manages `container`'s `/etc/hosts`: the pod has an
/// IP to write in it (a host-network pod needs none: it gets the node's
/// file) and the container does not mount its own.
pub fn managed_for(pod: &Pod, container: &Container, pod_ips: &[IpAddr]) -> bool {
    (pod.host_network() || !pod_ips.is_empty())
        && !container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| Path::new(&m.mount_path) == Path::new(CONTAINER_PATH))
}

/// The file for a pod on its own network.
pub fn pod_network(
    pod_ips: &[IpAddr],
    hostname: &str,
    domain: Option<&str>,
    aliases: &[HostAlias],
) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        match domain {
            Some(domain) => text.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
            None => text.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    text.push_str(&alias_entries(aliases));
    text
}

/// The file for a host-network pod: the node's, then the aliases.
pub fn host_network(node_hosts: &str, aliases: &[HostAlias]) -> String {
    format!(
        "# Kubernetes-managed hosts file (host network).\n{node_hosts}{}",
        alias_entries(aliases)
    )
}

fn alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        text.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    text
}

/// Writes `pod`'s file under `pod_dir` and returns its mount. Blocking.
/// Written in place, as the kubelet does, so running containers that
/// already mount it see the new content.
pub fn write(
    pod: &Pod,
    pod_dir: &Path,
    pod_ips: &[IpAddr],
    hostname: &str,
    domain: Option<&str>,
) -> io::Result<Mount> {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    let text = if pod.host_network() {
        host_network(&std::fs::read_to_string(NODE_HOSTS)?, aliases)
    } else {
        pod_network(pod_ips, hostname, domain, aliases)
    };
    std::fs::create_dir_all(pod_dir)?;
    let file = path(pod_dir);
    std::fs::write(&file, text)?;
    Ok(Mount {
        container_path: CONTAINER_PATH.into(),
        host_path: file.display().to_string(),
        readonly: false,
        propagation: MountPropagation::Private,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias {
            ip: ip.into(),
            hostnames: Some(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    #[test]
    fn a_pod_network_file_names_the_pod_and_its_aliases() {
        let ips: Vec<IpAddr> = vec!["10.88.0.7".parse().expect("ip")];
        let text = pod_network(
            &ips,
            "web-0",
            Some("web.shop.svc.cluster.local"),
            &[alias("10.1.2.3", &["foo.local", "bar.local"])],
        );
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("\n10.88.0.7\tweb-0.web.shop.svc.cluster.local\tweb-0\n"));
        assert!(
            text.ends_with("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n")
        );
        let plain = pod_network(&ips, "web-0", None, &[]);
        assert!(
            plain.ends_with("fe00::2\tip6-allrouters\n10.88.0.7\tweb-0\n"),
            "{plain}"
        );
    }

    #[test]
    fn a_host_network_file_is_the_node_s_plus_aliases() {
        let text = host_network("127.0.0.1 localhost\n", &[alias("10.1.2.3", &["foo"])]);
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo\n"
        );
    }

    #[test]
    fn a_container_that_mounts_its_own_hosts_file_keeps_it() {
        let ips: Vec<IpAddr> = vec!["10.88.0.7".parse().expect("ip")];
        let pod = Pod::default();
        let mut c = Container::default();
        assert!(managed_for(&pod, &c, &ips));
        assert!(!managed_for(&pod, &c, &[]), "no IP yet, nothing to write");
        c.volume_mounts = Some(vec![VolumeMount {
            name: "hosts".into(),
            mount_path: "/etc/hosts".into(),
            ..Default::default()
        }]);
        assert!(!managed_for(&pod, &c, &ips));
    }
}
