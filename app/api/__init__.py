"""HTTP routes: parse the request, call one service, answer. Domain errors become HTTP errors in
:mod:`app.api.errors`; pages live in :mod:`app.api.pages`."""

from __future__ import annotations

from fastapi import Request


def root_of(request: Request) -> str:
    """The app's mount point (``root_path``) without a trailing slash, for URLs in answers."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
