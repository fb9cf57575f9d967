//! Any pod the JSON decoder accepts through the WIT pod view (what every
//! admission plugin is given) and the probe and hook handler views.
#![no_main]

use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use wasmlet_plugin_host::{lifecycle_handler, pod_view, probe_handler};

fuzz_target!(|data: &[u8]| {
    let Ok(pod) = serde_json::from_slice::<Pod>(data) else {
        return;
    };
    let _ = pod_view(&pod, "file");
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        for probe in [
            &container.liveness_probe,
            &container.readiness_probe,
            &container.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            let _ = probe_handler(probe);
        }
        if let Some(lifecycle) = &container.lifecycle {
            for handler in [&lifecycle.post_start, &lifecycle.pre_stop]
                .into_iter()
                .flatten()
            {
                let _ = lifecycle_handler(handler);
            }
        }
    }
});
