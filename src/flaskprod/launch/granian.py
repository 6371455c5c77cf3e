"""granian's command line: its arguments inside a launcher's command (directly, through
``python -m granian``/``python -m flaskprod.serve``, or inside ``sh -c '... exec
granian ...'``), its flags and its APP argument."""

from __future__ import annotations

from pathlib import PurePosixPath

from flaskprod.launch.shell import unwrap

#: granian's switches (no value); every ``--no-x`` is one too.
SWITCHES = frozenset(
    {
        "--ws",
        "--factory",
        "--respawn-failed-workers",
        "--access-log",
        "--log",
        "--reload",
        "--metrics",
        "--http1-keep-alive",
        "--http1-pipeline-flush",
        "--http2-adaptive-window",
        "--ssl-client-verify",
        "--reload-ignore-worker-failure",
        "--version",
        "--help",
    }
)


def find_granian(words: list[str] | tuple[str, ...]) -> tuple[list[str], bool] | None:
    """granian's arguments inside a command (also inside ``sh -c '... exec granian ...'``,
    the kit's launch line), and whether flaskprod.serve (older kits) starts it."""
    for command in unwrap(words):
        found = _granian_args(list(command.argv))
        if found is not None:
            return found
    return None


def _granian_args(words: list[str]) -> tuple[list[str], bool] | None:
    for index, word in enumerate(words):
        if PurePosixPath(word).name == "granian":
            return words[index + 1 :], False
        if word == "-m" and index + 1 < len(words):
            module = words[index + 1]
            if module in ("granian", "flaskprod.serve"):
                return words[index + 2 :], module == "flaskprod.serve"
    return None


def parse_flags(args: list[str]) -> tuple[dict[str, str | bool], str | None]:
    """granian's flags (``--x v``, ``--x=v``, switches) and its APP argument."""
    flags: dict[str, str | bool] = {}
    target: str | None = None
    index = 0
    while index < len(args):
        word = args[index]
        if word.startswith("--"):
            name, sep, value = word.partition("=")
            if sep:
                flags[name] = value
            elif name in SWITCHES or name.startswith("--no-"):
                flags[name] = True
            elif index + 1 < len(args):
                flags[name] = args[index + 1]
                index += 1
        elif target is None:
            target = word
        index += 1
    return flags, target
