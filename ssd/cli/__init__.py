"""The ``ssdboard`` command line of the library: :mod:`.commands` (the parser; train, detect,
evaluate), :mod:`.datasets`, :mod:`.priors` and :mod:`.export`; ``serve`` is added by
:mod:`app.cli`. ``python -m ssd.cli`` runs the library's commands."""

from ssd.cli.commands import build_parser, main, run
from ssd.cli.common import CliError

__all__ = ["CliError", "build_parser", "main", "run"]
