"""``python -m ssd.cli``: the library's commands (the server runs exports this way)."""

import sys

from ssd.cli.commands import main

sys.exit(main())
