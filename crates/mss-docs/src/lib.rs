//! The MSSanté document formats. Pure: bytes in, values out — no I/O, no
//! clock (time is passed in), no randomness that is not passed in.

#![forbid(unsafe_code)]

pub mod cda;
pub mod headers;
pub mod mdn;
pub mod message;
pub mod subject;
pub mod xdm;
mod xml;
