//! Harbor's `q` and `sort` parameters, turned into a [`ListQuery`] over the fields a
//! listing exposes. Any other field is refused, so hidden columns (password hashes,
//! secrets) can never be filtered or sorted on.

use berth_meta::{FieldFilter, ListQuery, Match, SortKey};

use super::error::HarborError;
use super::paging::Page;
use super::params::Params;

/// How a field's values are written in `q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// An integer.
    Integer,
    /// A boolean (`true`/`false`).
    Boolean,
    /// A time: `2020-04-09 02:36:00` (UTC) or RFC 3339.
    Time,
}

/// The fields of one listing: `q` keys and sort keys, and their kinds.
pub type Fields<F> = &'static [(&'static str, F, Kind)];

/// Reads `q`, `sort`, `page` and `page_size`.
pub fn list_query<F: Copy>(
    params: &Params,
    fields: Fields<F>,
) -> Result<(ListQuery<F>, Page), HarborError> {
    let page = Page::from_params(params)?;
    let mut query = ListQuery {
        offset: page.offset(),
        limit: page.size,
        ..ListQuery::default()
    };
    if let Some(q) = params.get("q") {
        query.filters = parse_q(q, fields)?;
    }
    if let Some(sort) = params.get("sort") {
        query.sort = parse_sort(sort, fields)?;
    }
    Ok((query, page))
}

fn field<F: Copy>(fields: Fields<F>, key: &str) -> Result<(F, Kind), HarborError> {
    fields
        .iter()
        .find(|(name, _, _)| *name == key)
        .map(|(_, f, k)| (*f, *k))
        .ok_or_else(|| HarborError::bad_request(format!("cannot filter or sort by {key:?}")))
}

/// Parses `k=v,k=~v,k=[a~b],k={a b},k=(a b)`.
pub fn parse_q<F: Copy>(q: &str, fields: Fields<F>) -> Result<Vec<FieldFilter<F>>, HarborError> {
    let mut filters = Vec::new();
    for item in split_top_level(q) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| HarborError::bad_request(format!("invalid query {item:?}")))?;
        let (field, kind) = field(fields, key.trim())?;
        let value = value.trim();
        let matching = if let Some(fuzzy) = value.strip_prefix('~') {
            Match::Fuzzy(unquote(fuzzy).to_owned())
        } else if let Some(range) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let (low, high) = range
                .split_once('~')
                .ok_or_else(|| HarborError::bad_request(format!("invalid range {value:?}")))?;
            let bound = |b: &str| -> Result<Option<String>, HarborError> {
                let b = unquote(b.trim());
                if b.is_empty() {
                    Ok(None)
                } else {
                    convert(b, kind).map(Some)
                }
            };
            Match::Range(bound(low)?, bound(high)?)
        } else if let Some(list) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            Match::AnyOf(
                list.split_whitespace()
                    .map(|v| convert(unquote(v), kind))
                    .collect::<Result<_, _>>()?,
            )
        } else if let Some(list) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
            Match::AllOf(
                list.split_whitespace()
                    .map(|v| convert(unquote(v), kind))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            Match::Exact(convert(unquote(value), kind)?)
        };
        filters.push(FieldFilter { field, matching });
    }
    Ok(filters)
}

/// Parses `a,-b`.
pub fn parse_sort<F: Copy>(sort: &str, fields: Fields<F>) -> Result<Vec<SortKey<F>>, HarborError> {
    sort.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (descending, name) = match s.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, s),
            };
            Ok(SortKey {
                field: field(fields, name)?.0,
                descending,
            })
        })
        .collect()
}

/// Splits at commas outside brackets, braces, parentheses and quotes.
fn split_top_level(q: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut quote, mut start) = (Vec::new(), 0i32, None, 0);
    for (i, c) in q.char_indices() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{' | '(') => depth += 1,
            (None, ']' | '}' | ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&q[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&q[start..]);
    parts
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// A value as the store compares it: integers and times (in Unix milliseconds) as
/// digits, booleans as `1`/`0`.
fn convert(value: &str, kind: Kind) -> Result<String, HarborError> {
    let invalid = |what: &str| HarborError::bad_request(format!("{value:?} is not {what}"));
    match kind {
        Kind::Text => Ok(value.to_owned()),
        Kind::Integer => value
            .parse::<i64>()
            .map(|n| n.to_string())
            .map_err(|_| invalid("an integer")),
        Kind::Boolean => match value {
            "true" | "1" => Ok("1".into()),
            "false" | "0" => Ok("0".into()),
            _ => Err(invalid("true or false")),
        },
        Kind::Time => crate::time_format::parse_time(value)
            .map(|ms| ms.to_string())
            .ok_or_else(|| invalid("a time (2006-01-02 15:04:05 or RFC 3339)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum F {
        Name,
        Time,
    }
    const FIELDS: Fields<F> = &[
        ("name", F::Name, Kind::Text),
        ("op_time", F::Time, Kind::Time),
    ];

    #[test]
    fn every_pattern_parses_and_unknown_fields_are_refused() {
        let filters = parse_q(
            r#"name=~lib,op_time=[2020-04-09 02:36:00~2020-04-10 00:00:00],name={"a" b},name='x,y',name=(c d)"#,
            FIELDS,
        )
        .unwrap();
        assert_eq!(filters[0].matching, Match::Fuzzy("lib".into()));
        assert_eq!(
            filters[1].matching,
            Match::Range(Some("1586399760000".into()), Some("1586476800000".into()))
        );
        assert_eq!(
            filters[2].matching,
            Match::AnyOf(vec!["a".into(), "b".into()])
        );
        assert_eq!(filters[3].matching, Match::Exact("x,y".into()));
        assert_eq!(
            filters[4].matching,
            Match::AllOf(vec!["c".into(), "d".into()])
        );
        for bad in [
            "password=~a",
            "name",
            "op_time=yesterday",
            "op_time=(a b)",
            "secret=1",
        ] {
            assert!(parse_q(bad, FIELDS).is_err(), "{bad}");
        }
        let sort = parse_sort("name,-op_time", FIELDS).unwrap();
        assert_eq!((sort[0].field, sort[0].descending), (F::Name, false));
        assert_eq!((sort[1].field, sort[1].descending), (F::Time, true));
        assert!(parse_sort("password", FIELDS).is_err());
    }
}
