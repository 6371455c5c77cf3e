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
from flaskprod.errors import EnvironmentProblem, UserError

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
    "deploy": "flaskprod.deploy.command:deploy_command",
    "releases": "flaskprod.deploy.release_commands:releases_command",
    "rollback": "flaskprod.deploy.release_commands:rollback_command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*_COMMANDS, *super().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = (error.name or "").split(".")[0]
            if not missing or missing == "flaskprod":
                raise  # flaskprod's own module: a bug, not a missing extra
            # 'pip install flaskprod' (for Production(app)) lacks the CLI's packages:
            # --help still lists the command, running it says what to install.
            return _needs_extra(cmd_name, missing)
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        # Here rather than in main() so that `flask prod ...` behaves the same.
        try:
            return super().invoke(ctx)
        except UserError as error:
            raise _UserFacingError(error) from None
        except ModuleNotFoundError as error:
            # A command that imports its packages only when it runs (pydantic, jinja2).
            missing = (error.name or "").split(".")[0]
            if not missing or missing == "flaskprod":
                raise
            name = ctx.invoked_subcommand or "this command"
            raise _UserFacingError(_missing_extra(name, missing)) from None


def _missing_extra(name: str, missing: str) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"flaskprod {name} needs the command-line extras (the package '{missing}' is not "
        "installed)",
        hint="pip install 'flaskprod[cli]', or 'flaskprod[all]' with PostgreSQL and Redis",
    )


def _needs_extra(name: str, missing: str) -> click.Command:
    def refuse(**_: Any) -> None:
        raise _missing_extra(name, missing)

    return click.Command(
        name,
        callback=refuse,
        help="(needs pip install 'flaskprod[cli]')",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


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
      flaskprod up            run that kit here: nginx (TLS) -> granian -> app, PostgreSQL, Redis
      flaskprod check         preflight every layer against the spec and best practice
      flaskprod check --url   probe a running deployment (TLS, headers, health, limits)
      flaskprod backup        a verified backup of the app's database (restore: the way back)
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="flaskprod")
