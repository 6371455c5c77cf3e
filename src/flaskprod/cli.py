"""The ``flaskprod`` command group, also offered to Flask's CLI as ``flask prod``.

Subcommands are imported only when they run, so ``flaskprod --help`` and the
``flask`` command stay fast and the runtime never pays for the CLI's dependencies.
To add a command, add one line to ``_COMMANDS``.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from flaskprod import __version__
from flaskprod.errors import UserError

# name -> "module:attribute" of a click command
_COMMANDS: dict[str, str] = {
    "init": "flaskprod.kit.commands:init_command",
    "render": "flaskprod.kit.commands:render_command",
    "check": "flaskprod.check.commands:check_command",
    "up": "flaskprod.stack.commands:up_command",
    "down": "flaskprod.stack.commands:down_command",
    "status": "flaskprod.stack.commands:status_command",
    "logs": "flaskprod.stack.commands:logs_command",
    "reload": "flaskprod.stack.commands:reload_command",
    "backup": "flaskprod.ops.commands:backup_command",
    "restore": "flaskprod.ops.commands:restore_command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*_COMMANDS, *super().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        # Here rather than in main() so that `flask prod ...` behaves the same.
        try:
            return super().invoke(ctx)
        except UserError as error:
            raise _UserFacingError(error) from None


class _UserFacingError(click.ClickException):
    def __init__(self, error: UserError) -> None:
        super().__init__(str(error))
        # click declares exit_code as a class variable; this instance carries the
        # code of the UserError it wraps.
        object.__setattr__(self, "exit_code", int(error.exit_code))

    def show(self, file: Any = None) -> None:
        click.echo(f"flaskprod: error: {self.message}", err=True)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flaskprod")
def cli() -> None:
    """Take a Flask app to production, and prove it is ready.

    \b
    Typical use:
      flaskprod init          describe the deployment once (flaskprod.toml) and render the kit
      flaskprod check         preflight every layer against the spec and best practice
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="flaskprod")
