//! Calling Harbor's API in tests: Basic credentials, and every answer checked
//! against the swagger.

use base64::Engine as _;

use super::swagger::Swagger;
use super::*;

/// The administrator of a secure test registry.
pub const ADMIN: (&str, &str) = ("admin", berth_testkit::ADMIN_PASSWORD);
/// The password of the users tests create.
pub const PASSWORD: &str = "Passw0rdPassw0rd";

/// An `Authorization: Basic` value.
pub fn basic((user, password): (&str, &str)) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Sends a Harbor API request as `who` (or anonymously) and checks a 2xx answer and
/// every error body against the swagger.
pub async fn call(
    reg: &TestRegistry,
    who: Option<(&str, &str)>,
    method: Method,
    uri: &str,
    template: &str,
    body: Option<Value>,
) -> TestResponse {
    let auth = who.map(basic);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = reg
        .send(method.clone(), &format!("/api/v2.0{uri}"), &headers, body)
        .await;
    let swagger = Swagger::load();
    let verb = method.as_str().to_ascii_lowercase();
    if r.status.is_client_error() || r.status.is_server_error() {
        let errors = r.json()["errors"].clone();
        assert!(
            errors[0]["code"].is_string() && errors[0]["message"].is_string(),
            "{method} {uri}: error body {:?}",
            r.body
        );
    } else if !r.body.is_empty() {
        swagger.check(template, &verb, r.status.as_u16(), &r.json(), &r.headers);
    }
    r
}

/// Creates a user as the administrator; returns its id.
pub async fn create_user(reg: &TestRegistry, name: &str) -> i64 {
    let r = call(
        reg,
        Some(ADMIN),
        Method::POST,
        "/users",
        "/users",
        Some(json!({
            "username": name, "email": format!("{name}@example.com"), "realname": name,
            "password": PASSWORD, "comment": "test",
            "sysadmin_flag": true, "user_id": 999, "creation_time": "2001-01-01T00:00:00Z",
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    location_id(&r)
}

/// The id a `201`'s `Location` ends with.
pub fn location_id(r: &TestResponse) -> i64 {
    r.header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
