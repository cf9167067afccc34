//! How often a schedule fires: a fixed interval, or Harbor's six-field cron.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::store::MetaError;

/// How often a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// Every so many milliseconds (at least one).
    EveryMs(i64),
    /// At the times a cron expression matches, in UTC.
    Cron(CronSchedule),
}

impl Period {
    /// The next fire time after `now` of a schedule that last fired at `fired`: on an
    /// interval, the first time after `now` on the grid through `fired`; on a cron, the
    /// first matching time after `now` (and after `fired`). Fires missed while no node
    /// ran are skipped, not made up for.
    pub fn next_after(&self, fired: i64, now: i64) -> i64 {
        match self {
            Period::EveryMs(every) => {
                let every = (*every).max(1);
                let missed = now.saturating_sub(fired).max(0) / every;
                fired.saturating_add(every.saturating_mul(missed + 1))
            }
            Period::Cron(cron) => cron.next_after(now.max(fired)),
        }
    }

    /// When a schedule of this period, new at `now`, fires first: at once on an
    /// interval, at the first matching time from `now` on for a cron.
    pub fn first_fire(&self, now: i64) -> i64 {
        match self {
            Period::EveryMs(_) => now,
            Period::Cron(cron) => cron.next_after(now.saturating_sub(1)),
        }
    }
}

/// Stored as `@every <n>ms` or `@cron <six fields>`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::EveryMs(every) => write!(f, "@every {every}ms"),
            Period::Cron(cron) => write!(f, "@cron {cron}"),
        }
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, PeriodError> {
        if let Some(expression) = s.strip_prefix("@cron ") {
            return Ok(Period::Cron(expression.parse()?));
        }
        s.strip_prefix("@every ")
            .and_then(|rest| rest.strip_suffix("ms"))
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|&every| every > 0)
            .map(Period::EveryMs)
            .ok_or_else(|| PeriodError::Unknown(s.to_owned()))
    }
}

/// Why a period's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Neither `@every <n>ms` (n at least one) nor `@cron <expression>`.
    #[error("unknown schedule period {0:?}")]
    Unknown(String),
    /// A cron period whose expression is invalid.
    #[error(transparent)]
    Cron(#[from] CronError),
}

/// A stored period that does not parse is a fault of the store's data.
impl From<PeriodError> for MetaError {
    fn from(e: PeriodError) -> MetaError {
        MetaError(e.to_string())
    }
}

/// Harbor's cron expression: six fields, seconds first (`0 0 0 * * *` is daily at
/// midnight, `0 0 0 * * 0` Sundays at midnight), matched in UTC.
///
/// Fields hold numbers, `*`, lists, ranges and steps, as in Vixie cron; days of the
/// week count from Sunday (0, or 7) and may be named (`MON`), months too (`JAN`). When
/// both the day of the month and the day of the week are restricted, a day matching
/// either matches, as in Vixie cron and Harbor.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The six fields, separated by single spaces.
    expression: String,
    /// The parsed expression (boxed: it is large, and a period is mostly an interval).
    cron: Box<Cron>,
}

impl CronSchedule {
    /// The expression, its fields separated by single spaces.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `now` that the expression matches, in Unix
    /// milliseconds (always a whole second); `i64::MAX`, never, when no time after
    /// `now` matches (as for `0 0 0 30 2 *`).
    pub fn next_after(&self, now: i64) -> i64 {
        // Matches fall on whole seconds: the first after the second holding `now` is the
        // first after `now`.
        DateTime::<Utc>::from_timestamp(now.div_euclid(1000), 0)
            .and_then(|second| self.cron.find_next_occurrence(&second, false).ok())
            .map_or(i64::MAX, |next| next.timestamp_millis())
    }
}

/// Two schedules are the same when their expressions are, up to spacing.
impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Eq for CronSchedule {}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for CronSchedule {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(CronError::Fields {
                expression: s.to_owned(),
                found: fields.len(),
            });
        }
        let expression = fields.join(" ");
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| CronError::Invalid {
                expression: expression.clone(),
                reason: e.to_string(),
            })?;
        Ok(CronSchedule {
            expression,
            cron: Box::new(cron),
        })
    }
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not six fields: Harbor's cron has seconds first, then minutes, hours, day of the
    /// month, month and day of the week.
    #[error(
        "cron expression {expression:?} has {found} fields; six are needed \
         (second minute hour day-of-month month day-of-week)"
    )]
    Fields {
        /// The expression as given.
        expression: String,
        /// How many fields it has.
        found: usize,
    },
    /// A field is out of range or malformed.
    #[error("invalid cron expression {expression:?}: {reason}")]
    Invalid {
        /// The expression.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix milliseconds of a UTC time written as RFC 3339.
    fn at(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn cron(expression: &str) -> Period {
        Period::Cron(expression.parse().unwrap())
    }

    #[test]
    fn intervals_skip_missed_fires_and_round_trip_as_text() {
        let p = Period::EveryMs(100);
        assert_eq!(p.next_after(1000, 1000), 1100);
        assert_eq!(p.next_after(1000, 1099), 1100);
        assert_eq!(p.next_after(1000, 1100), 1200);
        assert_eq!(p.next_after(1000, 1550), 1600);
        assert_eq!(p.first_fire(1234), 1234);
        assert_eq!(p.to_string().parse::<Period>().unwrap(), p);
        for bad in ["@every 0ms", "@every 5s", "*/5 * * * *", "@cron"] {
            assert!(
                matches!(bad.parse::<Period>(), Err(PeriodError::Unknown(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn harbor_presets_fire_hourly_daily_and_weekly_in_utc() {
        // A Wednesday.
        let now = at("2026-12-02T10:17:42.500Z");
        let hourly = cron("0 0 * * * *");
        assert_eq!(
            hourly.next_after(now - 3_600_000, now),
            at("2026-12-02T11:00:00Z")
        );
        let daily = cron("0 0 0 * * *");
        assert_eq!(daily.next_after(now, now), at("2026-12-03T00:00:00Z"));
        let weekly = cron("0 0 0 * * 0");
        assert_eq!(weekly.next_after(now, now), at("2026-12-06T00:00:00Z"));
        assert_eq!(
            cron("0 0 0 * * 7").next_after(now, now),
            at("2026-12-06T00:00:00Z"),
            "7 is Sunday too"
        );
    }

    #[test]
    fn a_cron_fires_strictly_after_now_and_skips_missed_fires() {
        let daily = cron("0 0 0 * * *");
        let midnight = at("2026-12-03T00:00:00Z");
        assert_eq!(
            daily.next_after(midnight, midnight),
            at("2026-12-04T00:00:00Z")
        );
        let day = 86_400_000;
        assert_eq!(daily.next_after(midnight - day, midnight - 1), midnight);
        assert_eq!(
            daily.next_after(midnight, midnight - 1),
            at("2026-12-04T00:00:00Z"),
            "never at or before the last fire"
        );
        // Three days without a node: the next fire is the next midnight, not a backlog.
        let later = at("2026-12-06T09:00:00Z");
        assert_eq!(
            daily.next_after(midnight, later),
            at("2026-12-07T00:00:00Z")
        );
        // A new schedule fires at the first matching time from now on.
        assert_eq!(daily.first_fire(midnight), midnight);
        assert_eq!(daily.first_fire(midnight + 1), at("2026-12-04T00:00:00Z"));
    }

    #[test]
    fn custom_expressions_take_lists_ranges_steps_and_names() {
        let now = at("2026-12-02T10:17:42Z");
        // Every 15 minutes, 30 seconds past, on weekdays.
        let custom = cron("30 */15 * * * MON-FRI");
        assert_eq!(custom.next_after(now, now), at("2026-12-02T10:30:30Z"));
        let friday_evening = at("2026-12-04T23:50:00Z");
        assert_eq!(
            custom.next_after(friday_evening, friday_evening),
            at("2026-12-07T00:00:30Z"),
            "the weekend is skipped"
        );
        // The 1st of the month or a Sunday, at 03:00:00.
        let either = cron("0 0 3 1 * 0");
        assert_eq!(either.next_after(now, now), at("2026-12-06T03:00:00Z"));
        // No such day: never.
        assert_eq!(cron("0 0 0 30 2 *").next_after(now, now), i64::MAX);
    }

    #[test]
    fn only_six_valid_fields_are_taken() {
        for (bad, found) in [
            ("0 * * * *", 5),
            ("0 0 0 * * * 2027", 7),
            ("@daily", 1),
            ("", 0),
        ] {
            match bad.parse::<CronSchedule>() {
                Err(CronError::Fields { found: n, .. }) => assert_eq!(n, found, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in [
            "60 * * * * *",
            "0 0 24 * * *",
            "0 0 0 32 * *",
            "x * * * * *",
        ] {
            assert!(
                matches!(bad.parse::<CronSchedule>(), Err(CronError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            "@cron 0 * * * *".parse::<Period>(),
            Err(PeriodError::Cron(CronError::Fields { found: 5, .. }))
        ));
    }

    #[test]
    fn cron_periods_round_trip_as_text() {
        let p = cron(" 0  0 0 *\t* 0 ");
        assert_eq!(p.to_string(), "@cron 0 0 0 * * 0");
        assert_eq!(p.to_string().parse::<Period>().unwrap(), p);
        assert_ne!(p, cron("0 0 0 * * 1"));
    }
}
