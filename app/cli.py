"""The ``ssdboard`` console script: the library's commands (:mod:`ssd.cli`) plus ``serve``.

``serve`` lives here, not in ``ssd/``, because the library never imports the web layer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssd.cli import CliError, build_parser, run


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the dashboard with uvicorn (blocks until interrupted)."""
    from pydantic import ValidationError

    from app.http.security import UnsafeBindError
    from app.main import serve
    from app.store.engine import DatabaseUnavailable
    from app.store.migrations import SchemaTooNew

    try:
        return serve(host=args.host, port=args.port, data_dir=args.data_dir, insecure=args.insecure)
    except UnsafeBindError as exc:
        raise CliError(f"option --host: {exc}") from exc
    except SchemaTooNew as exc:  # refuse to start: this code could not read what a newer one wrote
        raise CliError(str(exc)) from None
    except DatabaseUnavailable as exc:  # no traceback for a database that is down or a missing driver
        raise CliError(str(exc)) from None
    except ValidationError as exc:  # a bad SSDBOARD_* setting: name the variable, refuse to start
        problems = "; ".join(f"SSDBOARD_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise CliError(problems) from None


def make_parser() -> argparse.ArgumentParser:
    """``ssdboard`` with every subcommand: train, detect, evaluate, serve."""
    parser, sub = build_parser()
    p = sub.add_parser("serve", help="start the dashboard")
    p.add_argument("--host", default=None, help="default 127.0.0.1 (or SSDBOARD_HOST)")
    p.add_argument("--port", type=int, default=None, help="default 8000 (or SSDBOARD_PORT)")
    p.add_argument(
        "--data-dir", default=None, help="where jobs and the database live (default ./data or SSDBOARD_DATA_DIR)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without SSDBOARD_TOKEN (anyone who can reach it can change jobs)",
    )
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ssdboard`` console script."""
    return run(make_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
