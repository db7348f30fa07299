//! Any bytes as an autoconfig document fetched from a server: `autoconfig::xml::parse` must
//! return, never panic, within the size and node caps; every host it reports is trimmed and
//! lowercased, and every port it reports is non-zero.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mss_transport::autoconfig::xml;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = xml::parse(data, "hopital.mssante.fr") {
        for server in config.incoming.iter().chain(&config.outgoing) {
            assert_eq!(server.hostname, server.hostname.to_ascii_lowercase());
            assert!(server.port != Some(0));
            assert!(server.kind.len() <= 16);
        }
    }
});
