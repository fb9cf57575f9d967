//! A container's image, per its pull policy, with the kubelet's pull
//! back-off (its `imageManager.EnsureImageExists`) and the logins of the
//! pod's image pull secrets that match the image, tried in turn.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;
use wasmlet_core::{RegistryAuth, Runtime, RuntimeError};
use wasmlet_rules::default_pull_policy;
use wasmlet_rules::keyring::{Credential, Keyring};

use super::{PodState, PodSyncer};
use crate::api_objects::{self, Fetched, ObjectKind};
use crate::api_status::WaitingReason;
use crate::events::EventType;

/// Why a container cannot start from its image (yet). The text is the
/// kubelet's waiting message.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Inspect(RuntimeError),
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    #[error("Back-off pulling image \"{image}\"")]
    BackOff { image: String, wait: Duration },
    #[error("Failed to pull image \"{image}\": {error}")]
    Pull {
        image: String,
        error: RuntimeError,
        wait: Duration,
    },
}

impl ImageError {
    /// The container's waiting reason while this holds.
    pub fn reason(&self) -> WaitingReason {
        match self {
            Self::Inspect(_) => WaitingReason::ErrImageInspect,
            Self::NeverPull(_) => WaitingReason::ErrImageNeverPull,
            Self::BackOff { .. } => WaitingReason::ImagePullBackOff,
            Self::Pull { .. } => WaitingReason::ErrImagePull,
        }
    }

    /// When a pull may be tried again, if it may be.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Inspect(_) | Self::NeverPull(_) => None,
            Self::BackOff { wait, .. } | Self::Pull { wait, .. } => Some(*wait),
        }
    }
}

impl<R: Runtime + 'static> PodSyncer<R> {
    /// Makes sure the container's image is there, per its pull policy.
    pub(super) async fn ensure_image(
        &self,
        pod: &Pod,
        container: &Container,
        objects: &Fetched,
        state: &mut PodState,
    ) -> Result<(), ImageError> {
        let image = container.image.clone().unwrap_or_default();
        let name = container.name.as_str();
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).into());
        let present = self
            .runtime
            .image_status(&image)
            .await
            .map_err(ImageError::Inspect)?
            .is_some();
        match (policy.as_str(), present) {
            ("Never", false) => {
                let error = ImageError::NeverPull(image);
                let reason = error.reason().as_str();
                self.recorder.record(
                    pod,
                    Some(name),
                    EventType::Warning,
                    reason,
                    error.to_string(),
                );
                return Err(error);
            }
            ("Never" | "IfNotPresent", true) => {
                if !state.waiting.contains_key(name) {
                    self.recorder.record(
                        pod,
                        Some(name),
                        EventType::Normal,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                }
                return Ok(());
            }
            _ => {}
        }
        let wait = state.pulls.remaining(&image, Instant::now());
        if !wait.is_zero() {
            let error = ImageError::BackOff { image, wait };
            self.recorder.record(
                pod,
                Some(name),
                EventType::Normal,
                "BackOff",
                error.to_string(),
            );
            return Err(error);
        }
        self.recorder.record(
            pod,
            Some(name),
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let started = Instant::now();
        let keyring = self.keyring(pod, objects);
        match self.pull(&image, &keyring.lookup(&image)).await {
            Ok(_) => {
                state.pulls.forget(&image);
                self.recorder.record(
                    pod,
                    Some(name),
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:?}",
                        started.elapsed()
                    ),
                );
                Ok(())
            }
            Err(error) => {
                let wait = state.pulls.fail(&image, Instant::now());
                let error = ImageError::Pull { image, error, wait };
                self.recorder.record(
                    pod,
                    Some(name),
                    EventType::Warning,
                    "Failed",
                    error.to_string(),
                );
                Err(error)
            }
        }
    }
}

fn registry_auth(credential: &Credential) -> RegistryAuth {
    RegistryAuth {
        username: credential.username.clone(),
        password: credential.password.clone(),
        auth: credential.auth.clone(),
        // Empty: the login goes with the image's own registry, which the
        // keyring matched.
        server_address: String::new(),
        identity_token: credential.identity_token.clone(),
        registry_token: credential.registry_token.clone(),
    }
}

impl<R: Runtime + 'static> PodSyncer<R> {
    /// The logins of the pod's pull secrets. One that is missing or
    /// unreadable is a warning, and the pull goes on without it (the
    /// kubelet's FailedToRetrieveImagePullSecret).
    fn keyring(&self, pod: &Pod, objects: &Fetched) -> Keyring {
        let mut keyring = Keyring::default();
        let mut missing = Vec::new();
        for name in api_objects::pull_secrets(pod) {
            match objects.object(ObjectKind::Secret, &name) {
                Ok(Some(data)) => {
                    if let Err(why) = keyring.add_secret(data) {
                        missing.push(format!("{name}: {why}"));
                    }
                }
                Ok(None) => missing.push(format!("{name}: not found")),
                Err(why) => missing.push(format!("{name}: {why}")),
            }
        }
        if !missing.is_empty() {
            self.recorder.record(
                pod,
                None,
                EventType::Warning,
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        keyring
    }

    /// Pulls `image` anonymously if no login matches it, else with each
    /// login in turn until one works (the errors of all, if none does).
    async fn pull(&self, image: &str, logins: &[&Credential]) -> Result<String, RuntimeError> {
        let Some((first, others)) = logins.split_first() else {
            return self.runtime.pull_image(image, None).await;
        };
        let mut error = match self
            .runtime
            .pull_image(image, Some(&registry_auth(first)))
            .await
        {
            Ok(reference) => return Ok(reference),
            Err(error) => error,
        };
        for login in others {
            match self
                .runtime
                .pull_image(image, Some(&registry_auth(login)))
                .await
            {
                Ok(reference) => return Ok(reference),
                Err(next) => {
                    error.message = format!("{}; {next}", error.message);
                    error.kind = next.kind;
                }
            }
        }
        Err(error)
    }
}
