"""Load ``flaskprod.toml`` into a :class:`Spec`, with one-line errors a person can act on.

Every problem becomes a :class:`SpecError` naming the file, the key path and the
reason, e.g. ``flaskprod.toml: server.workers: must be at least 1 (got 0)``. pydantic's
error types are translated here, in one table, rather than shown raw.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flaskprod.errors import SpecError
from flaskprod.spec.model import Spec
from flaskprod.spec.write import toml_value

# Patterns of the model, said in words (the raw regex helps nobody).
_PATTERNS: dict[str, str] = {
    r"^/[^\s]*$": "must be a URL path starting with '/'",
    r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(.*\))?$": "must be 'module:app' or 'module:create_app()'",
    r"^[a-z][a-z0-9-]{0,30}$": "must be lowercase letters, digits and '-', "
    "starting with a letter, at most 31 characters",
    r"^\d+r/[sm]$": "must be a rate like '10r/s' or '5r/m'",
    r"^3\.\d+$": "must be a Python version like '3.11'",
    r"^python:3\.\d+\.\d+-slim-[a-z]+$": "must be a pinned slim Python image like "
    "'python:3.11.11-slim-bookworm'",
}

_TYPES: dict[str, str] = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": 'must be a list, e.g. ["a", "b"]',
    "float_type": "must be a number",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def load_spec(path: Path | str) -> Spec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: not found", hint="run 'flaskprod init' to write one") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read: {error}") from None
    return parse_spec(text, path.name)


def parse_spec(text: str, filename: str = "flaskprod.toml") -> Spec:
    """Validate the text of a spec; ``filename`` is what error messages call it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(_toml_error(filename, str(error))) from None
    return spec_from_data(data, filename)


def spec_from_data(data: Mapping[str, Any], filename: str = "flaskprod.toml") -> Spec:
    try:
        # Strict: TOML is typed, so "4" for an integer is a mistake, not a 4.
        return Spec.model_validate(data, strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        # A check across sections (loc empty) names its keys in its own message.
        where = f"{_key_path(first['loc'])}: " if first["loc"] else ""
        reason = describe(first)
        if where and reason.startswith(where[:-2] + "."):
            where = ""  # a section's check names its own key (server.worker_class: ...)
        raise SpecError(f"{filename}: {where}{reason}") from None


def _toml_error(filename: str, message: str) -> str:
    # tomllib says "Expected '=' after a key (at line 12, column 5)".
    match = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if match:
        return f"{filename}:{match.group(1)}: invalid TOML: {message[: match.start()]}"
    match = re.search(r"\s*\(at end of document\)$", message)
    if match:
        return f"{filename}: invalid TOML: {message[: match.start()]} (at the end)"
    return f"{filename}: invalid TOML: {message}"


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        else:
            parts.append(part)
    return ".".join(parts) or "(top level)"


def _got(value: Any) -> str:
    try:
        return f" (got {toml_value(value)})"
    except TypeError:
        return ""


def describe(error: ErrorDetails) -> str:
    """pydantic's error -> the short reason shown after the key path."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(error["loc"])
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}{_got(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}{_got(value)}"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}{_got(value)}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}{_got(value)}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERNS.get(pattern, f"must match {pattern}") + _got(value)
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace(" or ", ", ")
        return f"must be one of {choices}{_got(value)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must have at least {count} item{'s' if count != 1 else ''}{_got(value)}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in _TYPES:
        return _TYPES[kind] + _got(value)
    return error["msg"][:1].lower() + error["msg"][1:] + _got(value)


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    model = _model_at(loc[:-1])
    known = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return "unknown key (expected one of: " + ", ".join(known) + ")"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the keys at ``loc`` (for "did you mean")."""
    model: type[BaseModel] = Spec
    annotation: Any = Spec
    skip_key = False
    for part in loc:
        if skip_key:  # the free-form key of a dict, e.g. "api" in http.rate_limits.api
            skip_key = False
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        if get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            skip_key = True
        # an optional section ([deploy.balancer]): its model
        members = [a for a in get_args(annotation) if isinstance(a, type)]
        if type(None) in members:
            annotation = next((a for a in members if issubclass(a, BaseModel)), annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model if not skip_key else None
