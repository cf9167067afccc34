//! Real clients logging in to a secure Berth: skopeo, podman and docker, each with a
//! user, a robot and a wrong password, through the `/v2/` challenge and the token flow;
//! roles decide who pushes and pulls, and anonymous callers pull public projects only.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::dockerd::Dockerd;
use support::{Berth, client, free_port, image, require_tool, run};

const ADMIN_PASSWORD: &str = "Adm1nPassword";

fn secure(data: &Path) -> Berth {
    Berth::start_with(
        data,
        free_port(),
        &[
            ("BERTH_AUTH__MODE", "secure"),
            ("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("BERTH_AUTH__HASH_MEMORY_KIB", "64"),
            ("BERTH_AUTH__HASH_ITERATIONS", "1"),
        ],
    )
}

fn skopeo(authfile: &Path) -> Command {
    let mut c = Command::new("skopeo");
    c.env("REGISTRY_AUTH_FILE", authfile);
    c
}

#[test]
fn skopeo_logs_in_pushes_with_a_token_and_anonymous_pulls_only_public() {
    require_tool("skopeo");
    let work = tempfile::tempdir().unwrap();
    let berth = secure(&work.path().join("data"));
    let auth = work.path().join("auth.json");
    let layout = work.path().join("layout");
    image::write_layout(&layout, &["amd64"]);

    let wrong = skopeo(&auth)
        .args(["login", "--tls-verify=false", "-u", "admin", "-p", "wrong"])
        .arg(&berth.addr)
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password logged in");

    // Anonymous pushes are refused, even to the public `library`.
    let anonymous_push = skopeo(&auth)
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/library/busybox:latest", berth.addr))
        .output()
        .unwrap();
    assert!(!anonymous_push.status.success(), "anonymous push accepted");

    run(skopeo(&auth)
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "admin",
            "-p",
            ADMIN_PASSWORD,
        ])
        .arg(&berth.addr));
    for repo in ["library/busybox", "private/busybox"] {
        let dest = format!("docker://{}/{repo}:latest", berth.addr);
        let out = skopeo(&auth)
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(&dest)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if repo.starts_with("private") {
            // The project does not exist: the administrator is told to create it.
            assert!(!out.status.success());
            assert!(stderr.contains("not found"), "{stderr}");
        } else {
            assert!(out.status.success(), "{stderr}");
        }
    }
    run(skopeo(&auth).args(["logout", "--all"]));

    // Anonymous pulls from the public project work.
    let inspect = run(skopeo(&auth)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/library/busybox:latest", berth.addr)));
    assert!(inspect.contains("schemaVersion"));
}

const USER_PASSWORD: &str = "Dev3loper-pass";

/// Calls the Harbor API as the administrator; returns the status and JSON body.
async fn api(berth: &Berth, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .request(method, format!("{}/api/v2.0{path}", berth.url()))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Project `team` (private) with `dev` a developer and `viewer` a guest, and a robot
/// that may pull and push there; returns the robot's name and secret.
async fn team(berth: &Berth) -> (String, String) {
    use reqwest::Method as M;
    for name in ["dev", "viewer"] {
        let (status, _) = api(
            berth,
            M::POST,
            "/users",
            json!({
                "username": name, "email": format!("{name}@example.com"), "password": USER_PASSWORD,
            }),
        )
        .await;
        assert_eq!(status, 201);
    }
    assert_eq!(
        api(berth, M::POST, "/projects", json!({"project_name": "team"}))
            .await
            .0,
        201
    );
    for (name, role) in [("dev", 2), ("viewer", 3)] {
        let (status, _) = api(
            berth,
            M::POST,
            "/projects/team/members",
            json!({"role_id": role, "member_user": {"username": name}}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, robot) = api(berth, M::POST, "/robots", json!({
        "name": "ci", "level": "project", "duration": -1,
        "permissions": [{"kind": "project", "namespace": "team", "access": [
            {"resource": "repository", "action": "pull"}, {"resource": "repository", "action": "push"}]}],
    })).await;
    assert_eq!(status, 201, "{robot}");
    (
        robot["name"].as_str().unwrap().to_owned(),
        robot["secret"].as_str().unwrap().to_owned(),
    )
}

/// A podman with its own storage and credentials under `work`.
fn podman(work: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(work.join("podman-root"))
        .arg("--runroot")
        .arg(work.join("podman-run"))
        .arg("--storage-driver=vfs")
        .env("REGISTRY_AUTH_FILE", work.join("podman-auth.json"));
    c
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "succeeded: {cmd:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_logs_in_as_a_user_and_a_robot_and_roles_decide_pushes() {
    require_tool("podman");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let berth = secure(&w.join("data"));
    let (robot, secret) = team(&berth).await;
    let host = berth.addr.clone();
    seed_team(&berth, w);
    fails(podman(w).args([
        "login",
        "--tls-verify=false",
        "-u",
        "dev",
        "-p",
        "wrong",
        &host,
    ]));
    // A developer pulls and pushes in the private project.
    run(podman(w).args([
        "login",
        "--tls-verify=false",
        "-u",
        "dev",
        "-p",
        USER_PASSWORD,
        &host,
    ]));
    let local = format!("{host}/team/app:seed");
    run(podman(w).args(["pull", "-q", "--tls-verify=false", &local]));
    run(podman(w).args([
        "push",
        "-q",
        "--tls-verify=false",
        &local,
        &format!("{host}/team/app:v1"),
    ]));
    // A guest pulls, and is refused a push.
    run(podman(w).args([
        "login",
        "--tls-verify=false",
        "-u",
        "viewer",
        "-p",
        USER_PASSWORD,
        &host,
    ]));
    run(podman(w).args([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{host}/team/app:v1"),
    ]));
    fails(podman(w).args([
        "push",
        "-q",
        "--tls-verify=false",
        &local,
        &format!("{host}/team/app:v2"),
    ]));
    // The robot pushes with its secret.
    run(podman(w).args([
        "login",
        "--tls-verify=false",
        "-u",
        &robot,
        "-p",
        &secret,
        &host,
    ]));
    run(podman(w).args([
        "push",
        "-q",
        "--tls-verify=false",
        &local,
        &format!("{host}/team/app:robot"),
    ]));
    fails(podman(w).args([
        "login",
        "--tls-verify=false",
        "-u",
        &robot,
        "-p",
        "wrong",
        &host,
    ]));
    // Anonymous: refused on the private project.
    run(podman(w).args(["logout", "--all"]));
    fails(podman(w).args([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{host}/team/app:v1"),
    ]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_logs_in_with_the_token_flow_as_a_user_and_a_robot() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let berth = secure(&w.join("data"));
    let (robot, secret) = team(&berth).await;
    seed_team(&berth, w);
    let dockerd = Dockerd::start(&w.join("docker"));
    let config = w.join("docker-config");
    let docker = || {
        let mut c = dockerd.docker();
        c.env("DOCKER_CONFIG", &config);
        c
    };
    let host = berth.addr.clone();
    let err = fails(
        docker()
            .args(["login", "-u", "dev", "--password-stdin", &host])
            .stdin(stdin_of("wrong")),
    );
    assert!(err.to_lowercase().contains("unauthorized"), "{err}");
    run(docker()
        .args(["login", "-u", "dev", "--password-stdin", &host])
        .stdin(stdin_of(USER_PASSWORD)));
    run(docker().args(["pull", "-q", &format!("{host}/team/app:seed")]));
    run(docker().args([
        "tag",
        &format!("{host}/team/app:seed"),
        &format!("{host}/team/app:docker"),
    ]));
    run(docker().args(["push", &format!("{host}/team/app:docker")]));
    run(docker().args(["logout", &host]));
    run(docker()
        .args(["login", "-u", &robot, "--password-stdin", &host])
        .stdin(stdin_of(&secret)));
    run(docker().args([
        "tag",
        &format!("{host}/team/app:seed"),
        &format!("{host}/team/app:robot"),
    ]));
    run(docker().args(["push", &format!("{host}/team/app:robot")]));
    fails(
        docker()
            .args(["login", "-u", &robot, "--password-stdin", &host])
            .stdin(stdin_of("wrong")),
    );
    run(docker().args(["logout", &host]));
    run(docker().args(["rmi", &format!("{host}/team/app:seed")]));
    fails(docker().args(["pull", "-q", &format!("{host}/team/app:seed")]));
}

/// Copies a generated image into `team/app:seed` as the administrator, with skopeo.
fn seed_team(berth: &Berth, work: &Path) {
    let layout = work.join("layout");
    image::write_layout(&layout, &["amd64"]);
    run(skopeo(&work.join("skopeo-auth.json"))
        .args(["copy", "-q", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("admin:{ADMIN_PASSWORD}"))
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/team/app:seed", berth.addr)));
}

/// A file holding `text`, as a command's standard input.
fn stdin_of(text: &str) -> std::process::Stdio {
    let file = tempfile::tempfile().unwrap();
    use std::io::{Seek, Write};
    let mut f = file;
    f.write_all(text.as_bytes()).unwrap();
    f.rewind().unwrap();
    std::process::Stdio::from(f)
}

/// A10 (Harbor CVE-2026-4404): a fresh Berth without a configured admin password has
/// no well-known one: it generates a password, shows it once on the terminal, and
/// Harbor's documented default does not log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_berth_has_no_well_known_password() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start_with(
        &data,
        free_port(),
        &[
            ("BERTH_AUTH__MODE", "secure"),
            ("BERTH_AUTH__HASH_MEMORY_KIB", "64"),
            ("BERTH_AUTH__HASH_ITERATIONS", "1"),
        ],
    );
    let shown = std::fs::read_to_string(data.with_extension("log")).unwrap();
    let password = shown
        .lines()
        .skip_while(|l| !l.contains("with the password"))
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains("with the password"))
        .expect("the generated password is shown")
        .to_owned();
    assert!(password.len() >= 16, "{password:?}");
    let status = |user: &str, pass: &str| {
        let (url, user, pass) = (berth.url(), user.to_owned(), pass.to_owned());
        async move {
            client()
                .get(format!("{url}/api/v2.0/users/current"))
                .basic_auth(user, Some(pass))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for default in ["Harbor12345", "admin", "password", ""] {
        assert_eq!(status("admin", default).await, 401, "{default:?}");
    }
    assert_eq!(status("admin", &password).await, 200);
    // Shown once: a restart does not show it again.
    drop(berth);
    let before = std::fs::read_to_string(data.with_extension("log"))
        .unwrap()
        .len();
    let _again = Berth::start_with(&data, free_port(), &[("BERTH_AUTH__MODE", "secure")]);
    let after = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(!after[before..].contains(&password));
}

/// Repositories pushed before accounts existed stay usable: their projects become
/// private projects owned by the administrator, and `library` is public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_pushed_in_open_mode_become_private_projects_of_the_admin() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let open = Berth::start_with(
        &data,
        free_port(),
        &[("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    let layout = work.path().join("layout");
    image::write_layout(&layout, &["amd64"]);
    for repo in ["legacy/app", "library/app"] {
        run(Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/{repo}:v1", open.addr)));
    }
    drop(open);
    let berth = secure(&data);
    let get = |path: &str, auth: bool| {
        let (url, path) = (berth.url(), path.to_owned());
        async move {
            let mut req = client().get(format!("{url}{path}"));
            if auth {
                req = req.basic_auth("admin", Some(ADMIN_PASSWORD));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(get("/v2/legacy/app/manifests/v1", false).await.0, 401);
    assert_eq!(get("/v2/library/app/manifests/v1", false).await.0, 200);
    assert_eq!(get("/v2/legacy/app/manifests/v1", true).await.0, 200);
    let (_, project) = get("/api/v2.0/projects/legacy", true).await;
    assert_eq!(project["owner_name"], json!("admin"));
    assert_eq!(project["metadata"]["public"], json!("false"));
    assert_eq!(project["repo_count"], json!(1));
}
