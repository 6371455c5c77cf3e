"""The database pool follows the worker model unless the spec sets it."""

from __future__ import annotations

import pytest

from flaskprod.spec.model import Spec


def spec(server: dict[str, object], database: dict[str, object] | None = None) -> Spec:
    # gunicorn unless the case says otherwise: the cases do not depend on the default
    server = {"kind": "gunicorn", **server}
    return Spec.model_validate(
        {"app": {"target": "wsgi:app", "name": "x"}, "server": server, "database": database or {}}
    )


@pytest.mark.parametrize(
    ("server", "pool"),
    [
        ({"worker_class": "sync", "workers": 5}, (1, 1)),
        ({"worker_class": "gthread", "workers": 2, "threads": 4}, (4, 1)),
        ({"worker_class": "gthread", "workers": 2, "threads": 8}, (8, 1)),
        ({"worker_class": "gevent", "workers": 2}, (10, 5)),
        # a granian worker runs `threads` requests at once on its blocking threads
        ({"kind": "granian", "workers": 2, "threads": 4}, (4, 1)),
        ({"kind": "granian", "workers": 3, "threads": 8}, (8, 1)),
    ],
)
def test_unset_pool_follows_the_worker_model(
    server: dict[str, object], pool: tuple[int, int]
) -> None:
    derived = spec(server)
    assert derived.pool == pool
    assert derived.pool_connections == int(str(server["workers"])) * sum(pool)


def test_set_pool_wins() -> None:
    given = spec({"worker_class": "gthread", "workers": 3}, {"pool_size": 2, "max_overflow": 0})
    assert given.pool == (2, 0) and given.pool_connections == 6


def test_granian_workers_default_like_a_threaded_model() -> None:
    from flaskprod.spec.workers import default_workers

    granian = spec({"kind": "granian"})
    assert granian.server.effective_workers == default_workers("gthread")
    assert granian.pool_connections == default_workers("gthread") * (4 + 1)
