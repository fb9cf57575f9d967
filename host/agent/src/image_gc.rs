//! Image garbage collection, as the kubelet's image GC manager: every
//! period the images are listed and the ones containers use (any container
//! on the runtime, running or not) marked used now; when the image
//! filesystem is `imageGCHighThresholdPercent` full or more, unused images
//! are removed, least recently used first, until it is back under
//! `imageGCLowThresholdPercent`. An image younger than `imageMinimumGCAge`
//! (since the agent first saw it) or one the runtime pins is never removed;
//! with `imageMaximumGCAge`, an image unused that long is removed whatever
//! the usage. Not freeing enough is a `FreeDiskSpaceFailed` warning on the
//! Node.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmlet_core::{ContainerFilter, ContainerRuntime, Image, ImageRuntime, RuntimeError};

use crate::events::{EventType, Recorder};

/// The kubelet's image GC settings (and wasmlet's `imageGCPeriod`: the
/// kubelet's is fixed at 5 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGcPolicy {
    pub high_threshold_percent: u8,
    pub low_threshold_percent: u8,
    pub min_age: Duration,
    /// Zero: no maximum.
    pub max_age: Duration,
    pub period: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        Self {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: Duration::ZERO,
            period: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    first_detected: Instant,
    /// None: not seen in use since the agent started.
    last_used: Option<Instant>,
    size: u64,
    pinned: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageGcError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("image filesystem {0}: {1}")]
    Filesystem(String, String),
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {found} bytes eligible to free."
    )]
    NotEnough { wanted: u64, found: u64 },
}

/// The images the agent has seen, and when each was last in use.
#[derive(Debug, Default)]
pub struct ImageRecords {
    records: HashMap<String, Record>,
}

impl ImageRecords {
    /// Notes `images` as seen `now`, the ones in `in_use` (ids or names)
    /// as used now; forgets images that are gone.
    fn detect(&mut self, images: &[Image], in_use: &HashSet<String>, now: Instant) {
        self.records
            .retain(|id, _| images.iter().any(|image| image.id == *id));
        for image in images {
            let record = self.records.entry(image.id.clone()).or_insert(Record {
                first_detected: now,
                last_used: None,
                size: image.size_bytes,
                pinned: image.pinned,
            });
            record.size = image.size_bytes;
            record.pinned = image.pinned;
            let used = in_use.contains(&image.id)
                || image.repo_tags.iter().any(|tag| in_use.contains(tag));
            if used {
                record.last_used = Some(now);
            }
        }
    }

    /// The images to remove to free `wanted` bytes: unused ones (not in use
    /// at the last detection, `now`) old enough, least recently used first
    /// (then the first seen), until enough.
    fn to_free(&self, wanted: u64, now: Instant, min_age: Duration) -> Vec<(String, u64)> {
        let mut candidates: Vec<(&String, &Record)> = self
            .records
            .iter()
            .filter(|(_, r)| {
                !r.pinned
                    && r.last_used != Some(now)
                    && now.saturating_duration_since(r.first_detected) >= min_age
            })
            .collect();
        candidates.sort_by_key(|(id, r)| (r.last_used, r.first_detected, (*id).clone()));
        let mut freed = 0;
        let mut chosen = Vec::new();
        for (id, record) in candidates {
            if freed >= wanted {
                break;
            }
            freed += record.size;
            chosen.push((id.clone(), record.size));
        }
        chosen
    }

    /// Unused images not used for `max_age` (never used: since first seen).
    fn too_old(&self, now: Instant, max_age: Duration) -> Vec<String> {
        self.records
            .iter()
            .filter(|(_, r)| !r.pinned && r.last_used != Some(now))
            .filter(|(_, r)| {
                let since = r.last_used.unwrap_or(r.first_detected);
                now.saturating_duration_since(since) > max_age
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Capacity and available bytes of the filesystem holding `mountpoint`.
fn filesystem(mountpoint: &str) -> Result<(u64, u64), ImageGcError> {
    let failed = |why: String| ImageGcError::Filesystem(mountpoint.to_owned(), why);
    let size =
        crate::stats::node::filesystem(Path::new(mountpoint)).map_err(|e| failed(e.to_string()))?;
    let (capacity, available) = (size.capacity, size.available);
    if capacity == 0 {
        return Err(failed("invalid capacity 0".into()));
    }
    Ok((capacity, available))
}

/// Runs the image GC every `policy.period` until `stop`.
pub async fn run<R: ContainerRuntime + ImageRuntime>(
    runtime: Arc<R>,
    policy: ImageGcPolicy,
    recorder: Arc<Recorder>,
    node_name: String,
    stop: CancellationToken,
) {
    let mut records = ImageRecords::default();
    let mut tick = tokio::time::interval(policy.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = collect(&*runtime, &mut records, &policy, Instant::now()).await {
            tracing::warn!(%error, "image garbage collection");
            if let ImageGcError::NotEnough { .. } = error {
                recorder.record_node(
                    &node_name,
                    EventType::Warning,
                    "FreeDiskSpaceFailed",
                    error.to_string(),
                );
            }
        }
    }
}

/// One round: detect, remove what is too old, then free space if the
/// filesystem is over the high threshold. The bytes freed.
pub async fn collect<R: ContainerRuntime + ImageRuntime>(
    runtime: &R,
    records: &mut ImageRecords,
    policy: &ImageGcPolicy,
    now: Instant,
) -> Result<u64, ImageGcError> {
    let images = runtime.list_images().await?;
    let containers = runtime.list_containers(&ContainerFilter::default()).await?;
    let in_use: HashSet<String> = containers
        .iter()
        .flat_map(|c| [c.image_ref.clone(), c.image.clone()])
        .filter(|i| !i.is_empty())
        .collect();
    records.detect(&images, &in_use, now);
    let mut freed = 0;
    if !policy.max_age.is_zero() {
        for id in records.too_old(now, policy.max_age) {
            match remove(runtime, records, &id).await {
                Ok(size) => freed += size,
                // An image a container took meanwhile, or one gone already.
                Err(error) => tracing::warn!(image = %id, %error, "image not removed"),
            }
        }
    }
    let Some(fs) = runtime.image_fs_info().await?.into_iter().next() else {
        return Ok(freed);
    };
    let (capacity, available) = filesystem(&fs.mountpoint)?;
    let usage_percent = 100 - available.saturating_mul(100) / capacity;
    if usage_percent < u64::from(policy.high_threshold_percent) {
        return Ok(freed);
    }
    let wanted = (capacity.saturating_mul(100 - u64::from(policy.low_threshold_percent)) / 100)
        .saturating_sub(available);
    tracing::info!(
        usage_percent,
        high = policy.high_threshold_percent,
        wanted,
        "image filesystem over the high threshold: freeing"
    );
    let mut found = 0;
    for (id, size) in records.to_free(wanted, now, policy.min_age) {
        match remove(runtime, records, &id).await {
            Ok(_) => found += size,
            // An image a container took meanwhile, or one gone already.
            Err(error) => tracing::warn!(image = %id, %error, "image not removed"),
        }
    }
    freed += found;
    if found < wanted {
        return Err(ImageGcError::NotEnough { wanted, found });
    }
    Ok(freed)
}

async fn remove<R: ImageRuntime>(
    runtime: &R,
    records: &mut ImageRecords,
    id: &str,
) -> Result<u64, ImageGcError> {
    tracing::info!(image = %id, "removing an unused image");
    runtime.remove_image(id).await?;
    Ok(records.records.remove(id).map_or(0, |r| r.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, size: u64) -> Image {
        Image {
            id: id.into(),
            repo_tags: vec![format!("example.com/{id}:1")],
            size_bytes: size,
            ..Image::default()
        }
    }

    #[test]
    fn the_least_recently_used_unused_images_old_enough_go_first() {
        let start = Instant::now();
        let mut records = ImageRecords::default();
        let images = [
            image("a", 10),
            image("b", 20),
            image("c", 30),
            image("d", 40),
        ];
        // All seen at start; "b" and "c" in use then (c by its name).
        let used: HashSet<String> = ["b".into(), "example.com/c:1".into()].into();
        records.detect(&images, &used, start);
        // Later only "c" is in use; "d" is new.
        let later = start + Duration::from_secs(600);
        let mut pinned = image("p", 99);
        pinned.pinned = true;
        let now_images = [
            images[0].clone(),
            images[1].clone(),
            images[2].clone(),
            images[3].clone(),
            pinned,
        ];
        records.detect(&now_images, &["c".into()].into(), later);
        records.records.get_mut("d").expect("d").first_detected = later;
        // Never used ("a") before used long ago ("b"); "c" in use, "d" too
        // young, "p" pinned: never.
        let chosen = records.to_free(25, later, Duration::from_secs(120));
        assert_eq!(chosen, [("a".to_owned(), 10), ("b".to_owned(), 20)]);
        let chosen = records.to_free(5, later, Duration::from_secs(120));
        assert_eq!(chosen, [("a".to_owned(), 10)], "only as much as asked");
        // Never used comes first, as the kubelet's zero lastUsed sorts.
        let all = records.to_free(u64::MAX, later, Duration::ZERO);
        let ids: Vec<_> = all.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "d", "b"]);
        // With a maximum age: unused for longer than it.
        let mut old = records.too_old(later, Duration::from_secs(300));
        old.sort();
        assert_eq!(old, ["a", "b"]);
        // A gone image is forgotten.
        records.detect(&now_images[1..], &HashSet::new(), later);
        assert!(!records.records.contains_key("a"));
    }
}
