"""PEER image entrypoint: ``bench/peer_app.py``'s echo host started the way the host ships.

``ResponsesAgentServerHost.run()`` is the host's own entrypoint (Hypercorn, ``0.0.0.0``,
``PORT`` or 8088), in peer_app's fastest configuration: no observability, no access log,
in-memory store. ``GET /readiness`` is the host's own route.
"""

from peer_app import build

if __name__ == "__main__":
    build().run()
