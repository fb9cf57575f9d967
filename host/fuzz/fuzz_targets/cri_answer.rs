//! Any bytes as the container runtime's answer, through prost and the CRI
//! client's conversions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wasmlet_cri::fuzzing::runtime_answer(data));
