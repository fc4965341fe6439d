//! Calling windows: the days and hours a campaign may dial, in a given time zone
//! (the lead's own, or the campaign's default).

use std::collections::HashMap;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::time::Time;

/// A day of the week, as written in configs and on the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    fn of(w: Weekday) -> Day {
        Day::ALL[w.to_monday_zero_offset() as usize]
    }
}

/// Daily calling hours, `start` inclusive to `end` exclusive, as HHMM local time, on
/// the listed days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingWindow {
    pub start_hhmm: u32,
    pub end_hhmm: u32,
    #[serde(default = "all_days")]
    pub days: Vec<Day>,
}

fn all_days() -> Vec<Day> {
    Day::ALL.to_vec()
}

impl Default for CallingWindow {
    fn default() -> Self {
        CallingWindow {
            start_hhmm: 800,
            end_hhmm: 2100,
            days: all_days(),
        }
    }
}

fn minutes(hhmm: u32) -> i64 {
    i64::from(hhmm / 100 * 60 + hhmm % 100)
}

fn zoned(now: Time, tz: &TimeZone) -> Zoned {
    let ts = Timestamp::from_millisecond(now.as_millis().min(i64::MAX as u64) as i64)
        .unwrap_or(Timestamp::MAX);
    ts.to_zoned(tz.clone())
}

fn to_time(z: &Zoned) -> Time {
    Time::from_millis(z.timestamp().as_millisecond().max(0) as u64)
}

impl CallingWindow {
    /// Seconds left in the window at `now` in zone `tz`, or `None` when it is closed.
    pub fn left_s(&self, now: Time, tz: &TimeZone) -> Option<f64> {
        let z = zoned(now, tz);
        if !self.days.contains(&Day::of(z.weekday())) {
            return None;
        }
        let into_day_ms = (i64::from(z.hour()) * 3600 + i64::from(z.minute()) * 60) * 1000
            + i64::from(z.second()) * 1000
            + i64::from(z.millisecond());
        let (start, end) = (
            minutes(self.start_hhmm) * 60_000,
            minutes(self.end_hhmm) * 60_000,
        );
        (start..end)
            .contains(&into_day_ms)
            .then(|| (end - into_day_ms) as f64 / 1000.0)
    }

    /// The first moment at or after `now` when the window is open in zone `tz`
    /// (`now` itself when it is open). `None` when no day is allowed.
    pub fn next_open(&self, now: Time, tz: &TimeZone) -> Option<Time> {
        if self.left_s(now, tz).is_some() {
            return Some(now);
        }
        let today = zoned(now, tz).date();
        let start = minutes(self.start_hhmm);
        (0..=7).find_map(|d| {
            let date = today.checked_add(jiff::Span::new().days(d)).ok()?;
            if !self.days.contains(&Day::of(date.weekday())) {
                return None;
            }
            let at = date
                .at((start / 60) as i8, (start % 60) as i8, 0, 0)
                .to_zoned(tz.clone())
                .ok()?;
            let t = to_time(&at);
            (t >= now && self.left_s(t, tz).is_some()).then_some(t)
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("calling_window.start_hhmm", self.start_hhmm),
            ("calling_window.end_hhmm", self.end_hhmm),
        ] {
            if v > 2400 || v % 100 >= 60 {
                return Err(ConfigError::Invalid {
                    field,
                    why: format!("{v} is not an HHMM time"),
                });
            }
        }
        if self.start_hhmm >= self.end_hhmm {
            return Err(ConfigError::Invalid {
                field: "calling_window",
                why: format!(
                    "start {} is not before end {}",
                    self.start_hhmm, self.end_hhmm
                ),
            });
        }
        if self.days.is_empty() {
            return Err(ConfigError::Invalid {
                field: "calling_window.days",
                why: "names no day".into(),
            });
        }
        Ok(())
    }
}

/// Resolve an IANA time-zone name (the tz database is built in).
pub fn zone(name: &str) -> Option<TimeZone> {
    if name.eq_ignore_ascii_case("utc") {
        return Some(TimeZone::UTC);
    }
    TimeZone::get(name).ok()
}

/// Time zones looked up once and kept.
#[derive(Default)]
pub struct Zones(HashMap<String, TimeZone>);

impl Zones {
    /// The zone called `name`, or UTC when the name is unknown (names are checked
    /// where they enter: campaign settings and lead import).
    pub fn get(&mut self, name: &str) -> &TimeZone {
        if !self.0.contains_key(name) {
            let tz = zone(name).unwrap_or(TimeZone::UTC);
            self.0.insert(name.to_owned(), tz);
        }
        &self.0[name]
    }
}

/// The time zone of a country that has exactly one (ISO 3166 code), for leads whose
/// zone is not given. Countries spanning several zones (US, CA, AU, BR, RU, MX, …)
/// are not listed: their leads take the campaign's default zone.
pub fn single_zone_of_country(region: &str) -> Option<&'static str> {
    Some(match region {
        "GB" | "GG" | "JE" | "IM" => "Europe/London",
        "IE" => "Europe/Dublin",
        "FR" => "Europe/Paris",
        "DE" => "Europe/Berlin",
        "IT" => "Europe/Rome",
        "NL" => "Europe/Amsterdam",
        "BE" => "Europe/Brussels",
        "LU" => "Europe/Luxembourg",
        "CH" => "Europe/Zurich",
        "AT" => "Europe/Vienna",
        "DK" => "Europe/Copenhagen",
        "SE" => "Europe/Stockholm",
        "NO" => "Europe/Oslo",
        "FI" => "Europe/Helsinki",
        "PL" => "Europe/Warsaw",
        "CZ" => "Europe/Prague",
        "SK" => "Europe/Bratislava",
        "HU" => "Europe/Budapest",
        "RO" => "Europe/Bucharest",
        "BG" => "Europe/Sofia",
        "GR" => "Europe/Athens",
        "IN" => "Asia/Kolkata",
        "JP" => "Asia/Tokyo",
        "KR" => "Asia/Seoul",
        "SG" => "Asia/Singapore",
        "HK" => "Asia/Hong_Kong",
        "PH" => "Asia/Manila",
        "IL" => "Asia/Jerusalem",
        "AE" => "Asia/Dubai",
        "ZA" => "Africa/Johannesburg",
        "NG" => "Africa/Lagos",
        "KE" => "Africa/Nairobi",
        "EG" => "Africa/Cairo",
        "CO" => "America/Bogota",
        "PE" => "America/Lima",
        "AR" => "America/Argentina/Buenos_Aires",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(h: u64, m: u64) -> Time {
        // SIM_EPOCH is Monday 2026-01-05 00:00 UTC.
        Time::SIM_EPOCH + Duration::from_secs(h * 3600 + m * 60)
    }

    #[test]
    fn counts_down_and_closes() {
        let w = CallingWindow {
            start_hhmm: 900,
            end_hhmm: 1700,
            ..CallingWindow::default()
        };
        let utc = TimeZone::UTC;
        assert_eq!(w.left_s(at(8, 59), &utc), None);
        assert_eq!(w.left_s(at(9, 0), &utc), Some(8.0 * 3600.0));
        assert_eq!(w.left_s(at(16, 59), &utc), Some(60.0));
        assert_eq!(w.left_s(at(17, 0), &utc), None);
        // Paris is an hour ahead in January: 16:00 UTC is 17:00 there.
        let paris = zone("Europe/Paris").unwrap();
        assert_eq!(w.left_s(at(16, 0), &paris), None);
        assert_eq!(w.left_s(at(8, 0), &paris), Some(8.0 * 3600.0));
    }

    #[test]
    fn next_open_skips_closed_days_and_hours() {
        let w = CallingWindow {
            start_hhmm: 900,
            end_hhmm: 1700,
            days: vec![Day::Mon, Day::Wed],
        };
        let utc = TimeZone::UTC;
        assert_eq!(w.next_open(at(10, 0), &utc), Some(at(10, 0)));
        assert_eq!(w.next_open(at(7, 0), &utc), Some(at(9, 0)));
        // Monday evening: Tuesday is not a calling day, so Wednesday 09:00.
        assert_eq!(w.next_open(at(18, 0), &utc), Some(at(48 + 9, 0)));
        // New York is five hours behind: Monday 09:00 there is 14:00 UTC.
        let ny = zone("America/New_York").unwrap();
        assert_eq!(w.next_open(at(12, 0), &ny), Some(at(14, 0)));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = CallingWindow {
            start_hhmm: 1700,
            end_hhmm: 900,
            ..CallingWindow::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("calling_window")
        );
        let none = CallingWindow {
            days: vec![],
            ..CallingWindow::default()
        };
        assert!(none.validate().unwrap_err().to_string().contains("days"));
        assert!(zone("Mars/Olympus").is_none());
        assert_eq!(single_zone_of_country("GB"), Some("Europe/London"));
        assert_eq!(single_zone_of_country("US"), None);
    }
}
