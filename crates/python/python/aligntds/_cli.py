"""The `aligntds` command line from pip: the console script `aligntds` and
`python -m aligntds` run the same Rust command line as the cargo-built binary."""

from __future__ import annotations

import signal
import sys

from aligntds import _aligntds


def main(argv: list[str] | None = None) -> int:
    """Runs `aligntds` with `argv` (default: this process's arguments after the
    program name) and returns its exit code (0, or 2 on failure)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        # The whole process is the command: the interrupt key stops it at
        # once, as it stops the binary (Python's own handler would wait for
        # the native call to return).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    return _aligntds.cli_main(["aligntds", *args])


if __name__ == "__main__":
    sys.exit(main())
