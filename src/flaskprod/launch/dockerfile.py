"""Dockerfiles, parsed with dockerfile-parse into stages of instructions."""

from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

from flaskprod.launch.shell import SERVER_WORDS, command_words


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case: FROM, RUN, CMD, ...
    value: str
    line: int  # 1-based, the first line of the instruction

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, else None."""
        text = self.value.strip()
        if not text.startswith("["):
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return [str(p) for p in parsed] if isinstance(parsed, list) else None

    def argv(self) -> list[str]:
        """The command as words, whatever its form. The shell form is run by
        ``/bin/sh -c``: of its commands (``a && exec gunicorn ...``), the one that
        starts an app server, else the last."""
        form = self.exec_form
        if form is not None:
            return form
        return command_words(self.value, SERVER_WORDS)


@dataclass
class Stage:
    base: str
    alias: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def find(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = self.find(name)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage] = field(default_factory=list)
    #: ARG lines before the first FROM.
    preamble: list[Instruction] = field(default_factory=list)
    error: tuple[int | None, str] | None = None

    @property
    def final(self) -> Stage | None:
        return self.stages[-1] if self.stages else None

    def instructions(self) -> list[Instruction]:
        return [*self.preamble, *(i for s in self.stages for i in s.instructions)]

    def env(self) -> dict[str, str]:
        """The final stage's environment as the image has it: every ``ENV`` (both
        forms) of the stage and of the stages it is built ``FROM``, with
        ``$VAR``/``${VAR}``/``${VAR:-default}`` expanded from the ``ARG`` defaults
        (global ones redeclared in a stage, and the stage's own) and the earlier ``ENV``
        values, as the builder does when no ``--build-arg`` is given."""
        global_args = _assignments(self.preamble, "ARG", {})
        env: dict[str, str] = {}
        for stage in self.lineage():
            scope = dict(env)  # ENV is inherited from the parent stage; ARG is not
            for instruction in stage.instructions:
                if instruction.name == "ARG":
                    for key, value in _pairs(instruction.value, "ARG"):
                        default = global_args.get(key) if value is None else value
                        if default is not None:
                            scope[key] = expand(default, scope)
                elif instruction.name == "ENV":
                    for key, value in _pairs(instruction.value, "ENV"):
                        env[key] = scope[key] = expand(value or "", scope)
        return env

    def inherited(self, name: str) -> Instruction | None:
        """The last ``name`` instruction the final image has, its parent stages'
        included (USER, WORKDIR, HEALTHCHECK carry over a FROM of a stage)."""
        found = [i for stage in self.lineage() for i in stage.instructions if i.name == name]
        return found[-1] if found else None

    def lineage(self) -> list[Stage]:
        """The final stage and the stages it is built FROM (by alias), oldest first."""
        chain: list[Stage] = []
        stage = self.final
        while stage is not None and stage not in chain:
            chain.insert(0, stage)
            stage = next((s for s in self.stages if s.alias and s.alias == stage.base), None)
        return chain

    def command(self) -> Instruction | None:
        """What the final image runs: its last ENTRYPOINT + CMD (ENTRYPOINT wins as
        the program; a CMD after it is its arguments), inherited from the stages it is
        built FROM (an ENTRYPOINT resets the CMD inherited with it, as Docker does)."""
        entry: Instruction | None = None
        cmd: Instruction | None = None
        for stage in self.lineage():
            for instruction in stage.instructions:
                if instruction.name == "ENTRYPOINT":
                    entry, cmd = instruction, None
                elif instruction.name == "CMD":
                    cmd = instruction
        if entry and cmd:
            return Instruction("ENTRYPOINT", json.dumps(entry.argv() + cmd.argv()), entry.line)
        return entry or cmd


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_]\w*))")


def expand(text: str, scope: dict[str, str]) -> str:
    """Docker's substitution: ``$X``, ``${X}``, ``${X:-default}``, ``${X:+alt}``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        operator, word = match.group(2), match.group(3) or ""
        value = scope.get(name)
        if operator in (":-", "-"):
            return value if value or (operator == "-" and value is not None) else word
        if operator in (":+", "+"):
            return word if value else ""
        return value if value is not None else ""

    return _VARIABLE.sub(one, text)


def _pairs(value: str, name: str) -> list[tuple[str, str | None]]:
    """``KEY=v K2="x y"`` (or the legacy ``ENV KEY value``) as (key, value) pairs;
    an ``ARG NAME`` without a default gives (NAME, None)."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    if name == "ENV" and len(words) >= 2 and "=" not in words[0]:
        return [(words[0], value.strip()[len(words[0]) :].strip().strip("\"'"))]
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        key, sep, val = word.partition("=")
        pairs.append((key, val if sep else None))
    return pairs


def _assignments(
    instructions: list[Instruction], name: str, scope: dict[str, str]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction in instructions:
        if instruction.name == name:
            for key, value in _pairs(instruction.value, name):
                if value is not None:
                    found[key] = expand(value, {**scope, **found})
    return found


def parse_dockerfile_text(path: Path, text: str) -> Dockerfile:
    result = Dockerfile(path)
    try:
        structure = DockerfileParser(fileobj=io.BytesIO(text.encode())).structure
    except Exception as error:
        result.error = (None, f"cannot parse: {error}")
        return result
    for item in structure:
        instruction = Instruction(
            str(item["instruction"]).upper(), str(item["value"]), int(item["startline"]) + 1
        )
        if instruction.name == "FROM":
            words = instruction.value.split()
            words = [w for w in words if not w.startswith("--")]  # --platform=...
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            result.stages.append(Stage(words[0] if words else "", alias, instruction.line))
        elif result.stages:
            result.stages[-1].instructions.append(instruction)
        elif instruction.name in ("ARG", "COMMENT"):
            result.preamble.append(instruction)
        else:
            result.error = (instruction.line, f"{instruction.name} before the first FROM")
    if not result.stages and result.error is None:
        result.error = (None, "no FROM instruction")
    return result
