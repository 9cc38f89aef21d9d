"""`python -m aligntds ...`: the `aligntds` command line."""

import sys

from aligntds._cli import main

if __name__ == "__main__":
    sys.exit(main())
