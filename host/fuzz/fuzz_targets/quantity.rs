//! Any text as a resource quantity: a value or an error, never a panic or an
//! overflow (debug assertions are on).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(milli) = wasmlet_rules::quantity::milli(text) {
        // Canonical quantities read back as themselves.
        if milli >= 0 && milli % 1000 == 0 {
            assert_eq!(
                wasmlet_rules::quantity::milli(&(milli / 1000).to_string()),
                Ok(milli)
            );
        }
    }
});
