//! `Content-Range` of upload chunks and `Range` of blob reads.

/// Why a range header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The header does not follow the expected grammar.
    #[error("malformed range {0:?}")]
    Malformed(String),
    /// Well formed, but the range cannot be satisfied (end before start, past the end, or
    /// longer than `u64::MAX` bytes).
    #[error("range not satisfiable")]
    Unsatisfiable,
}

/// An inclusive byte range `start..=end`.
///
/// The parsers below only build ranges with `start <= end` whose length fits in a `u64`
/// (so not `0..=u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes covered.
    ///
    /// Panics (in release builds too, rather than wrapping to 0) on a range built by hand
    /// that ends before it starts or covers all 2^64 offsets; parsed ranges never do.
    pub fn len(&self) -> u64 {
        self.end
            .checked_sub(self.start)
            .and_then(|last| last.checked_add(1))
            .expect("a byte range ends at or after its start and covers at most u64::MAX bytes")
    }

    /// Always false: a byte range covers at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The `Content-Range` of a chunked upload `PATCH`: `<start>-<end>`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange(pub ByteRange);

impl ContentRange {
    /// Parses the spec grammar `^[0-9]+-[0-9]+$`. An end before the start is
    /// well formed but unsatisfiable, and so is `0-18446744073709551615`: its length,
    /// 2^64, does not fit in a `u64`, and no upload can reach it.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let malformed = || RangeError::Malformed(s.chars().take(64).collect());
        let (a, b) = s.split_once('-').ok_or_else(malformed)?;
        let start = parse_decimal(a).ok_or_else(malformed)?;
        let end = parse_decimal(b).ok_or_else(malformed)?;
        if end < start || end - start == u64::MAX {
            return Err(RangeError::Unsatisfiable);
        }
        Ok(ContentRange(ByteRange { start, end }))
    }
}

/// A `Range: bytes=...` request on a blob, before the blob's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=a-b`
    Bounded(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`
    Suffix(u64),
}

impl RangeRequest {
    /// Parses a single-range `Range` header. Multiple ranges are refused as malformed so
    /// that the caller serves the whole blob instead.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let malformed = || RangeError::Malformed(s.chars().take(64).collect());
        let spec = s
            .trim()
            .strip_prefix("bytes=")
            .ok_or_else(malformed)?
            .trim();
        if spec.contains(',') {
            return Err(malformed());
        }
        let (a, b) = spec.split_once('-').ok_or_else(malformed)?;
        match (a.is_empty(), b.is_empty()) {
            (false, false) => Ok(RangeRequest::Bounded(
                parse_decimal(a).ok_or_else(malformed)?,
                parse_decimal(b).ok_or_else(malformed)?,
            )),
            (false, true) => Ok(RangeRequest::From(parse_decimal(a).ok_or_else(malformed)?)),
            (true, false) => Ok(RangeRequest::Suffix(
                parse_decimal(b).ok_or_else(malformed)?,
            )),
            (true, true) => Err(malformed()),
        }
    }

    /// Resolves the request against a blob of `size` bytes, clipping an end past the blob.
    pub fn resolve(self, size: u64) -> Result<ByteRange, RangeError> {
        let (start, end) = match self {
            RangeRequest::Bounded(a, b) if a > b => return Err(RangeError::Unsatisfiable),
            RangeRequest::Bounded(a, b) => (a, b.min(size.saturating_sub(1))),
            RangeRequest::From(a) => (a, size.saturating_sub(1)),
            RangeRequest::Suffix(0) => return Err(RangeError::Unsatisfiable),
            RangeRequest::Suffix(n) => (size.saturating_sub(n), size.saturating_sub(1)),
        };
        if size == 0 || start >= size {
            return Err(RangeError::Unsatisfiable);
        }
        Ok(ByteRange { start, end })
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_follows_the_spec_regex() {
        assert_eq!(
            ContentRange::parse("0-9").unwrap().0,
            ByteRange { start: 0, end: 9 }
        );
        for bad in ["bytes=0-9", "0-", "-5", "a-b", "0-9/10", "", "1 - 2"] {
            assert!(
                matches!(ContentRange::parse(bad), Err(RangeError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(ContentRange::parse("10-5"), Err(RangeError::Unsatisfiable));
    }

    #[test]
    fn content_range_length_fits_in_u64() {
        let max = u64::MAX;
        // All 2^64 offsets: a length that u64 cannot hold, so no upload can match it.
        assert_eq!(
            ContentRange::parse(&format!("0-{max}")),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            ContentRange::parse(&format!("1-{max}")).unwrap().0.len(),
            max
        );
        assert_eq!(
            ContentRange::parse(&format!("0-{}", max - 1))
                .unwrap()
                .0
                .len(),
            max
        );
        assert_eq!(
            ContentRange::parse(&format!("{max}-{max}"))
                .unwrap()
                .0
                .len(),
            1
        );
        // One past u64::MAX is not a number at all.
        assert!(matches!(
            ContentRange::parse("0-18446744073709551616"),
            Err(RangeError::Malformed(_))
        ));
    }

    #[test]
    #[should_panic(expected = "covers at most u64::MAX bytes")]
    fn the_length_of_every_offset_is_not_wrapped_to_zero() {
        ByteRange {
            start: 0,
            end: u64::MAX,
        }
        .len();
    }

    #[test]
    fn blob_ranges_resolve_like_the_conformance_suite() {
        let r = |s: &str| RangeRequest::parse(s).unwrap().resolve(2048);
        assert_eq!(
            r("bytes=500-1499"),
            Ok(ByteRange {
                start: 500,
                end: 1499
            })
        );
        assert_eq!(
            r("bytes=500-"),
            Ok(ByteRange {
                start: 500,
                end: 2047
            })
        );
        assert_eq!(
            r("bytes=-500"),
            Ok(ByteRange {
                start: 1548,
                end: 2047
            })
        );
        assert_eq!(
            r("bytes=2000-5000"),
            Ok(ByteRange {
                start: 2000,
                end: 2047
            })
        );
        assert_eq!(r("bytes=500-0"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=5000-10000"), Err(RangeError::Unsatisfiable));
        assert!(RangeRequest::parse("bytes=0-1,5-6").is_err());
        assert!(RangeRequest::parse("items=0-1").is_err());
    }
}
