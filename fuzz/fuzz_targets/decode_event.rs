//! Any bytes given to the event decoder: it must return an event or a rejection, never panic.
#![no_main]

use argus_event::{Decoder, Pseudonymizer, Schema};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn decoder() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| Decoder::new(Arc::new(Schema::builtin()), Pseudonymizer::new(b"fuzz")))
}

fuzz_target!(|data: &[u8]| {
    let _ = decoder().decode_bytes(data);
});
