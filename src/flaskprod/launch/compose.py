"""Compose files, read with PyYAML's safe loader, keeping each key's line number.

Anchors and merge keys (``<<: *default``) work as in YAML; mappings come back as
:class:`LineDict`, a dict that remembers the line of each key for the findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flaskprod.launch.text import read_text


class LineDict(dict[str, Any]):
    """A mapping that knows the (1-based) line of each of its keys and of itself."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}
        self.start = 1

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.start)


class LineList(list[Any]):
    """A sequence that knows the (1-based) line of each item."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []
        self.start = 1

    def line_at(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.start


class _Loader(yaml.SafeLoader):
    pass


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList()
    sequence.start = node.start_mark.line + 1
    for item in node.value:
        sequence.append(loader.construct_object(item, deep=True))
        sequence.lines.append(item.start_mark.line + 1)
    return sequence


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.start = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[str(key)] = loader.construct_object(value_node, deep=True)
        mapping.lines[str(key)] = key_node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@dataclass
class ComposeFile:
    path: Path
    data: LineDict = field(default_factory=LineDict)
    error: tuple[int | None, str] | None = None

    @property
    def services(self) -> dict[str, LineDict]:
        services = self.data.get("services")
        if not isinstance(services, dict):
            return {}
        return {str(k): v for k, v in services.items() if isinstance(v, LineDict)}

    def line(self, service: str, key: str | None = None) -> int:
        services = self.data.get("services")
        if not isinstance(services, LineDict):
            return 1
        if key is None:
            return services.line_of(service)
        body = services.get(service)
        return body.line_of(key) if isinstance(body, LineDict) else services.line_of(service)


def parse_compose_text(path: Path, text: str) -> ComposeFile:
    result = ComposeFile(path)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        result.error = (mark.line + 1 if mark else None, f"invalid YAML: {problem}")
        return result
    if data is None:
        return result
    if not isinstance(data, LineDict):
        result.error = (1, "not a compose file: the top level is not a mapping")
        return result
    result.data = data
    return result


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's ``environment`` (mapping or ``KEY=value`` list) as a dict."""
    env = service.get("environment")
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items() if v is not None}
    if isinstance(env, list):
        pairs = [str(item).partition("=") for item in env]
        return {k: v for k, sep, v in pairs if sep}
    return {}


_PRODUCTION_WORDS = frozenset({"prod", "production"})


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower()))


def _standalone(compose: ComposeFile) -> bool:
    """Every service says what it runs (image or build): a whole deployment, not an
    override merged onto a base file."""
    services = compose.services
    return bool(services) and all(
        isinstance(s, dict) and ("image" in s or "build" in s) for s in services.values()
    )


def development_files(files: Sequence[Path], parse: Callable[[Path], ComposeFile]) -> set[Path]:
    """Compose files for development: beside a whole production file of the same
    folder (docker-compose.prod.yml), the others not named for production
    (docker-compose.yml running 'flask run', docker-compose.dev.yml). Where the
    production file is an override of the base file, nothing is set aside."""
    development: set[Path] = set()
    for folder in {path.parent for path in files}:
        here = [path for path in files if path.parent == folder]
        production = [
            path
            for path in here
            if _words(path.name) & _PRODUCTION_WORDS and _standalone(parse(path))
        ]
        if production:
            development |= {p for p in here if not _words(p.name) & _PRODUCTION_WORDS}
    return development


def production_compose_files(files: Sequence[Path]) -> list[Path]:
    """``files`` without the development ones (see :func:`development_files`)."""

    def parse(path: Path) -> ComposeFile:
        text, problem = read_text(path)
        if text is None:
            return ComposeFile(path, error=(None, problem or "unreadable"))
        return parse_compose_text(path, text)

    development = development_files(files, parse)
    return [path for path in files if path not in development]
