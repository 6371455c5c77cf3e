"""The plainest WSGI app: answers "ok" (the host tests run it as nobody)."""


def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
