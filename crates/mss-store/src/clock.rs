//! Times cross the API as `OffsetDateTime` and are stored as Unix milliseconds (UTC).

use crate::{Result, StoreError};
use time::OffsetDateTime;

pub(crate) fn to_ms(at: OffsetDateTime) -> i64 {
    // Years 1..9999 fit easily in i64 milliseconds.
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {ms} ms is out of range")))
}

pub(crate) fn from_ms_opt(ms: Option<i64>) -> Result<Option<OffsetDateTime>> {
    ms.map(from_ms).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_to_the_millisecond() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_115_200).unwrap()
            + time::Duration::milliseconds(123);
        assert_eq!(from_ms(to_ms(at)).unwrap(), at);
        assert!(from_ms(i64::MAX).is_err());
    }
}
