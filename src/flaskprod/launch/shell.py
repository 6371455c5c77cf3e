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
from collections.abc import Mapping
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
#: A quote left open is carried over at most this many lines (then read as it stands).
_MAX_QUOTED_LINES = 200
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
    """(first line number, text) of each logical line, comments removed: ``\\``-newline
    continuations joined, and a quote left open carried on to the next line, as a
    shell does (for at most :data:`_MAX_QUOTED_LINES` lines)."""
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 1
    held = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start, held = number, 0
        code, open_quote = _strip_comment(pending + raw)
        if not open_quote and code.rstrip().endswith("\\") and not code.rstrip().endswith("\\\\"):
            pending = code.rstrip()[:-1] + " "  # a continuation: one line for the shell
            continue
        held += 1
        if open_quote and held < _MAX_QUOTED_LINES:
            pending += raw + "\n"  # inside a quoted string: its newline is part of it
            continue
        lines.append((start, code))
        pending = ""
    if pending.strip():
        lines.append((start, _strip_comment(pending)[0]))
    return lines


def _strip_comment(text: str) -> tuple[str, bool]:
    """``text`` without its comments (a ``#`` starting a word, outside quotes, to the
    end of its line), and whether a quote is still open at the end."""
    out: list[str] = []
    quote: str | None = None
    index = 0
    while index < len(text):
        char = text[index]
        if quote is None and char == "#" and (index == 0 or text[index - 1].isspace()):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        if char == "\\" and quote != "'" and index + 1 < len(text):
            out.append(text[index : index + 2])
            index += 2
            continue
        if char in "'\"" and quote in (None, char):
            quote = None if quote == char else char
        out.append(char)
        index += 1
    return "".join(out), quote is not None


def tokens(line: str) -> list[str]:
    """Words and operators of one logical line (its comments already removed)."""
    line = _FD_PREFIX.sub(r"\1", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace_split = True
    lexer.commenters = ""
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
            short = not option.startswith("--")  # -c, -ec, -lc; not --norc
            if short and "c" in option[1:] and index + 1 < len(rest):
                inner = commands(rest[index + 1], line)
                return [Command(c.argv, {**env, **c.env}, c.line) for c in inner]
    return [Command(tuple(rest), env, line)]


def command_words(text: str, wanted: tuple[str, ...] = ()) -> list[str]:
    """One command's words from shell text: the first command whose words mention one
    of ``wanted`` (e.g. "gunicorn"), else the last one (a launcher's ``a && b`` ends
    with what it serves); ``[]`` for empty text."""
    found = commands(text)
    for command in found:
        if any(w in word for word in command.argv for w in wanted):
            return list(command.argv)
    return list(found[-1].argv) if found else []


def split_command(text: str) -> list[str]:
    """The app server's command in shell ``text`` (continuations joined, ``exec``,
    ``VAR=x`` and ``sh -c`` unwrapped; of ``a && b``, the command that runs a server,
    else the last one)."""
    return command_words(text, SERVER_WORDS)


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")
#: ``${VAR:-default}`` / ``${VAR-default}`` / ``${VAR:=default}`` / ``${VAR=default}``.
_WITH_DEFAULT = re.compile(r"\$\{([A-Za-z_]\w*)(:?)[-=]([^}]*)\}")


def expand_known(word: str, env: Mapping[str, str], *, defaults: bool = False) -> str:
    """``$VAR``/``${VAR}`` replaced where ``env`` knows them; others left as written
    (a value only the server has stays visibly unknown). With ``defaults``, a
    ``${VAR:-default}`` the environment does not set is its default, as the shell does."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    def with_default(match: re.Match[str]) -> str:
        name, colon, default = match.groups()
        value = env.get(name)
        if value is None or (colon and not value):
            return expand_known(default, env)
        return value

    if defaults:
        word = _WITH_DEFAULT.sub(with_default, word)
    return _VARIABLE.sub(one, word)


def script_variables(text: str, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the variables a script sets for itself on lines of their own
    (``WORKER_CLASS=${WORKER_CLASS:-gevent}``, ``export X=y``), expanded in order as
    the shell does: what the launcher's environment sets wins where the script says so."""
    known = dict(env)
    for _, logical in logical_lines(text):
        words = tokens(logical)
        if words[:1] in (["export"], ["readonly"]):
            words = words[1:]
        if words and all(_ASSIGNMENT.match(word) for word in words):
            for word in words:
                name, _, value = word.partition("=")
                known[name] = expand_known(value, known, defaults=True)
    return known
