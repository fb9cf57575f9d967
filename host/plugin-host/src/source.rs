//! Pod sources: one long-lived instance per source, supervised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::bindings::pod_source_handler::{self, Snapshot};
use crate::call::settle;
use crate::error::{CallError, Failure};
use crate::imports::changes::MAX_WAIT;
use crate::plugin::Plugin;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What a running source reports.
#[derive(Debug)]
pub enum SourceEvent {
    /// The source's complete desired set of pods.
    Snapshot(Snapshot),
    /// This attempt failed; the consumer keeps the last good snapshot.
    Failed(CallError),
}

impl Plugin {
    /// Runs the pod source until `shutdown` turns true, sending every snapshot
    /// and failure to `events`. `changes` wakes the source (`changes.wait`);
    /// the host also signals it when a file under a granted directory changes.
    ///
    /// A trap, deadline or memory failure poisons the instance: it is dropped
    /// and a new one started after a back-off (1 s, doubling to 60 s). An error
    /// the source reports keeps the instance and is retried after the back-off.
    pub async fn run_source(
        self: Arc<Self>,
        changes: Arc<Notify>,
        events: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) {
        let dirs = self.grant.read_dirs.clone();
        tokio::select! {
            () = self.supervise(changes.clone(), events, shutdown) => {}
            () = watch_dirs(dirs, changes) => {}
        }
    }

    async fn supervise(
        self: Arc<Self>,
        changes: Arc<Notify>,
        events: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) {
        const CALL: &str = "next-snapshot";
        if let Err(error) = self.exports_for::<pod_source_handler::GuestIndices>(CALL) {
            let _ = events.send(SourceEvent::Failed(error)).await;
            // A supervisor runs until shutdown, whatever its plugin does.
            shutdown.cancelled().await;
            return;
        }
        let deadline = self.manifest.deadline();
        let mut backoff = FIRST_BACKOFF;
        'instance: loop {
            // Which directories the preopens will hold; a snapshot read
            // through a descriptor that no longer is the path is stale.
            let dirs = match dir_identities(&self.grant.read_dirs).await {
                Ok(dirs) => dirs,
                Err(failure) => {
                    let error = self.record::<()>("instantiate", Instant::now(), Err(failure));
                    if let Err(error) = error
                        && (events.send(SourceEvent::Failed(error)).await.is_err()
                            || !pause(&mut backoff, &shutdown).await)
                    {
                        return;
                    }
                    continue 'instance;
                }
            };
            let instance = self
                .instantiate::<pod_source_handler::GuestIndices>(Some(changes.clone()))
                .await;
            let (mut store, guest) = match instance {
                Ok(ready) => ready,
                Err(error) => {
                    if events.send(SourceEvent::Failed(error)).await.is_err()
                        || !pause(&mut backoff, &shutdown).await
                    {
                        return;
                    }
                    continue 'instance;
                }
            };
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                store.data_mut().deadline = Instant::now() + deadline;
                let started = Instant::now();
                // Time the source spends in `changes.wait` extends its deadline.
                let result = {
                    let _running = self.engine.ticker.clock.running();
                    let call = tokio::time::timeout(
                        deadline + MAX_WAIT,
                        guest.call_next_snapshot(&mut store),
                    );
                    tokio::select! {
                        result = call => result,
                        () = shutdown.cancelled() => return,
                    }
                };
                let mut outcome = settle(&store, result, deadline);
                self.report_caught_denials(CALL, &store, outcome.is_ok());
                if outcome.is_ok() {
                    match dir_identities(&self.grant.read_dirs).await {
                        Ok(now) if now == dirs => {}
                        // Renamed, swapped or mounted over while this
                        // instance held the old one: read the new one now.
                        Ok(_) => continue 'instance,
                        Err(failure) => outcome = Err(failure),
                    }
                }
                let poisoned = !matches!(outcome, Ok(_) | Err(Failure::Plugin(_)));
                match self.record(CALL, started, outcome) {
                    Ok(mut snapshot) => {
                        snapshot.problems.truncate(crate::bounds::MAX_PROBLEMS);
                        for problem in &mut snapshot.problems {
                            let origin = std::mem::take(&mut problem.origin);
                            problem.origin = crate::bounds::message(origin);
                            let message = std::mem::take(&mut problem.message);
                            problem.message = crate::bounds::message(message);
                        }
                        backoff = FIRST_BACKOFF;
                        if events.send(SourceEvent::Snapshot(snapshot)).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        if events.send(SourceEvent::Failed(error)).await.is_err()
                            || !pause(&mut backoff, &shutdown).await
                        {
                            return;
                        }
                        if poisoned {
                            continue 'instance;
                        }
                    }
                }
            }
        }
    }
}

/// A watch of `dirs` that signals `changes` on any change to their entries
/// (not on reads); None, with a warning, where inotify cannot watch them.
fn inotify(
    dirs: &[std::path::PathBuf],
    changes: Arc<Notify>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !matches!(e.kind, EventKind::Access(_))) {
            changes.notify_one();
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "no inotify: granted directories are polled");
            return None;
        }
    };
    for dir in dirs {
        if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(%error, dir = %dir.display(), "no inotify watch: granted directories are polled");
            return None;
        }
    }
    Some(watcher)
}

/// (device, inode) of each directory as its path resolves now. A directory
/// that vanished or cannot be read fails the snapshot: its pods stay, since
/// an empty listing of a deleted directory is not an empty desired set.
async fn dir_identities(dirs: &[std::path::PathBuf]) -> Result<Vec<(u64, u64)>, Failure> {
    use std::os::unix::fs::MetadataExt;
    let mut ids = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let meta = tokio::fs::metadata(dir)
            .await
            .map_err(|e| Failure::Plugin(format!("granted directory {}: {e}", dir.display())))?;
        if !meta.is_dir() {
            return Err(Failure::Plugin(format!(
                "granted directory {}: not a directory",
                dir.display()
            )));
        }
        ids.push((meta.dev(), meta.ino()));
    }
    Ok(ids)
}

/// Sleeps the back-off (doubling it); false if shutdown came first.
async fn pause(backoff: &mut Duration, shutdown: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = tokio::time::sleep(wait) => !shutdown.is_cancelled(),
        () = shutdown.cancelled() => false,
    }
}

/// How often granted directories are rescanned for changes: the safety net
/// under inotify (a change it missed, a directory swapped under it), and the
/// only watch where inotify is not to be had.
const RESCAN_PERIOD: Duration = Duration::from_secs(10);
const POLL_PERIOD: Duration = Duration::from_millis(200);

/// Signals `changes` whenever a file under `dirs` is added, removed or
/// modified: inotify says so at once; a periodic rescan (by name, size and
/// mtime) catches what it may miss. The reading is blocking, so it runs off
/// the runtime's threads.
async fn watch_dirs(dirs: Vec<std::path::PathBuf>, changes: Arc<Notify>) {
    if dirs.is_empty() {
        return std::future::pending().await;
    }
    // Held for as long as the watch runs.
    let _watcher = inotify(&dirs, changes.clone());
    let period = if _watcher.is_some() {
        RESCAN_PERIOD
    } else {
        POLL_PERIOD
    };
    let dirs: Arc<[std::path::PathBuf]> = dirs.into();
    let fingerprint = move || {
        let dirs = dirs.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut entries = Vec::new();
                for dir in dirs.iter() {
                    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                        let meta = entry.metadata().ok();
                        entries.push((
                            entry.path(),
                            meta.as_ref().map(std::fs::Metadata::len),
                            meta.and_then(|m| m.modified().ok()),
                        ));
                    }
                }
                entries.sort();
                entries
            })
            .await
            .ok()
        }
    };
    let mut last = fingerprint().await;
    loop {
        tokio::time::sleep(period).await;
        let now = fingerprint().await;
        if now != last {
            last = now;
            changes.notify_one();
        }
    }
}
