//! Received mail comes from anyone: the engine's classification and its whole
//! decision path must never panic, whatever the bytes (message or imported
//! archive), and every failure it reports is one of the volet's codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mss_engine::process::{Input, Options, State, process};

fuzz_target!(|data: &[u8]| {
    let _ = mss_engine::classify::classify(data);
    let state = State {
        patients: &[],
        history: &[],
        acknowledged: false,
    };
    for input in [Input::Message { raw: data }, Input::Import { zip: data }] {
        if let Ok(p) = process(input, &state, &Options::default()) {
            for d in &p.documents {
                if let Some(code) = d.outcome.error_code() {
                    assert!((900..=906).contains(&code.code()));
                }
            }
        }
    }
});
