"""Write crds/*.yaml (and the chart's copy) from the shoal_api models; with --check, exit 1 on drift.

Usage: .venv/bin/python hack/gen_crds.py [--check] [--out DIR] [--chart-out DIR]

Without --out, both crds/ and charts/shoal/crds/ are written (or checked): the Helm chart installs CRDs
from its crds/ folder, which Helm never templates, so it gets the same bytes rather than a copy kept by
hand. With --out, only DIR (plus --chart-out, if given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
from shoal_api.crds import crd_definitions, render_crd_yaml  # noqa: E402


def expected_files() -> dict[str, str]:
    """File name -> exact content for every CRD."""
    return {name: render_crd_yaml(crd) for name, crd in crd_definitions().items()}


def drifted(out_dir: Path) -> list[str]:
    """Names of files that are missing, different, or stale (generated-looking but no longer produced)."""
    expected = expected_files()
    problems = [
        name
        for name, text in expected.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text() != text
    ]
    problems += sorted(p.name for p in out_dir.glob("shoal.dev_*.yaml") if p.name not in expected)
    return problems


CHART_CRDS = REPO / "charts" / "shoal" / "crds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if an output differs from the models")
    parser.add_argument("--out", type=Path, help="output directory (default: crds/ and the chart's crds/)")
    parser.add_argument("--chart-out", type=Path, help="a second output directory")
    args = parser.parse_args(argv)
    out_dirs: list[Path] = [args.out] if args.out else [REPO / "crds", CHART_CRDS]
    if args.chart_out:
        out_dirs.append(args.chart_out)
    if args.check:
        problems = [out_dir / name for out_dir in out_dirs for name in drifted(out_dir)]
        for path in problems:
            print(f"drift: {path} is not what hack/gen_crds.py generates", file=sys.stderr)
        return 1 if problems else 0
    for out_dir in out_dirs:
        write(out_dir)
    return 0


def write(out_dir: Path) -> None:
    """Make `out_dir` hold exactly the generated CRDs (stale generated files removed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    expected = expected_files()
    for stale in out_dir.glob("shoal.dev_*.yaml"):
        if stale.name not in expected:
            stale.unlink()
    for name, text in expected.items():
        path = out_dir / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    sys.exit(main())
