//! The API server's validation of a pod's names on the network: its
//! `hostname` and `subdomain`, `hostAliases`, `dnsPolicy` and `dnsConfig`.
//! A static pod never meets the API server, so the agent and the manifest
//! plugin check it here, and the kubelet's DNS and hosts-file code can trust
//! what it is given.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::PodSpec;

use crate::field::FieldError;
use crate::identity::{dns_label, dns_subdomain};

/// The most nameservers a resolver reads (glibc's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// The most search domains, and characters in the search line, the API allows.
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_CHARS: usize = 2048;

/// The `dnsPolicy` values; the API's default is `ClusterFirst`.
pub const DNS_POLICIES: [&str; 4] = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];

/// `spec`'s network names, checked as the API server checks them.
pub fn validate(spec: &PodSpec) -> Result<(), FieldError> {
    let invalid = |field: &str, value: &str, problem: &str| {
        FieldError::new(field, format!("Invalid value {value:?}: {problem}"))
    };
    for (field, value) in [
        ("spec.hostname", &spec.hostname),
        ("spec.subdomain", &spec.subdomain),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            dns_label(value).map_err(|e| invalid(field, value, e))?;
        }
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let at = format!("spec.hostAliases[{i}]");
        let ip = alias.ip.as_str();
        ip.parse::<IpAddr>()
            .map_err(|_| invalid(&format!("{at}.ip"), ip, "must be a valid IP address"))?;
        for (j, name) in alias.hostnames.iter().flatten().enumerate() {
            dns_subdomain(name).map_err(|e| invalid(&format!("{at}.hostnames[{j}]"), name, e))?;
        }
    }
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if !DNS_POLICIES.contains(&policy) {
        return Err(FieldError::new(
            "spec.dnsPolicy",
            format!(
                "Unsupported value: {policy:?}: supported values: {}",
                DNS_POLICIES.map(|p| format!("\"{p}\"")).join(", ")
            ),
        ));
    }
    let Some(config) = &spec.dns_config else {
        return if policy == "None" {
            Err(FieldError::new(
                "spec.dnsConfig",
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ))
        } else {
            Ok(())
        };
    };
    let servers = config.nameservers.as_deref().unwrap_or_default();
    if policy == "None" && servers.is_empty() {
        return Err(FieldError::new(
            "spec.dnsConfig.nameservers",
            "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
        ));
    }
    if servers.len() > MAX_NAMESERVERS {
        return Err(FieldError::new(
            "spec.dnsConfig.nameservers",
            format!("Invalid value: must not have more than {MAX_NAMESERVERS} nameservers"),
        ));
    }
    for (i, server) in servers.iter().enumerate() {
        server.parse::<IpAddr>().map_err(|_| {
            invalid(
                &format!("spec.dnsConfig.nameservers[{i}]"),
                server,
                "must be a valid IP address",
            )
        })?;
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    if searches.len() > MAX_SEARCH_PATHS {
        return Err(FieldError::new(
            "spec.dnsConfig.searches",
            format!("Invalid value: must not have more than {MAX_SEARCH_PATHS} search paths"),
        ));
    }
    if searches.iter().map(String::len).sum::<usize>() + searches.len().saturating_sub(1)
        > MAX_SEARCH_CHARS
    {
        return Err(FieldError::new(
            "spec.dnsConfig.searches",
            format!(
                "Invalid value: must not have more than {MAX_SEARCH_CHARS} characters (including spaces) in the search list"
            ),
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        // "." is the root domain; a trailing dot is allowed.
        if search != "." {
            let name = search.strip_suffix('.').unwrap_or(search);
            dns_subdomain(name)
                .map_err(|e| invalid(&format!("spec.dnsConfig.searches[{i}]"), search, e))?;
        }
    }
    for (i, option) in config.options.iter().flatten().enumerate() {
        if option.name.as_deref().is_none_or(str::is_empty) {
            return Err(FieldError::new(
                format!("spec.dnsConfig.options[{i}].name"),
                "Required value: must not be empty",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodDNSConfigOption};

    fn field(spec: &PodSpec) -> Option<String> {
        validate(spec).err().map(|e| e.field)
    }

    #[test]
    fn valid_names_and_dns_pass() {
        let spec = PodSpec {
            hostname: Some("web-0".into()),
            subdomain: Some("web".into()),
            host_aliases: Some(vec![HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: Some(vec!["foo.local".into(), "bar".into()]),
            }]),
            dns_policy: Some("None".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["1.2.3.4".into(), "fd00::53".into()]),
                searches: Some(vec!["ns1.svc.cluster-domain.example".into(), ".".into()]),
                options: Some(vec![PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                }]),
            }),
            ..Default::default()
        };
        assert_eq!(validate(&spec), Ok(()));
        assert_eq!(validate(&PodSpec::default()), Ok(()));
    }

    #[test]
    fn each_rule_names_its_field() {
        let bad_host = PodSpec {
            hostname: Some("Web_0".into()),
            ..Default::default()
        };
        assert_eq!(field(&bad_host).as_deref(), Some("spec.hostname"));
        let bad_alias = PodSpec {
            host_aliases: Some(vec![HostAlias {
                ip: "10.1.2".into(),
                hostnames: None,
            }]),
            ..Default::default()
        };
        assert_eq!(field(&bad_alias).as_deref(), Some("spec.hostAliases[0].ip"));
        let none_without_config = PodSpec {
            dns_policy: Some("None".into()),
            ..Default::default()
        };
        assert_eq!(
            field(&none_without_config).as_deref(),
            Some("spec.dnsConfig")
        );
        let typo = PodSpec {
            dns_policy: Some("ClusterFirstWithHostNetwork".into()),
            ..Default::default()
        };
        assert_eq!(field(&typo).as_deref(), Some("spec.dnsPolicy"));
        let servers = |list: &[&str]| PodSpec {
            dns_config: Some(PodDNSConfig {
                nameservers: Some(list.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            field(&servers(&["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"])).as_deref(),
            Some("spec.dnsConfig.nameservers")
        );
        assert_eq!(
            field(&servers(&["1.1.1.1", "dns.example"])).as_deref(),
            Some("spec.dnsConfig.nameservers[1]")
        );
        let unnamed = PodSpec {
            dns_config: Some(PodDNSConfig {
                options: Some(vec![PodDNSConfigOption::default()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            field(&unnamed).as_deref(),
            Some("spec.dnsConfig.options[0].name")
        );
    }
}
