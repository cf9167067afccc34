//! The offline commands (`berth admin`, `berth user`, `berth project`, `berth robot`,
//! `berth gc`) against a data directory, alone and beside a running server.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{Berth, free_port};

const ADMIN_PASSWORD: &str = "Adm1nPassword";

/// The settings every process of a test shares: cheap hashing, a known administrator.
const ENV: &[(&str, &str)] = &[
    ("BERTH_AUTH__MODE", "secure"),
    ("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ("BERTH_AUTH__HASH_MEMORY_KIB", "64"),
    ("BERTH_AUTH__HASH_ITERATIONS", "1"),
];

fn secure(data: &Path) -> Berth {
    Berth::start_with(data, free_port(), ENV)
}

/// Runs `berth <args> --data-dir <data>`, with `stdin` on its standard input.
fn berth(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(ENV.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning berth");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // A command that refuses its arguments exits before reading its input.
        if let Err(e) = input.write_all(text.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; returns its standard output.
fn ok(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = berth(data, args, stdin);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its standard error.
fn refused(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = berth(data, args, stdin);
    assert!(!out.status.success(), "berth {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// The status of `GET /api/v2.0/users/current` with these credentials.
async fn login(berth: &Berth, user: &str, password: &str) -> u16 {
    support::client()
        .get(format!("{}/api/v2.0/users/current", berth.url()))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn added_users_log_in_with_their_given_or_generated_password() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let given = ok(
        &data,
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--realname",
            "Alice A.",
            "--password",
            "Al1cePassword",
        ],
        None,
    );
    assert_eq!(given, "", "a given password is not printed back");
    let generated = ok(&data, &["user", "add", "bob", "--admin"], None);
    let bob_password = generated.trim();
    assert_eq!(generated.lines().count(), 1, "{generated}");
    assert!(bob_password.len() >= 16, "{generated}");

    let list = ok(&data, &["user", "list"], None);
    let lines: Vec<_> = list.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("USERNAME") && lines[0].contains("ADMIN"),
        "{list}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cells| cells.get(1) == Some(&name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
    };
    assert_eq!(row("admin")[2], "yes");
    assert_eq!(row("alice")[2..4], ["alice@example.com", "no"]);
    assert_eq!(row("bob")[2], "yes");

    let berth = secure(&data);
    assert_eq!(login(&berth, "alice", "Al1cePassword").await, 200);
    assert_eq!(login(&berth, "bob", bob_password).await, 200);
    assert_eq!(login(&berth, "alice", "Wr0ngPassword").await, 401);
    let me = support::client()
        .get(format!("{}/api/v2.0/users/current", berth.url()))
        .basic_auth("bob", Some(bob_password))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let me: serde_json::Value = serde_json::from_slice(&me).unwrap();
    assert_eq!(me["username"], "bob");
    assert_eq!(me["sysadmin_flag"], true);

    // A running server does not stop the commands; the name is taken now.
    let taken = refused(
        &data,
        &["user", "add", "alice", "--password", "Al1cePassword"],
        None,
    );
    assert!(taken.to_lowercase().contains("alice"), "{taken}");
}

#[tokio::test]
async fn a_password_reset_while_serving_takes_effect_at_once_for_the_new_password() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = secure(&data);
    assert_eq!(login(&berth, "admin", ADMIN_PASSWORD).await, 200);

    let out = ok(
        &data,
        &["admin", "reset-password", "--password-stdin"],
        Some("N3wPassword\n"),
    );
    assert_eq!(out, "");
    assert_eq!(login(&berth, "admin", "N3wPassword").await, 200);

    // The server remembers verified credentials for 10 s: after a restart the old
    // password is refused at once.
    drop(berth);
    let berth = secure(&data);
    assert_eq!(login(&berth, "admin", ADMIN_PASSWORD).await, 401);
    assert_eq!(login(&berth, "admin", "N3wPassword").await, 200);

    // Without a password one is generated, printed once, alone.
    let generated = ok(&data, &["admin", "reset-password", "--user", "admin"], None);
    assert_eq!(generated.lines().count(), 1, "{generated}");
    assert_eq!(login(&berth, "admin", generated.trim()).await, 200);

    let unknown = refused(
        &data,
        &["admin", "reset-password", "--user", "nobody"],
        None,
    );
    assert!(unknown.contains("nobody"), "{unknown}");
}

#[test]
fn projects_are_created_with_their_visibility_and_owner_and_listed() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    ok(
        &data,
        &["user", "add", "carol", "--password", "Car0lPassword"],
        None,
    );
    ok(
        &data,
        &["project", "create", "web", "--public", "--owner", "carol"],
        None,
    );
    ok(&data, &["project", "create", "internal"], None);

    let list = ok(&data, &["project", "list"], None);
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "NAME",
            "PUBLIC",
            "OWNER",
            "REPOSITORIES",
            "CREATED",
            "(UTC)"
        ],
        "{list}"
    );
    let row = |name: &str| {
        rows.iter()
            .find(|cells| cells[1] == name)
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
    };
    assert_eq!(row("library")[2], "yes");
    assert_eq!(row("web")[2..5], ["yes", "carol", "0"]);
    // No owner: the row goes from visibility straight to the repository count.
    assert_eq!(row("internal")[2..4], ["no", "0"]);

    let taken = refused(&data, &["project", "create", "web"], None);
    assert!(taken.contains("web"), "{taken}");
    let bad = refused(&data, &["project", "create", "Not Valid"], None);
    assert!(bad.contains("lower-case"), "{bad}");
    let no_owner = refused(
        &data,
        &["project", "create", "x", "--owner", "nobody"],
        None,
    );
    assert!(no_owner.contains("nobody"), "{no_owner}");
}

#[test]
fn weak_passwords_are_refused_with_the_policy() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let policy = "at least one upper-case letter, one lower-case letter and one digit";
    let weak = refused(
        &data,
        &["user", "add", "dave", "--password", "password"],
        None,
    );
    assert!(weak.contains(policy), "{weak}");
    let weak = refused(
        &data,
        &["admin", "reset-password", "--password-stdin"],
        Some("Sh0rt\n"),
    );
    assert!(weak.contains(policy), "{weak}");
    let empty = refused(
        &data,
        &["admin", "reset-password", "--password-stdin"],
        Some(""),
    );
    assert!(empty.contains("no password"), "{empty}");
    let both = refused(
        &data,
        &[
            "admin",
            "reset-password",
            "--password",
            "Str0ngPassword",
            "--password-stdin",
        ],
        Some("Str0ngPassword"),
    );
    assert!(both.contains("cannot be used with"), "{both}");
    assert!(!ok(&data, &["user", "list"], None).contains("dave"));
}

/// The status of `method path` on the registry with Basic credentials.
async fn registry(berth: &Berth, method: reqwest::Method, path: &str, auth: (&str, &str)) -> u16 {
    support::client()
        .request(method, format!("{}{path}", berth.url()))
        .basic_auth(auth.0, Some(auth.1))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn robots_created_offline_push_where_their_permissions_say() {
    use reqwest::Method;
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    for project in ["team", "other"] {
        ok(&data, &["project", "create", project], None);
    }
    // Created beside a running server, which sees them at once.
    let berth = secure(&data);
    let created = ok(
        &data,
        &[
            "robot",
            "create",
            "ci",
            "--project",
            "team",
            "--permission",
            "repository:pull",
            "--permission",
            "repository:push",
            "--never-expires",
            "--description",
            "pushes from CI",
        ],
        None,
    );
    let lines: Vec<&str> = created.lines().collect();
    let [name, secret] = lines[..] else {
        panic!("not a name and a secret: {created:?}")
    };
    assert_eq!(name, "robot$team+ci");
    assert!(secret.len() >= 16, "{created}");
    let ops = ok(
        &data,
        &[
            "robot",
            "create",
            "ops",
            "--project-permission",
            "*:repository:pull",
            "--project-permission",
            "other:repository:push",
            "--duration-days",
            "30",
        ],
        None,
    );
    let ops: Vec<&str> = ops.lines().collect();
    assert_eq!(ops[0], "robot$ops");

    let ci = (name, secret);
    assert_eq!(registry(&berth, Method::GET, "/v2/", ci).await, 200);
    let uploads = |project: &str| format!("/v2/{project}/x/blobs/uploads/");
    assert_eq!(
        registry(&berth, Method::POST, &uploads("team"), ci).await,
        202
    );
    assert_eq!(
        registry(&berth, Method::POST, &uploads("other"), ci).await,
        403
    );
    let wrong = (name, "Wr0ngSecret");
    assert_eq!(registry(&berth, Method::GET, "/v2/", wrong).await, 401);
    let ops = (ops[0], ops[1]);
    assert_eq!(
        registry(&berth, Method::POST, &uploads("other"), ops).await,
        202
    );
    assert_eq!(
        registry(&berth, Method::POST, &uploads("team"), ops).await,
        403
    );
    let pull = "/v2/team/x/tags/list";
    assert_eq!(registry(&berth, Method::GET, pull, ops).await, 404);

    let list = ok(&data, &["robot", "list"], None);
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "NAME",
            "LEVEL",
            "DISABLED",
            "EXPIRES",
            "(UTC)",
            "PERMISSIONS"
        ],
        "{list}"
    );
    let row = |name: &str| {
        rows.iter()
            .find(|cells| cells[1] == name)
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
    };
    assert_eq!(
        row("robot$team+ci")[2..],
        [
            "project",
            "no",
            "never",
            "team:repository:pull,team:repository:push"
        ]
    );
    let ops_row = row("robot$ops");
    assert_eq!(ops_row[2..4], ["system", "no"]);
    assert_eq!(
        ops_row.last().unwrap(),
        &"*:repository:pull,other:repository:push"
    );
    assert!(!list.contains(secret), "a secret is listed");
}

#[test]
fn robot_flags_are_checked_with_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    ok(&data, &["project", "create", "team"], None);
    let create = |extra: &[&str]| {
        let mut args = vec!["robot", "create", "ci"];
        args.extend_from_slice(extra);
        refused(&data, &args, None)
    };
    let pull = ["--permission", "repository:pull"];
    let cases: &[(&[&str], &str)] = &[
        (&[], "required arguments were not provided"),
        (&["--project", "team"], "--permission"),
        (&pull, "--project"),
        (
            &["--project", "team", "--permission", "repository"],
            "is not of the form RESOURCE:ACTION",
        ),
        (
            &["--project-permission", "repository:pull"],
            "is not of the form PROJECT:RESOURCE:ACTION",
        ),
        (
            &[
                "--project",
                "team",
                "--permission",
                "repository:pull",
                "--system-permission",
                "project:create",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--system-permission",
                "project:create",
                "--never-expires",
                "--duration-days",
                "3",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--system-permission",
                "project:create",
                "--duration-days",
                "0",
            ],
            "--duration-days",
        ),
        (
            &["--project", "team", "--permission", "repository:fly"],
            "unknown action \"fly\"",
        ),
        (
            &["--project", "team", "--permission", "user:create"],
            "a robot cannot be granted",
        ),
        (
            &["--project", "nope", "--permission", "repository:pull"],
            "nope",
        ),
    ];
    for (extra, message) in cases {
        let err = create(extra);
        assert!(err.contains(message), "{extra:?}: {err}");
    }
    let mut bad_name = vec!["robot", "create", "Not Valid", "--project", "team"];
    bad_name.extend_from_slice(&pull);
    assert!(refused(&data, &bad_name, None).contains("lower-case"));

    let mut args = vec!["robot", "create", "ci", "--project", "team"];
    args.extend_from_slice(&pull);
    let first = ok(&data, &args, None);
    assert_eq!(first.lines().count(), 2, "{first}");
    assert!(refused(&data, &args, None).contains("already exists"));
    assert_eq!(ok(&data, &["robot", "list"], None).lines().count(), 2);
}

/// The status of a monolithic push of `data` into `repository`, as the administrator.
async fn push_blob(berth: &Berth, repository: &str, data: &[u8]) -> u16 {
    let digest = berth_oci::Digest::compute(berth_oci::Algorithm::Sha256, data);
    support::client()
        .post(format!(
            "{}/v2/{repository}/blobs/uploads/?digest={digest}",
            berth.url()
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn gc_deletes_a_blob_nothing_references_beside_a_running_server() {
    use berth_oci::{Algorithm, Digest};
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    ok(&data, &["project", "create", "gc"], None);
    let config = work.path().join("berth.toml");
    std::fs::write(&config, "[gc]\ngrace_period = \"0s\"\n").unwrap();
    let config = config.to_str().unwrap();
    let berth = secure(&data);
    let stray = b"a layer no manifest names";
    let digest = Digest::compute(Algorithm::Sha256, stray);
    assert_eq!(push_blob(&berth, "gc/app", stray).await, 201);
    let blob = format!("/v2/gc/app/blobs/{digest}");
    let auth = ("admin", ADMIN_PASSWORD);
    // Collected with a grace period of nothing: the dry run lists the blob and keeps it.
    let dry = ok(&data, &["gc", "--dry-run", "--config", config], None);
    assert!(dry.contains(digest.as_str()), "{dry}");
    assert!(
        dry.contains("would delete 0 untagged manifests, 1 blobs, 25 bytes"),
        "{dry}"
    );
    assert_eq!(
        registry(&berth, reqwest::Method::HEAD, &blob, auth).await,
        200
    );
    let done = ok(&data, &["gc", "--config", config], None);
    assert!(
        done.contains("deleted 0 untagged manifests, 1 blobs, 25 bytes; removed 1 unreferenced"),
        "{done}"
    );
    assert_eq!(
        registry(&berth, reqwest::Method::HEAD, &blob, auth).await,
        404
    );
    // With the default grace period, a blob pushed now stays.
    assert_eq!(push_blob(&berth, "gc/app", stray).await, 201);
    let none = ok(&data, &["gc"], None);
    assert!(
        none.contains("deleted 0 untagged manifests, 0 blobs, 0 bytes"),
        "{none}"
    );
    assert_eq!(
        registry(&berth, reqwest::Method::HEAD, &blob, auth).await,
        200
    );
}
