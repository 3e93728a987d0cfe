"""Write the chart's Grafana dashboards and PrometheusRule from hack/dashboards; --check: exit 1 on drift.

Usage: .venv/bin/python hack/gen_dashboards.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
from dashboards.render import DASHBOARD_DIR, expected_files  # noqa: E402


def drifted(root: Path = REPO) -> list[str]:
    """Generated files that are missing, different, or stale dashboards no longer produced."""
    expected = expected_files()
    problems = [
        p for p, text in expected.items() if not (root / p).is_file() or (root / p).read_text() != text
    ]
    stale = (f"{DASHBOARD_DIR}/{p.name}" for p in (root / DASHBOARD_DIR).glob("*.json"))
    return problems + sorted(p for p in stale if p not in expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the chart differs from hack/dashboards"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = drifted()
        for rel in problems:
            print(f"drift: {rel} is not what hack/gen_dashboards.py generates", file=sys.stderr)
        return 1 if problems else 0
    expected = expected_files()
    for stale in (REPO / DASHBOARD_DIR).glob("*.json"):
        if f"{DASHBOARD_DIR}/{stale.name}" not in expected:
            stale.unlink()
    for rel, text in expected.items():
        path = REPO / rel
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
