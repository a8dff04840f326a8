"""The container entrypoint: ``python -m <package> [serve|worker]``.

``serve`` (the default) is the Responses HTTP server; ``worker`` serves an Anthropic self-hosted
environment's tool calls in this image (worker.py, which alone imports the anthropic SDK). The
arguments are read by hand: this runs on every container start, and argparse (with the gettext,
locale and shutil it pulls in) would be a tenth of the start-up time.
"""

from __future__ import annotations

import gc
import sys

MODES = {
    "serve": "the Responses HTTP server (default)",
    "worker": "an Anthropic self-hosted environment worker (see worker.py)",
}
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
    if mode == "worker":
        from .worker import main as worker

        return worker()
    # Start-up creates tens of thousands of objects that live on, and the cyclic GC would scan
    # them some fifty times over (about a tenth of the start-up time). It stays off until the
    # server listens: serve() then runs one full collection and turns it back on.
    gc.disable()
    try:
        return _serve()
    finally:
        gc.enable()


def _serve() -> int:
    """The manifest and settings, then the server."""
    from .settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .serve import serve

    try:
        return serve(settings)
    except SettingsError as exc:  # a model provider that cannot work, e.g. without its key
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
