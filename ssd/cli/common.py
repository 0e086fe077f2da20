"""What every ``ssdboard`` command shares: the user error and the ``--data-dir`` help."""

from __future__ import annotations


class CliError(Exception):
    """A user error: printed as ``ssdboard: error: ...`` with exit status 2."""


DATA_DIR_HELP = "where imported datasets live (default SSDBOARD_DATA_DIR or ./data)"
