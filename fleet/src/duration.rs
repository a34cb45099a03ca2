//! Durations in `[fleet]` written as the rest of Meridian's file writes them: `"5s"`,
//! `"500ms"`, `"2m"`, `"1h"` (the config crate's format, so the section moves there
//! unchanged). Used as `#[serde(with = "duration")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest duration accepted: anything longer is a typo.
const MAX_SECS: f64 = 365.0 * 86_400.0;

/// Why a duration could not be read; each message quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid duration {0:?}: expected a number followed by ms, s, m or h")]
    NotANumber(String),
    #[error("invalid duration {value:?}: unknown unit {unit:?} (use ms, s, m or h)")]
    UnknownUnit { value: String, unit: String },
    #[error("invalid duration {0:?}: out of range")]
    OutOfRange(String),
}

pub fn parse(s: &str) -> Result<Duration, ParseError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| ParseError::NotANumber(s.to_owned()))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(ParseError::UnknownUnit { value: s.to_owned(), unit: other.to_owned() }),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=MAX_SECS).contains(&secs) {
        return Err(ParseError::OutOfRange(s.to_owned()));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) { format!("{ms}ms") } else { format!("{}s", ms / 1000) }
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The units the config crate reads, and the mistakes it names.
    #[test]
    fn parses_like_the_config_crate() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(matches!(parse("5"), Err(ParseError::UnknownUnit { .. })));
        assert!(matches!(parse("fast"), Err(ParseError::NotANumber(_))));
        assert!(matches!(parse("999999h"), Err(ParseError::OutOfRange(_))));
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(5)), "5s");
    }
}
