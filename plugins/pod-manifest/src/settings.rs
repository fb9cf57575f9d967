//! The settings of the built-in file and http sources: one definition, read
//! by the plugins and written by the agent from its own config, so the two
//! cannot disagree about a field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file source (`staticPodPath`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSourceSettings {
    /// The directory of manifests.
    pub path: String,
    /// The rescan period; a change in the directory wakes the source sooner.
    #[serde(default = "twenty_seconds")]
    pub check_frequency_ms: u32,
}

/// The http source (`staticPodURL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpSourceSettings {
    pub url: String,
    /// `ip:port` to connect to: the URL's host, resolved by the agent.
    pub connect_to: String,
    /// Sent with every request (`staticPodURLHeader`).
    #[serde(default)]
    pub header: BTreeMap<String, Vec<String>>,
    #[serde(default = "twenty_seconds")]
    pub check_frequency_ms: u32,
}

/// A manifest URL taken apart: the one reading of it, for the agent (which
/// resolves and grants its host) and the http source (which fetches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestUrl {
    pub https: bool,
    /// `host[:port]` as written: the `Host` header.
    pub authority: String,
    /// As written (`[v6]` in brackets): what the agent resolves.
    pub host: String,
    /// The explicit port, else the scheme's.
    pub port: u16,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

impl ManifestUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => {
                return Err(format!(
                    "{url:?}: only http:// and https:// URLs are supported"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?}: the URL names no host"))?;
        Ok(Self {
            https,
            authority: authority.as_str().to_owned(),
            host: authority.host().to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }
}

fn twenty_seconds() -> u32 {
    20_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_urls_are_read_one_way() {
        let url =
            ManifestUrl::parse("https://manifests.example:8443/pods.yaml?v=1").expect("parses");
        assert_eq!(
            url,
            ManifestUrl {
                https: true,
                authority: "manifests.example:8443".into(),
                host: "manifests.example".into(),
                port: 8443,
                path: "/pods.yaml?v=1".into(),
            }
        );
        let v6 = ManifestUrl::parse("http://[::1]").expect("parses");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.path.as_str()),
            ("[::1]", 80, "/")
        );
        assert!(ManifestUrl::parse("ftp://host/").is_err());
        assert!(ManifestUrl::parse("/just/a/path").is_err());
    }

    #[test]
    fn settings_round_trip_under_their_kebab_case_names() {
        let http = HttpSourceSettings {
            url: "http://m.example/p".into(),
            connect_to: "10.0.0.1:80".into(),
            header: BTreeMap::from([("X-Token".into(), vec!["t".into()])]),
            check_frequency_ms: 5,
        };
        let json = serde_json::to_value(&http).expect("serializes");
        assert_eq!(json["connect-to"], "10.0.0.1:80");
        assert_eq!(json["check-frequency-ms"], 5);
        assert_eq!(
            serde_json::from_value::<HttpSourceSettings>(json).ok(),
            Some(http)
        );
        let file: FileSourceSettings = serde_json::from_str(r#"{"path": "/m"}"#).expect("defaults");
        assert_eq!(file.check_frequency_ms, 20_000);
        assert!(serde_json::from_str::<FileSourceSettings>(r#"{"path": "/m", "pth": 1}"#).is_err());
    }
}
