"""Shared CLI plumbing: error handling with exit codes, output formats, the Env on the context."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from koral_ansible.errors import KoralError
from koral_ansible.operations.context import Env

OUTPUT_FORMATS = ("table", "json", "yaml")

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="Output format: table for people, json or yaml for scripts.",
)


def fail(message: str, code: int) -> int:
    click.echo(f"error: {message}", err=True)
    return code


def run_cli(group: click.Group, args: Sequence[str] | None = None) -> int:
    """Run the CLI and map every error to one stderr line and an exit code (0 / 1 / 2)."""
    try:
        group.main(args=args, prog_name="koral-play", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        return fail("aborted", 1)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        return fail(exc.format_message().replace("\n", " ") + hint, 2)
    except click.ClickException as exc:
        return fail(exc.format_message(), exc.exit_code)
    except KoralError as exc:
        return fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted; the operation is recorded and can be re-run to continue", 1)
    except BrokenPipeError:
        return 0
    return 0


def get_env(ctx: click.Context) -> Env:
    """The Env is opened lazily so ``--help`` never touches the state directory."""
    obj = ctx.find_root().obj
    env = obj.get("env")
    if env is None:
        env = Env.open(obj.get("home"), verbose=obj.get("verbose", False), quiet=obj.get("quiet", False))
        obj["env"] = env
    assert isinstance(env, Env)
    return env


def pass_env(fn: Callable[..., Any]) -> Callable[..., Any]:
    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return fn(get_env(ctx), *args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def emit(data: Any, fmt: str, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print data to stdout as a table (rows = list of dicts, or one dict), JSON or YAML."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if fmt == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
        return
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    if isinstance(data, dict):
        table = Table(show_header=False, box=None, title=title)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in data.items():
            if isinstance(value, list | dict):
                continue
            table.add_row(key, "" if value is None else str(value))
        console.print(table)
        return
    rows = list(data)
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title, box=None, padding=(0, 2))
    for col in cols:
        table.add_column(col.upper())
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
    if not rows:
        console.print("(none)")
        return
    console.print(table)
