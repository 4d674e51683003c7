//! Durations with units (`"5us"`, `"2.5ms"`, `"1s"`, or an integer in ns).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

/// A duration in nanoseconds, written with a unit in scenario files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Parse `"<number><unit>"` with unit `ns`, `us`, `ms` or `s` (decimals allowed).
    pub fn parse(text: &str) -> Result<Nanos, String> {
        let t = text.trim();
        let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let scale: u64 = match unit.trim() {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "" => return Err(format!("duration {text:?} needs a unit (ns, us, ms, s)")),
            u => {
                return Err(format!(
                    "unknown time unit {u:?} in {text:?}: use ns, us, ms or s"
                ))
            }
        };
        // Integer part and up to 9 fractional digits, no floating point.
        let (int, frac) = num.trim().split_once('.').unwrap_or((num.trim(), ""));
        let bad = || format!("{text:?} is not a duration like \"5us\" or \"2.5ms\"");
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: u64 = int.parse().map_err(|_| bad())?;
        let mut ns = int.checked_mul(scale).ok_or_else(bad)?;
        let mut place = scale;
        for d in frac.bytes() {
            place /= 10;
            if place == 0 {
                return Err(format!("{text:?} is finer than a nanosecond"));
            }
            ns = ns
                .checked_add(u64::from(d - b'0') * place)
                .ok_or_else(bad)?;
        }
        Ok(Nanos(ns))
    }
}

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration: an integer in ns or a string like \"5us\"",
            )
        })? {
            Raw::Int(n) => Ok(Nanos(n)),
            Raw::Text(t) => Nanos::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl schemars::JsonSchema for Nanos {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: an integer in nanoseconds, or a string with a unit (ns, us, ms, s), e.g. \"5us\", \"2.5ms\".",
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s)$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Nanos;

    #[test]
    fn durations_parse_with_units_and_reject_nonsense() {
        assert_eq!(Nanos::parse("5us"), Ok(Nanos(5_000)));
        assert_eq!(Nanos::parse("2.5ms"), Ok(Nanos(2_500_000)));
        assert_eq!(Nanos::parse("1s"), Ok(Nanos(1_000_000_000)));
        assert_eq!(Nanos::parse("0.000000001s"), Ok(Nanos(1)));
        assert!(Nanos::parse("5").unwrap_err().contains("needs a unit"));
        assert!(Nanos::parse("5 min")
            .unwrap_err()
            .contains("unknown time unit"));
        assert!(Nanos::parse("1.5ns").unwrap_err().contains("finer than"));
        assert!(Nanos::parse("-3us").is_err());
    }
}
