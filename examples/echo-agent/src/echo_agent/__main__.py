"""The container entrypoint: ``python -m <package> [serve]``.

(``worker`` arrives with the Anthropic target.) The arguments are read by hand: this runs on
every container start, and argparse (with the gettext, locale and shutil it pulls in) would be
a tenth of the start-up time.
"""

from __future__ import annotations

import gc
import sys

MODES = {"serve": "the Responses HTTP server (default)"}
USAGE = f"usage: python -m {__package__} [-h] [{{{','.join(MODES)}}}]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        print(f"{USAGE}\n\nRun the agent container's process.\n\nmodes:")
        for mode, meaning in MODES.items():
            print(f"  {mode:<10} {meaning}")
        return 0
    if len(args) > 1 or (args and args[0] not in MODES):
        print(f"{USAGE}\nerror: expected one of {', '.join(MODES)}; got {' '.join(args)!r}",
              file=sys.stderr)
        return 2
    mode = args[0] if args else "serve"
    # Start-up creates tens of thousands of objects that live on, and the cyclic GC would scan
    # them some fifty times over (about a tenth of the start-up time). It stays off until the
    # server listens: serve() then runs one full collection and turns it back on.
    gc.disable()
    try:
        return _run(mode)
    finally:
        gc.enable()


def _run(mode: str) -> int:
    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if mode == "serve":
        from .serve import serve

        try:
            return serve(settings)
        except SettingsError as exc:  # a model provider that cannot work, e.g. without its key
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 2  # pragma: no cover - every mode is handled above


if __name__ == "__main__":
    sys.exit(main())
