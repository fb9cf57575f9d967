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

fn twenty_seconds() -> u32 {
    20_000
}

#[cfg(test)]
mod tests {
    use super::*;

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
