"""The kit's entry module ``flaskprod_wsgi.py`` (``http.health_source = "kit"``).

The module's body is :mod:`flaskprod.kit.entry` (standard library only: it runs in the
project's environment); the template adds the import of the app, written from
``app.target`` as gunicorn and Flask read it (``module:app``, ``module:create_app()``,
``module:create_app('production', debug=False)``: literal arguments only), and the
health paths. What starts the server serves ``flaskprod_wsgi:application``
(:func:`flaskprod.spec.servers.served_target`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flaskprod.errors import SpecError
from flaskprod.kit import entry
from flaskprod.spec.model import SPEC_FILENAME, Spec
from flaskprod.spec.servers import ENTRY_MODULE, served_target

#: Where it is rendered: the project root, the app server's working folder, so that
#: ``flaskprod_wsgi`` imports wherever the app's own module does.
OUTPUT = f"{ENTRY_MODULE}.py"


@dataclass(frozen=True)
class EntryApp:
    """How the entry module gets the app: ``import_module(module).<expression>``."""

    module: str
    expression: str  # "app", "create_app()", "create_app('production')"
    maybe_factory: bool  # "module:name" without a call: Flask calls it if it is a function


def entry_app(target: str) -> EntryApp:
    """``app.target`` as Python, refusing arguments that are not literals (they are
    written into the module, and gunicorn would refuse them too)."""
    module, _, attribute = target.partition(":")
    name, paren, _ = attribute.partition("(")
    if not paren:
        return EntryApp(module, name, maybe_factory=True)
    try:
        call = ast.parse(attribute, mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError(attribute)
        for node in [*call.args, *(keyword.value for keyword in call.keywords)]:
            ast.literal_eval(node)
        if any(keyword.arg is None for keyword in call.keywords):
            raise ValueError("**kwargs")
    except (SyntaxError, ValueError):
        raise SpecError(
            f"{SPEC_FILENAME}: app.target = {target!r}: the factory's arguments must be "
            "literals (strings, numbers, True/False/None) to be served behind the kit's "
            "health routes",
            hint="use literal arguments, or set http.health_source = 'app'",
        ) from None
    return EntryApp(module, ast.unparse(call), maybe_factory=False)


def entry_context(spec: Spec) -> dict[str, Any]:
    """The template values of ``flaskprod_wsgi.py`` (empty unless the kit answers health)."""
    if spec.http.health_source != "kit":
        return {"served_target": served_target(spec)}
    return {
        "served_target": served_target(spec),
        "entry_source": Path(entry.__file__).read_text(encoding="utf-8").rstrip("\n"),
        "entry_app": entry_app(spec.app.target),
    }
