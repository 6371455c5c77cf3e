"""Dockerfiles, parsed with dockerfile-parse into stages of instructions."""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dockerfile_parse import DockerfileParser

from flaskprod.check.parsers import cached, read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


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
        """The command as words, whatever its form."""
        form = self.exec_form
        if form is not None:
            return form
        try:
            return shlex.split(self.value)
        except ValueError:
            return self.value.split()


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

    def command(self) -> Instruction | None:
        """What the final image runs: its last ENTRYPOINT + CMD (ENTRYPOINT wins as
        the program; a CMD after it is its arguments)."""
        final = self.final
        if final is None:
            return None
        entry, cmd = final.last("ENTRYPOINT"), final.last("CMD")
        if entry and cmd:
            return Instruction("ENTRYPOINT", json.dumps(entry.argv() + cmd.argv()), entry.line)
        return entry or cmd


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


def parse_dockerfile(ctx: Context, path: Path) -> Dockerfile:
    def build() -> Dockerfile:
        text, problem = read_text(path)
        if text is None:
            return Dockerfile(path, error=(None, problem or "unreadable"))
        return parse_dockerfile_text(path, text)

    return cached(ctx, f"parsers.dockerfile:{path}", build)


def parse_dockerfiles(ctx: Context) -> list[Dockerfile]:
    return [parse_dockerfile(ctx, path) for path in ctx.of_kind("dockerfile")]
