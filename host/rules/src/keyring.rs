//! Registry credentials from a pod's image pull secrets, matched to an image
//! as the kubelet's credential keyring matches them: a key is
//! `host[:port][/path]` (a scheme and a `/v1/` or `/v2/` suffix are dropped),
//! host labels may hold `*` and `?` wildcards, ports must be equal and the
//! path must be a prefix of the image's repository. Every matching entry is
//! returned, the more specific keys first (the kubelet sorts its index in
//! reverse order); the caller tries them in turn.

use std::collections::BTreeMap;

use k8s_openapi::serde_json::{self, Value};

/// `kubernetes.io/dockerconfigjson`: `{"auths": {key: entry}}`.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// `kubernetes.io/dockercfg`: `{key: entry}`.
pub const DOCKER_CFG_KEY: &str = ".dockercfg";

/// Docker Hub, as keys name it and as images imply it.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// One registry login, as the CRI's `AuthConfig` carries it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// base64 of `username:password`, when the secret gives it that way.
    pub auth: String,
    pub identity_token: String,
    pub registry_token: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret parts.
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The credentials of a pod's pull secrets, by registry key.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    entries: BTreeMap<String, Vec<Credential>>,
}

impl Keyring {
    /// Adds the logins of one pull secret's data. A secret of neither
    /// docker type, or one that is not valid JSON, is an error naming the key.
    pub fn add_secret(&mut self, data: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
        let (key, auths) = if let Some(json) = data.get(DOCKER_CONFIG_JSON_KEY) {
            let config: Value = serde_json::from_slice(json)
                .map_err(|e| format!("{DOCKER_CONFIG_JSON_KEY}: {e}"))?;
            (DOCKER_CONFIG_JSON_KEY, config.get("auths").cloned())
        } else if let Some(json) = data.get(DOCKER_CFG_KEY) {
            let config: Value =
                serde_json::from_slice(json).map_err(|e| format!("{DOCKER_CFG_KEY}: {e}"))?;
            (DOCKER_CFG_KEY, Some(config))
        } else {
            return Err(format!(
                "has neither {DOCKER_CONFIG_JSON_KEY} nor {DOCKER_CFG_KEY}"
            ));
        };
        let Some(Value::Object(auths)) = auths else {
            return Err(format!("{key}: no registries"));
        };
        for (location, entry) in auths {
            let text = |field: &str| {
                entry
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let credential = Credential {
                username: text("username"),
                password: text("password"),
                auth: text("auth"),
                identity_token: text("identitytoken"),
                registry_token: text("registrytoken"),
            };
            let entries = self.entries.entry(registry_key(&location)).or_default();
            if !entries.contains(&credential) {
                entries.push(credential);
            }
        }
        Ok(())
    }

    /// Every login whose key matches `image`, the more specific first.
    /// Empty: pull without credentials.
    pub fn lookup(&self, image: &str) -> Vec<&Credential> {
        let repository = repository(image);
        self.entries
            .iter()
            .rev()
            .filter(|(key, _)| matches(key, &repository))
            .flat_map(|(_, credentials)| credentials)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A docker config's location as a key: no scheme, no `/v1/` or `/v2/`, no
/// trailing `/`; Docker Hub's names are one.
fn registry_key(location: &str) -> String {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .unwrap_or(location);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path
        .strip_prefix("v1/")
        .or_else(|| path.strip_prefix("v2/"))
        .unwrap_or(path)
        .trim_end_matches('/');
    let host = if DOCKER_HUB.contains(&host) {
        DOCKER_HUB[0]
    } else {
        host
    };
    if path.is_empty() || path == "v1" || path == "v2" {
        host.to_owned()
    } else {
        format!("{host}/{path}")
    }
}

/// The image's repository with its registry: no tag or digest; an image
/// without a registry is Docker Hub's (`busybox` → `docker.io/library/busybox`).
fn repository(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let names_registry = first.contains(['.', ':']) || first == "localhost";
    if !names_registry {
        let path = if name.contains('/') {
            name.to_owned()
        } else {
            format!("library/{name}")
        };
        return format!("{}/{path}", DOCKER_HUB[0]);
    }
    let host = if DOCKER_HUB.contains(&first) {
        DOCKER_HUB[0]
    } else {
        first
    };
    format!("{host}/{rest}")
}

/// The kubelet's URLsMatch: same port, as many host labels each matching
/// its glob, and the key's path a prefix of the repository's.
fn matches(key: &str, repository: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        match s.split_once('/') {
            Some((host, path)) => (host.to_owned(), format!("/{path}")),
            None => (s.to_owned(), String::new()),
        }
    };
    let (key_host, key_path) = split(key);
    let (host, path) = split(repository);
    let port = |h: &str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                (name.to_owned(), port.to_owned())
            }
            _ => (h.to_owned(), String::new()),
        }
    };
    let ((key_name, key_port), (name, image_port)) = (port(&key_host), port(&host));
    if key_port != image_port || !path.starts_with(&key_path) {
        return false;
    }
    let key_labels: Vec<&str> = key_name.split('.').collect();
    let labels: Vec<&str> = name.split('.').collect();
    key_labels.len() == labels.len()
        && key_labels
            .iter()
            .zip(&labels)
            .all(|(glob, label)| glob_matches(glob.as_bytes(), label.as_bytes()))
}

/// `*` (any run) and `?` (any one character) within one host label.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    match glob.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_matches(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_matches(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(config: &str) -> Keyring {
        let mut keyring = Keyring::default();
        let data = BTreeMap::from([(
            DOCKER_CONFIG_JSON_KEY.to_owned(),
            config.as_bytes().to_vec(),
        )]);
        keyring.add_secret(&data).expect("a pull secret");
        keyring
    }

    fn users(keyring: &Keyring, image: &str) -> Vec<String> {
        keyring
            .lookup(image)
            .into_iter()
            .map(|c| c.username.clone())
            .collect()
    }

    #[test]
    fn keys_match_registry_port_and_path_prefix() {
        let k = keyring(
            r#"{"auths": {
                "127.0.0.1:5001": {"username": "host"},
                "https://127.0.0.1:5001/team/": {"username": "team"},
                "registry.example.com": {"username": "example"},
                "*.example.org": {"username": "wild"},
                "https://index.docker.io/v1/": {"username": "hub"}
            }}"#,
        );
        assert_eq!(users(&k, "127.0.0.1:5001/team/app:1"), ["team", "host"]);
        assert_eq!(users(&k, "127.0.0.1:5001/other/app"), ["host"]);
        assert!(
            users(&k, "127.0.0.1:5000/team/app").is_empty(),
            "another port"
        );
        assert_eq!(users(&k, "registry.example.com/a/b@sha256:00"), ["example"]);
        assert_eq!(users(&k, "eu.example.org/app"), ["wild"]);
        assert!(
            users(&k, "a.eu.example.org/app").is_empty(),
            "one label per *"
        );
        assert_eq!(users(&k, "busybox"), ["hub"]);
        assert_eq!(users(&k, "library/busybox:1.35"), ["hub"]);
        assert_eq!(users(&k, "docker.io/library/busybox"), ["hub"]);
        assert!(users(&k, "quay.io/app").is_empty());
    }

    #[test]
    fn both_secret_types_parse_and_bad_ones_say_why() {
        let mut k = Keyring::default();
        let cfg = BTreeMap::from([(
            DOCKER_CFG_KEY.to_owned(),
            br#"{"r.example.com": {"auth": "dTpw"}}"#.to_vec(),
        )]);
        k.add_secret(&cfg).expect("a dockercfg secret");
        assert_eq!(k.lookup("r.example.com/x")[0].auth, "dTpw");
        let bad = BTreeMap::from([(DOCKER_CONFIG_JSON_KEY.to_owned(), b"{".to_vec())]);
        let error = k.add_secret(&bad).expect_err("not JSON");
        assert!(error.starts_with(".dockerconfigjson:"), "{error}");
        let other = BTreeMap::from([("token".to_owned(), b"x".to_vec())]);
        assert!(k.add_secret(&other).is_err());
    }
}
