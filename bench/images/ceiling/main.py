"""CEILING image entrypoint: ``bench/ceiling_app.py``'s bare echo plus ``GET /readiness``,
served by uvicorn on ``0.0.0.0:$PORT`` (uvloop and httptools, as uvicorn picks when present)."""

import os

import uvicorn
from ceiling_app import app
from starlette.requests import Request
from starlette.responses import Response


async def readiness(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


app.add_route("/readiness", readiness, methods=["GET"])

if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8088")),
                access_log=False, log_level="warning", lifespan="off", server_header=False)
