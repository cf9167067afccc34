//! How the offline commands print what they list.

use time::OffsetDateTime;

/// `rows` under `headers`, in columns padded to their widest cell, one line each.
pub fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headers = headers.map(str::to_owned);
    for row in std::iter::once(&headers).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Unix milliseconds as `2006-01-02 15:04:05` (UTC).
pub fn utc(unix_ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&format)
        .unwrap_or_default()
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            ["1".to_owned(), "admin".to_owned(), String::new()],
            ["12".to_owned(), "al".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(["ID", "USERNAME", "E"], &rows),
            "ID  USERNAME  E\n1   admin\n12  al        x\n"
        );
    }

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(utc(1_700_000_000_999), "2023-11-14 22:13:20");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
    }
}
