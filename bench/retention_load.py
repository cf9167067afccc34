#!/usr/bin/env python3
"""Tag retention's dry run over many tags, against a running Berth (driven by
bench/retention.sh).

  populate REPOSITORIES TAGS: pushes TAGS small images, each under a tag of its own,
           spread over REPOSITORIES repositories of the project `ret`.
  dry-run  creates the project's policy (keep the 10 most recently pushed tags of
           every repository), runs it as a dry run through Harbor's /retentions API,
           and prints JSON: the run's wall time, its tasks, and what it would delete.

Only the standard library is used (the client comes from bench/gc_load.py).
"""

import json
import sys
import time

from gc_load import Client, in_threads

KEEP = 10


def populate(repositories, tags):
    started = time.time()
    in_threads(tags, lambda c, i: c.push_image("ret/r%03d" % (i % repositories), "v%d" % i))
    print(json.dumps({"repositories": repositories, "tags": tags,
                      "populate_s": round(time.time() - started, 1)}))


def dry_run():
    client = Client()
    _, data = client.request("GET", "/api/v2.0/projects/ret")
    project = json.loads(data)["project_id"]
    policy = {
        "algorithm": "or",
        "rules": [{
            "disabled": False, "action": "retain", "template": "latestPushedK",
            "params": {"latestPushedK": KEEP},
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
            "scope_selectors": {"repository": [
                {"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
        }],
        "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
        "scope": {"level": "project", "ref": project},
    }
    response, _ = client.request("POST", "/api/v2.0/retentions", body=json.dumps(policy),
                                 headers={"Content-Type": "application/json"}, expect=(201,))
    policy_path = response.getheader("Location")
    started = time.time()
    response, _ = client.request("POST", policy_path + "/executions",
                                 body=json.dumps({"dry_run": True}),
                                 headers={"Content-Type": "application/json"}, expect=(201,))
    execution_path = response.getheader("Location")
    execution_id = int(execution_path.rsplit("/", 1)[1])
    while True:
        _, data = client.request("GET", policy_path + "/executions")
        execution = next(e for e in json.loads(data) if e["id"] == execution_id)
        if execution["status"] != "Running":
            break
        time.sleep(0.05)
    wall = time.time() - started
    _, data = client.request("GET", execution_path + "/tasks?page_size=100")
    tasks = json.loads(data)
    print(json.dumps({
        "status": execution["status"], "dry_run_wall_s": round(wall, 2),
        "tasks": len(tasks),
        "total": sum(t["total"] for t in tasks), "retained": sum(t["retained"] for t in tasks),
    }, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "populate":
        populate(int(sys.argv[2]), int(sys.argv[3]))
    else:
        dry_run()
