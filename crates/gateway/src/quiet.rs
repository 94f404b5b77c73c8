//! Quiet hours in the recipient's local time: a campaign's message to someone whose local time
//! falls inside the window (`21:00-08:00`) waits until the window ends in their zone.
//!
//! The zone comes from, in order: the audience row's `time_zone` column (an IANA name), the
//! region of the recipient's phone number through [`ZONES`] (one zone per country: the one most
//! of its people live in), or the configured default zone. Local time, daylight saving
//! included, comes from the IANA database compiled into `chrono-tz`.

use crate::clock::Millis;
use chrono::{Duration, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A daily window, local time: `start` up to (not including) `end`; it may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Minutes after midnight it starts.
    pub start: u32,
    /// Minutes after midnight it ends.
    pub end: u32,
}

impl Window {
    /// Whether `minute` (after midnight) is inside.
    pub fn contains(&self, minute: u32) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

fn minutes(s: &str) -> Result<u32, String> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a time of day (HH:MM)"))?;
    Ok(t.hour() * 60 + t.minute())
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Window, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("quiet hours {s:?} are not HH:MM-HH:MM (21:00-08:00)"))?;
        let w = Window {
            start: minutes(a)?,
            end: minutes(b)?,
        };
        if w.start == w.end {
            return Err(format!("quiet hours {s:?} start and end at the same time"));
        }
        Ok(w)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A time zone by IANA name.
pub fn zone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("{name:?} is not an IANA time zone (Europe/Berlin, America/New_York …)")
    })
}

/// The zone of a country (ISO 3166 code), when the table has it.
pub fn zone_of_region(region: &str) -> Option<Tz> {
    let i = ZONES.binary_search_by(|(r, _)| (*r).cmp(region)).ok()?;
    ZONES[i].1.parse().ok()
}

/// The zone of a recipient: the row's `time_zone` column, its number's country, or `default`.
pub fn zone_of(recipient: &str, time_zone: Option<&str>, default: Tz) -> Tz {
    if let Some(z) = time_zone.and_then(|z| zone(z).ok()) {
        return z;
    }
    if recipient.bytes().all(|b| b.is_ascii_digit())
        && let Some(region) = mynah_wire::WaId::from_digits(recipient).region()
        && let Some(z) = zone_of_region(&region)
    {
        return z;
    }
    default
}

/// When a message to someone in `tz` may go, at `now`: `None` when now is outside the window,
/// else the instant the window ends in their zone.
pub fn wait_until(now: Millis, tz: Tz, window: Window) -> Option<Millis> {
    let local = tz.timestamp_millis_opt(now).single()?;
    let minute = local.hour() * 60 + local.minute();
    if !window.contains(minute) {
        return None;
    }
    // The end is today when it is still ahead, else tomorrow.
    let mut day = local.date_naive();
    if minute >= window.end {
        day = day.succ_opt()?;
    }
    let end = NaiveTime::from_hms_opt(window.end / 60, window.end % 60, 0)?;
    let naive = day.and_time(end);
    // A time that daylight saving skips: an hour later.
    let at = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
    })?;
    Some(at.timestamp_millis().max(now))
}

/// Country (ISO 3166-1 alpha-2, sorted) → IANA zone. A country spanning several zones has the
/// one most of its people live in; an audience's `time_zone` column says better.
pub const ZONES: &[(&str, &str)] = &[
    ("AD", "Europe/Andorra"),
    ("AE", "Asia/Dubai"),
    ("AF", "Asia/Kabul"),
    ("AG", "America/Antigua"),
    ("AL", "Europe/Tirane"),
    ("AM", "Asia/Yerevan"),
    ("AO", "Africa/Luanda"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("AT", "Europe/Vienna"),
    ("AU", "Australia/Sydney"),
    ("AW", "America/Aruba"),
    ("AZ", "Asia/Baku"),
    ("BA", "Europe/Sarajevo"),
    ("BB", "America/Barbados"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BF", "Africa/Ouagadougou"),
    ("BG", "Europe/Sofia"),
    ("BH", "Asia/Bahrain"),
    ("BI", "Africa/Bujumbura"),
    ("BJ", "Africa/Porto-Novo"),
    ("BN", "Asia/Brunei"),
    ("BO", "America/La_Paz"),
    ("BR", "America/Sao_Paulo"),
    ("BS", "America/Nassau"),
    ("BT", "Asia/Thimphu"),
    ("BW", "Africa/Gaborone"),
    ("BY", "Europe/Minsk"),
    ("BZ", "America/Belize"),
    ("CA", "America/Toronto"),
    ("CD", "Africa/Kinshasa"),
    ("CF", "Africa/Bangui"),
    ("CG", "Africa/Brazzaville"),
    ("CH", "Europe/Zurich"),
    ("CI", "Africa/Abidjan"),
    ("CL", "America/Santiago"),
    ("CM", "Africa/Douala"),
    ("CN", "Asia/Shanghai"),
    ("CO", "America/Bogota"),
    ("CR", "America/Costa_Rica"),
    ("CU", "America/Havana"),
    ("CV", "Atlantic/Cape_Verde"),
    ("CY", "Asia/Nicosia"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DJ", "Africa/Djibouti"),
    ("DK", "Europe/Copenhagen"),
    ("DM", "America/Dominica"),
    ("DO", "America/Santo_Domingo"),
    ("DZ", "Africa/Algiers"),
    ("EC", "America/Guayaquil"),
    ("EE", "Europe/Tallinn"),
    ("EG", "Africa/Cairo"),
    ("ER", "Africa/Asmara"),
    ("ES", "Europe/Madrid"),
    ("ET", "Africa/Addis_Ababa"),
    ("FI", "Europe/Helsinki"),
    ("FJ", "Pacific/Fiji"),
    ("FR", "Europe/Paris"),
    ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"),
    ("GD", "America/Grenada"),
    ("GE", "Asia/Tbilisi"),
    ("GH", "Africa/Accra"),
    ("GM", "Africa/Banjul"),
    ("GN", "Africa/Conakry"),
    ("GQ", "Africa/Malabo"),
    ("GR", "Europe/Athens"),
    ("GT", "America/Guatemala"),
    ("GW", "Africa/Bissau"),
    ("GY", "America/Guyana"),
    ("HK", "Asia/Hong_Kong"),
    ("HN", "America/Tegucigalpa"),
    ("HR", "Europe/Zagreb"),
    ("HT", "America/Port-au-Prince"),
    ("HU", "Europe/Budapest"),
    ("ID", "Asia/Jakarta"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IN", "Asia/Kolkata"),
    ("IQ", "Asia/Baghdad"),
    ("IR", "Asia/Tehran"),
    ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"),
    ("JM", "America/Jamaica"),
    ("JO", "Asia/Amman"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KG", "Asia/Bishkek"),
    ("KH", "Asia/Phnom_Penh"),
    ("KM", "Indian/Comoro"),
    ("KN", "America/St_Kitts"),
    ("KR", "Asia/Seoul"),
    ("KW", "Asia/Kuwait"),
    ("KZ", "Asia/Almaty"),
    ("LA", "Asia/Vientiane"),
    ("LB", "Asia/Beirut"),
    ("LC", "America/St_Lucia"),
    ("LI", "Europe/Vaduz"),
    ("LK", "Asia/Colombo"),
    ("LR", "Africa/Monrovia"),
    ("LS", "Africa/Maseru"),
    ("LT", "Europe/Vilnius"),
    ("LU", "Europe/Luxembourg"),
    ("LV", "Europe/Riga"),
    ("LY", "Africa/Tripoli"),
    ("MA", "Africa/Casablanca"),
    ("MC", "Europe/Monaco"),
    ("MD", "Europe/Chisinau"),
    ("ME", "Europe/Podgorica"),
    ("MG", "Indian/Antananarivo"),
    ("MK", "Europe/Skopje"),
    ("ML", "Africa/Bamako"),
    ("MM", "Asia/Yangon"),
    ("MN", "Asia/Ulaanbaatar"),
    ("MO", "Asia/Macau"),
    ("MR", "Africa/Nouakchott"),
    ("MT", "Europe/Malta"),
    ("MU", "Indian/Mauritius"),
    ("MV", "Indian/Maldives"),
    ("MW", "Africa/Blantyre"),
    ("MX", "America/Mexico_City"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"),
    ("NE", "Africa/Niamey"),
    ("NG", "Africa/Lagos"),
    ("NI", "America/Managua"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NP", "Asia/Kathmandu"),
    ("NZ", "Pacific/Auckland"),
    ("OM", "Asia/Muscat"),
    ("PA", "America/Panama"),
    ("PE", "America/Lima"),
    ("PG", "Pacific/Port_Moresby"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PR", "America/Puerto_Rico"),
    ("PS", "Asia/Gaza"),
    ("PT", "Europe/Lisbon"),
    ("PY", "America/Asuncion"),
    ("QA", "Asia/Qatar"),
    ("RO", "Europe/Bucharest"),
    ("RS", "Europe/Belgrade"),
    ("RU", "Europe/Moscow"),
    ("RW", "Africa/Kigali"),
    ("SA", "Asia/Riyadh"),
    ("SB", "Pacific/Guadalcanal"),
    ("SC", "Indian/Mahe"),
    ("SD", "Africa/Khartoum"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("SI", "Europe/Ljubljana"),
    ("SK", "Europe/Bratislava"),
    ("SL", "Africa/Freetown"),
    ("SN", "Africa/Dakar"),
    ("SO", "Africa/Mogadishu"),
    ("SR", "America/Paramaribo"),
    ("SS", "Africa/Juba"),
    ("SV", "America/El_Salvador"),
    ("SY", "Asia/Damascus"),
    ("SZ", "Africa/Mbabane"),
    ("TD", "Africa/Ndjamena"),
    ("TG", "Africa/Lome"),
    ("TH", "Asia/Bangkok"),
    ("TJ", "Asia/Dushanbe"),
    ("TL", "Asia/Dili"),
    ("TM", "Asia/Ashgabat"),
    ("TN", "Africa/Tunis"),
    ("TR", "Europe/Istanbul"),
    ("TT", "America/Port_of_Spain"),
    ("TW", "Asia/Taipei"),
    ("TZ", "Africa/Dar_es_Salaam"),
    ("UA", "Europe/Kyiv"),
    ("UG", "Africa/Kampala"),
    ("US", "America/New_York"),
    ("UY", "America/Montevideo"),
    ("UZ", "Asia/Tashkent"),
    ("VC", "America/St_Vincent"),
    ("VE", "America/Caracas"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("YE", "Asia/Aden"),
    ("ZA", "Africa/Johannesburg"),
    ("ZM", "Africa/Lusaka"),
    ("ZW", "Africa/Harare"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_zone_is_known() {
        for w in ZONES.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} before {:?}", w[0], w[1]);
        }
        for (region, name) in ZONES {
            assert!(name.parse::<Tz>().is_ok(), "{region}: {name}");
        }
    }

    #[test]
    fn a_message_inside_the_window_waits_for_its_end_in_the_recipients_zone() {
        let w: Window = "21:00-08:00".parse().unwrap();
        assert_eq!(w.to_string(), "21:00-08:00");
        // 2026-12-03 21:30 UTC: 22:30 in Berlin (quiet until 07:00 UTC), 16:30 in New York.
        let t = 1_796_333_400_000;
        let berlin = zone_of("4915112345678", None, Tz::UTC);
        assert_eq!(berlin, Tz::Europe__Berlin);
        assert_eq!(wait_until(t, berlin, w), Some(1_796_367_600_000));
        let ny = zone_of("12125550100", None, Tz::UTC);
        assert_eq!(wait_until(t, ny, w), None);
        // India, 03:00 local: until 08:00 IST, 02:30 UTC.
        let india = zone_of("919812345678", None, Tz::UTC);
        assert_eq!(wait_until(t, india, w), Some(1_796_351_400_000));
        // A time_zone column wins; an unknown region has the default.
        assert_eq!(
            zone_of("4915112345678", Some("Asia/Tokyo"), Tz::UTC),
            Tz::Asia__Tokyo
        );
        assert_eq!(zone_of("99900000000001", None, Tz::UTC), Tz::UTC);
        // A window that does not wrap midnight.
        let day: Window = "12:00-14:00".parse().unwrap();
        assert!(day.contains(12 * 60) && !day.contains(14 * 60));
        assert!("8-9".parse::<Window>().is_err());
        assert!("10:00-10:00".parse::<Window>().is_err());
    }
}
