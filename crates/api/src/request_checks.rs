//! Checks on the request itself, before any handler runs, in one middleware: its size
//! (`request_limits`), that it names exactly one host, and percent-encoded unreserved
//! characters in the path are decoded.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::uri::{Authority, PathAndQuery};
use http::{StatusCode, Uri, Version, header};

/// Middleware: `414`/`431` for an oversized target or header section, `400` for a
/// request without a host or with two (RFC 9112 §3.2); then the path is normalized so
/// that `/v2/library/x/manifests/%76%31` names tag `v1`.
///
/// Axum runs this after routing, which only needs the `/v2` prefix; the normalized path
/// is what `v2::dispatch` parses.
pub async fn check(mut req: Request, next: Next) -> Response {
    if let Some(refused) = crate::request_limits::refusal(&req) {
        return refused;
    }
    if let Err(why) = check_host(&req) {
        tracing::debug!(reason = why, "request refused");
        return StatusCode::BAD_REQUEST.into_response();
    }
    if let Some(uri) = normalized_uri(req.uri()) {
        *req.uri_mut() = uri;
    }
    next.run(req).await
}

/// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without `Host`, and to
/// any request with more than one `Host` or an invalid one. HTTP/2 and later carry the
/// host in the `:authority` pseudo-header, which hyper puts in the URI; a `Host` sent
/// beside it must name the same authority (RFC 9113 §8.3.1). HTTP/1.0 predates `Host`.
fn check_host(req: &Request) -> Result<(), &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if let Some(host) = host {
        // `Host = uri-host [ ":" port ]`: an authority without user information; it may
        // be empty when the target URI has no authority.
        let valid = host.is_empty()
            || plain_host(host.as_bytes())
            || (!host.as_bytes().contains(&b'@') && Authority::try_from(host.as_bytes()).is_ok());
        if !valid {
            return Err("invalid Host header");
        }
    }
    let authority = req.uri().authority();
    match req.version() {
        Version::HTTP_09 | Version::HTTP_10 => Ok(()),
        Version::HTTP_11 if host.is_none() => Err("HTTP/1.1 request without Host"),
        Version::HTTP_11 => Ok(()),
        _ => match (authority, host) {
            (None, None) => Err("request without :authority or Host"),
            (Some(a), Some(h)) if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) => {
                Err("Host differs from :authority")
            }
            _ => Ok(()),
        },
    }
}

/// A host name or IPv4 address with an optional port: valid without parsing it (the
/// common case; anything else is parsed as an authority).
fn plain_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().position(|&b| b == b':') {
        Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
        None => (host, None),
    };
    name.first().is_some_and(u8::is_ascii_alphanumeric)
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

/// The URI with percent-encoded unreserved characters in its path decoded (RFC 3986
/// §6.2.2.2: such URIs are equivalent), or `None` when there is nothing to decode.
///
/// Only unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded. Every other escape,
/// `%2F` above all, stays as it is, so an encoded slash never becomes a path separator:
/// it remains a character of the segment, which no repository name, tag or digest
/// allows.
fn normalized_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let decoded = decode_unreserved(path)?;
    let path_and_query = match uri.query() {
        Some(query) => format!("{decoded}?{query}"),
        None => decoded,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// `path` with each `%XX` that encodes an unreserved character replaced by it; `None` when
/// there is none.
fn decode_unreserved(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(c) = bytes.get(i + 1..i + 3).and_then(hex_byte)
            && is_unreserved(c)
        {
            out.push(char::from(c));
            changed = true;
            i += 3;
            continue;
        }
        // The path of a parsed URI is ASCII, so each byte is one character.
        out.push(char::from(bytes[i]));
        i += 1;
    }
    changed.then_some(out)
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_hosts_pass_without_parsing_and_others_are_parsed() {
        for host in ["registry.example", "127.0.0.1:5000", "a-b.c:1"] {
            assert!(super::plain_host(host.as_bytes()), "{host}");
        }
        for host in [
            "",
            ":5000",
            "x:",
            "x:abc",
            "x:1:2",
            "[::1]:5000",
            "a@b",
            "-x",
        ] {
            assert!(!super::plain_host(host.as_bytes()), "{host}");
        }
    }

    use super::*;

    #[test]
    fn only_unreserved_escapes_are_decoded() {
        let check = |path: &str, expected: Option<&str>| {
            assert_eq!(decode_unreserved(path).as_deref(), expected, "{path}");
        };
        check(
            "/v2/library/x/manifests/%76%31",
            Some("/v2/library/x/manifests/v1"),
        );
        check("/v2/%4C%69b/x", Some("/v2/Lib/x"));
        check("/v2/a%2db%2Ec%5fd%7Ee", Some("/v2/a-b.c_d~e"));
        check("/v2/a%2e%2e/b", Some("/v2/a../b"));
        // Reserved, non-ASCII, malformed and incomplete escapes stay.
        check("/v2/p%2Fx/blobs", None);
        check("/v2/p%2fx%25%20%3A%40", None);
        check("/v2/%C3%A9", None);
        check("/v2/%zz/%4", None);
        check("/v2/%", None);
        check("/v2/plain", None);
        check("/v2/%2F%76", Some("/v2/%2Fv"));
        check("/v2/%2576", None);
    }

    #[test]
    fn the_query_and_authority_are_kept() {
        let uri: Uri = "http://berth.test:5000/v2/x/tags/%6Cist?n=%31&last=%76"
            .parse()
            .unwrap();
        let normalized = normalized_uri(&uri).unwrap();
        assert_eq!(
            normalized.to_string(),
            "http://berth.test:5000/v2/x/tags/list?n=%31&last=%76"
        );
        assert_eq!(normalized_uri(&"/v2/x".parse().unwrap()), None);
    }
}
