"""What a check is and what it reports, after Django's system checks and gixy.

A *rule* has a stable id (``NGX004``), a layer, a default level, a title and a help
text, declared once with :func:`rule`. Its function receives the :class:`Context` (the
project as discovered: files, the spec if any, the app's evaluated config) and yields
:class:`Finding` objects. Ids are never reused or renumbered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flaskprod.check.context import Context

#: The checks reference (docs/checks.md), shipped inside the package: a link to it in a
#: checkout, the file itself in a wheel (setuptools copies what a link points at). Links
#: in reports point here, so they resolve offline wherever flaskprod is installed; SARIF
#: wants an absolute URI for helpUri (SARIF 2.1.0, 3.49.12), hence file://.
REFERENCE = Path(__file__).with_name("checks.md")
DOCS_URL = REFERENCE.as_uri()


def rule_url(rule_id: str) -> str:
    """The rule's section of the checks reference (docs/checks.md has one anchor per id)."""
    return f"{DOCS_URL}#{rule_id.lower()}"


def is_id_prefix(text: str) -> bool:
    """A layer prefix of check ids (``NGX``, ``K8S``), not a whole id (``NGX004``): ids
    end with their number, prefixes with a letter."""
    return text.isalnum() and text.isascii() and not text[-1].isdigit()


class Level(IntEnum):
    INFO = 10
    WARNING = 20
    ERROR = 30
    CRITICAL = 40

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper()]
        except KeyError:
            choices = ", ".join(level.name.lower() for level in cls)
            raise ValueError(f"unknown level {text!r} (choose from {choices})") from None

    def __str__(self) -> str:
        return self.name.lower()


LAYERS = (
    "app",
    "project",
    "kit",
    "gunicorn",
    "granian",
    "nginx",
    "systemd",
    "docker",
    "compose",
    "k8s",
    "ci",
    "deps",
    "live",
    "host",
)


#: Preconditions a rule may declare with ``requires=``; the runner checks them.
#: "app": the app was imported under production's environment (Context.app_config is
#: set); when it could not be, APP000 reports that once instead of every app rule.
#: "spec": the project has a flaskprod.toml.
PRECONDITIONS = ("app", "spec")

#: The roles a host of a deploy over several hosts holds (flaskprod.deploy.roles); a
#: host rule declares those it applies to with ``roles=`` (none: every host).
HOST_ROLES = ("app", "balancer", "database", "redis", "storage")


@dataclass(frozen=True)
class Finding:
    id: str
    level: Level
    layer: str
    message: str
    hint: str
    file: str | None = None
    line: int | None = None
    #: Set when the finding was silenced; it stays in the report with the reason.
    ignored_reason: str | None = None
    #: The host it was found on (``check --hosts``: one report for several hosts).
    host: str | None = None

    @property
    def url(self) -> str:
        return rule_url(self.id)

    def to_dict(self) -> dict[str, Any]:
        where = {"host": self.host} if self.host is not None else {}
        return where | {
            "id": self.id,
            "level": str(self.level),
            "layer": self.layer,
            "message": self.message,
            "hint": self.hint,
            "file": self.file,
            "line": self.line,
            "url": self.url,
            "ignored": self.ignored_reason is not None,
            "ignored_reason": self.ignored_reason,
        }


CheckFunction = Callable[["Context"], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    layer: str
    level: Level
    title: str
    help: str
    function: CheckFunction = field(compare=False, repr=False)
    #: Preconditions the runner checks before calling the rule, so that one root
    #: cause gives one finding: "app" = the app was imported and its config is known.
    requires: frozenset[str] = frozenset()
    #: A short example of what the rule flags, for the checks reference.
    example: str = ""
    #: Why the default level is what it is (its consequence), and how it rises with the
    #: size of the problem; shown beside the level in the checks reference.
    level_reason: str = ""
    #: Host rules: the roles of a host they apply to (empty: every host). On a host of
    #: a deploy over several hosts holding none of them, the rule is not run.
    roles: frozenset[str] = frozenset()

    def finding(
        self,
        message: str,
        *,
        hint: str | None = None,
        file: str | None = None,
        line: int | None = None,
        level: Level | None = None,
    ) -> Finding:
        """A finding of this rule; the hint defaults to the rule's help text."""
        return Finding(
            id=self.id,
            level=level or self.level,
            layer=self.layer,
            message=message,
            hint=hint or self.help,
            file=file,
            line=line,
        )


class Registry:
    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def add(self, new_rule: Rule) -> None:
        if new_rule.id in self._rules:
            raise ValueError(f"check id {new_rule.id} is defined twice")
        if new_rule.layer not in LAYERS:
            raise ValueError(f"{new_rule.id}: unknown layer {new_rule.layer!r}")
        unknown = new_rule.requires - set(PRECONDITIONS)
        if unknown:
            raise ValueError(f"{new_rule.id}: unknown precondition(s) {sorted(unknown)}")
        if new_rule.roles - set(HOST_ROLES):
            raise ValueError(f"{new_rule.id}: unknown role(s) {sorted(new_rule.roles)}")
        self._rules[new_rule.id] = new_rule

    def __iter__(self) -> Iterator[Rule]:
        return iter(sorted(self._rules.values(), key=lambda r: (LAYERS.index(r.layer), r.id)))

    def __getitem__(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __len__(self) -> int:
        return len(self._rules)


#: Every rule flaskprod knows. Rule modules register into it at import time.
REGISTRY = Registry()


def rule(
    id: str,
    *,
    layer: str,
    level: Level,
    title: str,
    help: str,
    requires: Iterable[str] = (),
    example: str = "",
    level_reason: str = "",
    roles: Iterable[str] = (),
) -> Callable[[CheckFunction], Rule]:
    """Declare a rule. The decorated function gets the :class:`Context` and yields
    findings, usually made with ``RULE.finding(...)`` on the returned :class:`Rule`.

    ``requires`` names preconditions (see :data:`PRECONDITIONS`); when one is not met
    the runner does not call the rule. ``example`` and ``level_reason`` (why this
    level: the consequence, and when a finding is raised above it) are shown in
    docs/checks.md. ``roles`` (host rules): the host roles it applies to."""

    def register(function: CheckFunction) -> Rule:
        new_rule = Rule(
            id=id,
            layer=layer,
            level=level,
            title=title,
            help=help,
            function=function,
            requires=frozenset(requires),
            example=example,
            level_reason=level_reason,
            roles=frozenset(roles),
        )
        REGISTRY.add(new_rule)
        return new_rule

    return register
