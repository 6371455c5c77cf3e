"""A deliberately careless Flask app for the live checks: debug on (the Werkzeug
debugger wraps it), an X-Powered-By header, a session-like cookie without flags, a
readiness path that says 200 while reporting a failed database, a slow liveness path,
a page that raises (500 with a stack trace), static files served by Flask and a body
limit enforced by the app only."""

import time

from flask import Flask, make_response, request
from werkzeug.debug import DebuggedApplication

app = Flask(__name__)
app.debug = True
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # the app's limit, not the proxy's


@app.before_request
def read_posted_bodies():  # type: ignore[no-untyped-def]
    if request.method == "POST":
        request.get_data()  # over MAX_CONTENT_LENGTH: Werkzeug's 413


@app.after_request
def careless_headers(response):  # type: ignore[no-untyped-def]
    response.headers["X-Powered-By"] = "Flask/3"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"  # nginx adds DENY: a conflict
    return response


@app.get("/")
def home():  # type: ignore[no-untyped-def]
    response = make_response(
        '<html><head><link rel="stylesheet" href="/static/site.css"></head>'
        '<body><a href="/boom">boom</a><a href="/about">about</a></body></html>'
    )
    response.set_cookie("sessionid", "abc")  # no Secure, HttpOnly, SameSite
    return response


@app.get("/about")
def about():  # type: ignore[no-untyped-def]
    return "about"


@app.get("/boom")
def boom():  # type: ignore[no-untyped-def]
    raise RuntimeError("careless")


@app.get("/health")
def health():  # type: ignore[no-untyped-def]
    time.sleep(1.5)
    return {"status": "ok"}


@app.get("/health/ready")
def ready():  # type: ignore[no-untyped-def]
    return {"status": "ok", "checks": {"database": {"status": "fail"}}}


app.wsgi_app = DebuggedApplication(app.wsgi_app, evalex=True)  # type: ignore[method-assign]
