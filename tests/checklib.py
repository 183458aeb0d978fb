"""checklib.py: the pass/fail counter the Python test scripts share (tests/serve_checks.py,
tests/serve_openai_checks.py): check() prints one line per failure; summary() prints the totals line and
returns the exit status (1 when anything failed)."""
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
