//! The one way a plugin is called: a store with the call's grants, its
//! deadline (epochs, plus a timeout for time spent in host calls), its memory
//! cap and a slot; what went wrong classified as a [`Failure`] and counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wasmtime::component::Instance;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::types;
use crate::epochs::EPOCH_TICK;
use crate::error::{CallError, Failure};
use crate::grants::CallTarget;
use crate::metrics::{CallLabels, ErrorLabels};
use crate::plugin::{KindExports, Plugin};
use crate::state::CallState;

pub(crate) type CallFuture<'a, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, types::Error>>> + Send + 'a>>;

/// How long a call waits for one of the plugin's slots: a call that gets none
/// did not run (`Failure::Busy`), which is not the same as one that failed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SlotWait {
    /// The wait comes out of the call's deadline (a preStop hook's share of
    /// the grace period, or any call with no better bound).
    OutOfDeadline,
    /// Up to this long, on top of the deadline, which starts with the slot
    /// (a probe's timeout is the check's, not the queue's).
    UpTo(Duration),
}

/// Bytes one host call may take from the guest.
const HOSTCALL_FUEL: usize = 1 << 20;

/// How many epoch ticks a guest may run before it yields to the executor.
const YIELD_TICKS: u128 = 10;

/// The epoch callback's verdict when a call's time is up.
#[derive(Debug)]
struct DeadlineReached;

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline reached")
    }
}

impl std::error::Error for DeadlineReached {}

impl Plugin {
    pub(crate) fn new_store(
        &self,
        target: Option<CallTarget>,
        changes: Option<Arc<Notify>>,
    ) -> Result<Store<CallState>, String> {
        let state = CallState::new(
            self.identity.clone(),
            self.host.clone(),
            self.engine.ticker.clock.clone(),
            target,
            changes,
            self.manifest.deadline(),
        )?;
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limiter);
        // What one host call may copy out of the guest (a log line, a send,
        // a command): the default (128 MiB) is more than any plugin's memory.
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        // The callback below keeps the real deadline; short calls never reach it.
        store.set_epoch_deadline(u64::try_from(YIELD_TICKS).unwrap_or(1));
        store.epoch_deadline_callback(|ctx| {
            let left = ctx
                .data()
                .deadline
                .saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(wasmtime::Error::new(DeadlineReached));
            }
            // Yield to the executor at least every YIELD_TICKS: a guest that
            // computes for long must not starve the agent's other tasks.
            let ticks = left
                .as_nanos()
                .div_ceil(EPOCH_TICK.as_nanos())
                .min(YIELD_TICKS);
            Ok(UpdateDeadline::Yield(u64::try_from(ticks).unwrap_or(1)))
        });
        Ok(store)
    }

    /// One call on a fresh store: wait for a slot, instantiate, run `f`
    /// within `deadline` (e.g. a probe's timeout; never longer than the
    /// manifest's), classify what went wrong, count it. The way every
    /// stateless call is made.
    pub(crate) async fn call_within<A, T, F>(
        &self,
        call: &'static str,
        target: Option<CallTarget>,
        wait: SlotWait,
        deadline: Duration,
        args: &A,
        f: F,
    ) -> Result<T, CallError>
    where
        A: Sync + ?Sized,
        F: for<'a> FnOnce(&'a mut Store<CallState>, Instance, &'a A) -> CallFuture<'a, T>,
    {
        let started = Instant::now();
        let deadline = deadline.min(self.manifest.deadline());
        let outcome = async {
            let patience = match wait {
                SlotWait::OutOfDeadline => deadline,
                SlotWait::UpTo(patience) => patience,
            };
            let key = target.as_ref().map(|t| t.pod_uid.to_string());
            let _slot = tokio::time::timeout(patience, self.slots.acquire(key))
                .await
                .map_err(|_| Failure::Busy(patience))?;
            // What is left to run in; errors still name the whole deadline.
            let left = match wait {
                SlotWait::OutOfDeadline => deadline.saturating_sub(started.elapsed()),
                SlotWait::UpTo(_) => deadline,
            };
            let mut store = self
                .new_store(target, None)
                .map_err(Failure::DeniedCapability)?;
            store.data_mut().deadline = Instant::now() + left;
            // Epochs cannot interrupt a guest blocked in a host call: the
            // timeout covers that, a little after the epoch deadline would.
            let _running = self.engine.ticker.clock.running();
            let run = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                f(&mut store, instance, args).await
            };
            let result = tokio::time::timeout(left + EPOCH_TICK * 20, run).await;
            let outcome = settle(&store, result, deadline);
            self.report_caught_denials(call, &store, outcome.is_ok());
            outcome
        }
        .await;
        self.record(call, started, outcome)
    }

    /// A store and instance kept across calls (admission's and the
    /// sources' long-lived instances): instantiated within the plugin's
    /// deadline, counted as its `instantiate` call.
    pub(crate) async fn instantiate<E: KindExports>(
        &self,
        changes: Option<Arc<Notify>>,
    ) -> Result<(Store<CallState>, E::Guest), CallError> {
        const CALL: &str = "instantiate";
        let exports: E = self.exports_for(CALL)?;
        let started = Instant::now();
        let deadline = self.manifest.deadline();
        let outcome = async {
            let mut store = self
                .new_store(None, changes)
                .map_err(Failure::DeniedCapability)?;
            let _running = self.engine.ticker.clock.running();
            let run = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                exports.guest(&mut store, &instance).map(Ok)
            };
            let result = tokio::time::timeout(deadline, run).await;
            let outcome = settle(&store, result, deadline);
            self.report_caught_denials(CALL, &store, outcome.is_ok());
            outcome.map(|guest| (store, guest))
        }
        .await;
        self.record(CALL, started, outcome)
    }

    /// Forgets the store's refusals; if the call went on (`succeeded`), a
    /// refusal the guest caught is still logged and counted, once per call.
    /// (A failed call's refusals are in its error.)
    pub(crate) fn report_caught_denials(
        &self,
        call: &'static str,
        store: &Store<CallState>,
        succeeded: bool,
    ) {
        let denied = store.data().grants.take_refused();
        if denied.is_empty() || !succeeded {
            return;
        }
        self.metrics
            .caught_denials
            .get_or_create(&CallLabels {
                plugin: self.name.clone(),
                call: call.into(),
            })
            .inc();
        tracing::warn!(
            plugin = %self.name,
            call,
            denied = %denied.join("; "),
            "plugin was refused a capability and went on"
        );
    }

    pub(crate) fn record<T>(
        &self,
        call: &'static str,
        started: Instant,
        outcome: Result<T, Failure>,
    ) -> Result<T, CallError> {
        let labels = CallLabels {
            plugin: self.name.clone(),
            call: call.into(),
        };
        self.metrics.calls.get_or_create(&labels).inc();
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        outcome.map_err(|failure| {
            self.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    plugin: self.name.clone(),
                    call: call.into(),
                    reason: failure.reason().into(),
                })
                .inc();
            let error = CallError {
                plugin: self.name.clone(),
                call,
                failure,
            };
            tracing::warn!(%error, "plugin call failed");
            error
        })
    }
}

/// Turns what a call returned (or how it failed) into the plugin's answer or a
/// [`Failure`], using what the store saw.
pub(crate) fn settle<T>(
    store: &Store<CallState>,
    result: Result<wasmtime::Result<Result<T, types::Error>>, tokio::time::error::Elapsed>,
    deadline: Duration,
) -> Result<T, Failure> {
    let state = store.data();
    let denied = || state.grants.refused();
    match result {
        Err(_) => Err(Failure::Deadline(deadline)),
        Ok(Ok(Ok(value))) => Ok(value),
        // An error the guest returned once its time was up (e.g. a request
        // the host cut at the deadline) is the deadline's.
        Ok(Ok(Err(_))) if Instant::now() >= state.deadline => Err(Failure::Deadline(deadline)),
        Ok(Ok(Err(error))) => Err(match error {
            types::Error::Denied(what) => Failure::DeniedCapability(crate::bounds::message(what)),
            other => {
                let refused = denied();
                if refused.is_empty() {
                    Failure::Plugin(describe(&other))
                } else {
                    Failure::DeniedCapability(format!("{refused} (then: {})", describe(&other)))
                }
            }
        }),
        Ok(Err(trap)) => Err(if state.limiter.exceeded {
            Failure::MemoryLimit {
                limit_bytes: state.memory_limit(),
            }
        } else if trap.downcast_ref::<DeadlineReached>().is_some()
            || trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
        {
            Failure::Deadline(deadline)
        } else {
            let refused = denied();
            let message = crate::bounds::message(trap_message(&trap, &state.stderr.contents()));
            if refused.is_empty() {
                Failure::Trap(message)
            } else {
                Failure::DeniedCapability(format!("{refused} (then trapped: {message})"))
            }
        }),
    }
}

/// The trap, with the guest's last words in its own language's terms (a
/// Python traceback, a JavaScript exception, a Rust panic).
fn trap_message(trap: &wasmtime::Error, stderr: &[u8]) -> String {
    let code = trap
        .downcast_ref::<wasmtime::Trap>()
        .map_or_else(|| trap.root_cause().to_string(), ToString::to_string);
    match crate::last_words::last_words(&String::from_utf8_lossy(stderr)) {
        Some(said) => format!("{said} ({code})"),
        None => code,
    }
}

pub(crate) fn describe(error: &types::Error) -> String {
    let text = match error {
        types::Error::InvalidSettings(m) => format!("invalid settings: {m}"),
        types::Error::InvalidInput(m) => format!("invalid input: {m}"),
        types::Error::Denied(m) => format!("denied: {m}"),
        types::Error::Failed(m) => m.clone(),
    };
    crate::bounds::message(text)
}
