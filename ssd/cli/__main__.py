"""``python -m ssd.cli``: the library's commands (the server runs exports this way)."""

import sys

from ssd.cli.commands import main

if __name__ == "__main__":  # imported, as the install test imports every module, it runs nothing
    sys.exit(main())
