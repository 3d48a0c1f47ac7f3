//! The spec's timestamp form, `YYYY-MM-DD hh:mm:ss` in UTC (spec "Get User
//! Information"). Pure: the current time is always passed in by the caller.

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime, PrimitiveDateTime};

const FORMAT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a timestamp of the form YYYY-MM-DD hh:mm:ss")]
pub struct TimestampError(pub String);

/// A UTC instant with second precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(PrimitiveDateTime);

impl Timestamp {
    /// From Unix seconds; `None` outside the years 0000–9999.
    pub fn from_unix(seconds: i64) -> Option<Self> {
        let at = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
        let year = at.year();
        (0..=9999).contains(&year).then(|| Self(PrimitiveDateTime::new(at.date(), at.time())))
    }

    /// Unix seconds.
    pub fn unix(&self) -> i64 {
        self.0.assume_utc().unix_timestamp()
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        // Exactly `dddd-dd-dd dd:dd:dd`: the `time` parser alone also takes a signed year.
        let shape_ok = text.len() == 19
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(TimestampError(text.to_string()));
        }
        PrimitiveDateTime::parse(text, FORMAT).map(Self).map_err(|_| TimestampError(text.to_string()))
    }

    /// The wire form.
    pub fn to_wire(&self) -> String {
        // Years are limited to 0000–9999 on construction, so formatting cannot fail.
        self.0.format(FORMAT).unwrap_or_default()
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timestamp({})", self.to_wire())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_round_trips() {
        let t = Timestamp::parse("2014-07-16 19:20:30").unwrap();
        assert_eq!(t.to_wire(), "2014-07-16 19:20:30");
        assert_eq!(t.unix(), 1_405_538_430);
        assert_eq!(Timestamp::from_unix(1_405_538_430), Some(t));
    }

    #[test]
    fn refuses_other_forms() {
        for bad in [
            "+2014-07-16 19:20:30",
            "-0910-10-27 20:31:47",
            "2014-07-16T19:20:30",
            "2014-07-16 19:20",
            "2014-13-01 00:00:00",
            "",
            "2014-07-16 19:20:30Z",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(TimestampError(bad.to_string())), "{bad}");
        }
        assert_eq!(Timestamp::from_unix(i64::MAX), None);
    }
}
