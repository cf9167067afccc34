//! Reading credentials from `Authorization` and sending the challenge that asks for them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use berth_app::identity::Credentials;
use http::{HeaderMap, header};

use crate::Services;

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedCredentials;

/// The credentials in `Authorization`: Basic or Bearer; none without the header.
pub fn credentials(headers: &HeaderMap) -> Result<Credentials<'_>, MalformedCredentials> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Credentials::None);
    };
    let value = value.to_str().map_err(|_| MalformedCredentials)?;
    let (scheme, rest) = value.split_once(' ').ok_or(MalformedCredentials)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| MalformedCredentials)?;
        let decoded = String::from_utf8(decoded).map_err(|_| MalformedCredentials)?;
        let (name, password) = decoded.split_once(':').ok_or(MalformedCredentials)?;
        return Ok(Credentials::Basic {
            name: name.to_owned(),
            password: password.to_owned(),
        });
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Credentials::Bearer(rest));
    }
    Err(MalformedCredentials)
}

/// The `WWW-Authenticate` value asking for a token from this registry's realm, for
/// `scope` when one applies, with an `error` when a token was refused.
pub fn challenge(
    services: &Services,
    headers: &HeaderMap,
    uri: &http::Uri,
    scope: Option<&str>,
    error: Option<&str>,
) -> String {
    let mut value = format!(
        "Bearer realm=\"{}/service/token\",service=\"{}\"",
        external_url(services, headers, uri),
        services.identity.access.tokens().service()
    );
    if let Some(scope) = scope {
        value += &format!(",scope=\"{scope}\"");
    }
    if let Some(error) = error {
        value += &format!(",error=\"{error}\"");
    }
    value
}

/// The URL clients reach Berth at: configured, or this request's scheme and host.
pub fn external_url(services: &Services, headers: &HeaderMap, uri: &http::Uri) -> String {
    if let Some(url) = &services.external_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    // The host was checked by `request_checks`; quotes could still break the header.
    let host: String = host.chars().filter(|c| *c != '"' && *c != '\\').collect();
    format!("{}://{host}", services.scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn basic_and_bearer_are_read_and_anything_else_refused() {
        assert_eq!(credentials(&HeaderMap::new()), Ok(Credentials::None));
        assert_eq!(
            credentials(&with("Basic YWxpY2U6cGE6c3M=")),
            Ok(Credentials::Basic {
                name: "alice".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            credentials(&with("bearer abc.def.ghi")),
            Ok(Credentials::Bearer("abc.def.ghi"))
        );
        for bad in [
            "Basic !!!",
            "Basic YWxpY2U=",
            "Digest x",
            "Bearer",
            "Bearer  ",
            "Basic",
        ] {
            assert_eq!(credentials(&with(bad)), Err(MalformedCredentials), "{bad}");
        }
    }
}
