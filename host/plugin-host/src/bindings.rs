//! Host bindings for every plugin world, generated once.
//!
//! One world that imports every host interface and exports every handler, so
//! the shared types are generated a single time; each plugin is then checked
//! against its own kind's export.

wasmtime::component::bindgen!({
    path: "../../wit",
    inline: "
        package wasmlet:host;

        world all-plugins {
            import wasmlet:plugin/host@0.1.0;
            import wasmlet:plugin/exec@0.1.0;
            import wasmlet:plugin/changes@0.1.0;
            import wasmlet:plugin/net@0.1.0;
            import wasmlet:plugin/kube-api@0.1.0;
            export wasmlet:plugin/admission-handler@0.1.0;
            export wasmlet:plugin/probe-handler@0.1.0;
            export wasmlet:plugin/lifecycle-handler@0.1.0;
            export wasmlet:plugin/pod-source-handler@0.1.0;
        }
    ",
    world: "wasmlet:host/all-plugins",
    imports: {
        "wasmlet:plugin/exec.run": async,
        "wasmlet:plugin/changes.wait": async,
        "wasmlet:plugin/net": async,
        "wasmlet:plugin/kube-api": async,
    },
    with: {
        "wasmlet:plugin/net.connection": crate::connection::Connection,
        "wasmlet:plugin/kube-api.watch-stream": crate::watch_stream::HostWatch,
    },
    exports: { default: async },
});

pub use exports::wasmlet::plugin::{
    admission_handler, lifecycle_handler, pod_source_handler, probe_handler,
};
pub use wasmlet::plugin::{changes, exec, host, kube_api, net, types};
