"""Run the generated agent server (package $AGENT_PACKAGE) with SIGTERM ignored, as a server
that forgot its shutdown would: it keeps serving until the engine kills it.

The server installs its own SIGTERM handler at start-up, so installing one is made a no-op.
"""

import os
import runpy
import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
_install = signal.signal


def _keep_ignoring_sigterm(signum, handler):
    if signum == signal.SIGTERM:
        return signal.SIG_IGN
    return _install(signum, handler)


signal.signal = _keep_ignoring_sigterm
runpy.run_module(os.environ["AGENT_PACKAGE"], run_name="__main__", alter_sys=True)
