//! wasmlet's side of the Kubernetes API, and the only crate that sees it
//! (kube-rs over rustls): the kubeconfig and its credentials, the Node's
//! registration and status, its Lease, pods' status, mirror pods, events,
//! and the reviews behind the kubelet port's authentication and authorization.

#![forbid(unsafe_code)]

pub mod events;
pub mod lease;
pub mod node;
pub mod objects;
pub mod pods;
pub mod reader;
pub mod reviews;

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// What went wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    /// The API server answered with a failure.
    #[error("{reason} ({code}): {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer: the connection, TLS, or a timeout.
    #[error("the API server could not be reached: {0}")]
    Unreachable(String),
}

impl KubeError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Api { code: 409, .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { code: 404, .. })
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::Api { code: 409, reason, .. } if reason == "AlreadyExists")
    }
}

impl From<kube::Error> for KubeError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => Self::Api {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => Self::Unreachable(other.to_string()),
        }
    }
}

/// How long one call may take before it counts as failed: a renewal that
/// hangs must not outlive its lease.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one cluster, holding its credentials.
#[derive(Clone)]
pub struct ApiClient {
    client: kube::Client,
    server: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for the kubeconfig at `path` (its current context).
    pub async fn from_kubeconfig(path: &Path) -> Result<Self, KubeError> {
        let bad = |reason: String| KubeError::Kubeconfig {
            path: path.display().to_string(),
            reason,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?;
        config.connect_timeout = Some(CALL_TIMEOUT);
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        Ok(Self { client, server })
    }

    /// The API server's address, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn kube(&self) -> kube::Client {
        self.client.clone()
    }
}

/// `call`, cut off after [`CALL_TIMEOUT`].
pub(crate) async fn bounded<T>(
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(KubeError::from),
        Err(_) => Err(KubeError::Unreachable(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}
