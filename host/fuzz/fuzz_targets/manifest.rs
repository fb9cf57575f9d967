//! A manifest file's bytes through the file source's decoder, defaults and
//! validation: any input ends in pods or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_manifest::{Origin, read_manifest};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pods) = read_manifest(text, "fuzz-node", Origin::File("/etc/m/fuzz.yaml")) {
        for pod in &pods {
            // What the sources promise the host: a valid identity.
            assert!(pod.metadata.uid.as_deref().is_some_and(|u| !u.is_empty()));
        }
    }
});
