//! Any bytes as a received CDA document: `cda::parse_header` must return,
//! never panic, in time and memory bounded by the header cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mss_docs::cda::parse_header(data);
});
