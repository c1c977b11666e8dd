"""A tiny function app with HTTP triggers for the host runner's tests (real azure.functions v2 decorators)."""

from __future__ import annotations

import json

import azure.functions as func

app = func.FunctionApp()


@app.function_name("restore_status")
@app.route(route="restores/{request_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def restore_status(req: func.HttpRequest) -> func.HttpResponse:
    body = {"requestId": req.route_params["request_id"], "verbose": req.params.get("verbose"),
            "accept": req.headers.get("accept")}
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json",
                             headers={"X-Request-Id": req.route_params["request_id"],
                                      "Set-Cookie": f"last-request={req.route_params['request_id']}; Path=/; HttpOnly"})


@app.function_name("submit")
@app.route(route="restores", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
async def submit(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=202, mimetype="application/octet-stream")


@app.function_name("health")
@app.route(route="health", auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> str:
    return f"ok {req.method}"


@app.function_name("broken")
@app.route(route="broken", auth_level=func.AuthLevel.ANONYMOUS)
def broken(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("broken on purpose")
