//! Harbor's paging: `page` and `page_size` in, `X-Total-Count` and `Link` out.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde::Serialize;

use super::error::HarborError;
use super::params::Params;

/// The largest page Harbor serves.
const MAX_PAGE_SIZE: i64 = 100;

/// The page a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub number: u64,
    /// Rows per page.
    pub size: u64,
}

impl Page {
    /// Reads `page` (default 1) and `page_size` (default 10, at most 100).
    pub fn from_params(params: &Params) -> Result<Self, HarborError> {
        let number = params.integer("page")?.unwrap_or(1);
        let size = params.integer("page_size")?.unwrap_or(10);
        if number < 1 {
            return Err(HarborError::bad_request("page must be at least 1"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(HarborError::bad_request(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(Page {
            number: number as u64,
            size: size as u64,
        })
    }

    /// Rows skipped before this page.
    pub fn offset(&self) -> u64 {
        (self.number - 1).saturating_mul(self.size)
    }
}

/// A JSON array answer with `X-Total-Count` and, when there are other pages, a
/// `Link` header to them (keeping the other query parameters).
pub fn paged<T: Serialize>(
    items: &[T],
    total: u64,
    page: Page,
    path: &str,
    params: &Params,
) -> Response {
    let mut response = super::json(items).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    let mut links = Vec::new();
    let url = |number: u64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.pairs() {
            if k != "page" && k != "page_size" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("page", &number.to_string());
        query.append_pair("page_size", &page.size.to_string());
        format!("<{path}?{}>", query.finish())
    };
    if page.number > 1 {
        links.push(format!("{}; rel=\"prev\"", url(page.number - 1)));
    }
    if page.number.saturating_mul(page.size) < total {
        links.push(format!("{}; rel=\"next\"", url(page.number + 1)));
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(" , "))
    {
        headers.insert(header::LINK, v);
    }
    response
}
