"""The side-by-side benchmark: the limit, the usual configuration and flaskprod's stack.

    .venv/bin/python -m bench.perf [--quick]

See ``docs/performance.md`` (rendered by it) for the method and the latest figures.
"""
