//! A pod's names on the network, as the kubelet gives them: its hostname
//! and domain (`hostname`, `subdomain`, `setHostnameAsFQDN`), its resolver
//! ([`dns`], the kubelet's `pkg/kubelet/network/dns`) and its kubelet-managed
//! `/etc/hosts` ([`hosts`]). The API's checks of these fields are
//! `wasmlet_rules::network`'s; what is here trusts them.

pub mod dns;
pub mod hosts;

use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use wasmlet_rules::PodExt;

/// The node's DNS settings, the kubelet's fields of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// `clusterDNS`: the cluster's resolvers, for `ClusterFirst` pods.
    pub cluster_dns: Vec<IpAddr>,
    /// `clusterDomain`, e.g. `cluster.local`; empty: none.
    pub cluster_domain: String,
    /// `resolvConf`: the resolver file `Default` pods inherit. `None` (the
    /// kubelet's `""`): none, lookups go to the node itself.
    pub resolv_conf: Option<PathBuf>,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            cluster_dns: Vec::new(),
            cluster_domain: String::new(),
            resolv_conf: Some("/etc/resolv.conf".into()),
        }
    }
}

/// The longest hostname the kernel keeps (64 bytes with the terminator).
const HOSTNAME_MAX: usize = 63;
/// The longest FQDN `setHostnameAsFQDN` may set as the kernel's nodename.
const FQDN_MAX: usize = 64;

/// A pod's hostname and, with a `subdomain`, its domain
/// (`<subdomain>.<namespace>.svc.<clusterDomain>`): the kubelet's
/// `GeneratePodHostNameAndDomain`. The hostname is `spec.hostname`, else the
/// pod's name cut to 63 characters without a trailing `-` or `.`.
pub fn hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, Option<String>), String> {
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(pod.name_str());
    let hostname = if hostname.len() <= HOSTNAME_MAX {
        hostname
    } else {
        // Names are ASCII (validated), so any byte is a boundary.
        let cut = hostname[..HOSTNAME_MAX].trim_end_matches(['-', '.']);
        if cut.is_empty() {
            return Err(format!(
                "hostname for pod {:?} was invalid: {hostname:?}",
                pod.name_str()
            ));
        }
        cut
    };
    let domain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
        .map(|sub| format!("{sub}.{}.svc.{cluster_domain}", pod.namespace_or_default()));
    Ok((hostname.to_owned(), domain))
}

/// The kernel's hostname for the pod's sandbox: the hostname, or with
/// `setHostnameAsFQDN` and a domain the FQDN, which must fit the kernel's
/// 64 characters (the kubelet's `GetNodenameForKernel`).
pub fn kernel_hostname(pod: &Pod, hostname: &str, domain: Option<&str>) -> Result<String, String> {
    let as_fqdn = pod
        .spec
        .as_ref()
        .and_then(|s| s.set_hostname_as_fqdn)
        .unwrap_or(false);
    match domain {
        Some(domain) if as_fqdn => {
            let fqdn = format!("{hostname}.{domain}");
            if fqdn.len() > FQDN_MAX {
                return Err(format!(
                    "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long ({FQDN_MAX} characters is the max, {} characters requested)",
                    fqdn.len()
                ));
            }
            Ok(fqdn)
        }
        _ => Ok(hostname.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn the_hostname_is_the_spec_s_else_the_pod_name_cut_to_fit() {
        let plain = pod("web-7", PodSpec::default());
        assert_eq!(
            hostname_and_domain(&plain, "cluster.local"),
            Ok(("web-7".into(), None))
        );
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let cut = hostname_and_domain(&pod(&long, PodSpec::default()), "");
        assert_eq!(cut, Ok(("a".repeat(62), None)), "cut, then '-' trimmed");
        let named = pod(
            "web-7",
            PodSpec {
                hostname: Some("front".into()),
                subdomain: Some("web".into()),
                ..Default::default()
            },
        );
        let (host, domain) = hostname_and_domain(&named, "cluster.local").expect("valid");
        assert_eq!(host, "front");
        assert_eq!(domain.as_deref(), Some("web.shop.svc.cluster.local"));
        assert_eq!(
            kernel_hostname(&named, &host, domain.as_deref()),
            Ok("front".into())
        );
    }

    #[test]
    fn set_hostname_as_fqdn_needs_a_domain_and_64_characters() {
        let spec = |sub: Option<&str>| PodSpec {
            subdomain: sub.map(Into::into),
            set_hostname_as_fqdn: Some(true),
            ..Default::default()
        };
        let fqdn = pod("web", spec(Some("db")));
        let (host, domain) = hostname_and_domain(&fqdn, "cluster.local").expect("valid");
        assert_eq!(
            kernel_hostname(&fqdn, &host, domain.as_deref()),
            Ok("web.db.shop.svc.cluster.local".into())
        );
        let no_domain = pod("web", spec(None));
        assert_eq!(kernel_hostname(&no_domain, "web", None), Ok("web".into()));
        let long = pod(&"w".repeat(40), spec(Some("db")));
        let (host, domain) = hostname_and_domain(&long, "cluster.local").expect("valid");
        let e = kernel_hostname(&long, &host, domain.as_deref()).expect_err("too long");
        assert!(
            e.contains("is too long (64 characters is the max, 66"),
            "{e}"
        );
    }
}
