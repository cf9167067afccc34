#!/usr/bin/env python3
"""Garbage collection under load, against a running Berth (driven by bench/gc.sh).

  populate  REFERENCED UNREFERENCED: pushes REFERENCED/2 small images (a config and a
            1 KiB layer each, so REFERENCED blobs that manifests reference) and
            UNREFERENCED blobs that nothing references, over 100 repositories.
  measure [SECONDS]
            runs pushes of new images in the background (two clients) and pulls of a
            referenced blob with wrk (8 connections: a steady load, not a saturating
            one): SECONDS (30) without a collection, then for as long as one takes
            (started through Harbor's /system/gc/schedule); prints JSON: the
            collection's wall time, blobs and bytes deleted, blobs deleted a second,
            and the pull latencies (p50, p99, worst) over each whole window, with the
            ratios of the collection's window to the one without.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

URL = os.environ.get("GCBENCH_URL", "http://127.0.0.1:5070")
ADMIN = os.environ.get("GCBENCH_ADMIN", "admin:Bench-admin-1")
REPOS = 100
THREADS = 8
HOST = urllib.parse.urlparse(URL).netloc
AUTH = {"Authorization": "Basic " + base64.b64encode(ADMIN.encode()).decode()}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    """One keep-alive connection."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(HOST, timeout=120)

    def request(self, method, path, body=None, headers=None, expect=(200,)):
        headers = dict(headers or {}, **AUTH)
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in expect:
            raise RuntimeError("%s %s -> %d %s" % (method, path, response.status, data[:200]))
        return response, data

    def push_blob(self, repo, data):
        d = digest(data)
        response, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo, expect=(202,))
        location = response.getheader("Location")
        sep = "&" if "?" in location else "?"
        self.request("PUT", "%s%sdigest=%s" % (location, sep, d), body=data,
                     headers={"Content-Type": "application/octet-stream"}, expect=(201,))
        return d

    def push_image(self, repo, tag):
        layer = os.urandom(1024)
        layer_digest = self.push_blob(repo, layer)
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                             "nonce": os.urandom(8).hex()}).encode()
        config_digest = self.push_blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": len(layer)}],
        }).encode()
        self.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), body=manifest,
                     headers={"Content-Type": OCI_MANIFEST}, expect=(201,))
        return layer_digest


def in_threads(count, work):
    """Runs work(index) for index in range(count) on THREADS threads with a client each."""
    lock = threading.Lock()
    next_index = [0]
    errors = []

    def worker():
        client = Client()
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= count or errors:
                return
            try:
                work(client, i)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def populate(referenced, unreferenced):
    started = time.time()
    in_threads(referenced // 2,
               lambda c, i: c.push_image("gc/r%03d" % (i % REPOS), "t%d" % i))
    in_threads(unreferenced,
               lambda c, i: c.push_blob("gc/r%03d" % (i % REPOS), os.urandom(1024)))
    print(json.dumps({"referenced_blobs": referenced // 2 * 2, "unreferenced_blobs": unreferenced,
                      "populate_s": round(time.time() - started, 1)}))


class Pusher(threading.Thread):
    """Pushes new small images until stopped."""

    def __init__(self, index):
        super().__init__(daemon=True)
        self.index, self.stopped, self.pushed = index, threading.Event(), 0

    def run(self):
        client = Client()
        while not self.stopped.is_set():
            client.push_image("gc/live%d" % self.index, "p%d" % self.pushed)
            self.pushed += 1


def parse_wrk(out):
    """The rate, p50, p99 and worst latency wrk reports."""
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    scale = {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}
    for p in ("50", "99"):
        value, unit = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, out, re.M).groups()
        result["p%s_ms" % p] = float(value) * scale[unit]
    value, unit = re.search(r"^\s+Latency(?:\s+\S+){2}\s+([\d.]+)(us|ms|s|m)", out, re.M).groups()
    result["max_ms"] = float(value) * scale[unit]
    return result


class Pulls:
    """wrk pulling `path` (one thread, 8 connections) from start to stop: latencies
    over the whole window, not slices of it."""

    def __init__(self, path):
        self.started = time.time()
        self.process = subprocess.Popen(
            ["wrk", "-t", "1", "-c", "8", "-d", "3600s", "--latency",
             "-H", "Authorization: " + AUTH["Authorization"], URL + path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        """Ends the window (wrk reports on SIGINT) and returns what wrk measured."""
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate()
        return dict(parse_wrk(out), window_s=round(time.time() - self.started, 1))


def start_collection(client):
    body = json.dumps({"schedule": {"type": "Manual"},
                       "parameters": {"delete_untagged": False, "dry_run": False, "workers": 4}})
    response, _ = client.request("POST", "/api/v2.0/system/gc/schedule", body=body,
                                 headers={"Content-Type": "application/json"}, expect=(201,))
    return response.getheader("Location")


def measure(baseline_seconds):
    client = Client()
    layer = client.push_image("gc/pulled", "latest")
    pull = "/v2/gc/pulled/blobs/%s" % layer
    pushers = [Pusher(i) for i in range(2)]
    for p in pushers:
        p.start()
    time.sleep(1)
    pulls = Pulls(pull)
    time.sleep(baseline_seconds)
    without = pulls.stop()
    pulls = Pulls(pull)
    started = time.time()
    location = start_collection(client)
    while True:
        time.sleep(0.5)
        _, data = client.request("GET", location)
        run = json.loads(data)
        if run["job_status"] not in ("Pending", "Running"):
            break
    wall = time.time() - started
    during = pulls.stop()
    for p in pushers:
        p.stopped.set()
    _, log = client.request("GET", location + "/log")
    deleted = [line for line in log.decode().splitlines() if "deleted blob" in line]
    freed = sum(int(m.group(1)) for m in
                (re.search(r"\((\d+) bytes\)", line) for line in deleted) if m)
    print(json.dumps({
        "status": run["job_status"], "gc_wall_s": round(wall, 2),
        "blobs_deleted": len(deleted), "bytes_freed": freed,
        "blobs_per_s": round(len(deleted) / wall, 1),
        "pull_without_gc": without, "pull_during_gc": during,
        "pull_p99_ratio": round(during["p99_ms"] / without["p99_ms"], 2),
        "pull_p50_ratio": round(during["p50_ms"] / without["p50_ms"], 2),
        "images_pushed_meanwhile": sum(p.pushed for p in pushers),
    }, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "populate":
        populate(int(sys.argv[2]), int(sys.argv[3]))
    else:
        measure(int(sys.argv[2]) if len(sys.argv) > 2 else 30)
