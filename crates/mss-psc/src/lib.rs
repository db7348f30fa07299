//! Pro Santé Connect client.
#![forbid(unsafe_code)]
