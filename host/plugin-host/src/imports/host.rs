//! `wasmlet:plugin/host`: the plugin's log (rate-limited, bounded), its
//! settings and the node's name.

use std::time::Instant;

use crate::bindings::{host, types};
use crate::state::CallState;

/// Longest log line kept; the rest is cut.
const MAX_LOG_MESSAGE: usize = 4096;

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
