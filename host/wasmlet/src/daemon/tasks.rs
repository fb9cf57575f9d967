//! The daemon's core tasks, by name. Each runs until shutdown; one that ends
//! or panics before then leaves the agent a zombie (a loop nobody turns), so
//! the daemon exits non-zero and the service manager starts it again.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};

#[derive(Debug, Default)]
pub struct CoreTasks {
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

impl CoreTasks {
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let name = name.into();
        let handle = self.set.spawn(failpoint(&name, task));
        self.names.insert(handle.id(), name);
    }

    /// Waits for the first task to end: its name and how it ended. Never
    /// resolves with no tasks.
    pub async fn first_ended(&mut self) -> (String, Result<(), JoinError>) {
        let Some(ended) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, result) = match ended {
            Ok((id, ())) => (id, Ok(())),
            Err(error) => (error.id(), Err(error)),
        };
        let name = self.names.remove(&id).unwrap_or_else(|| "a task".into());
        (name, result)
    }

    /// Waits for every task (after shutdown was signalled).
    pub async fn join_all(&mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

/// Debug builds only: `WASMLET_FAIL_TASK=<name>` makes that core task panic
/// a second after it starts, so the real binary's tests can show what a
/// dying core task does to the process (and to the pods: nothing).
fn failpoint(
    name: &str,
    task: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let fail = cfg!(debug_assertions)
        && std::env::var("WASMLET_FAIL_TASK").is_ok_and(|wanted| wanted == name);
    async move {
        if fail {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            panic!("failpoint WASMLET_FAIL_TASK");
        }
        task.await;
    }
}

/// Why the daemon must exit, for a task that ended before shutdown.
pub fn ended_early(name: &str, result: Result<(), JoinError>) -> anyhow::Error {
    match result {
        Ok(()) => anyhow::anyhow!(
            "core task {name} ended unexpectedly; exiting so the agent is restarted"
        ),
        Err(error) if error.is_panic() => {
            let message = error
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                })
                .unwrap_or_default();
            anyhow::anyhow!(
                "core task {name} panicked: {message}; exiting so the agent is restarted"
            )
        }
        Err(error) => {
            anyhow::anyhow!("core task {name} failed: {error}; exiting so the agent is restarted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_or_ending_task_is_named() {
        let mut tasks = CoreTasks::default();
        tasks.spawn("waits", std::future::pending());
        tasks.spawn("pleg", async { panic!("relist exploded") });
        let (name, result) = tasks.first_ended().await;
        assert_eq!(name, "pleg");
        let error = ended_early(&name, result).to_string();
        assert!(
            error.contains("core task pleg panicked: relist exploded"),
            "{error}"
        );

        tasks.spawn("http server", async {});
        let (name, result) = tasks.first_ended().await;
        assert_eq!(name, "http server");
        assert!(
            ended_early(&name, result)
                .to_string()
                .contains("ended unexpectedly")
        );
    }
}
