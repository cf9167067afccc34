//! Filtered, sorted, paged listings, as Harbor's `q`, `sort`, `page` and `page_size`
//! query parameters ask for them. Each resource names its own field type, so only the
//! fields a listing exposes can be filtered or sorted on.

/// How one field is matched. Values are text: integers and times (Unix milliseconds) as
/// decimal digits, booleans as `1` or `0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Equal to the value.
    Exact(String),
    /// Contains the value, ignoring case (Harbor's `k=~v`); `%`, `_` and `\` in it are
    /// plain characters.
    Fuzzy(String),
    /// Within the bounds, inclusive (Harbor's `k=[a~b]`); either may be open.
    Range(Option<String>, Option<String>),
    /// Equal to one of the values (Harbor's `k={a b}`).
    AnyOf(Vec<String>),
    /// Equal to every one of the values (Harbor's `k=(a b)`): of a field that holds
    /// several values, such as an artifact's labels, it holds each of them.
    AllOf(Vec<String>),
}

/// One condition of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFilter<F> {
    /// The field.
    pub field: F,
    /// How it must match.
    pub matching: Match,
}

/// One sort key of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey<F> {
    /// The field.
    pub field: F,
    /// Largest first.
    pub descending: bool,
}

/// Which rows of a listing are wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery<F> {
    /// Every condition must hold.
    pub filters: Vec<FieldFilter<F>>,
    /// Sort keys, most significant first; ties and an empty list sort by ascending id.
    pub sort: Vec<SortKey<F>>,
    /// Rows skipped.
    pub offset: u64,
    /// Rows returned at most.
    pub limit: u64,
}

impl<F> Default for ListQuery<F> {
    fn default() -> Self {
        ListQuery {
            filters: Vec::new(),
            sort: Vec::new(),
            offset: 0,
            limit: u64::MAX,
        }
    }
}

/// A page of a listing and the number of rows in the whole listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The rows of the page.
    pub items: Vec<T>,
    /// Rows matching the filters, on every page.
    pub total: u64,
}

impl<T> Listed<T> {
    /// The same page with each row completed by `f` (the first failure ends it).
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Listed<U>, E> {
        Ok(Listed {
            items: self.items.into_iter().map(f).collect::<Result<_, E>>()?,
            total: self.total,
        })
    }
}
