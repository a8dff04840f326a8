"""The container entrypoint: ``python -m <package> [serve]``.

(``worker`` arrives with the Anthropic target.)
"""

from __future__ import annotations

import argparse
import sys

MODES = ("serve",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=__package__, description="Run the agent container's process."
    )
    parser.add_argument("mode", nargs="?", default="serve", choices=MODES,
                        help="serve: the Responses HTTP server (default)")
    args = parser.parse_args(argv)
    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.mode == "serve":
        from .serve import serve

        try:
            return serve(settings)
        except SettingsError as exc:  # a model provider that cannot work, e.g. without its key
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 2  # pragma: no cover - argparse rejects other modes


if __name__ == "__main__":
    sys.exit(main())
