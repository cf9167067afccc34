"""Drives a Berth server with harborapi, the Python Harbor client, and checks the
models it returns.

    scenario.py --url http://127.0.0.1:PORT --username admin --password SECRET
                --layout DIR --digest sha256:...

Every call is tried, whatever failed before it, and a summary names each failing call
by its endpoint. Exits 1 when any call failed.

The image pushed is the OCI layout at `--layout` (tag `latest`, whose manifest digest
is `--digest`), copied with skopeo under the robot's name (or, when no robot could be
made, the administrator's, so the content calls still run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import traceback
import uuid
from datetime import datetime
from typing import Any, Awaitable, Callable, Optional

from harborapi import HarborAsyncClient
from harborapi.exceptions import NotFound, StatusError
from harborapi.models import (
    Access,
    ProjectMember,
    ProjectMetadata,
    ProjectReq,
    RobotCreate,
    RobotPermission,
    Tag,
    UserCreationReq,
    UserEntity,
    UserProfile,
)

API = "/api/v2.0"


class Skipped(Exception):
    """A call that could not be tried because an earlier one failed."""


class Run:
    """Runs named calls; each failure is recorded (with its traceback) and the run
    goes on."""

    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []

    async def step(
        self, endpoint: str, what: str, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        label = f"{endpoint:<52} {what}"
        try:
            result = await call()
        except Skipped as e:
            self.skipped.append((label, str(e)))
            print(f"skip {label}: needs {e}", flush=True)
            return None
        except Exception as e:  # noqa: BLE001 - every failure is reported
            reason = describe(e)
            self.failed.append((label, reason))
            print(f"FAIL {label}\n     {reason}", flush=True)
            traceback.print_exc()
            return None
        self.passed.append(label)
        print(f"ok   {label}", flush=True)
        return result

    def summary(self) -> int:
        print(
            f"\n{len(self.passed)} passed, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped",
            flush=True,
        )
        if self.failed:
            print("\nfailing calls:")
            for label, reason in self.failed:
                print(f"  {label}\n      {reason.splitlines()[0][:300]}")
        if self.skipped:
            print("\nskipped calls (an earlier call they need failed):")
            for label, reason in self.skipped:
                print(f"  {label}  (needs {reason})")
        return 1 if self.failed else 0


def describe(e: Exception) -> str:
    if isinstance(e, StatusError):
        return f"{type(e).__name__} {e.status_code}: {e}"
    if isinstance(e, AssertionError):
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return f"assertion at line {tb.lineno}: {tb.line} {e}".strip()
    return f"{type(e).__name__}: {e}"


def need(value: Any, what: str) -> Any:
    if value is None:
        raise Skipped(what)
    return value


async def missing(call: Awaitable[Any]) -> bool:
    """Whether a call answers 404."""
    try:
        await call
    except NotFound:
        return True
    return False


class Scenario:
    def __init__(self, args: argparse.Namespace, run: Run) -> None:
        self.args = args
        self.run = run
        self.base = args.url.rstrip("/")
        self.admin = self.client(args.username, args.password)
        suffix = uuid.uuid4().hex[:8]
        self.username = f"harborapi-user-{suffix}"
        self.other_name = f"harborapi-other-{suffix}"
        self.password = "Initial-Passw0rd"
        self.project = f"harborapi-{suffix}"
        # Filled in as the scenario goes.
        self.user_id: Optional[int] = None
        self.other_id: Optional[int] = None
        self.project_id: Optional[int] = None
        self.member_id: Optional[int] = None
        self.other_member_id: Optional[int] = None
        self.user_password: Optional[str] = None
        self.robot: Any = None
        self.pusher: Optional[str] = None

    def client(self, username: str, secret: str) -> HarborAsyncClient:
        # No retries: a server that stops answering fails the run at once.
        return HarborAsyncClient(
            url=f"{self.base}{API}", username=username, secret=secret, retry=None
        )

    def as_user(self) -> HarborAsyncClient:
        need(self.user_id, "POST /users")
        return self.client(self.username, need(self.user_password, "a user password"))

    # a. system and users ---------------------------------------------------------

    async def system(self) -> None:
        s, c = self.run.step, self.admin

        async def ping() -> None:
            assert await c.ping() == "Pong"

        async def health() -> None:
            h = await c.health_check()
            assert h.status == "healthy", h
            names = {comp.name for comp in h.components or []}
            assert {"database", "storage"} <= names, names
            assert all(comp.status == "healthy" for comp in h.components or [])

        async def info() -> None:
            i = await c.get_system_info()
            assert i.auth_mode == "db_auth", i
            assert i.harbor_version and i.harbor_version.startswith("v2."), i
            assert i.project_creation_restriction in ("everyone", "adminonly"), i
            assert i.self_registration is not None, i

        await s("GET /ping", "ping", ping)
        await s("GET /health", "health_check", health)
        await s("GET /systeminfo", "get_system_info", info)

    async def users(self) -> None:
        s, c = self.run.step, self.admin

        async def create(name: str) -> int:
            location = await c.create_user(
                UserCreationReq(
                    username=name,
                    email=f"{name}@example.com",
                    realname=f"Real {name}",
                    comment="made by harborapi",
                    password=self.password,
                )
            )
            assert location.startswith(f"{API}/users/"), location
            return int(location.rsplit("/", 1)[1])

        self.user_id = await s("POST /users", "create_user", lambda: create(self.username))
        self.user_password = self.password
        self.other_id = await s(
            "POST /users", "create_user (a second user)", lambda: create(self.other_name)
        )

        async def get() -> None:
            u = await c.get_user(need(self.user_id, "POST /users"))
            assert (u.user_id, u.username) == (self.user_id, self.username), u
            assert u.email == f"{self.username}@example.com", u
            assert (u.realname, u.comment) == (f"Real {self.username}", "made by harborapi"), u
            assert u.sysadmin_flag is False, u
            assert isinstance(u.creation_time, datetime), u
            assert isinstance(u.update_time, datetime), u

        async def by_name() -> None:
            u = await c.get_user_by_username(self.username)
            assert u.user_id == self.user_id, u

        async def listing() -> None:
            need(self.user_id, "POST /users")
            everyone = await c.get_users()
            names = {u.username for u in everyone}
            assert {"admin", self.username, self.other_name} <= names, names
            # One per page: the client follows the Link headers to the end.
            paged = await c.get_users(page_size=1)
            assert len(paged) == len(everyone), (len(paged), len(everyone))
            assert len({u.user_id for u in paged}) == len(paged), paged
            mine = await c.get_users(query=f"username={self.username}")
            assert [u.user_id for u in mine] == [self.user_id], mine
            fuzzy = await c.get_users(query=f"username=~{self.username[:14]}", sort="-username")
            assert [u.username for u in fuzzy][:1] == [self.username], fuzzy
            limited = await c.get_users(page_size=1, limit=1)
            assert len(limited) == 1, limited

        async def search() -> None:
            need(self.user_id, "POST /users")
            found = await c.search_users_by_username(self.username[:-3])
            assert [(f.user_id, f.username) for f in found] == [
                (self.user_id, self.username)
            ], found

        async def profile() -> None:
            uid = need(self.user_id, "POST /users")
            await c.update_user(
                uid,
                UserProfile(
                    email=f"new-{self.username}@example.com",
                    realname="Renamed",
                    comment="changed",
                ),
            )
            u = await c.get_user(uid)
            assert (u.email, u.realname, u.comment) == (
                f"new-{self.username}@example.com",
                "Renamed",
                "changed",
            ), u

        async def reset_password() -> None:
            # An administrator sets another user's password without the old one.
            uid = need(self.user_id, "POST /users")
            await c.set_user_password(uid, new_password="Reset-Passw0rd")
            self.user_password = "Reset-Passw0rd"
            me = await self.as_user().get_current_user()
            assert me.user_id == uid, me

        async def own_password() -> None:
            uid = need(self.user_id, "POST /users")
            user = self.as_user()
            await user.set_user_password(
                uid, new_password="Changed-Passw0rd", old_password=self.user_password
            )
            self.user_password = "Changed-Passw0rd"
            me = await self.as_user().get_current_user()
            assert (me.user_id, me.username) == (uid, self.username), me
            try:
                await user.get_current_user()
            except StatusError as e:
                assert e.status_code == 401, e
            else:
                raise AssertionError("the old password still works")

        async def sysadmin() -> None:
            uid = need(self.user_id, "POST /users")
            await c.set_user_admin(uid, True)
            assert (await c.get_user(uid)).sysadmin_flag is True
            assert (await self.as_user().get_current_user()).sysadmin_flag is True
            await c.set_user_admin(uid, False)
            assert (await c.get_user(uid)).sysadmin_flag is False

        async def current() -> None:
            me = await c.get_current_user()
            assert (me.username, me.sysadmin_flag) == ("admin", True), me
            assert isinstance(me.user_id, int) and me.user_id > 0, me

        async def permissions() -> None:
            # Harbor lists one namespace's permissions: /system or /project/<id>.
            system = await c.get_current_user_permissions(scope="/system", relative=True)
            pairs = {(p.resource, p.action) for p in system}
            assert {("user", "create"), ("project", "create"), ("audit-log", "list")} <= pairs
            assert ("repository", "push") not in pairs, pairs
            absolute = await c.get_current_user_permissions(scope="/system")
            assert len(absolute) == len(system), (absolute, system)
            assert all(p.resource.startswith("/system/") for p in absolute), absolute
            # Without a scope there is no namespace, hence nothing.
            assert await c.get_current_user_permissions() == []
            user = await self.as_user().get_current_user_permissions(scope="/system")
            assert user == [], user

        await s("GET /users/{user_id}", "get_user", get)
        await s("GET /users/search + /users/{id}", "get_user_by_username", by_name)
        await s("GET /users", "get_users (q, sort, paging, limit)", listing)
        await s("GET /users/search", "search_users_by_username", search)
        await s("PUT /users/{user_id}", "update_user", profile)
        await s("PUT /users/{user_id}/password", "set_user_password (admin)", reset_password)
        await s("PUT /users/{user_id}/password", "set_user_password (own)", own_password)
        await s("PUT /users/{user_id}/sysadmin", "set_user_admin", sysadmin)
        await s("GET /users/current", "get_current_user", current)
        await s("GET /users/current/permissions", "get_current_user_permissions", permissions)

    # b. projects and members -----------------------------------------------------

    async def projects(self) -> None:
        s, c, p = self.run.step, self.admin, self.project

        async def create() -> int:
            location = await c.create_project(
                ProjectReq(
                    project_name=p,
                    metadata=ProjectMetadata(public=False, auto_scan=True),
                )
            )
            # harborapi asks for the name in Location (X-Resource-Name-In-Location).
            assert location == f"{API}/projects/{p}", location
            return (await c.get_project(p)).project_id

        self.project_id = await s("POST /projects", "create_project", create)

        async def get() -> None:
            pid = need(self.project_id, "POST /projects")
            by_name = await c.get_project(p)
            by_id = await c.get_project(pid)
            assert by_name.model_dump() == by_id.model_dump(), (by_name, by_id)
            assert (by_name.project_id, by_name.name) == (pid, p), by_name
            assert by_name.owner_name == "admin", by_name
            assert by_name.metadata.public == "false", by_name.metadata
            assert by_name.metadata.auto_scan == "true", by_name.metadata
            assert by_name.repo_count == 0, by_name
            assert by_name.current_user_role_id == 1, by_name
            assert by_name.current_user_role_ids == [1], by_name
            assert isinstance(by_name.creation_time, datetime), by_name
            assert by_name.cve_allowlist is not None, by_name

        async def exists() -> None:
            need(self.project_id, "POST /projects")
            assert await c.project_exists(p) is True
            assert await c.project_exists(f"{p}-nothing") is False

        async def listing() -> None:
            pid = need(self.project_id, "POST /projects")
            named = await c.get_projects(name=p)
            assert [x.project_id for x in named] == [pid], named
            private = await c.get_projects(public=False)
            assert pid in {x.project_id for x in private}, private
            assert all(x.metadata.public == "false" for x in private), private
            public = await c.get_projects(public=True)
            assert "library" in {x.name for x in public}, public
            assert pid not in {x.project_id for x in public}, public
            everything = await c.get_projects(page_size=1)
            assert {"library", p} <= {x.name for x in everything}, everything
            queried = await c.get_projects(query=f"name={p}")
            assert [x.name for x in queried] == [p], queried
            owned = await c.get_projects(owner="admin", sort="-name")
            names = [x.name for x in owned]
            assert p in names and names == sorted(names, reverse=True), names
            assert await c.get_projects(owner=self.username) == []

        async def update() -> None:
            need(self.project_id, "POST /projects")
            await c.update_project(
                p, ProjectReq(metadata=ProjectMetadata(auto_scan=False, severity="high"))
            )
            got = await c.get_project(p)
            assert (got.metadata.auto_scan, got.metadata.severity) == ("false", "high"), got
            assert got.metadata.public == "false", got.metadata
            # The deprecated top-level flag still switches visibility, by id too.
            await c.update_project(need(self.project_id, ""), ProjectReq(public=True))
            assert (await c.get_project(p)).metadata.public == "true"
            await c.update_project(p, ProjectReq(metadata=ProjectMetadata(public=False)))
            assert (await c.get_project(p)).metadata.public == "false"

        async def deletable() -> None:
            need(self.project_id, "POST /projects")
            d = await c.get_project_deletable(p)
            assert d.deletable is True, d

        async def summary() -> None:
            need(self.project_id, "POST /projects")
            got = await c.get_project_summary(p)
            assert got.repo_count == 0, got
            assert got.project_admin_count == 1, got
            assert (got.maintainer_count, got.developer_count, got.guest_count) == (0, 0, 0), got

        await s("GET /projects/{project_name_or_id}", "get_project (name, id)", get)
        await s("HEAD /projects", "project_exists", exists)
        await s("GET /projects", "get_projects (name, public, q, paging)", listing)
        await s("PUT /projects/{project_name_or_id}", "update_project", update)
        await s("GET /projects/{project_name_or_id}/_deletable", "get_project_deletable", deletable)
        await s("GET /projects/{project_name_or_id}/summary", "get_project_summary", summary)

    async def members(self) -> None:
        s, c, p = self.run.step, self.admin, self.project

        def member_id(location: str) -> int:
            assert location.startswith(f"{API}/projects/{p}/members/"), location
            return int(location.rsplit("/", 1)[1])

        async def add_by_name() -> int:
            need(self.project_id, "POST /projects")
            need(self.user_id, "POST /users")
            return member_id(await c.add_project_member_user(p, self.username, 3))

        async def add_by_id() -> int:
            pid = need(self.project_id, "POST /projects")
            uid = need(self.other_id, "POST /users")
            location = await c.add_project_member(
                pid, ProjectMember(role_id=2, member_user=UserEntity(user_id=uid))
            )
            return int(location.rsplit("/", 1)[1])

        self.member_id = await s(
            "POST /projects/{p}/members", "add_project_member_user (by name)", add_by_name
        )
        self.other_member_id = await s(
            "POST /projects/{p}/members", "add_project_member (user id)", add_by_id
        )

        async def duplicate() -> None:
            need(self.member_id, "POST /projects/{p}/members")
            try:
                await c.add_project_member_user(p, self.username, 2)
            except StatusError as e:
                assert e.status_code == 409, e
            else:
                raise AssertionError("the same user was added twice")

        async def listing() -> None:
            mid = need(self.member_id, "POST /projects/{p}/members")
            members = await c.get_project_members(p)
            by_name = {m.entity_name: m for m in members}
            assert set(by_name) == {"admin", self.username, self.other_name}, by_name
            me = by_name[self.username]
            assert (me.id, me.role_id, me.entity_type) == (mid, 3, "u"), me
            assert (me.entity_id, me.project_id) == (self.user_id, self.project_id), me
            assert me.role_name == "guest", me
            assert by_name["admin"].role_name == "projectAdmin", by_name["admin"]
            one = await c.get_project_members(p, entity_name="harborapi-user")
            assert [m.id for m in one] == [mid], one
            paged = await c.get_project_members(self.project_id, page_size=1)
            assert len(paged) == 3, paged

        async def get() -> None:
            mid = need(self.member_id, "POST /projects/{p}/members")
            m = await c.get_project_member(p, mid)
            assert (m.id, m.entity_name, m.role_id) == (mid, self.username, 3), m

        async def update() -> None:
            mid = need(self.member_id, "POST /projects/{p}/members")
            await c.update_project_member_role(p, mid, 4)
            m = await c.get_project_member(need(self.project_id, ""), mid)
            assert (m.role_id, m.role_name) == (4, "maintainer"), m

        async def seen_by_member() -> None:
            need(self.member_id, "POST /projects/{p}/members")
            user = self.as_user()
            got = await user.get_project(p)
            assert got.current_user_role_id == 4, got
            assert got.current_user_role_ids == [4], got
            mine = await user.get_projects()
            assert p in {x.name for x in mine}, mine
            scope = f"/project/{self.project_id}"
            perms = await user.get_current_user_permissions(scope=scope, relative=True)
            pairs = {(x.resource, x.action) for x in perms}
            assert {(".", "read"), ("repository", "push"), ("member", "list")} <= pairs, pairs
            assert (".", "delete") not in pairs and ("member", "create") not in pairs, pairs
            absolute = await user.get_current_user_permissions(scope=scope)
            resources = {x.resource for x in absolute}
            assert {scope, f"{scope}/repository"} <= resources, resources
            assert all(r == scope or r.startswith(f"{scope}/") for r in resources), resources
            other = await user.get_current_user_permissions(scope="/project/999999", relative=True)
            assert other == [], other

        async def remove_other() -> None:
            mid = need(self.other_member_id, "POST /projects/{p}/members")
            await c.remove_project_member(p, mid)
            assert await missing(c.get_project_member(p, mid))
            got = await c.get_project_summary(p)
            assert (got.project_admin_count, got.maintainer_count, got.developer_count) == (
                1,
                1,
                0,
            ), got

        await s("POST /projects/{p}/members", "add_project_member_user (twice: 409)", duplicate)
        await s("GET /projects/{p}/members", "get_project_members", listing)
        await s("GET /projects/{p}/members/{mid}", "get_project_member", get)
        await s("PUT /projects/{p}/members/{mid}", "update_project_member_role", update)
        await s("GET /projects/{p} (as the member)", "get_project, permissions", seen_by_member)
        await s("DELETE /projects/{p}/members/{mid}", "remove_project_member", remove_other)

    # c. resources Berth does not answer yet -------------------------------------

    async def robots_and_content(self) -> None:
        s, c, p = self.run.step, self.admin, self.project
        repo = "app"

        async def create_robot() -> Any:
            need(self.project_id, "POST /projects")
            created = await c.create_robot(
                RobotCreate(
                    name="ci",
                    description="pushes from CI",
                    level="project",
                    disable=False,
                    duration=-1,
                    permissions=[
                        RobotPermission(
                            kind="project",
                            namespace=p,
                            access=[
                                Access(resource="repository", action="push"),
                                Access(resource="repository", action="pull"),
                            ],
                        )
                    ],
                )
            )
            assert created.id and created.id > 0, created
            assert created.name == f"robot${p}+ci", created
            assert created.secret, created
            assert isinstance(created.creation_time, datetime), created
            return created

        self.robot = await s("POST /robots", "create_robot (project level)", create_robot)

        async def get_robot() -> None:
            robot = need(self.robot, "POST /robots")
            got = await c.get_robot(robot.id)
            assert (got.id, got.name, got.level) == (robot.id, robot.name, "project"), got
            assert got.disable is False and got.duration == -1, got
            perm = got.permissions[0]
            assert (perm.kind, perm.namespace) == ("project", p), perm
            assert {(a.resource, a.action) for a in perm.access} == {
                ("repository", "push"),
                ("repository", "pull"),
            }, perm
            assert not getattr(got, "secret", None), "a robot's secret is shown once"

        async def list_robots() -> None:
            robot = need(self.robot, "POST /robots")
            robots = await c.get_robots(query=f"Level=project,ProjectID={self.project_id}")
            assert [r.id for r in robots] == [robot.id], robots

        def skopeo_push(username: str, secret: str) -> None:
            layout = need(self.args.layout, "--layout")
            host = self.base.split("://", 1)[1]
            with tempfile.TemporaryDirectory() as auth_dir:
                env = dict(os.environ, REGISTRY_AUTH_FILE=os.path.join(auth_dir, "auth.json"))
                out = subprocess.run(
                    [
                        "skopeo",
                        "copy",
                        "-q",
                        "--dest-tls-verify=false",
                        "--dest-creds",
                        f"{username}:{secret}",
                        f"oci:{layout}:latest",
                        f"docker://{host}/{p}/{repo}:v1",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            assert out.returncode == 0, out.stderr
            self.pusher = username

        async def push() -> None:
            robot = need(self.robot, "POST /robots")
            skopeo_push(robot.name, robot.secret)

        async def push_as_admin() -> None:
            # Without a robot, the content calls below still get tried.
            skopeo_push(self.args.username, self.args.password)

        async def repositories() -> None:
            need(self.pusher, "a push")
            repos = await c.get_repositories(p)
            assert [r.name for r in repos] == [f"{p}/{repo}"], repos
            assert repos[0].artifact_count == 1, repos
            assert repos[0].project_id == self.project_id, repos
            one = await c.get_repository(p, repo)
            assert (one.name, one.artifact_count) == (f"{p}/{repo}", 1), one
            everywhere = await c.get_repositories()
            assert f"{p}/{repo}" in {r.name for r in everywhere}, everywhere

        async def artifacts() -> None:
            need(self.pusher, "a push")
            arts = await c.get_artifacts(p, repo, with_tag=True)
            assert len(arts) == 1, arts
            art = arts[0]
            assert art.digest == self.args.digest, art
            assert art.type == "IMAGE", art
            assert art.manifest_media_type == "application/vnd.oci.image.manifest.v1+json", art
            assert [t.name for t in art.tags or []] == ["v1"], art.tags
            assert isinstance(art.push_time, datetime), art
            by_tag = await c.get_artifact(p, repo, "v1")
            assert by_tag.digest == self.args.digest, by_tag
            by_digest = await c.get_artifact(p, repo, self.args.digest)
            assert by_digest.id == by_tag.id, by_digest

        async def tags() -> None:
            need(self.pusher, "a push")
            got = await c.get_artifact_tags(p, repo, "v1")
            assert [t.name for t in got] == ["v1"], got
            await c.create_artifact_tag(p, repo, self.args.digest, Tag(name="v2"))
            got = await c.get_artifact_tags(p, repo, self.args.digest)
            assert sorted(t.name for t in got) == ["v1", "v2"], got
            await c.delete_artifact_tag(p, repo, self.args.digest, "v2")
            got = await c.get_artifact_tags(p, repo, self.args.digest)
            assert [t.name for t in got] == ["v1"], got

        async def audit_logs() -> None:
            need(self.project_id, "POST /projects")
            logs = await c.get_audit_logs(query=f"resource=~{p}", sort="-op_time", limit=100)
            ops = {(x.operation, x.resource_type) for x in logs}
            assert ("create", "project") in ops, ops
            assert all(isinstance(x.op_time, datetime) for x in logs), logs
            if self.pusher:
                pushes = [x for x in logs if x.resource_type == "artifact"]
                assert any(x.username == self.pusher for x in pushes), pushes

        async def project_logs() -> None:
            need(self.project_id, "POST /projects")
            logs = await c.get_project_logs(p, limit=100)
            assert logs, "the project's log is empty"
            if self.pusher:
                assert any(
                    x.operation == "create" and x.resource == f"{p}/{repo}:v1" for x in logs
                ), logs

        async def search() -> None:
            need(self.project_id, "POST /projects")
            found = await c.search(p)
            assert p in {x.name for x in found.project or []}, found
            if self.pusher:
                names = {x.repository_name for x in found.repository or []}
                assert f"{p}/{repo}" in names, found

        async def statistics() -> None:
            stats = await c.get_statistics()
            assert stats.total_project_count >= 2, stats
            assert stats.private_project_count >= 1, stats
            if self.pusher:
                assert stats.total_repo_count >= 1, stats
                assert stats.total_storage_consumption > 0, stats

        async def configurations() -> None:
            cfg = await c.get_config()
            assert cfg.auth_mode.value == "db_auth", cfg.auth_mode
            assert cfg.project_creation_restriction.value in ("everyone", "adminonly"), cfg
            assert cfg.self_registration.value in (True, False), cfg

        async def delete_artifact() -> None:
            need(self.pusher, "a push")
            await c.delete_artifact(p, repo, self.args.digest)
            assert await missing(c.get_artifact(p, repo, self.args.digest))

        async def delete_repository() -> None:
            need(self.pusher, "a push")
            await c.delete_repository(p, repo)
            assert await missing(c.get_repository(p, repo))

        async def delete_robot() -> None:
            robot = need(self.robot, "POST /robots")
            await c.delete_robot(robot.id)
            assert await missing(c.get_robot(robot.id))

        await s("GET /robots/{robot_id}", "get_robot", get_robot)
        await s("GET /robots", "get_robots (Level, ProjectID)", list_robots)
        await s("/v2/ push", "skopeo copy as the robot", push)
        if self.pusher is None:
            await s("/v2/ push", "skopeo copy as the admin (no robot)", push_as_admin)
        await s("GET /projects/{p}/repositories[/{r}]", "get_repositories, get_repository", repositories)
        await s("GET /projects/{p}/repositories/{r}/artifacts", "get_artifacts, get_artifact", artifacts)
        await s("GET|POST|DELETE .../artifacts/{ref}/tags", "artifact tags", tags)
        await s("GET /audit-logs", "get_audit_logs", audit_logs)
        await s("GET /projects/{p}/logs", "get_project_logs", project_logs)
        await s("GET /search", "search", search)
        await s("GET /statistics", "get_statistics", statistics)
        await s("GET /configurations", "get_config", configurations)
        await s("DELETE .../artifacts/{ref}", "delete_artifact", delete_artifact)
        await s("DELETE /projects/{p}/repositories/{r}", "delete_repository", delete_repository)
        await s("DELETE /robots/{robot_id}", "delete_robot", delete_robot)

    # d. clean-up ---------------------------------------------------------------------

    async def teardown(self) -> None:
        s, c, p = self.run.step, self.admin, self.project

        async def remove_member() -> None:
            mid = need(self.member_id, "POST /projects/{p}/members")
            await c.remove_project_member(p, mid)
            members = await c.get_project_members(p)
            assert [m.entity_name for m in members] == ["admin"], members
            assert await missing(self.as_user().get_project(p))

        async def delete_project() -> None:
            pid = need(self.project_id, "POST /projects")
            await c.delete_project(p)
            assert await missing(c.get_project(pid))
            assert await c.project_exists(p) is False

        async def delete_user(uid: Optional[int]) -> None:
            uid = need(uid, "POST /users")
            await c.delete_user(uid)
            assert await missing(c.get_user(uid))

        await s("DELETE /projects/{p}/members/{mid}", "remove_project_member", remove_member)
        await s("DELETE /projects/{project_name_or_id}", "delete_project", delete_project)
        await s("DELETE /users/{user_id}", "delete_user", lambda: delete_user(self.user_id))
        await s("DELETE /users/{user_id}", "delete_user (second)", lambda: delete_user(self.other_id))

    async def main(self) -> int:
        await self.system()
        await self.users()
        await self.projects()
        await self.members()
        await self.robots_and_content()
        await self.teardown()
        return self.run.summary()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server, http://host:port")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--layout", required=True, help="an OCI layout whose `latest` is pushed")
    parser.add_argument("--digest", required=True, help="the digest of the layout's `latest`")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(asyncio.run(Scenario(arguments, Run()).main()))
