//! The data of one plugin call's store, and the host side of the plugin imports.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wasmlet_core::{ContainerId, ErrorKind};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{changes, exec, host, types};
use crate::capability::HostContext;
use crate::manifest::{Destination, Grant};

/// Longest a guest may sleep in `changes.wait` in one go.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);
/// How much of a guest's stderr is kept (for panic messages in errors).
const STDERR_BYTES: usize = 64 * 1024;
const MAX_LOG_MESSAGE: usize = 4096;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
const MAX_RESOURCES: usize = 10_000;
/// What the guest gets of an exec's stdout and of its stderr: enough for any
/// probe or hook (the kubelet keeps 10 KiB of probe output), however much
/// the container printed.
pub(crate) const MAX_EXEC_OUTPUT: usize = 64 * 1024;

/// What one plugin is, for its calls.
#[derive(Debug)]
pub(crate) struct PluginIdentity {
    pub name: String,
    pub settings_json: String,
    pub grant: Grant,
    pub memory_limit: u64,
    pub logs: Mutex<LogBudget>,
}

/// A plugin's log lines: a token bucket (a burst, then a steady rate), so a
/// chatty or hostile plugin cannot flood the agent's log. What is dropped is
/// counted and said with the next line that passes.
#[derive(Debug)]
pub(crate) struct LogBudget {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            tokens: Self::BURST,
            refilled: Instant::now(),
            dropped: 0,
        }
    }
}

impl LogBudget {
    const BURST: f64 = 100.0;
    const PER_SECOND: f64 = 10.0;

    /// Whether one more line may be logged now, and how many were dropped
    /// since the last that was.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * Self::PER_SECOND).min(Self::BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.dropped))
    }
}

/// The container (and pod address) a probe or hook call is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    /// The pod's UID: whose share of the plugin's slots the call takes.
    pub pod_uid: String,
    pub container_id: ContainerId,
    pub pod_ip: Option<IpAddr>,
}

/// Caps the total size of all linear memories of one store, and remembers
/// whether it refused, so the error can say so.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    limit: usize,
    total: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

pub(crate) struct CallState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub limiter: MemoryCap,
    plugin: Arc<PluginIdentity>,
    host: Arc<HostContext>,
    target: Option<CallTarget>,
    changes: Option<Arc<Notify>>,
    /// Where the guest may connect (WASI sockets and `net` alike).
    reach: Arc<[Destination]>,
    /// `net` connections the guest holds.
    pub(crate) open_connections: usize,
    /// Its share of the descriptors all plugins may hold.
    pub(crate) fds: crate::fd_budget::FdCharge,
    /// Capabilities the guest tried and was refused, for the error report.
    pub denied: Arc<Mutex<Vec<String>>>,
    pub stderr: MemoryOutputPipe,
    /// When the call must be over; `changes.wait` moves it by the time waited.
    pub deadline: Instant,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    pub(crate) fn new(
        plugin: Arc<PluginIdentity>,
        host: Arc<HostContext>,
        target: Option<CallTarget>,
        changes: Option<Arc<Notify>>,
        deadline: Duration,
    ) -> Result<Self, String> {
        let denied = Arc::new(Mutex::new(Vec::new()));
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        let mut reach = plugin.grant.connect.clone();
        if plugin.grant.target_pod
            && let Some(ip) = target.as_ref().and_then(|t| t.pod_ip)
        {
            reach.push(Destination::Host(ip));
        }
        // Nothing is inherited: no env, no args, no stdin/stdout, no name
        // lookups, no UDP. TCP only with somewhere to connect to, and every
        // address goes through the check below, which refuses all that is not
        // granted (and records it).
        wasi.stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_udp(false)
            .allow_tcp(!reach.is_empty());
        for dir in &plugin.grant.read_dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| format!("granted directory {}: {e}", dir.display()))?;
        }
        let reach: Arc<[Destination]> = reach.into();
        let allowed = reach.clone();
        let refused = denied.clone();
        wasi.socket_addr_check(move |addr: SocketAddr, use_| {
            let ok = match use_ {
                wasmtime_wasi::sockets::SocketAddrUse::TcpConnect => {
                    allowed.iter().any(|d| d.allows(addr))
                }
                // The implicit bind of a connect (any address, port 0) is
                // harmless; explicit binds, listening and UDP are never granted.
                wasmtime_wasi::sockets::SocketAddrUse::TcpBind => {
                    addr.ip().is_unspecified() && addr.port() == 0
                }
                _ => false,
            };
            if !ok && let Ok(mut refused) = refused.lock() {
                record_denied(&mut refused, format!("{use_:?} {addr}"));
            }
            Box::pin(async move { ok })
        });
        let limit = usize::try_from(plugin.memory_limit).unwrap_or(usize::MAX);
        Ok(Self {
            wasi: wasi.build(),
            table: {
                // Host-side resources (streams, sockets, connections) a
                // guest may hold at once.
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            limiter: MemoryCap {
                limit,
                total: 0,
                exceeded: false,
            },
            plugin,
            host,
            target,
            changes,
            reach,
            open_connections: 0,
            fds: crate::fd_budget::FdCharge::default(),
            denied,
            stderr,
            deadline: Instant::now() + deadline,
        })
    }

    pub(crate) fn memory_limit(&self) -> u64 {
        self.plugin.memory_limit
    }

    pub(crate) fn reach_is_empty(&self) -> bool {
        self.reach.is_empty()
    }

    pub(crate) fn may_connect(&self, addr: SocketAddr) -> bool {
        self.reach.iter().any(|d| d.allows(addr))
    }

    pub(crate) fn refuse(&self, what: String) -> types::Error {
        if let Ok(mut denied) = self.denied.lock() {
            record_denied(&mut denied, what.clone());
        }
        types::Error::Denied(what)
    }
}

/// Distinct refusals kept per call; a plugin retrying in a loop adds no more.
const MAX_DENIED: usize = 8;

fn record_denied(denied: &mut Vec<String>, what: String) {
    if denied.len() < MAX_DENIED && !denied.contains(&what) {
        denied.push(what);
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: types::LogLevel, message: String) {
        let dropped = match self.plugin.logs.lock() {
            Ok(mut budget) => budget.take(Instant::now()),
            Err(_) => Some(0),
        };
        let Some(dropped) = dropped else {
            return;
        };
        let mut message = crate::bounds::message(crate::bounds::bounded(message, MAX_LOG_MESSAGE));
        if dropped > 0 {
            message = format!("({dropped} earlier lines dropped: over the log rate) {message}");
        }
        let plugin = self.plugin.name.as_str();
        match level {
            types::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin, "{message}"),
            types::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            types::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn settings(&mut self) -> String {
        self.plugin.settings_json.clone()
    }

    fn node_name(&mut self) -> String {
        self.host.node_name.clone()
    }
}

impl exec::Host for CallState {
    async fn run(
        &mut self,
        command: Vec<String>,
        timeout_ms: u32,
    ) -> Result<exec::ExecOutput, types::Error> {
        if !self.plugin.grant.exec {
            return Err(self.refuse("exec is not granted to this plugin".into()));
        }
        let Some(target) = self.target.clone() else {
            return Err(self.refuse("exec: this call concerns no container".into()));
        };
        let Some(runner) = self.host.exec.clone() else {
            return Err(types::Error::Failed(
                "exec: the agent has no container runtime".into(),
            ));
        };
        let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
        match runner.exec(&target.container_id, &command, timeout).await {
            Ok(mut out) => {
                out.stdout.truncate(MAX_EXEC_OUTPUT);
                out.stderr.truncate(MAX_EXEC_OUTPUT);
                Ok(exec::ExecOutput {
                    stdout: out.stdout,
                    stderr: out.stderr,
                    exit_code: out.exit_code,
                })
            }
            Err(e) if e.kind == ErrorKind::DeadlineExceeded => Err(types::Error::Failed(format!(
                "exec: command still running after {timeout_ms} ms"
            ))),
            Err(e) => Err(types::Error::Failed(format!("exec: {e}"))),
        }
    }
}

impl changes::Host for CallState {
    async fn wait(&mut self, timeout_ms: u32) -> changes::Wake {
        let timeout = Duration::from_millis(u64::from(timeout_ms)).min(MAX_WAIT);
        let start = Instant::now();
        let wake = match &self.changes {
            Some(notify) => tokio::select! {
                () = notify.notified() => changes::Wake::Changed,
                () = tokio::time::sleep(timeout) => changes::Wake::Timeout,
            },
            None => {
                tokio::time::sleep(timeout).await;
                changes::Wake::Timeout
            }
        };
        // Waiting is not working: it does not count against the deadline.
        self.deadline += start.elapsed();
        wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_log_lines_is_cut_to_the_rate_and_counted() {
        let start = Instant::now();
        let mut budget = LogBudget::default();
        let passed = (0..1000).filter(|_| budget.take(start).is_some()).count();
        assert_eq!(passed, 100, "the burst");
        let later = start + Duration::from_secs(1);
        assert_eq!(
            budget.take(later),
            Some(900),
            "the next line says what was dropped"
        );
        assert_eq!(budget.take(later), Some(0));
    }
}
