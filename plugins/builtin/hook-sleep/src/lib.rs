//! sleep lifecycle hooks: wait the given seconds (a preStop that gives a
//! load balancer time to stop sending traffic). The host cuts it at the end
//! of the grace period.

use std::time::Duration;

use wasmlet_plugin_sdk::lifecycle::{ContainerTarget, Error, Guest, Handler};

fn run(handler: Handler) -> Result<(), Error> {
    let Handler::Sleep(seconds) = handler else {
        return Err(Error::InvalidInput(
            "hook-sleep runs sleep hooks only".into(),
        ));
    };
    std::thread::sleep(Duration::from_secs(u64::from(seconds)));
    Ok(())
}

struct SleepHook;

impl Guest for SleepHook {
    fn post_start(_target: ContainerTarget, handler: Handler) -> Result<(), Error> {
        run(handler)
    }

    fn pre_stop(_target: ContainerTarget, handler: Handler) -> Result<(), Error> {
        run(handler)
    }
}

wasmlet_plugin_sdk::lifecycle::export_lifecycle!(SleepHook);
