//! Billing periods. Stripe anchors a subscription's periods on its `billing_cycle_anchor`:
//! monthly from January 31 renews on February 28 (29), then March 31 — the day of the month
//! is clamped in each period, never carried over (docs.stripe.com/billing/subscriptions/
//! billing-cycle: "a subscription that starts on January 31 … next billing date is February
//! 28 or 29"). Time of day is kept. All in UTC.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

/// The start of period `n` (0 is the anchor) of `count` intervals each.
pub fn shift(anchor: i64, interval: Interval, count: u32, n: i64) -> i64 {
    let steps = n.saturating_mul(i64::from(count));
    match interval {
        Interval::Day => anchor.saturating_add(steps.saturating_mul(86_400)),
        Interval::Week => anchor.saturating_add(steps.saturating_mul(7 * 86_400)),
        Interval::Month => add_months(anchor, steps),
        Interval::Year => add_months(anchor, steps.saturating_mul(12)),
    }
}

fn add_months(t: i64, months: i64) -> i64 {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let total = y.saturating_mul(12).saturating_add(m - 1).saturating_add(months);
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let d = d.min(days_in_month(y, m));
    days_from_civil(y, m, d).saturating_mul(86_400).saturating_add(secs)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (chrono-compatible date algorithms, public domain).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: i64, d: i64) -> i64 {
        days_from_civil(y, m, d) * 86_400 + 3_600
    }

    #[test]
    fn months_clamp_to_the_end_of_shorter_months_without_drifting() {
        let jan31 = at(2024, 1, 31);
        assert_eq!(shift(jan31, Interval::Month, 1, 1), at(2024, 2, 29));
        assert_eq!(shift(jan31, Interval::Month, 1, 2), at(2024, 3, 31));
        assert_eq!(shift(jan31, Interval::Month, 1, 13), at(2025, 2, 28));
        assert_eq!(shift(jan31, Interval::Month, 3, 1), at(2024, 4, 30));
        assert_eq!(shift(at(2024, 2, 29), Interval::Year, 1, 1), at(2025, 2, 28));
        assert_eq!(shift(at(2023, 12, 15), Interval::Month, 1, 1), at(2024, 1, 15));
    }

    #[test]
    fn days_and_weeks_are_fixed_lengths() {
        assert_eq!(shift(1_000, Interval::Day, 1, 3), 1_000 + 3 * 86_400);
        assert_eq!(shift(1_000, Interval::Week, 2, 1), 1_000 + 14 * 86_400);
    }

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -1, 0, 1, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}
