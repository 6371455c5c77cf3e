"""How the kit and ``up`` name the app to the ``flask`` command: ``FLASK_APP`` in the
command's environment, which every Flask reads (``flask --app`` only exists since
Flask 2.2: CTFd pins 2.1.3 and gets ``Error: No such option: --app``).
"""

from __future__ import annotations

import shlex


def flask_env(target: str) -> dict[str, str]:
    """The environment that makes ``flask ...`` load ``target``."""
    return {"FLASK_APP": target}


def without_app_option(argv: list[str]) -> list[str]:
    """A ``flask`` argv without ``--app X`` / ``--app=X`` / ``-A X`` before the command
    (a step written for Flask >= 2.2; the app then comes from ``FLASK_APP``)."""
    out = argv[:1]
    words = iter(argv[1:])
    for word in words:
        if word in {"--app", "-A"}:
            next(words, None)
        elif not word.startswith("--app="):
            out.append(word)
    return out


def shell_step(target: str, step: str) -> str:
    """``step`` as a shell line: a ``flask ...`` step gets ``FLASK_APP='target'`` in front
    (quoted: ``create_app()`` has parentheses), others are left as written."""
    try:
        argv = shlex.split(step)
    except ValueError:
        return step
    if argv[:1] != ["flask"]:
        return step
    return f"FLASK_APP={shlex.quote(target)} {shlex.join(without_app_option(argv))}"
