//! RFC 3339 timestamps in UTC from Unix milliseconds.

/// `2024-02-29T12:34:56Z`.
pub fn rfc3339_seconds(unix_ms: i64) -> String {
    let (date, seconds_of_day, _) = split(unix_ms);
    format!("{date}T{}Z", clock(seconds_of_day))
}

/// `2024-02-29T12:34:56.789Z`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let (date, seconds_of_day, millis) = split(unix_ms);
    format!("{date}T{}.{millis:03}Z", clock(seconds_of_day))
}

/// The date as `YYYY-MM-DD`, the second of the day, and the millisecond.
fn split(unix_ms: i64) -> (String, i64, i64) {
    let seconds = unix_ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        seconds.rem_euclid(86_400),
        unix_ms.rem_euclid(1000),
    )
}

fn clock(seconds_of_day: i64) -> String {
    let (hour, minute, second) = (
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    );
    format!("{hour:02}:{minute:02}:{second:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01.
///
/// Counts in 400-year eras starting on 0000-03-01, so that the leap day is
/// the last day of each shifted year; then finds the year of the era, the
/// day of that year, and the month from the day (March is month 0).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    const DAYS_PER_ERA: i64 = 146_097;
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);

    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;

    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_midnight_on_new_year_1970() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn known_instants_format_as_date_does() {
        assert_eq!(rfc3339_seconds(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339_millis(1_709_210_096_789),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(rfc3339_seconds(253_402_300_799_000), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn century_years_are_leap_only_every_400() {
        // 1900-03-01 and 2100-03-01: the day after Feb 28 in non-leap centuries.
        assert_eq!(rfc3339_seconds(-2_203_891_200_000), "1900-03-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(4_107_542_400_000), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn instants_before_the_epoch_round_down() {
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }
}
