"""checklib.py: the pass/fail counter the Python test scripts share (tests/serve_checks.py,
tests/serve_openai_checks.py, ...): check() prints one line per failure; summary() prints the totals line and
returns the exit status (1 when anything failed); host_port() and get_json() are the serve checks' plain
HTTP helpers."""
import http.client
import json
import sys

_counts = {"checks": 0, "fails": 0}


def check(name, ok, detail=""):
    """Count a check; print it with detail when it failed."""
    _counts["checks"] += 1
    if not ok:
        _counts["fails"] += 1
        print(f"FAIL: {name} {detail}", file=sys.stderr)


def summary(name):
    """Print '[not ]ok NAME: N checks, F failed'; return the exit status."""
    f = _counts["fails"]
    print(f"{'ok' if f == 0 else 'not ok'} {name}: {_counts['checks']} checks, {f} failed")
    return 1 if f else 0


def host_port(url):
    """('127.0.0.1', 8080) from 'http://127.0.0.1:8080/...'."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    return host, int(port)


def get_json(host, port, path, timeout=30):
    """GET path from the server; its body parsed as JSON."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    c.request("GET", path)
    body = json.loads(c.getresponse().read())
    c.close()
    return body
