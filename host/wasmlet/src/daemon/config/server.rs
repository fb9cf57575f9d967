//! The kubelet port's settings: KubeletConfiguration's `authentication` and
//! `authorization`, with the kubelet's v1beta1 defaults (a config file's:
//! no anonymous access, webhook authentication and authorization).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::humantime_serde;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Authentication {
    pub x509: X509Authentication,
    pub webhook: WebhookAuthentication,
    pub anonymous: AnonymousAuthentication,
}

/// Client certificates signed by this bundle's CAs authenticate: the user is
/// the subject's common name, its groups the organizations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
}

/// Bearer tokens, reviewed by the API server (TokenReview).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookAuthentication {
    pub enabled: bool,
    /// How long a review's answer is kept.
    #[serde(rename = "cacheTTL", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

impl Default for WebhookAuthentication {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_ttl: Duration::from_secs(120),
        }
    }
}

/// Requests with no credentials are `system:anonymous`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AnonymousAuthentication {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Authorization {
    pub mode: AuthorizationMode,
    pub webhook: WebhookAuthorization,
}

impl Default for Authorization {
    fn default() -> Self {
        Self {
            mode: AuthorizationMode::Webhook,
            webhook: WebhookAuthorization::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthorizationMode {
    AlwaysAllow,
    /// Each request is a SubjectAccessReview on `nodes/<subresource>`.
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL", with = "humantime_serde")]
    pub cache_authorized_ttl: Duration,
    #[serde(rename = "cacheUnauthorizedTTL", with = "humantime_serde")]
    pub cache_unauthorized_ttl: Duration,
}

impl Default for WebhookAuthorization {
    fn default() -> Self {
        Self {
            cache_authorized_ttl: Duration::from_secs(300),
            cache_unauthorized_ttl: Duration::from_secs(30),
        }
    }
}

impl Authentication {
    /// The kubelet's command-line defaults (no config file): anonymous
    /// requests, no webhook.
    pub fn legacy() -> Self {
        Self {
            anonymous: AnonymousAuthentication { enabled: true },
            webhook: WebhookAuthentication {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A zero TTL is the kubelet's default.
    pub(super) fn default_zero_values(&mut self) {
        if self.webhook.cache_ttl.is_zero() {
            self.webhook.cache_ttl = WebhookAuthentication::default().cache_ttl;
        }
    }
}

impl Authorization {
    pub fn legacy() -> Self {
        Self {
            mode: AuthorizationMode::AlwaysAllow,
            ..Default::default()
        }
    }

    pub(super) fn default_zero_values(&mut self) {
        let d = WebhookAuthorization::default();
        if self.webhook.cache_authorized_ttl.is_zero() {
            self.webhook.cache_authorized_ttl = d.cache_authorized_ttl;
        }
        if self.webhook.cache_unauthorized_ttl.is_zero() {
            self.webhook.cache_unauthorized_ttl = d.cache_unauthorized_ttl;
        }
    }
}

/// The lowest TLS version the kubelet port speaks (`tlsMinVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The kubelet's names; TLS 1.0 and 1.1 are refused (rustls has neither).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "" | "VersionTLS12" => Ok(Self::Tls12),
            "VersionTLS13" => Ok(Self::Tls13),
            "VersionTLS10" | "VersionTLS11" => Err(format!(
                "{name} is not supported: wasmlet speaks TLS 1.2 and 1.3 only"
            )),
            other => Err(format!("{other:?}: expected VersionTLS12 or VersionTLS13")),
        }
    }
}
