//! SQL for Harbor-style listings: the filters, sort keys and page of a
//! [`ListQuery`], over the columns each resource exposes, with the SQLite adapter's
//! semantics (fuzzy matches ignore ASCII case; a number never equals text).

use berth_meta::{ListQuery, Listed, Match, MetaError};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, PgPool, Row};

use crate::db_err;

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

/// A parameter of a listing's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A `BIGINT`.
    Int(i64),
    /// A `TEXT`.
    Text(String),
    /// A `BIGINT[]`.
    Ints(Vec<i64>),
}

/// `values` as the arguments of a statement, in order.
pub fn arguments(values: &[Value]) -> Result<PgArguments, MetaError> {
    let mut args = PgArguments::default();
    for value in values {
        match value {
            Value::Int(n) => args.add(*n),
            Value::Text(t) => args.add(t.as_str()),
            Value::Ints(ns) => args.add(ns.as_slice()),
        }
        .map_err(|e| MetaError(e.to_string()))?;
    }
    Ok(args)
}

/// The SQL pieces of one listing.
pub struct Clauses {
    /// Conditions, joined with `AND`, to follow `WHERE`.
    pub conditions: String,
    /// To follow `ORDER BY`.
    pub order: String,
    /// Parameters of `conditions`, in order (`$1`, `$2`, …).
    pub params: Vec<Value>,
}

impl Clauses {
    /// Starts from the listing's fixed conditions (`TRUE` for none) and their
    /// parameters, and adds the query's filters and sort keys; `id` is the tie-breaking
    /// column.
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

    /// Adds a parameter; returns its placeholder.
    fn slot(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// The placeholder of `v` as `column` compares it, or `None` for text compared with
    /// a number: an integer sorts before any text, so it equals none and is below all.
    fn operand(&mut self, column: Column, v: &str) -> Option<String> {
        match (column.numeric, v.parse::<i64>()) {
            (false, _) => Some(self.slot(Value::Text(v.to_owned()))),
            (true, Ok(n)) => Some(self.slot(Value::Int(n))),
            (true, Err(_)) => None,
        }
    }

    fn add_filter(&mut self, column: Column, matching: &Match) {
        let sql = column.sql;
        let condition = match matching {
            Match::Exact(v) => match self.operand(column, v) {
                Some(slot) => format!("{sql} = {slot}"),
                None => "FALSE".into(),
            },
            Match::Fuzzy(v) => {
                let slot = self.slot(Value::Text(v.to_owned()));
                contains(&format!("({sql})::text"), &slot)
            }
            Match::Range(low, high) => {
                let mut bounds = Vec::new();
                if let Some(low) = low {
                    bounds.push(match self.operand(column, low) {
                        Some(slot) => format!("{sql} >= {slot}"),
                        None => "FALSE".into(),
                    });
                }
                if let Some(slot) = high.as_ref().and_then(|h| self.operand(column, h)) {
                    bounds.push(format!("{sql} <= {slot}"));
                }
                if bounds.is_empty() {
                    return;
                }
                bounds.join(" AND ")
            }
            Match::AnyOf(values) => {
                let slots: Vec<String> = values
                    .iter()
                    .filter_map(|v| self.operand(column, v))
                    .collect();
                if slots.is_empty() {
                    "FALSE".into()
                } else {
                    format!("{sql} IN ({})", slots.join(", "))
                }
            }
            Match::AllOf(values) => {
                let equalities: Vec<String> = values
                    .iter()
                    .map(|v| match self.operand(column, v) {
                        Some(slot) => format!("{sql} = {slot}"),
                        None => "FALSE".into(),
                    })
                    .collect();
                if equalities.is_empty() {
                    return;
                }
                equalities.join(" AND ")
            }
        };
        self.conditions += " AND ";
        self.conditions += &condition;
    }
}

/// The condition that text `expr` contains the text `slot`, ASCII case ignored (as
/// SQLite's `LIKE` ignores it).
pub fn contains(expr: &str, slot: &str) -> String {
    format!("strpos(lower(({expr}) COLLATE \"C\"), lower({slot} COLLATE \"C\")) > 0")
}

/// Runs a listing: reads the page's `columns` from `from` with `row`, and the number of
/// rows `clauses` select, in one statement when the page is not empty.
pub async fn list<T, F>(
    pool: &PgPool,
    from: &str,
    columns: &str,
    clauses: &Clauses,
    query: &ListQuery<F>,
    row: impl FnMut(&PgRow) -> Result<T, MetaError>,
) -> Result<Listed<T>, MetaError> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let n = clauses.params.len();
    let sql = format!(
        "SELECT {columns}, count(*) OVER () FROM {from} WHERE {} ORDER BY {}
         LIMIT ${} OFFSET ${}",
        clauses.conditions,
        clauses.order,
        n + 1,
        n + 2
    );
    let mut args = arguments(&clauses.params)?;
    for bound in [clamp(query.limit), clamp(query.offset)] {
        args.add(bound).map_err(|e| MetaError(e.to_string()))?;
    }
    let rows = sqlx::query_with(&sql, args)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    let total = match rows.first() {
        Some(first) => first.try_get::<i64, _>(first.len() - 1).map_err(db_err)?,
        None if query.offset == 0 && query.limit > 0 => 0,
        // A page past the end, or an empty one: the rows are counted on their own.
        None => sqlx::query_scalar_with(
            &format!("SELECT count(*) FROM {from} WHERE {}", clauses.conditions),
            arguments(&clauses.params)?,
        )
        .fetch_one(pool)
        .await
        .map_err(db_err)?,
    };
    Ok(Listed {
        items: rows.iter().map(row).collect::<Result<_, _>>()?,
        total: total as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_meta::{FieldFilter, SortKey};

    #[derive(Debug, Clone, Copy)]
    enum Field {
        Name,
        Time,
    }
    impl Columns for Field {
        fn column(self) -> Column {
            match self {
                Field::Name => Column {
                    sql: "name",
                    numeric: false,
                },
                Field::Time => Column {
                    sql: "created_at",
                    numeric: true,
                },
            }
        }
    }

    fn filter(field: Field, matching: Match) -> FieldFilter<Field> {
        FieldFilter { field, matching }
    }

    #[test]
    fn filters_become_numbered_parameters_after_the_fixed_ones() {
        let query = ListQuery {
            filters: vec![
                filter(Field::Name, Match::Fuzzy("a_%".into())),
                filter(Field::Name, Match::AnyOf(vec!["x".into(), "y".into()])),
                filter(Field::Time, Match::Range(Some("5".into()), None)),
            ],
            sort: vec![SortKey {
                field: Field::Name,
                descending: true,
            }],
            offset: 10,
            limit: 5,
        };
        let c = Clauses::new(&query, "owner = $1", vec![Value::Int(7)], "id");
        assert_eq!(
            c.conditions,
            "owner = $1 AND strpos(lower(((name)::text) COLLATE \"C\"), lower($2 COLLATE \"C\")) \
             > 0 AND name IN ($3, $4) AND created_at >= $5"
        );
        assert_eq!(c.params[1], Value::Text("a_%".into()));
        assert_eq!(c.params[4], Value::Int(5));
        assert_eq!(c.order, "name DESC, id ASC");
    }

    #[test]
    fn text_compared_with_a_number_sorts_after_every_number() {
        let conditions = |matching| {
            let query = ListQuery {
                filters: vec![filter(Field::Time, matching)],
                ..ListQuery::default()
            };
            let c = Clauses::new(&query, "TRUE", Vec::new(), "id");
            (c.conditions, c.params)
        };
        assert_eq!(
            conditions(Match::Exact("x".into())),
            ("TRUE AND FALSE".into(), vec![])
        );
        assert_eq!(
            conditions(Match::Range(None, Some("x".into()))),
            ("TRUE".into(), vec![])
        );
        assert_eq!(
            conditions(Match::Range(Some("x".into()), Some("3".into()))),
            (
                "TRUE AND FALSE AND created_at <= $1".into(),
                vec![Value::Int(3)]
            )
        );
        assert_eq!(
            conditions(Match::AnyOf(vec!["x".into(), "4".into()])),
            ("TRUE AND created_at IN ($1)".into(), vec![Value::Int(4)])
        );
    }
}
