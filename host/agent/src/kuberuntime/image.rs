//! A container's image, per its pull policy, with the kubelet's pull
//! back-off (its `imageManager.EnsureImageExists`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;
use wasmlet_core::{Runtime, RuntimeError};
use wasmlet_rules::default_pull_policy;

use super::{PodState, PodSyncer};
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
        match self.runtime.pull_image(&image, None).await {
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
