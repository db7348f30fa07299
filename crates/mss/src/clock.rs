//! The only place the command line reads the clock: the libraries take time
//! as a value.

use time::OffsetDateTime;

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Now as `YYYYMMDDhhmmss` in UTC (XDS time format).
pub fn utc_timestamp() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
