#!/usr/bin/env python3
"""HTTP side of scripts/bench-analytics.sh: p50/p99 of the analytics routes and pages on a running
server, one keep-alive connection, N requests per route over random tenants.
Usage: bench-analytics.py BASE PASSWORD N TENANTS_WITH_OWNER"""
import http.client
import json
import random
import re
import sys
import time
import urllib.parse

base, password, n, owned = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def request(method, path, headers=None, body=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.getheader("set-cookie"), data


def token(email):
    status, _, _, data = request("POST", "/api/v1/auth/login", {"Content-Type": "application/json"},
                                 json.dumps({"email": email, "password": password}))
    assert status == 200, data
    return json.loads(data)["token"]


def session(email):
    _, _, cookie, page = request("GET", "/admin/login")
    csrf = re.search(rb'name="_csrf" value="([^"]+)"', page).group(1).decode()
    jar = cookie.split(";")[0] if cookie else ""
    form = urllib.parse.urlencode({"_csrf": csrf, "next": "/admin", "email": email, "password": password})
    status, _, cookie, body = request("POST", "/admin/login", {"Content-Type": "application/x-www-form-urlencoded", "Cookie": jar}, form)
    assert status == 303, (status, body[:300])
    return cookie.split(";")[0]


def measure(label, paths, headers):
    samples = []
    for p in paths:
        t0 = time.perf_counter()
        status, _, _, body = request("GET", p, headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert status == 200, (p, status, body[:300])
    samples.sort()
    pct = lambda q: samples[min(len(samples) - 1, round((len(samples) - 1) * q))]
    print(f"{label:<44} n={len(samples):<4} p50 {pct(0.5):8.1f} ms  p99 {pct(0.99):8.1f} ms  max {samples[-1]:8.1f} ms", flush=True)


random.seed(21)
slugs = lambda k: [f"t{random.randrange(owned):06d}" for _ in range(k)]
owner = {"Authorization": "Bearer " + token("owner@bench.test")}
root = {"Authorization": "Bearer " + token("root@bench.test")}
root_cookie = {"Cookie": session("root@bench.test")}
# Right after the start, while the server computes the platform's documents in the background.
measure("platform dashboard page, first read after start", ["/admin/platform/analytics"], root_cookie)
measure("tenant overview (30 days)", [f"/api/v1/t/{s}/analytics/overview" for s in slugs(n)], owner)
measure("tenant trends (30 days by day)", [f"/api/v1/t/{s}/analytics/usage-trends?granularity=day" for s in slugs(n)], owner)
measure("tenant trends (a year by month)", [f"/api/v1/t/{s}/analytics/usage-trends?granularity=month&from=-365d" for s in slugs(n)], owner)
measure("tenant trends (7 days by hour)", [f"/api/v1/t/{s}/analytics/usage-trends?granularity=hour&from=-7d" for s in slugs(n)], owner)
measure("peer benchmark (comparative, 30 days)", [f"/api/v1/t/{s}/analytics/comparative" for s in slugs(max(10, n // 10))], owner)
cookie = {"Cookie": session("owner@bench.test")}
measure("tenant dashboard page (30 days)", [f"/admin/t/{s}/analytics" for s in slugs(max(10, n // 4))], cookie)
measure("platform revenue (a year)", ["/api/v1/platform/analytics/revenue"] * max(10, n // 10), root)
platform = max(10, n // 10)
measure("platform dashboard page (30 days)", ["/admin/platform/analytics"] * platform, root_cookie)
measure("platform console (7 days)", ["/admin/platform"] * platform, root_cookie)
measure("platform overview (30 days)", ["/api/v1/platform/analytics/overview"] * platform, root)
measure("platform trends (30 days by day)", ["/api/v1/platform/analytics/usage-trends"] * platform, root)
measure("platform health (30 days)", ["/api/v1/platform/analytics/health"] * platform, root)
measure("platform dashboard page (90 days), first read", ["/admin/platform/analytics?days=90"], root_cookie)
# Ranges nobody asked for yet: each read computes its document (what a kept one saves).
fresh = [f"from=-{d}d" for d in (29, 28, 27)]
measure("platform overview, computed on the read", [f"/api/v1/platform/analytics/overview?{q}" for q in fresh], root)
measure("platform trends by day, computed on the read", [f"/api/v1/platform/analytics/usage-trends?{q}" for q in fresh], root)
measure("platform health, computed on the read", [f"/api/v1/platform/analytics/health?{q}" for q in fresh], root)
