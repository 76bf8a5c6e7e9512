"""The `evidock` executable: `verify` takes a light path, everything else the full CLI."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["verify"]:
        from evidock.cmd_verify import verify_app

        verify_app(args=sys.argv[2:], prog_name="evidock verify")
        return
    from evidock.cli import main as full

    full()
