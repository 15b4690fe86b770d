"""The JSON client scripts/cluster-check.sh's Python steps share (standard library only)."""
import json
import urllib.error
import urllib.request


def call(base, method, path, body=None, token=None, timeout=30):
    """(status, headers, JSON body) of one request. An HTTP error is an answer like any other;
    no answer at all (connection refused, timeout) is status 0."""
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), json.load(r)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, dict(e.headers), json.loads(raw or b"{}")
        except ValueError:
            return e.code, dict(e.headers), {}
    except OSError as e:
        return 0, {}, {"error": str(e)}


def raw(base, method, path, data=None, content_type=None, token=None, timeout=30):
    """(status, headers, bytes) of one request with a body sent as it is (assets, logos)."""
    req = urllib.request.Request(base + path, method=method, data=data)
    if content_type:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError as e:
        return 0, {}, str(e).encode()
