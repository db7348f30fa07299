//! Any bytes as a received IHE_XDM.ZIP: `xdm::read` must return, never panic,
//! within the default limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mss_docs::xdm::read(data, &Default::default());
});
