//! A pod's resolver config, as the kubelet's DNS configurer makes it for the
//! sandbox (containerd writes it as the pod's `/etc/resolv.conf`): by
//! `dnsPolicy`, the node's resolver (`Default`), the cluster's
//! (`ClusterFirst`, `ClusterFirstWithHostNet`) or nothing (`None`), then the
//! pod's `dnsConfig` merged in, then cut to what resolvers accept.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use wasmlet_core::DnsConfig;
use wasmlet_rules::PodExt;
use wasmlet_rules::network::{MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCH_PATHS};

use super::DnsSettings;

/// The longest search domain glibc copes with (a DNS-1123 subdomain).
const MAX_SEARCH_LEN: usize = 253;

/// A resolver file's nameservers, search domains and options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads `resolv.conf` text as the kubelet does: the last `search`
    /// line wins (trailing dots dropped, `.` skipped); a later option
    /// replaces an earlier one of the same name.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self::default();
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with(['#', ';']) {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.nameservers.extend(fields.next().map(str::to_owned)),
                Some("search") => {
                    conf.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_owned())
                        .collect();
                }
                Some("options") => {
                    for option in fields {
                        set_option(&mut conf.options, option.to_owned());
                    }
                }
                _ => {}
            }
        }
        conf
    }
}

fn option_name(option: &str) -> &str {
    option.split_once(':').map_or(option, |(name, _)| name)
}

/// Sets `option` (`name` or `name:value`), replacing one of the same name.
fn set_option(options: &mut Vec<String>, option: String) {
    match options
        .iter_mut()
        .find(|o| option_name(o) == option_name(&option))
    {
        Some(existing) => *existing = option,
        None => options.push(option),
    }
}

/// The resolver config for `pod`'s sandbox, and the kubelet's warnings
/// about it (event reason, message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDns {
    pub config: DnsConfig,
    pub warnings: Vec<(&'static str, String)>,
}

/// `pod`'s resolver, from the node's `settings` and its resolver file
/// (`host`; `None` when `resolvConf` is `""`). Policies are validated
/// before a pod is kept.
pub fn pod_dns(pod: &Pod, settings: &DnsSettings, host: Option<&ResolvConf>) -> PodDns {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let mut warnings = Vec::new();
    let from_host = || match host {
        Some(host) => DnsConfig {
            servers: host.nameservers.clone(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        },
        // As the kubelet: no resolver file means the node's own resolver.
        None => DnsConfig {
            servers: vec!["127.0.0.1".into()],
            searches: vec![".".into()],
            options: Vec::new(),
        },
    };
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        // A host-network pod is on the node's network, not the cluster's.
        "ClusterFirst" => Some(!pod.host_network()),
        _ => Some(false),
    };
    let mut config = match cluster {
        None => DnsConfig::default(),
        Some(true) if !settings.cluster_dns.is_empty() => {
            let host_searches = host.map(|h| h.searches.as_slice()).unwrap_or_default();
            DnsConfig {
                servers: settings
                    .cluster_dns
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect(),
                searches: cluster_searches(pod, &settings.cluster_domain, host_searches),
                options: vec!["ndots:5".into()],
            }
        }
        Some(true) => {
            let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
            warnings.push((
                "MissingClusterDNS",
                format!("pod: {:?}. {message}", pod.display_name()),
            ));
            from_host()
        }
        Some(false) => from_host(),
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        merge(&mut config, extra);
    }
    fit_limits(&mut config, &mut warnings);
    PodDns { config, warnings }
}

/// `<ns>.svc.<domain>`, `svc.<domain>`, `<domain>`, then the node's.
fn cluster_searches(pod: &Pod, domain: &str, host: &[String]) -> Vec<String> {
    let mut searches = Vec::new();
    if !domain.is_empty() {
        searches.extend([
            format!("{}.svc.{domain}", pod.namespace_or_default()),
            format!("svc.{domain}"),
            domain.to_owned(),
        ]);
    }
    searches.extend(host.iter().cloned());
    without_duplicates(searches)
}

fn without_duplicates(list: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    list.into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// The pod's `dnsConfig` added: nameservers and searches appended (no
/// repeats), options merged by name, the pod's winning. The kubelet merges
/// options through a map, so their order is unspecified; here it is by name.
fn merge(config: &mut DnsConfig, extra: &PodDNSConfig) {
    let servers = config
        .servers
        .iter()
        .chain(extra.nameservers.iter().flatten());
    config.servers = without_duplicates(servers.cloned().collect());
    let searches = config
        .searches
        .iter()
        .chain(extra.searches.iter().flatten());
    config.searches = without_duplicates(searches.cloned().collect());
    let mut options: BTreeMap<String, String> = config
        .options
        .iter()
        .map(|o| match o.split_once(':') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (o.clone(), String::new()),
        })
        .collect();
    for option in extra.options.iter().flatten() {
        let name = option.name.clone().unwrap_or_default();
        options.insert(name, option.value.clone().unwrap_or_default());
    }
    config.options = options
        .into_iter()
        .map(|(name, value)| {
            if value.is_empty() {
                name
            } else {
                format!("{name}:{value}")
            }
        })
        .collect();
}

/// At most three nameservers and the API's search limits, with the
/// kubelet's `DNSConfigForming` warnings when something was left out.
fn fit_limits(config: &mut DnsConfig, warnings: &mut Vec<(&'static str, String)>) {
    let searches = &mut config.searches;
    let before = searches.len();
    searches.truncate(MAX_SEARCH_PATHS);
    searches.retain(|s| s.len() <= MAX_SEARCH_LEN);
    let mut cut = searches.len() < before;
    while searches.join(" ").len() > MAX_SEARCH_CHARS {
        searches.pop();
        cut = true;
    }
    if cut {
        warnings.push((
            "DNSConfigForming",
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                searches.join(" ")
            ),
        ));
    }
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming",
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                config.servers.join(" ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const HOST: &str = "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch old.example\nsearch corp.example. .\noptions timeout:1 ndots:2\noptions timeout:3\n";

    fn pod(policy: Option<&str>, host_network: bool, extra: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(Into::into),
                host_network: Some(host_network),
                dns_config: extra,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn cluster() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec!["10.96.0.10".parse().expect("ip")],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        }
    }

    #[test]
    fn resolv_conf_is_read_as_the_kubelet_reads_it() {
        let conf = ResolvConf::parse(HOST);
        assert_eq!(conf.nameservers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(conf.searches, ["corp.example"], "the last line wins");
        assert_eq!(conf.options, ["timeout:3", "ndots:2"]);
    }

    #[test]
    fn each_policy_takes_its_resolver() {
        let host = ResolvConf::parse(HOST);
        let first = pod_dns(&pod(None, false, None), &cluster(), Some(&host));
        assert_eq!(first.config.servers, ["10.96.0.10"]);
        assert_eq!(
            first.config.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(first.config.options, ["ndots:5"]);
        assert!(first.warnings.is_empty());

        // ClusterFirst on the host network is Default; WithHostNet is not.
        let on_host = pod_dns(
            &pod(Some("ClusterFirst"), true, None),
            &cluster(),
            Some(&host),
        );
        assert_eq!(on_host.config.servers, ["10.0.0.2", "10.0.0.3"]);
        let with_host_net = pod_dns(
            &pod(Some("ClusterFirstWithHostNet"), true, None),
            &cluster(),
            Some(&host),
        );
        assert_eq!(with_host_net.config.servers, ["10.96.0.10"]);

        let default = pod_dns(&pod(Some("Default"), false, None), &cluster(), Some(&host));
        assert_eq!(default.config.options, ["timeout:3", "ndots:2"]);
        let no_file = pod_dns(&pod(Some("Default"), false, None), &cluster(), None);
        assert_eq!(no_file.config.servers, ["127.0.0.1"]);
        assert_eq!(no_file.config.searches, ["."]);
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back_with_a_warning() {
        let host = ResolvConf::parse(HOST);
        let dns = pod_dns(
            &pod(None, false, None),
            &DnsSettings::default(),
            Some(&host),
        );
        assert_eq!(dns.config.servers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(dns.warnings.len(), 1);
        assert_eq!(dns.warnings[0].0, "MissingClusterDNS");
    }

    #[test]
    fn dns_config_is_merged_and_none_starts_empty() {
        let extra = PodDNSConfig {
            nameservers: Some(vec!["10.96.0.10".into(), "1.1.1.1".into()]),
            searches: Some(vec!["extra.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("1".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        };
        let host = ResolvConf::parse(HOST);
        let merged = pod_dns(
            &pod(None, false, Some(extra.clone())),
            &cluster(),
            Some(&host),
        );
        assert_eq!(merged.config.servers, ["10.96.0.10", "1.1.1.1"]);
        assert_eq!(
            merged.config.searches.last().map(String::as_str),
            Some("extra.example")
        );
        assert_eq!(merged.config.options, ["edns0", "ndots:1"]);

        let none = pod_dns(
            &pod(Some("None"), false, Some(extra)),
            &cluster(),
            Some(&host),
        );
        assert_eq!(none.config.servers, ["10.96.0.10", "1.1.1.1"]);
        assert_eq!(none.config.searches, ["extra.example"]);
    }

    #[test]
    fn what_resolvers_cannot_take_is_cut_with_a_warning() {
        let host = ResolvConf {
            nameservers: ["1", "2", "3", "4"].map(String::from).to_vec(),
            searches: (0..40).map(|i| format!("d{i}.example")).collect(),
            options: Vec::new(),
        };
        let dns = pod_dns(&pod(Some("Default"), false, None), &cluster(), Some(&host));
        assert_eq!(dns.config.servers.len(), 3);
        assert_eq!(dns.config.searches.len(), MAX_SEARCH_PATHS);
        let reasons: Vec<_> = dns.warnings.iter().map(|w| w.0).collect();
        assert_eq!(reasons, ["DNSConfigForming", "DNSConfigForming"]);
    }
}
