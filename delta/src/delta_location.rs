//! Naming a Delta table: `delta+URL`, optionally `@vN` for a version.

use chrono::{DateTime, NaiveDate, Utc};
use squall_connectors::Location;

use crate::error::{DeltaError, Result};

/// The prefix that marks a location as a Delta table (`delta+s3://b/t/`).
pub const DELTA_SCHEME_PREFIX: &str = "delta+";

/// Which snapshot of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTravel {
    /// The table as of this commit version.
    Version(u64),
    /// The table as of the newest commit at or before this time.
    Timestamp(DateTime<Utc>),
}

impl TimeTravel {
    /// Parses a version (`3`) or a time (`2026-12-01T10:00:00Z`, or a day:
    /// `2026-12-01`, its midnight UTC), as `OPTIONS ('version' ...)` and
    /// `('timestamp' ...)` give them.
    pub fn parse_version(text: &str) -> std::result::Result<Self, String> {
        match text.trim().parse::<u64>() {
            Ok(v) => Ok(Self::Version(v)),
            _ => Err(format!(
                "version '{text}' is not a commit version (0, 1, 2, ...)"
            )),
        }
    }

    /// See [`TimeTravel::parse_version`].
    pub fn parse_timestamp(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self::Timestamp(t.with_timezone(&Utc)));
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
            return Ok(Self::Timestamp(midnight.and_utc()));
        }
        Err(format!(
            "timestamp '{text}' is not a time like 2026-12-01T10:00:00Z or a day like 2026-12-01"
        ))
    }
}

impl std::fmt::Display for TimeTravel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Version(v) => write!(f, "version {v}"),
            Self::Timestamp(t) => write!(f, "version as of {}", t.to_rfc3339()),
        }
    }
}

/// A Delta table's root folder and the snapshot to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaLocation {
    /// The table's root folder (a prefix: ends with `/`).
    pub root: Location,
    /// `None`: the newest version.
    pub time_travel: Option<TimeTravel>,
}

impl DeltaLocation {
    /// The table at `location` (a path or URL), newest version.
    pub fn new(location: &str) -> Result<Self> {
        Ok(Self {
            root: Location::parse(location)?.as_prefix(),
            time_travel: None,
        })
    }

    /// Parses `delta+URL` or `delta+URL@vN`; `None` when `spec` does not
    /// start with `delta+`.
    pub fn parse_prefixed(spec: &str) -> Option<Result<Self>> {
        let rest = spec.strip_prefix(DELTA_SCHEME_PREFIX)?;
        Some(Self::parse_with_version(rest))
    }

    /// Parses `URL` or `URL@vN`.
    pub fn parse_with_version(spec: &str) -> Result<Self> {
        if let Some((url, version)) = spec.rsplit_once("@v")
            && !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
        {
            let version =
                TimeTravel::parse_version(version).map_err(|reason| DeltaError::NotATable {
                    url: url.to_string(),
                    reason,
                })?;
            let mut location = Self::new(url)?;
            location.time_travel = Some(version);
            return Ok(location);
        }
        Self::new(spec)
    }

    /// The same table at `time_travel`.
    pub fn at(mut self, time_travel: Option<TimeTravel>) -> Self {
        self.time_travel = time_travel;
        self
    }
}

impl std::fmt::Display for DeltaLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.time_travel {
            None => write!(f, "{}", self.root),
            Some(tt) => write!(f, "{} ({tt})", self.root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_prefix_and_a_version() {
        assert!(DeltaLocation::parse_prefixed("s3://b/t/").is_none());
        let plain = DeltaLocation::parse_prefixed("delta+s3://b/t")
            .unwrap()
            .unwrap();
        assert_eq!(plain.root.to_string(), "s3://b/t/");
        assert_eq!(plain.time_travel, None);
        let old = DeltaLocation::parse_prefixed("delta+s3://b/t@v12")
            .unwrap()
            .unwrap();
        assert_eq!(old.root.to_string(), "s3://b/t/");
        assert_eq!(old.time_travel, Some(TimeTravel::Version(12)));
        // An `@v` that is not a version stays part of the name.
        let odd = DeltaLocation::parse_prefixed("delta+s3://b/t@vx")
            .unwrap()
            .unwrap();
        assert_eq!(odd.root.to_string(), "s3://b/t@vx/");
    }

    #[test]
    fn reads_versions_and_times() {
        assert_eq!(TimeTravel::parse_version("3"), Ok(TimeTravel::Version(3)));
        assert!(
            TimeTravel::parse_version("-1")
                .unwrap_err()
                .contains("not a commit version")
        );
        let day = TimeTravel::parse_timestamp("2026-12-01").unwrap();
        let exact = TimeTravel::parse_timestamp("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(day, exact);
        assert!(
            TimeTravel::parse_timestamp("yesterday")
                .unwrap_err()
                .contains("not a time")
        );
    }
}
