//! Received mail comes from anyone: `parse_incoming` must never panic, and
//! whatever it reads must be safe to use for the MDN decision.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = mss_docs::message::parse_incoming(data) {
        let _ = mss_docs::mdn::should_send_mdn(&message);
        if let Some(subject) = &message.subject {
            let _ = mss_docs::subject::parse_subject(subject);
        }
    }
});
