//! Secrets never leave Berth in clear: a server logging at `debug` is given passwords,
//! robot secrets, tokens, session cookies and wrong passwords on every login path, and
//! none of them may then be found in its log, its standard output, the audit log's API
//! or its database files.

mod support;

use std::path::Path;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use support::{Berth, client};

/// A secret nobody else would write: letters and digits only (so no encoding, JSON,
/// form or URL, changes it), and it passes the password policy.
fn canary(what: &str) -> String {
    format!("Canary{what}9{:016x}", rand::random::<u64>())
}

/// What the test handed the server, to be looked for afterwards.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    /// Remembers `secret`, and returns it.
    fn keep(&mut self, secret: impl Into<String>) -> String {
        let secret = secret.into();
        assert!(secret.len() >= 16, "too short to search for: {secret:?}");
        self.0.push(secret.clone());
        secret
    }

    /// Basic credentials as sent: the header's value is remembered too, since logging
    /// the header would show it rather than the password.
    fn basic(&mut self, name: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        self.keep(encoded.clone());
        format!("Basic {encoded}")
    }

    /// Fails naming each secret found in `text`, which came from `place`.
    fn assert_absent(&self, place: &str, text: &[u8]) {
        let found: Vec<&String> = self
            .0
            .iter()
            .filter(|s| text.windows(s.len()).any(|w| w == s.as_bytes()))
            .collect();
        assert!(
            found.is_empty(),
            "{place} holds secrets in clear: {found:?}"
        );
    }
}

/// A JSON request body.
trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }
}

/// Sends a request and returns its status, body and `Set-Cookie` values.
async fn send(request: RequestBuilder) -> (u16, Value, Vec<String>) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let body = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, body, cookies)
}

/// The value of cookie `name` among `Set-Cookie` values.
fn cookie(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
        .to_owned()
}

/// Sends `request` as written on a connection of its own; returns what came back
/// until the server closed it.
async fn raw(addr: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the server did not close the connection within 10 s")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// The bytes of a file, or nothing when it does not exist.
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_the_audit_log_or_the_database() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let mut secrets = Secrets::default();
    let admin_password = secrets.keep(canary("Admin"));
    let berth = Berth::start_keeping_stdout(
        &data,
        &[
            ("BERTH_AUTH__MODE", "secure"),
            ("BERTH_ADMIN_PASSWORD", &admin_password),
            ("BERTH_AUTH__HASH_MEMORY_KIB", "64"),
            ("BERTH_AUTH__HASH_ITERATIONS", "1"),
            ("BERTH_LOG__LEVEL", "debug"),
        ],
    );
    let url = |path: &str| format!("{}{path}", berth.url());
    let http = client();
    let admin = secrets.basic("admin", &admin_password);
    let as_admin = |method: Method, path: &str| {
        http.request(method, url(path))
            .header(AUTHORIZATION, admin.as_str())
    };

    // A user with a password, who then changes it (once with a wrong old password).
    let first = secrets.keep(canary("UserFirst"));
    let body = json!({"username": "alice", "email": "alice@example.com", "password": first});
    let (status, ..) = send(as_admin(Method::POST, "/api/v2.0/users").json_body(&body)).await;
    assert_eq!(status, 201);
    let alice = secrets.basic("alice", &first);
    let (status, me, _) = send(
        http.get(url("/api/v2.0/users/current"))
            .header(AUTHORIZATION, alice.as_str()),
    )
    .await;
    assert_eq!(status, 200);
    let password_path = format!("/api/v2.0/users/{}/password", me["user_id"]);
    let alice_password = secrets.keep(canary("UserSecond"));
    let wrong_old = secrets.keep(canary("WrongOld"));
    for (old, expected) in [(&wrong_old, 403), (&first, 200)] {
        let change = json!({"old_password": old, "new_password": alice_password});
        let (status, ..) = send(
            http.put(url(&password_path))
                .header(AUTHORIZATION, alice.as_str())
                .json_body(&change),
        )
        .await;
        assert_eq!(status, expected);
    }
    let alice = secrets.basic("alice", &alice_password);

    // A robot with a generated secret, then a chosen one.
    let (status, ..) = send(
        as_admin(Method::POST, "/api/v2.0/projects").json_body(&json!({"project_name": "team"})),
    )
    .await;
    assert_eq!(status, 201);
    let body = json!({
        "name": "ci", "level": "project", "duration": -1,
        "permissions": [{"kind": "project", "namespace": "team", "access": [
            {"resource": "repository", "action": "pull"},
            {"resource": "repository", "action": "push"}]}],
    });
    let (status, robot, _) =
        send(as_admin(Method::POST, "/api/v2.0/robots").json_body(&body)).await;
    assert_eq!(status, 201, "{robot}");
    let robot_name = robot["name"].as_str().unwrap().to_owned();
    secrets.keep(robot["secret"].as_str().unwrap());
    let robot_secret = secrets.keep(canary("Robot"));
    let (status, ..) = send(
        as_admin(Method::PATCH, &format!("/api/v2.0/robots/{}", robot["id"]))
            .json_body(&json!({"secret": robot_secret})),
    )
    .await;
    assert_eq!(status, 200);
    let robot = secrets.basic(&robot_name, &robot_secret);

    // Successful logins: Basic on /v2/, tokens (the Docker flow with a refresh token,
    // the OAuth2 password and refresh grants) used as bearers, a browser session.
    for auth in [&admin, &alice, &robot] {
        let (status, ..) = send(http.get(url("/v2/")).header(AUTHORIZATION, auth.as_str())).await;
        assert_eq!(status, 200);
    }
    let (status, token, _) = send(
        http.get(url(
            "/service/token?service=berth&scope=repository:team/app:pull,push&offline_token=true",
        ))
        .header(AUTHORIZATION, robot.as_str()),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let bearer = secrets.keep(token["token"].as_str().unwrap());
    let refresh = secrets.keep(token["refresh_token"].as_str().unwrap());
    let (status, ..) = send(
        http.post(url("/v2/team/app/blobs/uploads/"))
            .bearer_auth(&bearer),
    )
    .await;
    assert_eq!(status, 202);
    let (status, oauth, _) = send(http.post(url("/service/token")).form(&[
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", &alice_password),
        ("access_type", "offline"),
        ("service", "berth"),
        ("scope", "repository:team/app:pull"),
    ]))
    .await;
    assert_eq!(status, 200, "{oauth}");
    secrets.keep(oauth["access_token"].as_str().unwrap());
    secrets.keep(oauth["refresh_token"].as_str().unwrap());
    let (status, renewed, _) = send(http.post(url("/service/token")).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "berth"),
        ("scope", "repository:team/app:pull"),
    ]))
    .await;
    assert_eq!(status, 200, "{renewed}");
    let renewed = secrets.keep(renewed["access_token"].as_str().unwrap());
    let (status, ..) = send(
        http.get(url("/v2/team/app/tags/list"))
            .bearer_auth(&renewed),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, cookies) = send(
        http.post(url("/c/login"))
            .form(&[("principal", "alice"), ("password", &alice_password)]),
    )
    .await;
    assert_eq!(status, 200);
    let session = secrets.keep(cookie(&cookies, "sid"));
    let csrf = secrets.keep(cookie(&cookies, "__csrf"));
    let (status, ..) = send(
        http.get(url("/api/v2.0/users/current"))
            .header(COOKIE, format!("sid={session}; __csrf={csrf}")),
    )
    .await;
    assert_eq!(status, 200);
    send(
        http.get(url("/c/log_out"))
            .header(COOKIE, format!("sid={session}")),
    )
    .await;

    // Failed logins with wrong passwords on every path (fewer than the 10 per minute
    // after which the address is throttled), and forged tokens.
    let wrong = |secrets: &mut Secrets, name: &str| {
        let password = secrets.keep(canary("Wrong"));
        let header = secrets.basic(name, &password);
        (password, header)
    };
    for name in ["admin", "nobody", robot_name.as_str()] {
        let (_, header) = wrong(&mut secrets, name);
        let (status, ..) = send(http.get(url("/v2/")).header(AUTHORIZATION, header)).await;
        assert_eq!(status, 401);
    }
    let (_, header) = wrong(&mut secrets, "admin");
    let (status, ..) = send(
        http.get(url(
            "/service/token?service=berth&scope=repository:team/app:pull",
        ))
        .header(AUTHORIZATION, header),
    )
    .await;
    assert_eq!(status, 401);
    let (password, _) = wrong(&mut secrets, "alice");
    let (status, ..) = send(http.post(url("/service/token")).form(&[
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", &password),
    ]))
    .await;
    assert_eq!(status, 401);
    let (_, header) = wrong(&mut secrets, "alice");
    let (status, ..) = send(
        http.get(url("/api/v2.0/users/current"))
            .header(AUTHORIZATION, header),
    )
    .await;
    assert_eq!(status, 401);
    let (password, _) = wrong(&mut secrets, "alice");
    let (status, ..) = send(
        http.post(url("/c/login"))
            .form(&[("principal", "alice"), ("password", &password)]),
    )
    .await;
    assert_eq!(status, 401);
    let forged = secrets.keep(canary("Token"));
    let (status, ..) = send(http.get(url("/v2/")).bearer_auth(&forged)).await;
    assert_eq!(status, 401);
    let forged = secrets.keep(canary("Refresh"));
    let (status, ..) = send(
        http.post(url("/service/token"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &forged)]),
    )
    .await;
    assert_eq!(status, 401);
    let forged = secrets.keep(canary("Session"));
    let (status, ..) = send(
        http.get(url("/api/v2.0/users/current"))
            .header(COOKIE, format!("sid={forged}")),
    )
    .await;
    assert_eq!(status, 401);

    // Secrets where no client should put them: a query, the target's or the Host's user
    // information, a refused or malformed request head.
    let in_query = secrets.keep(canary("Query"));
    let (status, ..) = send(http.get(url(&format!("/v2/?password={in_query}")))).await;
    assert_eq!(status, 401);
    let userinfo = secrets.keep(canary("UserInfo"));
    let head_password = secrets.keep(canary("Head"));
    let authorization = secrets.basic("alice", &head_password);
    for head in [
        format!(
            "Host: {0}\r\nHost: {0}\r\nAuthorization: {authorization}",
            berth.addr
        ),
        format!("Host: alice:{userinfo}@{}", berth.addr),
        format!(
            "Host: {}\r\nAuthorization: {authorization}\r\nnot a header",
            berth.addr
        ),
    ] {
        let request = format!("GET /v2/ HTTP/1.1\r\n{head}\r\nConnection: close\r\n\r\n");
        let response = raw(&berth.addr, &request).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    }
    let target = format!(
        "GET http://alice:{userinfo}@{0}/v2/ HTTP/1.1\r\nHost: {0}",
        berth.addr
    );
    let response = raw(
        &berth.addr,
        &format!("{target}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 "), "{response}");

    // What the management API shows: the audit log, users and robots.
    let mut shown = Vec::new();
    for path in [
        "/api/v2.0/audit-logs?page_size=100",
        "/api/v2.0/auditlog-exts?page_size=100",
        "/api/v2.0/projects/team/logs?page_size=100",
        "/api/v2.0/users?page_size=100",
        "/api/v2.0/robots?page_size=100",
    ] {
        let (status, body, _) = send(as_admin(Method::GET, path)).await;
        assert_eq!(status, 200, "{path}");
        shown.push(body);
    }
    let shown = Value::Array(shown).to_string();
    assert!(
        shown.contains("alice") && shown.contains(&robot_name),
        "{shown}"
    );
    secrets.assert_absent("the management API's answers", shown.as_bytes());

    let database = |suffix: &str| data.join(format!("berth.db{suffix}"));
    let files = ["", "-wal", "-shm"];
    for suffix in files {
        secrets.assert_absent(
            &format!("berth.db{suffix} (running)"),
            &read(&database(suffix)),
        );
    }
    assert!(berth.terminate(), "berth did not stop cleanly");
    for suffix in files {
        secrets.assert_absent(
            &format!("berth.db{suffix} (stopped)"),
            &read(&database(suffix)),
        );
    }
    let stored: Vec<u8> = files.iter().flat_map(|s| read(&database(s))).collect();
    assert!(
        stored.windows(5).any(|w| w == b"alice"),
        "the database files were not where the test looked"
    );

    let log = read(&data.with_extension("log"));
    let log_text = String::from_utf8_lossy(&log);
    for expected in ["DEBUG", "served", "/service/token", "/c/login"] {
        assert!(
            log_text.contains(expected),
            "no {expected:?} in the log:\n{log_text}"
        );
    }
    secrets.assert_absent("the log", &log);
    secrets.assert_absent("standard output", &read(&data.with_extension("out")));
}
