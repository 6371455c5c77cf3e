"""A Content-Security-Policy derived from what the app's templates load.

The default ``default-src 'self'`` breaks every page that loads Bootstrap or moment.js
from a CDN (microblog). The templates are read as text, Jinja-aware enough for what
real apps write: ``{{ url_for(...) }}`` and relative URLs are 'self'; absolute URLs
name their origin; the macros of common extensions that emit CDN tags are known
(Flask-Moment's ``moment.include_moment()``, Bootstrap-Flask's ``bootstrap.load_css()``
/ ``load_js()``). Inline ``<script>`` blocks and ``on*=`` handlers cannot be allowed
without ``'unsafe-inline'`` (which would void the policy), so the policy is then sent
report-only, with the reason; ``style=`` attributes get ``'unsafe-inline'`` in
style-src only (they cannot run code).

Without importing the app, the templates are the project's ``templates`` folders.
Imported, the probe names every folder the app's Jinja loader searches (its own, each
blueprint's, an extension's package folder in site-packages): those are read too, so
a page an extension renders (APIFairy's ``/docs``, loading unpkg.com) works as well.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from flaskprod.spec import pysource

_TEMPLATE_SUFFIXES = (".html", ".htm", ".j2", ".jinja", ".jinja2")
_SKIP = frozenset({"node_modules", ".venv", "venv", "env", ".git", "site-packages", "tests"})
_MAX_FILES = 2000
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
# A tag's attributes may hold Jinja expressions with ">" in them ({{ a > b }}).
_TAG = re.compile(
    r"<(script|link|img|source|iframe|style)\b"
    r"((?:[^>{]|\{\{.*?\}\}|\{%.*?%\}|\{(?![{%]))*)>",
    re.I | re.S,
)
_ATTRIBUTE = re.compile(r"([\w:-]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.S)
_HANDLER = re.compile(r"<[a-z][^>]*?\son[a-z]+\s*=", re.I | re.S)
_STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*?\sstyle\s*=", re.I | re.S)
_NOT_SCRIPT_TYPES = ("json", "template", "x-tmpl", "text/html", "text/plain")
#: Extension macros that emit tags: (call, script origin, style origin, inline script).
_MACROS = (
    ("moment.include_moment(", "https://cdnjs.cloudflare.com", None, True),
    ("moment.lang(", None, None, True),
    ("moment.locale(", None, None, True),
    ("bootstrap.load_css(", None, "https://cdn.jsdelivr.net", False),
    ("bootstrap.load_js(", "https://cdn.jsdelivr.net", None, False),
)
_IMAGE_HINT = re.compile(r"avatar|\.(png|jpe?g|gif|svg|webp)\b", re.I)


@dataclass
class TemplateLoads:
    """What the templates load, by kind; ``inline``: where scripts are inline."""

    script: set[str] = field(default_factory=set)
    style: set[str] = field(default_factory=set)
    img: set[str] = field(default_factory=set)
    font: set[str] = field(default_factory=set)
    frame: set[str] = field(default_factory=set)
    inline: list[str] = field(default_factory=list)
    inline_style: bool = False
    dynamic_img: bool = False
    files: int = 0


def scan_templates(root: Path, folders: Sequence[Path] = ()) -> TemplateLoads:
    """What the project's templates load, and those in ``folders`` (the Jinja loader's
    search path, from the probe), each file once."""
    loads = TemplateLoads()
    seen: set[Path] = set()
    for path, where in _template_files(root, folders):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        loads.files += 1
        _scan(_COMMENT.sub("", text), where, loads)
    if loads.dynamic_img:
        loads.img |= _image_origins_in_code(root)
    return loads


def derive_csp(loads: TemplateLoads) -> tuple[str, bool, str | None]:
    """(policy, report-only, why) for what the templates load."""
    directives = ["default-src 'self'"]
    if loads.script:
        directives.append("script-src 'self' " + " ".join(sorted(loads.script)))
    styles = sorted(loads.style) + (["'unsafe-inline'"] if loads.inline_style else [])
    if styles:
        directives.append("style-src 'self' " + " ".join(styles))
    fonts = loads.font | loads.style  # a CDN stylesheet loads its fonts from its origin
    if fonts:
        directives.append("font-src 'self' " + " ".join(sorted(fonts)))
    # Bootstrap and most CSS frameworks draw icons from data: SVGs in their stylesheets.
    images = sorted(loads.img) + (["data:"] if loads.style else [])
    if images:
        directives.append("img-src 'self' " + " ".join(images))
    if loads.frame:
        directives.append("frame-src 'self' " + " ".join(sorted(loads.frame)))
    why = None
    if loads.inline:
        shown = ", ".join(loads.inline[:3]) + (" ..." if len(loads.inline) > 3 else "")
        why = (
            f"inline scripts in the templates ({shown}) would be blocked: the policy is sent "
            "report-only (http.csp_report_only) until they move to files"
        )
    return "; ".join(directives), bool(loads.inline), why


def _template_files(root: Path, folders: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """(file, how a note names it): the project's own relative to it, a library's
    from its package folder (apifairy/templates/apifairy/elements.html)."""
    count = 0
    walks = [(root, True)] + [(folder, False) for folder in folders]
    for top, only_templates in walks:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
            if only_templates and "templates" not in Path(folder).relative_to(top).parts:
                continue
            for name in sorted(files):
                if not name.endswith(_TEMPLATE_SUFFIXES):
                    continue
                count += 1
                if count > _MAX_FILES:
                    return
                path = Path(folder) / name
                yield path, _shown(path, root, top)


def _shown(path: Path, root: Path, top: Path) -> str:
    resolved, project = path.resolve(), root.resolve()
    if resolved.is_relative_to(project):
        relative = resolved.relative_to(project)
        if not _SKIP.intersection(relative.parts):  # not a venv inside the project
            return relative.as_posix()
    # a blueprint's folder is <package>/templates: name the file from the package
    return path.relative_to(top.parent.parent).as_posix()


def _origin(url: str) -> str | None:
    """The origin of an absolute URL (``//cdn/x.js`` is https), None for 'self'."""
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc and "{" not in parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _scan(text: str, where: str, loads: TemplateLoads) -> None:
    for match in _TAG.finditer(text):
        tag, attributes = match.group(1).lower(), _attributes(match.group(2))
        if tag == "script":
            src = attributes.get("src")
            if src is None:
                kind = attributes.get("type", "").lower()
                if not any(word in kind for word in _NOT_SCRIPT_TYPES):
                    loads.inline.append(f"{where}:{_line(text, match.start())}")
            elif origin := _origin(src):
                loads.script.add(origin)
        elif tag == "link":
            href, rel = attributes.get("href", ""), attributes.get("rel", "").lower()
            origin = _origin(href)
            if origin and "stylesheet" in rel:
                loads.style.add(origin)
            elif origin and "icon" in rel:
                loads.img.add(origin)
            elif origin and "preload" in rel and attributes.get("as") == "font":
                loads.font.add(origin)
        elif tag in ("img", "source"):
            src = attributes.get("src", "")
            if origin := _origin(src):
                loads.img.add(origin)
            elif "{{" in src and "url_for(" not in src:
                loads.dynamic_img = True  # a URL the app computes (avatars)
        elif tag == "iframe" and (origin := _origin(attributes.get("src", ""))):
            loads.frame.add(origin)
        elif tag == "style":
            loads.inline_style = True
    found = _HANDLER.search(text)
    if found:
        loads.inline.append(f"{where}:{_line(text, found.start())} (on* handler)")
    if _STYLE_ATTRIBUTE.search(text):
        loads.inline_style = True
    for call, script, style, inline in _MACROS:
        position = text.find(call)
        if position < 0:
            continue
        if script:
            loads.script.add(script)
        if style:
            loads.style.add(style)
        if inline:
            loads.inline.append(f"{where}:{_line(text, position)} ({call.rstrip('(')}())")


def _attributes(text: str) -> dict[str, str]:
    return {name.lower(): value.strip("\"'") for name, value in _ATTRIBUTE.findall(text)}


def _image_origins_in_code(root: Path) -> set[str]:
    """Origins of image URLs the Python code builds (``https://www.gravatar.com/avatar/``),
    for templates whose ``<img src>`` the app computes."""
    origins: set[str] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        for name in files:
            if not name.endswith(".py"):
                continue
            try:
                found = pysource.nodes((Path(folder) / name).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            for node in found:
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    value = node.value
                    if value.startswith(("https://", "http://")) and _IMAGE_HINT.search(value):
                        origin = _origin(value)
                        if origin:
                            origins.add(origin)
    return origins
