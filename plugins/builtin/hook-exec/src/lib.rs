//! exec lifecycle hooks: the command runs in the container; a non-zero exit
//! is the hook's failure. The host cuts a preStop off when the grace ends.

use wasmlet_plugin_sdk::lifecycle::{ContainerTarget, Error, Guest, Handler, exec};

/// Longest a hook command may run when the host sets no tighter bound.
const LIMIT_MS: u32 = 10 * 60 * 1000;

fn run(handler: Handler) -> Result<(), Error> {
    let Handler::Exec(command) = handler else {
        return Err(Error::InvalidInput("hook-exec runs exec hooks only".into()));
    };
    if command.is_empty() {
        return Err(Error::InvalidInput("exec.command is empty".into()));
    }
    let out = exec::run(&command, LIMIT_MS)?;
    if out.exit_code == 0 {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "command {command:?} exited with {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )))
    }
}

struct ExecHook;

impl Guest for ExecHook {
    fn post_start(_target: ContainerTarget, handler: Handler) -> Result<(), Error> {
        run(handler)
    }

    fn pre_stop(_target: ContainerTarget, handler: Handler) -> Result<(), Error> {
        run(handler)
    }
}

wasmlet_plugin_sdk::lifecycle::export_lifecycle!(ExecHook);
