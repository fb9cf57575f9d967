//! Log rotation, as the kubelet's container log manager: every
//! `containerLogMonitorInterval` each running container's log is looked at,
//! and one bigger than `containerLogMaxSize` is renamed to
//! `<log>.<YYYYMMDD-hhmmss>` and the runtime asked to reopen it
//! (ReopenContainerLog). Rotated files beyond `containerLogMaxFiles` (with
//! the live one) are removed, oldest first, and all but the newest rotated
//! one are gzipped before it is renamed (so the two newest rotated files
//! stay plain, as the kubelet leaves them).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use wasmlet_core::{ContainerId, ContainerRuntime, ContainerState};

use crate::cache::PodCache;

/// The kubelet's `containerLogMaxSize`, `containerLogMaxFiles` and
/// `containerLogMonitorInterval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    pub max_size: u64,
    /// With the live file; at least 2.
    pub max_files: usize,
    pub interval: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_size: 10 << 20,
            max_files: 5,
            interval: Duration::from_secs(10),
        }
    }
}

/// Rotates the logs of the containers in `cache` until `stop`.
pub async fn run<R: ContainerRuntime>(
    runtime: Arc<R>,
    cache: Arc<PodCache>,
    policy: RotationPolicy,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(policy.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let running: Vec<(ContainerId, PathBuf)> = cache
            .all()
            .iter()
            .flat_map(|pod| pod.containers.iter())
            .filter(|c| c.state == ContainerState::Running && !c.log_path.as_os_str().is_empty())
            .map(|c| (c.id.clone(), c.log_path.clone()))
            .collect();
        for (id, log) in running {
            if let Err(error) = rotate_if_due(&*runtime, &id, log.clone(), policy).await {
                tracing::warn!(%error, container = %id, log = %log.display(), "log rotation");
            }
        }
    }
}

async fn rotate_if_due<R: ContainerRuntime>(
    runtime: &R,
    id: &ContainerId,
    log: PathBuf,
    policy: RotationPolicy,
) -> io::Result<()> {
    let due = {
        let log = log.clone();
        off_runtime(move || prepare(&log, policy)).await?
    };
    let Some(rotated) = due else {
        return Ok(());
    };
    if let Err(error) = runtime.reopen_container_log(id).await {
        // The runtime still writes to the renamed file: put it back.
        off_runtime(move || fs::rename(&rotated, &log)).await?;
        return Err(io::Error::other(format!("ReopenContainerLog: {error}")));
    }
    Ok(())
}

/// Runs blocking filesystem work on the blocking pool.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

/// If `log` is over the size: cleans up its rotated files and renames it,
/// returning the new name. Blocking.
fn prepare(log: &Path, policy: RotationPolicy) -> io::Result<Option<PathBuf>> {
    match fs::metadata(log) {
        Ok(meta) if meta.len() > policy.max_size => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let target = log.with_file_name(format!(
        "{}.{}",
        file_name(log),
        timestamp(SystemTime::now())
    ));
    if target.exists() {
        return Ok(None); // rotated this second already: next time
    }
    let mut rotated = rotated_files(log)?;
    // Room for the one about to be made, besides the live file.
    let keep = policy.max_files.max(2) - 2;
    while rotated.len() > keep {
        fs::remove_file(rotated.remove(0))?;
    }
    // The newest stays plain; it becomes the second newest below.
    if let Some((_, older)) = rotated.split_last() {
        for file in older {
            if file.extension().is_none_or(|e| e != "gz") {
                compress(file)?;
            }
        }
    }
    fs::rename(log, &target)?;
    Ok(Some(target))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `<log>.*`, oldest first (the timestamps sort), without leftovers of an
/// interrupted compression (`.tmp`), which are removed.
fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let prefix = format!("{}.", file_name(log));
    let dir = log.parent().unwrap_or(Path::new("."));
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = file_name(&path);
        if !name.starts_with(&prefix) {
            continue;
        }
        if name.ends_with(".tmp") {
            fs::remove_file(&path)?;
        } else {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// `file` → `file.gz`, through a `.tmp` so a crash leaves no half file.
fn compress(file: &Path) -> io::Result<()> {
    let gz = file.with_file_name(format!("{}.gz", file_name(file)));
    let tmp = file.with_file_name(format!("{}.gz.tmp", file_name(file)));
    let mut input = File::open(file)?;
    let mut encoder = flate2::write::GzEncoder::new(File::create(&tmp)?, Default::default());
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    fs::rename(&tmp, &gz)?;
    fs::remove_file(file)
}

/// `YYYYMMDD-hhmmss` in UTC, the kubelet's rotation suffix.
fn timestamp(at: SystemTime) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(at).to_string();
    let digits: String = rfc3339.chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}", &digits[..8], &digits[8..14])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wasmlet-rotation-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn the_suffix_is_the_kubelet_s() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_772_800 + 3661);
        assert_eq!(timestamp(at), "20251203-154101");
    }

    #[test]
    fn a_big_log_is_renamed_old_ones_compressed_and_the_excess_removed() {
        let dir = scratch();
        let log = dir.join("0.log");
        let policy = RotationPolicy {
            max_size: 10,
            max_files: 3,
            ..Default::default()
        };
        fs::write(&log, "small").expect("log");
        assert_eq!(prepare(&log, policy).expect("ok"), None, "under the size");
        for old in ["0.log.20251201-000000", "0.log.20251202-000000"] {
            fs::write(dir.join(old), "old lines\n").expect("old");
        }
        fs::write(dir.join("0.log.20251202-000000.gz.tmp"), "half").expect("tmp");
        fs::write(&log, "more than ten bytes\n").expect("log");
        let rotated = prepare(&log, policy).expect("ok").expect("rotated");
        assert!(!log.exists());
        assert_eq!(
            fs::read_to_string(&rotated).ok().as_deref(),
            Some("more than ten bytes\n")
        );
        let mut names: Vec<String> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| file_name(&e.expect("entry").path()))
            .collect();
        names.sort();
        // At most 3 files: the live one (the runtime reopens it), the new
        // rotated one, and the newest older one.
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0], "0.log.20251202-000000");

        // Next time (a second later at least), that one is the oldest kept
        // and is compressed.
        fs::rename(&rotated, dir.join("0.log.20251203-000000")).expect("older");
        let policy = RotationPolicy {
            max_files: 4,
            ..policy
        };
        fs::write(&log, "again more than ten bytes\n").expect("log");
        prepare(&log, policy).expect("ok").expect("rotated");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| file_name(&e.expect("entry").path()))
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "0.log.20251202-000000.gz");
        let mut plain = String::new();
        let gz = File::open(dir.join(&names[0])).expect("gz");
        io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut plain)
            .expect("gunzip");
        assert_eq!(plain, "old lines\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
