"""Write a spec out as ``flaskprod.toml``: every setting visible, each explained.

The text is generated from the pydantic model itself (field order, descriptions,
allowed values, ranges), so the file, the docs and the validation cannot disagree.
Writing then loading gives back the same spec (tested).
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flaskprod import __version__
from flaskprod.spec.model import (
    GRANIAN_ONLY,
    GUNICORN_ONLY,
    SPEC_FILENAME,
    RoleHost,
    Spec,
    default_workers,
)

_WIDTH = 90

#: server settings that belong to the other server, per server.kind.
_FOREIGN: dict[str, tuple[str, ...]] = {
    "gunicorn": tuple(GRANIAN_ONLY),
    "granian": tuple(GUNICORN_ONLY),
}


def toml_value(value: Any) -> str:
    """One value in TOML notation (also how error messages quote what they got)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (same escapes).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, BaseModel):
        return toml_value(value.model_dump())
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "").isalnum() and name.isascii()
    return name if bare else json.dumps(name)


def workers_reasoning(worker_class: str, cpus: int | None = None) -> str:
    """Why unset ``workers`` means what it means on this machine (a comment line)."""
    cores = cpus or os.cpu_count() or 1
    chosen = default_workers(worker_class, cores)
    if worker_class == "sync":
        rule = "2 x cores + 1 for sync"  # each sync worker blocks on its request
    else:
        rule = f"one per core, at least 2, for {worker_class}"  # threads overlap the I/O
    if worker_class == "granian":
        rule = "one per core, at least 2, for granian"
    return f"workers: unset = {rule} (this machine: {cores} cores -> {chosen})"


def _constraints(field: FieldInfo) -> str:
    """Allowed values or range, from the model's own metadata."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of: " + ", ".join(str(choice) for choice in get_args(annotation))
    low = high = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    return ""


def _comment(field: FieldInfo) -> Iterator[str]:
    text = field.description or ""
    extra = _constraints(field)
    if extra:
        text = f"{text} ({extra})" if text else f"({extra})"
    # Not at hyphens: "--workers-kill-timeout" must stay one word.
    for line in textwrap.wrap(text, width=_WIDTH - 2, break_on_hyphens=False):
        yield f"# {line}"


def _is_table(field: FieldInfo) -> bool:
    """A dict of models becomes sub-tables ([http.rate_limits.api])."""
    if get_origin(field.annotation) is not dict:
        return False
    _, value_type = get_args(field.annotation)
    return isinstance(value_type, type) and issubclass(value_type, BaseModel)


def _optional_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a ``Model | None`` setting ([deploy.balancer]), else None."""
    for arg in get_args(field.annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _section(path: str, model: BaseModel, cpus: int | None) -> Iterator[str]:
    yield f"[{path}]"
    fields = type(model).model_fields
    tables = [name for name, field in fields.items() if _is_table(field)]
    # Plain keys first: in TOML, every key after a [table] header belongs to it.
    for name, field in fields.items():
        if name in tables:
            continue
        value = getattr(model, name)
        yield from _comment(field)
        if path == "server" and name in _FOREIGN.get(getattr(model, "kind", ""), ()):
            # Written, it would be refused: the other server's setting stays a comment.
            yield f"# {name} = {toml_value(value) if value is not None else '(unset)'}"
            continue
        if value is None:
            if path == "server" and name == "workers":
                worker_class = getattr(model, "concurrency", "gthread")
                for line in textwrap.wrap(workers_reasoning(worker_class, cpus), _WIDTH - 2):
                    yield f"# {line}"
                yield f"# workers = {default_workers(worker_class, cpus)}"
            elif _optional_model(field) is RoleHost:
                yield f'# {name} = {{ host = "{name}1" }}  (unset)'
            else:
                yield f"# {name} = (unset)"
            continue
        yield f"{_key(name)} = {toml_value(value)}"
    for name in tables:
        yield ""
        yield from _comment(fields[name])
        entries: dict[str, BaseModel] = getattr(model, name)
        for key in sorted(entries):
            if key != sorted(entries)[0]:
                yield ""
            yield f"[{path}.{name}.{_key(key)}]"
            for sub_name in type(entries[key]).model_fields:
                yield f"{_key(sub_name)} = {toml_value(getattr(entries[key], sub_name))}"


def _tables(path: str, field: FieldInfo, entries: dict[str, BaseModel]) -> Iterator[str]:
    """A top-level dict of models (``processes``): one [path.key] table each, every
    setting shown; none: the section's description and a commented example."""
    yield from _comment(field)
    _, model_type = get_args(field.annotation)
    if not entries:  # an example, every setting explained
        yield f"# [{path}]: none. One table per process, e.g.:"
        yield f"# [{path}.worker]"
        for name, sub in model_type.model_fields.items():
            yield from _comment(sub)
            yield '# command = "rq worker"' if name == "command" else f"# {name} = (unset)"
        return
    for at, key in enumerate(sorted(entries)):
        if at:
            yield ""
        model = entries[key]
        yield f"[{path}.{_key(key)}]"
        for name, sub in type(model).model_fields.items():
            yield from _comment(sub)
            value = getattr(model, name)
            yield f"# {name} = (unset)" if value is None else f"{_key(name)} = {toml_value(value)}"


def render_spec(spec: Spec, *, cpus: int | None = None) -> str:
    """The text of ``flaskprod.toml`` for ``spec``; ``cpus`` only feeds a comment."""
    lines = [
        f"# {SPEC_FILENAME}: the deployment of '{spec.app.name}', described once.",
        f"# Written by 'flaskprod init' (flaskprod {__version__}). Edit it freely, then run",
        "# 'flaskprod render' to re-render deploy/. Every setting is shown with its value;",
        "# the comment above each says what it does. Placeholders: {name}, {root}, {domain}.",
    ]
    for name, field in Spec.model_fields.items():
        value = getattr(spec, name)
        lines.append("")
        if isinstance(value, BaseModel):
            lines.extend(_section(name, value, cpus))
            continue
        if _is_table(field):
            lines.extend(_tables(name, field, value))
            continue
        # A top-level table of plain values (``ignore``).
        lines.extend(_comment(field))
        lines.append(f"[{name}]")
        if not value:
            lines.append('# NGX004 = "why this does not apply here"')
        lines.extend(f"{_key(key)} = {toml_value(item)}" for key, item in sorted(value.items()))
    return "\n".join(lines) + "\n"
