//! A task's log: what it looked at and, per artifact, whether it was kept (and by
//! which rule) or deleted, as a table like Harbor's (`Digest | Tag | … | Retention`).
//! Pure: no I/O.

use std::fmt::Write as _;

/// Harbor's marks in the `Retention` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Kept by a rule.
    Retain,
    /// Deleted (or, in a dry run, to be deleted).
    Delete,
    /// Kept: an immutable tag rule protects it.
    Immutable,
    /// Its deletion failed.
    Error,
}

impl Mark {
    /// Harbor's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Retain => "RETAIN",
            Mark::Delete => "DEL",
            Mark::Immutable => "IMMUTABLE",
            Mark::Error => "ERR",
        }
    }
}

/// One artifact's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its digest.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its push time (Unix milliseconds).
    pub pushed_at: i64,
    /// Its pull time, if ever.
    pub pulled_at: Option<i64>,
    /// What happened to it.
    pub mark: Mark,
    /// Why: the rules that kept it, the immutable rule, or the error.
    pub reason: String,
}

/// A Unix-milliseconds time as Harbor's log writes it: `2006/01/02 15:04:05` (UTC).
pub fn log_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The table of `lines`, columns aligned, with Harbor's headers and a `Rule` column.
pub fn table(lines: &[Line]) -> String {
    let header = [
        "Digest",
        "Tags",
        "Labels",
        "PushedTime",
        "PulledTime",
        "Retention",
        "Rule",
    ]
    .map(String::from);
    let rows: Vec<[String; 7]> = lines
        .iter()
        .map(|l| {
            [
                l.digest.clone(),
                l.tags.join(","),
                l.labels.join(","),
                log_time(l.pushed_at),
                l.pulled_at.map(log_time).unwrap_or_default(),
                l.mark.as_str().into(),
                l.reason.clone(),
            ]
        })
        .collect();
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String; 7]| {
        out.push('|');
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(out, " {cell:<w$} |");
        }
        out.push('\n');
    };
    line(&header);
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_harbor_writes_them() {
        assert_eq!(log_time(0), "1970/01/01 00:00:00");
        assert_eq!(log_time(951_782_400_000), "2000/02/29 00:00:00");
        assert_eq!(log_time(1_800_000_000_123), "2027/01/15 08:00:00");
        assert_eq!(log_time(-1000), "1969/12/31 23:59:59");
    }

    #[test]
    fn the_table_aligns_its_columns() {
        let lines = [
            Line {
                digest: "sha256:aa".into(),
                tags: vec!["v1".into(), "latest".into()],
                labels: vec![],
                pushed_at: 0,
                pulled_at: None,
                mark: Mark::Retain,
                reason: "rule 1".into(),
            },
            Line {
                digest: "sha256:b".into(),
                tags: vec![],
                labels: vec!["x".into()],
                pushed_at: 0,
                pulled_at: Some(0),
                mark: Mark::Delete,
                reason: String::new(),
            },
        ];
        let table = table(&lines);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{table}");
        assert!(
            rows[0].starts_with("| Digest    | Tags      | Labels |"),
            "{table}"
        );
        assert!(rows[2].contains("| v1,latest |") && rows[2].contains("| RETAIN    | rule 1 |"));
        assert!(rows[3].contains("| DEL       |"), "{table}");
    }
}
