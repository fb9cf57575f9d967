//! Exports `wasmlet:plugin/admission-handler@0.2.0`: the host must refuse it at load.

wit_bindgen::generate!({ path: "wit", world: "admission" });

struct Future;

impl exports::wasmlet::plugin::admission_handler::Guest for Future {
    fn admit() -> bool {
        true
    }
}

export!(Future);
