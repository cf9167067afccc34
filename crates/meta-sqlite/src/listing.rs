//! SQL for Harbor-style listings: the filters, sort keys and page of a
//! [`ListQuery`], over the columns each resource exposes.

use berth_meta::{ListQuery, Listed, Match};
use rusqlite::types::Value;

/// A column a listing may filter or sort on.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its SQL expression.
    pub sql: &'static str,
    /// Compared as a number (times, ids, flags) rather than as text.
    pub numeric: bool,
}

/// Maps a resource's listing fields to columns.
pub trait Columns: Copy {
    /// The column of this field.
    fn column(self) -> Column;
}

/// The SQL pieces of one listing.
pub struct Clauses {
    /// Conditions, joined with `AND`, to follow `WHERE`.
    pub conditions: String,
    /// To follow `ORDER BY`.
    pub order: String,
    /// Parameters of `conditions`, in order.
    pub params: Vec<Value>,
}

impl Clauses {
    /// Starts from the listing's fixed conditions (`1` for none) and their parameters,
    /// and adds the query's filters and sort keys; `id` is the tie-breaking column.
    pub fn new<F: Columns>(
        query: &ListQuery<F>,
        fixed: &str,
        params: Vec<Value>,
        id: &str,
    ) -> Self {
        let mut clauses = Clauses {
            conditions: fixed.to_owned(),
            order: String::new(),
            params,
        };
        for filter in &query.filters {
            clauses.add_filter(filter.field.column(), &filter.matching);
        }
        let mut keys: Vec<String> = query
            .sort
            .iter()
            .map(|k| {
                let direction = if k.descending { "DESC" } else { "ASC" };
                format!("{} {direction}", k.field.column().sql)
            })
            .collect();
        keys.push(format!("{id} ASC"));
        clauses.order = keys.join(", ");
        clauses
    }

    fn add_filter(&mut self, column: Column, matching: &Match) {
        let value = |v: &str| -> Value {
            match (column.numeric, v.parse::<i64>()) {
                (true, Ok(n)) => Value::Integer(n),
                _ => Value::Text(v.to_owned()),
            }
        };
        let sql = column.sql;
        match matching {
            Match::Exact(v) => {
                self.params.push(value(v));
                self.conditions += &format!(" AND {sql} = ?{}", self.params.len());
            }
            Match::Fuzzy(v) => {
                self.params.push(Value::Text(like_pattern(v)));
                self.conditions += &format!(" AND {sql} LIKE ?{} ESCAPE '\\'", self.params.len());
            }
            Match::Range(low, high) => {
                if let Some(low) = low {
                    self.params.push(value(low));
                    self.conditions += &format!(" AND {sql} >= ?{}", self.params.len());
                }
                if let Some(high) = high {
                    self.params.push(value(high));
                    self.conditions += &format!(" AND {sql} <= ?{}", self.params.len());
                }
            }
            Match::AnyOf(values) => {
                if values.is_empty() {
                    self.conditions += " AND 0";
                    return;
                }
                let mut slots = Vec::with_capacity(values.len());
                for v in values {
                    self.params.push(value(v));
                    slots.push(format!("?{}", self.params.len()));
                }
                self.conditions += &format!(" AND {sql} IN ({})", slots.join(", "));
            }
            Match::AllOf(values) => {
                for v in values {
                    self.params.push(value(v));
                    self.conditions += &format!(" AND {sql} = ?{}", self.params.len());
                }
            }
        }
    }

    /// `LIMIT … OFFSET …` for the query's page, clamped to what SQLite takes.
    pub fn page<F>(query: &ListQuery<F>) -> String {
        let clamp = |n: u64| n.min(i64::MAX as u64);
        format!(
            "LIMIT {} OFFSET {}",
            clamp(query.limit),
            clamp(query.offset)
        )
    }
}

/// Runs a listing: counts the rows `clauses` select from `from`, and reads the page's
/// `columns` with `row`.
pub fn list<T, F>(
    c: &rusqlite::Connection,
    from: &str,
    columns: &str,
    clauses: &Clauses,
    query: &ListQuery<F>,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Listed<T>> {
    let params = rusqlite::params_from_iter(&clauses.params);
    let total: u64 = c.query_row(
        &format!("SELECT count(*) FROM {from} WHERE {}", clauses.conditions),
        params.clone(),
        |r| r.get(0),
    )?;
    let items = c
        .prepare(&format!(
            "SELECT {columns} FROM {from} WHERE {} ORDER BY {} {}",
            clauses.conditions,
            clauses.order,
            Clauses::page(query)
        ))?
        .query_map(params, row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Listed { items, total })
}

/// A `LIKE` pattern matching text that contains `value` literally.
pub fn like_pattern(value: &str) -> String {
    let mut pattern = String::with_capacity(value.len() + 2);
    pattern.push('%');
    for ch in value.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_meta::{FieldFilter, SortKey};

    #[derive(Debug, Clone, Copy)]
    struct Name;
    impl Columns for Name {
        fn column(self) -> Column {
            Column {
                sql: "name",
                numeric: false,
            }
        }
    }

    #[test]
    fn filters_become_numbered_parameters_after_the_fixed_ones() {
        let query = ListQuery {
            filters: vec![
                FieldFilter {
                    field: Name,
                    matching: Match::Fuzzy("a_%".into()),
                },
                FieldFilter {
                    field: Name,
                    matching: Match::AnyOf(vec!["x".into(), "y".into()]),
                },
            ],
            sort: vec![SortKey {
                field: Name,
                descending: true,
            }],
            offset: 10,
            limit: 5,
        };
        let c = Clauses::new(&query, "owner = ?1", vec![Value::Integer(7)], "id");
        assert_eq!(
            c.conditions,
            "owner = ?1 AND name LIKE ?2 ESCAPE '\\' AND name IN (?3, ?4)"
        );
        assert_eq!(c.params[1], Value::Text("%a\\_\\%%".into()));
        assert_eq!(c.order, "name DESC, id ASC");
        assert_eq!(Clauses::page(&query), "LIMIT 5 OFFSET 10");
    }
}
