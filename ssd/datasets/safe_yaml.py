"""YAML from a dataset, parsed safely: YAML's safe subset (``yaml.safe_load``'s) without aliases.

An alias (``*name``) repeats the node its anchor (``&name``) names, and nested ones expand
exponentially: the probe's 388-byte data.yaml (nine levels of nine aliases, ``names: *i``) stood
for 387 million strings; the import spent 12.5 s of server CPU on it and quoted its ``repr`` in
the error, which made ``GET /api/datasets`` 312 MB (one level more: about 2.8 GB). A dataset's
YAML (Ultralytics' data.yaml) needs no alias, so :class:`NoAliasLoader` refuses the first one
while composing the document, before anything is expanded: the document is then no larger than
its text, which the reader bounds.
"""

from __future__ import annotations

from typing import Any

import yaml


class AliasRefused(yaml.YAMLError):  # type: ignore[misc]
    """A YAML document with an alias (``*name``); ``line`` and ``column`` are 1-based."""

    def __init__(self, line: int, column: int) -> None:
        super().__init__(f"an alias (*name) at line {line}, column {column}")
        self.line, self.column = line, column


class NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc]
    """``yaml.SafeLoader`` that refuses aliases when it composes the document, before anything
    is expanded or constructed (see the module)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise AliasRefused(mark.line + 1, mark.column + 1)
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """The document of ``text`` (YAML's safe subset, no aliases). Raises yaml.YAMLError when it
    is not one (:class:`AliasRefused` for an alias), RecursionError when it nests deeper than
    Python recurses, ValueError for an integer of more than Python's 4300 digits."""
    return yaml.load(text, Loader=NoAliasLoader)
