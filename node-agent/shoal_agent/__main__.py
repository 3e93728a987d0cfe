"""shoal-agent: register this node, run its Wasm placements, serve their HTTP triggers.

Start-up, in this order: the warm start serves the HTTP apps this agent served before it stopped,
from its own disk (warmstart.py), before the heavy imports (the Kubernetes client, the API models,
aiohttp: about 3 s of a restart); then the agent proper starts (agent.py): servers up (healthz
answers at once), WasmNode + Lease written, placement watch running; /readyz turns 200 once both
hold. SIGTERM (or SIGINT): /readyz and every trigger request answer 503, placements are marked
Draining (ready=false), in-flight invocations get `--grace-seconds` to finish, guests still running
after that are interrupted, the Lease stops being renewed, and the process exits 0 with no thread or
child left behind.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from . import warmstart
from .config import parse_args


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    warm = warmstart.start(cfg)
    from .agent import main as run_agent  # the heavy imports, once the warm apps serve

    return run_agent(cfg, warm)


if __name__ == "__main__":
    sys.exit(main())
