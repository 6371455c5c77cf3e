"""nginx configs, parsed with crossplane into one tree per top-level file.

``include`` is resolved here rather than by crossplane: crossplane would happily
follow ``include /etc/nginx/...`` into *this* machine's nginx, which says nothing
about the project. Includes inside the project (globs too) are inlined; missing ones
and ones outside the project are skipped silently, as the server they are meant for
will have them. Syntax errors, binary and empty files never raise.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import crossplane

from flaskprod.check.parsers import cached
from flaskprod.launch.text import MAX_BYTES, read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context

_MAX_DEPTH = 10
_HARMLESS_INCLUDES = frozenset(
    {"mime.types", "fastcgi_params", "fastcgi.conf", "uwsgi_params", "scgi_params",
     "koi-utf", "koi-win", "win-utf", "*.conf"}
)  # fmt: skip


@dataclass(eq=False)
class Directive:
    name: str
    args: list[str]
    file: Path
    line: int
    #: None for a simple directive, the (include-expanded) children for a block.
    children: list[Directive] | None = None
    parent: Directive | None = field(default=None, repr=False)

    def find(self, name: str) -> list[Directive]:
        return [child for child in self.children or [] if child.name == name]

    def first(self, name: str) -> Directive | None:
        found = self.find(name)
        return found[0] if found else None

    def walk(self) -> Iterator[Directive]:
        for child in self.children or []:
            yield child
            yield from child.walk()

    def ancestors(self) -> Iterator[Directive]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def inherited(self, name: str) -> list[Directive]:
        """Array directives (add_header, proxy_set_header) as nginx applies them
        here: from the nearest level that defines any, inner levels replacing outer
        ones entirely."""
        node: Directive | None = self
        while node is not None:
            found = node.find(name)
            if found:
                return found
            node = node.parent
        return []

    def unresolved_include(self, hint: str = "", *, inside: bool = False) -> bool:
        """An include we could not follow (its name containing ``hint``) at this level
        or above, or with ``inside`` in this block and below. Type maps and the stock
        *_params files never set headers or limits, so they do not count."""
        nodes = list(self.walk()) if inside else [self, *self.ancestors()]
        for node in nodes:
            for include in node.find("include") if not inside else [node]:
                if include.name != "include" or not include.args:
                    continue
                name = include.args[0].rsplit("/", 1)[-1]
                if (hint and hint in name) or (not hint and name not in _HARMLESS_INCLUDES):
                    return True
        return False

    def setting(self, name: str) -> Directive | None:
        """A simple directive's effective value here (nearest definition)."""
        found = self.inherited(name)
        return found[-1] if found else None


@dataclass
class NginxFile:
    path: Path
    #: A synthetic root block holding the file's top-level directives.
    root: Directive
    error: tuple[int | None, str] | None = None
    includes: set[Path] = field(default_factory=set)


@dataclass
class NginxTree:
    #: Top-level files: the discovered ones no other discovered file includes.
    files: list[NginxFile]
    #: Every parse error, (file, line, message), once per file.
    errors: list[tuple[Path, int | None, str]]

    def walk(self) -> Iterator[Directive]:
        for nginx_file in self.files:
            yield from nginx_file.root.walk()

    def servers(self) -> list[Directive]:
        """``server`` blocks of the http context (not an upstream's ``server`` lines)."""
        return [d for d in self.walk() if d.name == "server" and d.children is not None]

    def upstreams(self) -> dict[str, Directive]:
        return {d.args[0]: d for d in self.walk() if d.name == "upstream" and d.args}

    @property
    def has_http_block(self) -> bool:
        return any(d.name == "http" for d in self.walk())


def _parse_one(path: Path) -> tuple[list[dict[str, Any]], tuple[int | None, str] | None]:
    text, problem = read_text(path)
    if text is None:
        return [], (None, problem or "unreadable")
    if len(text) >= MAX_BYTES:
        return [], (None, f"larger than {MAX_BYTES} bytes; not parsed")
    result = crossplane.parse(
        str(path), single=True, catch_errors=True, check_ctx=False, check_args=False
    )
    config = result["config"][0] if result["config"] else {"parsed": [], "errors": []}
    errors = config.get("errors") or result.get("errors") or []
    if errors:
        first = errors[0]
        message = str(first.get("error") or "syntax error").replace(f" in {path}", "")
        return [], (first.get("line"), message)
    parsed: list[dict[str, Any]] = config["parsed"]
    return parsed, None


class _Builder:
    def __init__(self, root: Path) -> None:
        self.project = root.resolve()
        self.raw: dict[Path, tuple[list[dict[str, Any]], tuple[int | None, str] | None]] = {}

    def raw_of(self, path: Path) -> tuple[list[dict[str, Any]], tuple[int | None, str] | None]:
        if path not in self.raw:
            self.raw[path] = _parse_one(path)
        return self.raw[path]

    def resolve_include(self, pattern: str, including: Path, top: Path) -> list[Path]:
        candidates = (
            [Path(pattern)]
            if Path(pattern).is_absolute()
            else [top.parent / pattern, including.parent / pattern, self.project / pattern]
        )
        for candidate in candidates:
            matches = sorted(Path(p) for p in glob.glob(str(candidate)))  # noqa: PTH207
            inside = [m.resolve() for m in matches if m.is_file() and self._inside(m)]
            if inside:
                return inside
        return []

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.project)

    def build(
        self,
        items: list[dict[str, Any]],
        path: Path,
        top: Path,
        parent: Directive,
        stack: tuple[Path, ...],
        included: set[Path],
    ) -> list[Directive]:
        out: list[Directive] = []
        for item in items:
            name, args = item["directive"], [str(a) for a in item.get("args", [])]
            targets = self.resolve_include(args[0], path, top) if name == "include" and args else []
            if targets and len(stack) < _MAX_DEPTH:
                for target in targets:
                    if target in stack:
                        continue  # an include cycle: nginx -t reports it, we stay alive
                    included.add(target)
                    sub, _error = self.raw_of(target)
                    out.extend(self.build(sub, target, top, parent, (*stack, target), included))
                continue
            # An include we cannot follow stays in the tree as is: rules treat what it
            # might set (e.g. Debian's proxy_params) as unknown rather than missing.
            node = Directive(name, args, path, int(item.get("line") or 1), parent=parent)
            if "block" in item:
                node.children = self.build(item["block"], path, top, node, stack, included)
            out.append(node)
        return out


def parse_nginx(ctx: Context) -> NginxTree:
    """Every discovered nginx file, parsed once per run."""
    return cached(ctx, "parsers.nginx", lambda: _parse_all(ctx))


def _parse_all(ctx: Context) -> NginxTree:
    builder = _Builder(ctx.root)
    parsed: list[NginxFile] = []
    for path in ctx.of_kind("nginx"):
        resolved = path.resolve()
        items, error = builder.raw_of(resolved)
        root = Directive("<file>", [], path, 0, children=[])
        nginx_file = NginxFile(path, root, error)
        root.children = builder.build(
            items, resolved, resolved, root, (resolved,), nginx_file.includes
        )
        parsed.append(nginx_file)
    included = set().union(*(f.includes for f in parsed)) if parsed else set()
    tops = [f for f in parsed if f.path.resolve() not in included]
    errors = [(f.path, f.error[0], f.error[1]) for f in parsed if f.error]
    return NginxTree(tops, errors)
