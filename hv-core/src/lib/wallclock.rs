//! Calendar arithmetic for the wallclock guests read.

/// Seconds since 1970-01-01 00:00:00 UTC for a proleptic Gregorian date.
pub fn unix_seconds(year: u32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> u64 {
    // Days from civil (Howard Hinnant's algorithm), shifted so March is
    // the first month and leap days fall at the end of the year.
    let y = if month <= 2 {
        year as i64 - 1
    } else {
        year as i64
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn known_dates() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2024, 2, 29, 12, 0, 0), 1_709_208_000);
        assert_eq!(unix_seconds(2026, 11, 21, 23, 59, 59), 1_795_305_599);
    }
}
