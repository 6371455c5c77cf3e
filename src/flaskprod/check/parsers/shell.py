"""Command lines read as a shell reads them, for every launcher parser.

A launcher (a Dockerfile ``CMD``, a Procfile line, a boot script, a compose
``command``, a systemd ``ExecStart``) is shell text: lines continued with ``\\``,
several commands joined by ``;``/``&&``/``|`` or newlines, ``VAR=value`` prefixes,
``exec``/``env``/``nohup`` in front, ``sh -c '...'`` wrapping a whole script,
redirections. Reading it with a plain ``shlex.split`` turns a trailing ``\\`` into an
argument (``GUN002 ... no module '\\\\'``) and glues two commands into one argv. This
module turns such text into the simple commands it runs, each with its program first.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: Tokens that end one simple command (shlex's punctuation_chars yields them alone).
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "|&", ";;", ";&", ";;&"})
#: Operator characters; parentheses stay in words: ``app:create_app()`` is a gunicorn
#: target in an ExecStart (systemd is no shell) and in many scripts.
_OPERATOR_CHARS = ";&|<>"
_REDIRECT = re.compile(r"^[<>]+&?$|^&>>?$")
#: A file-descriptor number glued to a redirection (2>&1, 1>/dev/null): dropped first.
_FD_PREFIX = re.compile(r"(^|\s)\d+(?=[<>])")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: Words that run the rest of the line as the command.
_WRAPPERS = frozenset({"exec", "nohup", "command", "time", "builtin", "chronic"})
#: Shell keywords that may start a line before the real command.
_KEYWORDS = frozenset({"if", "then", "else", "elif", "while", "until", "do", "!", "{", "}"})
_CLOSERS = frozenset({"fi", "done", "esac", "}"})
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
#: Words that name an app server: the command of a launcher that serves the app.
SERVER_WORDS = ("gunicorn", "granian", "flaskprod.serve", "waitress-serve", "uwsgi")


@dataclass(frozen=True)
class Command:
    """One simple command: its program and arguments, the variables set for it."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict, compare=False)
    #: 1-based line of the text where the command starts.
    line: int = 1

    @property
    def program(self) -> str:
        return PurePosixPath(self.argv[0]).name if self.argv else ""


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: ``\\``-newline continuations
    joined, and a quote left open carried on to the next line, as a shell does."""
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        stripped = raw.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            pending += stripped[:-1] + " "  # a continuation: one line for the shell
            continue
        pending += raw
        if _open_quote(pending):
            pending += "\n"  # inside a quoted string: its newline is part of it
            continue
        lines.append((start, pending))
        pending = ""
    if pending.strip():
        lines.append((start, pending))
    return lines


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def tokens(line: str) -> list[str]:
    """Words and operators of one logical line; comments dropped."""
    line = _FD_PREFIX.sub(r"\1", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote that never closes: words as they stand
        return [word for word in line.split() if word != "\\"]


def commands(text: str, line: int = 1) -> list[Command]:
    """The simple commands of shell ``text``, in order (``line`` numbers its first line)."""
    found: list[Command] = []
    for number, logical in logical_lines(text):
        words: list[str] = []
        skip_target = False
        for token in [*tokens(logical), ";"]:
            if skip_target:
                skip_target = False
                continue
            if _REDIRECT.match(token):
                skip_target = True  # the redirection's file is not an argument
                continue
            if token in _SEPARATORS:
                found += unwrap(words, number + line - 1)
                words = []
                continue
            words.append(token)
    return found


def unwrap(words: list[str] | tuple[str, ...], line: int = 1) -> list[Command]:
    """The command(s) an argv really runs: without ``VAR=x`` prefixes, ``exec``,
    ``env [-i] [-u NAME]``, shell keywords; ``sh -c 'SCRIPT'`` read as its script."""
    env: dict[str, str] = {}
    rest = list(words)
    while rest:
        head = rest[0]
        if head in _KEYWORDS:
            rest.pop(0)
        elif _ASSIGNMENT.match(head):
            key, _, value = rest.pop(0).partition("=")
            env[key] = value
        elif head in _WRAPPERS:
            rest.pop(0)
        elif PurePosixPath(head).name == "env":
            rest.pop(0)
            while rest and rest[0].startswith("-"):
                option = rest.pop(0)
                if option in ("-u", "--unset", "-C", "--chdir", "-S") and rest:
                    rest.pop(0)
        else:
            break
    if not rest or rest[0] in _CLOSERS:
        return []
    program = PurePosixPath(rest[0]).name
    if program in _SHELLS:
        for index, option in enumerate(rest[1:], start=1):
            if not option.startswith("-"):
                break
            if "c" in option.lstrip("-") and index + 1 < len(rest):
                inner = commands(rest[index + 1], line)
                return [Command(c.argv, {**env, **c.env}, c.line) for c in inner]
    return [Command(tuple(rest), env, line)]


def argv_commands(argv: list[str] | tuple[str, ...], line: int = 1) -> list[Command]:
    """The commands of an exec-form argv (a JSON ``CMD``, a compose list)."""
    return unwrap(argv, line)


def command_words(text: str, wanted: tuple[str, ...] = ()) -> list[str]:
    """One command's words from shell text: the first command whose words mention one
    of ``wanted`` (e.g. "gunicorn"), else the last one (a launcher's ``a && b`` ends
    with what it serves); ``[]`` for empty text."""
    found = commands(text)
    for command in found:
        if any(w in word for word in command.argv for w in wanted):
            return list(command.argv)
    return list(found[-1].argv) if found else []
