//! The only place the command line reads the clock: the libraries take time
//! as a value.

use anyhow::{Context, Result};
use time::OffsetDateTime;

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `unix` seconds as `YYYYMMDDhhmmss` in UTC (the XDS time format).
pub fn xds_timestamp(unix: i64) -> Result<String> {
    let t = OffsetDateTime::from_unix_timestamp(unix)
        .with_context(|| format!("{unix} is not a representable date"))?;
    Ok(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn xds_timestamp_is_utc() {
        assert_eq!(
            super::xds_timestamp(1_764_000_000).unwrap(),
            "20251124160000"
        );
        assert!(super::xds_timestamp(i64::MAX).is_err());
    }
}
