"""Shared CLI plumbing: error handling with exit codes, output formats, the Env on the context."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click
import yaml

from koral_ansible.cli import table
from koral_ansible.cli.table import Column
from koral_ansible.errors import KoralError
from koral_ansible.operations.context import Env

OUTPUT_FORMATS = ("table", "wide", "json", "yaml")

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="Output format: table (plain aligned columns, never cut), wide (more columns), "
    "json or yaml for scripts.",
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


def emit(
    data: Any,
    fmt: str,
    columns: Sequence[Column | str] | None = None,
    empty: str = "No resources found.",
) -> None:
    """Print data to stdout: JSON, YAML, or a table (``table``/``wide``; see :mod:`.table`).

    ``data`` is a list of rows (dicts; ``columns`` picks and orders them) or one dict, shown as
    ``field value`` lines without the list-of-dict values (print those as their own table).
    An empty list prints nothing to stdout and ``empty`` to stderr, as kubectl does.
    """
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if fmt == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
        return
    if isinstance(data, dict):
        fields = [{"field": k, "value": v} for k, v in data.items() if not _is_rows(v)]
        table.render(fields, FIELD_COLUMNS, header=False)
        return
    rows = list(data)
    if not rows:
        click.echo(empty, err=True)
        return
    cols = [c if isinstance(c, Column) else Column(c) for c in (columns or list(rows[0]))]
    table.render(rows, cols, wide=fmt == "wide")


FIELD_COLUMNS = (Column("field"), Column("value", text=True))


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)
