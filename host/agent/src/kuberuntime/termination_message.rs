//! The termination message, as the kubelet gets it: an empty, world-writable
//! file made for each run of a container under
//! `<pod dir>/containers/<name>/`, mounted at its `terminationMessagePath`
//! (default `/dev/termination-log`); once the container has exited, the
//! file's last 4 KiB become its terminated state's message. With
//! `terminationMessagePolicy: FallbackToLogsOnError`, a failed container
//! that wrote nothing there gets the tail of its log instead (80 lines, at
//! most 2 KiB). Everything here touches the filesystem: callers run it off
//! the async runtime's threads.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;
use wasmlet_core::{ContainerState, ContainerStatus, Mount, MountPropagation};

/// The API's default `terminationMessagePath`.
pub const DEFAULT_PATH: &str = "/dev/termination-log";
pub const FALLBACK_TO_LOGS: &str = "FallbackToLogsOnError";
/// How much of the file is kept (the kubelet's
/// `MaxContainerTerminationMessageLength`).
const MAX_MESSAGE: u64 = 4 * 1024;
/// How much of the log a fallback keeps, in lines and bytes.
const MAX_LOG_LINES: usize = 80;
const MAX_LOG_MESSAGE: usize = 2 * 1024;
/// How far back in the log the fallback reads: the last 2 KiB of output
/// are always within it (a CRI log line is at most 16 KiB of content).
const LOG_WINDOW: u64 = 256 * 1024;

/// `container`'s `terminationMessagePath`, defaulted; `None` if set empty.
pub fn container_path(container: &Container) -> Option<&str> {
    match container.termination_message_path.as_deref() {
        None => Some(DEFAULT_PATH),
        Some("") => None,
        Some(path) => Some(path),
    }
}

/// Makes the file for run `restarts` of `container` and returns its mount.
/// The run's restart count names the file: it is unique within the pod.
pub fn mount(pod_dir: &Path, container: &Container, restarts: u32) -> io::Result<Option<Mount>> {
    let Some(path) = container_path(container) else {
        return Ok(None);
    };
    let dir = pod_dir.join("containers").join(&container.name);
    fs::create_dir_all(&dir)?;
    let file = dir.join(restarts.to_string());
    File::create(&file)?;
    // Not through the umask: the container may run as any user.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666))?;
    Ok(Some(Mount {
        container_path: path.to_owned(),
        host_path: file.display().to_string(),
        readonly: false,
        propagation: MountPropagation::Private,
    }))
}

/// Adds the termination message to an exited container's `message` (after
/// the runtime's own, as the kubelet does), given the container's
/// `terminationMessagePath` and policy as they were when it was created.
pub fn add_to(status: &mut ContainerStatus, path: Option<&str>, policy: Option<&str>) {
    if status.state != ContainerState::Exited {
        return;
    }
    // A container that could not even start has no logs to fall back to.
    let fallback = policy == Some(FALLBACK_TO_LOGS)
        && status.exit_code != 0
        && status.reason != "ContainerCannotRun";
    let file = path.and_then(|path| {
        status
            .mounts
            .iter()
            .find(|m| m.container_path == path)
            .map(|m| PathBuf::from(&m.host_path))
    });
    let mut message = match file.map(|f| (read_tail(&f, MAX_MESSAGE), f)) {
        Some((Ok(bytes), _)) => String::from_utf8_lossy(&bytes).into_owned(),
        Some((Err(e), _)) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Some((Err(e), f)) => format!("Error on reading termination log {}: {e}", f.display()),
        None => String::new(),
    };
    if message.is_empty() && fallback {
        message = match log_tail(&status.log_path) {
            Ok(tail) => tail,
            Err(e) => format!("Error on reading termination message from logs: {e}"),
        };
    }
    if !message.is_empty() {
        if !status.message.is_empty() {
            status.message.push_str(": ");
        }
        status.message.push_str(&message);
    }
}

/// The last `max` bytes of the file at `path`.
fn read_tail(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The output in the last [`MAX_LOG_LINES`] lines of a CRI log
/// (`<time> <stream> <P|F> <content>`), cut to its last [`MAX_LOG_MESSAGE`]
/// bytes.
fn log_tail(path: &Path) -> io::Result<String> {
    let bytes = read_tail(path, LOG_WINDOW)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut output = String::new();
    for line in &lines[lines.len().saturating_sub(MAX_LOG_LINES)..] {
        let mut parts = line.splitn(4, ' ');
        let (Some(_time), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        output.push_str(parts.next().unwrap_or_default());
        // A partial line (P) continues in the next entry.
        if tag != "P" {
            output.push('\n');
        }
    }
    let mut start = output.len().saturating_sub(MAX_LOG_MESSAGE);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    Ok(output[start..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use wasmlet_core::ContainerMetadata;

    fn exited(exit_code: i32, mounts: Vec<Mount>, log_path: PathBuf) -> ContainerStatus {
        ContainerStatus {
            id: "c1".into(),
            metadata: ContainerMetadata {
                name: "main".into(),
                attempt: 0,
            },
            state: ContainerState::Exited,
            created_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            exit_code,
            image: String::new(),
            image_ref: String::new(),
            reason: "Error".into(),
            message: String::new(),
            labels: Default::default(),
            annotations: Default::default(),
            log_path,
            resources: None,
            mounts,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wasmlet-termination-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn the_file_s_tail_is_the_message() {
        let dir = scratch("file");
        let container = Container {
            name: "main".into(),
            ..Default::default()
        };
        let made = mount(&dir, &container, 3).expect("made").expect("a path");
        assert_eq!(made.container_path, DEFAULT_PATH);
        assert!(made.host_path.ends_with("containers/main/3"));
        let mode = fs::metadata(&made.host_path)
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
        let long = format!("{}{}", "x".repeat(5000), "the end");
        fs::write(&made.host_path, &long).expect("write");
        let mut status = exited(1, vec![made], dir.join("no.log"));
        add_to(&mut status, Some(DEFAULT_PATH), None);
        assert_eq!(status.message.len(), 4096);
        assert!(status.message.ends_with("the end"));

        let none = Container {
            termination_message_path: Some(String::new()),
            ..container
        };
        assert_eq!(mount(&dir, &none, 0).expect("no error"), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_container_falls_back_to_its_log_only_if_asked() {
        let dir = scratch("logs");
        let log = dir.join("0.log");
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!(
                "2026-12-03T10:00:00.000000000Z stdout F line {i}\n"
            ));
        }
        text.push_str("2026-12-03T10:00:01.000000000Z stderr P half \n");
        text.push_str("2026-12-03T10:00:01.000000000Z stderr F done\n");
        fs::write(&log, text).expect("log");
        let empty = dir.join("message");
        fs::write(&empty, "").expect("file");
        let mounts = vec![Mount {
            container_path: DEFAULT_PATH.into(),
            host_path: empty.display().to_string(),
            ..Default::default()
        }];

        let mut failed = exited(2, mounts.clone(), log.clone());
        add_to(&mut failed, Some(DEFAULT_PATH), Some(FALLBACK_TO_LOGS));
        assert!(
            failed.message.starts_with("line 22\n"),
            "{}",
            failed.message
        );
        assert!(failed.message.ends_with("line 99\nhalf done\n"));

        let mut succeeded = exited(0, mounts.clone(), log.clone());
        add_to(&mut succeeded, Some(DEFAULT_PATH), Some(FALLBACK_TO_LOGS));
        assert_eq!(succeeded.message, "", "only on error");
        let mut file_policy = exited(2, mounts, log);
        add_to(&mut file_policy, Some(DEFAULT_PATH), Some("File"));
        assert_eq!(file_policy.message, "");
        let _ = fs::remove_dir_all(&dir);
    }
}
