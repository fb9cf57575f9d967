//! The data of one plugin call's store: its WASI context and resource
//! table, its memory cap, its grants and its deadline. The imports' host
//! side is in [`crate::imports`], one file each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::capability::HostContext;
use crate::epochs::EpochClock;
use crate::grants::{CallGrants, CallTarget};
use crate::manifest::Grant;
use crate::outgoing_http::OutgoingHttp;

/// How much of a guest's stderr is kept (for panic messages in errors).
const STDERR_BYTES: usize = 64 * 1024;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
const MAX_RESOURCES: usize = 10_000;

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
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
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
    pub(crate) plugin: Arc<PluginIdentity>,
    pub(crate) host: Arc<HostContext>,
    /// The epoch clock, paused while the guest waits in a host call.
    pub(crate) clock: Arc<EpochClock>,
    pub(crate) changes: Option<Arc<Notify>>,
    /// What this call may reach, and what it was refused.
    pub(crate) grants: CallGrants,
    pub(crate) http_ctx: WasiHttpCtx,
    /// `wasi:http`'s hooks: the same grants, where requests leave.
    pub(crate) http: OutgoingHttp,
    /// `net` connections the guest holds.
    pub(crate) open_connections: usize,
    /// Its share of the descriptors all plugins may hold.
    pub(crate) fds: crate::fd_budget::FdCharge,
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
        clock: Arc<EpochClock>,
        target: Option<CallTarget>,
        changes: Option<Arc<Notify>>,
        deadline: Duration,
    ) -> Result<Self, String> {
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let grants = CallGrants::new(&plugin.grant, target);
        let mut wasi = WasiCtxBuilder::new();
        // Nothing is inherited: no env, no args, no stdin/stdout, no name
        // lookups, no UDP. TCP only with somewhere to connect to, and every
        // address goes through the grants' check, which refuses all that is
        // not granted (and records it).
        wasi.stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_udp(false)
            .allow_tcp(!grants.reach_is_empty());
        for dir in &plugin.grant.read_dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| format!("granted directory {}: {e}", dir.display()))?;
        }
        grants.check_sockets(&mut wasi);
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
            clock,
            changes,
            http_ctx: WasiHttpCtx::new(),
            http: OutgoingHttp::new(grants.clone(), Instant::now() + deadline),
            grants,
            open_connections: 0,
            fds: crate::fd_budget::FdCharge::default(),
            stderr,
            deadline: Instant::now() + deadline,
        })
    }

    pub(crate) fn memory_limit(&self) -> u64 {
        self.plugin.memory_limit
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
