"""The command line reads short options exactly as click would, only without its slow path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from pipeplex.cli import _spelled_long, cli, run


def _context() -> click.Context:
    return click.Context(run, info_name="run", parent=cli.make_context("pipeplex", ["run"]))


def _params(args: list[str], *, plain: bool = False) -> dict[str, Any]:
    ctx = _context()
    if plain:
        click.Command.parse_args(run, ctx, list(args))
    else:
        run.parse_args(ctx, list(args))
    return ctx.params


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "a=echo one", "-p", "b=echo two"],
        ["--run-dir", "-p", "-p", "a=true"],  # "-p" as the value of --run-dir
        ["-p", "-p=x"],  # a member spec that looks like an option
        ["-p", "a=true", "--grace", "2", "--no-color", "cast.toml"],
        ["-pa=true", "-p", "b=true"],  # attached values are left to click
    ],
)
def test_short_options_mean_what_they_mean_to_click(args: list[str]) -> None:
    assert _params(args) == _params(args, plain=True)


def test_short_options_are_spelled_long_only_where_they_are_options() -> None:
    params = run.get_params(_context())
    assert _spelled_long(params, ["-p", "a=x", "--run-dir", "-p", "-h"]) == [
        "--proc", "a=x", "--run-dir", "-p", "--help",
    ]  # fmt: skip
    assert _spelled_long(params, ["-p", "a=x", "--", "-p"]) == ["--proc", "a=x", "--", "-p"]


def test_a_missing_value_is_reported_as_the_user_typed_it() -> None:
    with pytest.raises(click.BadOptionUsage, match="Option '-p' requires an argument"):
        _params(["-p"])


def test_values_are_parsed_as_before(tmp_path: Path) -> None:
    params = _params(["-p", "a=true", "--run-dir", str(tmp_path), "--grace", "0.5"])
    assert params["procs"] == ("a=true",)
    assert params["run_dir"] == tmp_path
    assert params["grace"] == 0.5
