//! Received MDNs come from any mail server: `parse_mdn` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mss_docs::mdn::parse_mdn(data);
});
