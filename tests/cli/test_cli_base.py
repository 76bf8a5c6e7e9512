"""The shared CLI base: one error handler and printer for every command, and a command
tree that builds without the heavy half of evidock."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated, Any

import typer
from evidock_testing import REPO
from typer.testing import CliRunner

from evidock.cli_base import JsonOpt, Reply, command, json_command
from integrity.errors import NotFound, Refused

app = typer.Typer()


@app.command("flat")
@command
def flat(fail: Annotated[bool, typer.Option("--fail")] = False,
         as_json: JsonOpt = False) -> dict[str, object]:
    """A flat result, or a refusal."""
    if fail:
        raise Refused("not yours", user="x")
    return {"a": 1, "b": "二"}


@app.command("reply")
@command
def reply(code: int = 0, as_json: JsonOpt = False) -> Reply:
    return Reply({"rows": [1, 2]}, human=lambda: typer.echo("two rows"), exit_code=code)


@app.command("only-json")
@json_command
def only_json() -> None:
    raise NotFound("no such thing", id="r1")


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_a_flat_result_is_lines_or_one_json_object() -> None:
    assert run("flat") == (0, "a: 1\nb: 二\n", "")
    assert run("flat", "--json") == (0, '{"a": 1, "b": "二"}\n', "")


def test_an_error_is_its_exit_code_and_one_line_or_the_json_error() -> None:
    code, out, err = run("flat", "--fail")
    assert (code, out, err) == (Refused.exit_code, "", "evidock: E_REFUSED: not yours\n")
    code, out, err = run("flat", "--fail", "--json")
    assert (code, err) == (Refused.exit_code, "")
    assert json.loads(out)["error"] == {"code": "E_REFUSED", "message": "not yours",
                                        "details": {"user": "x"}}


def test_a_reply_prints_for_people_or_machines_then_exits_with_its_code() -> None:
    assert run("reply") == (0, "two rows\n", "")
    assert run("reply", "--code", "1", "--json") == (1, '{"rows": [1, 2]}\n', "")


def test_json_only_commands_report_errors_as_json() -> None:
    code, out, _ = run("only-json")
    assert code == NotFound.exit_code
    assert json.loads(out)["error"]["code"] == "E_NOT_FOUND"


def test_the_command_tree_builds_without_the_heavy_modules() -> None:
    """`evidock --help` must stay fast: the catalog, SQLAlchemy, boto3, ffmpeg and
    APScheduler load only when a command runs."""
    probe = ("import sys, typer.main, evidock.cli\n"
             "typer.main.get_command(evidock.cli.app)\n"
             "heavy = ('sqlalchemy', 'sqlmodel', 'boto3', 'botocore', 'ffmpeg', 'apscheduler',"
             " 'alembic', 'evidock.wiring', 'archive', 'ingest', 'records', 'retention')\n"
             "print(sorted(m for m in sys.modules if m.partition('.')[0] in heavy"
             " or m in heavy))\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert res.stdout.strip() == "[]", res.stdout


def _shape(cmd: object) -> object:
    """What a user sees of a command (typer's click): its name, help, options and
    subcommands."""
    params = sorted((p.name or "", tuple(p.opts), p.required)
                    for p in cmd.params)  # type: ignore[attr-defined]
    subs = {n: _shape(c) for n, c in sorted(getattr(cmd, "commands", {}).items())}
    return cmd.name, cmd.help, cmd.hidden, params, subs  # type: ignore[attr-defined]


def test_a_command_run_from_its_own_tree_is_the_one_in_the_whole_tree() -> None:
    """`evidock NAME ...` builds only NAME (and the refusals): the same options, help and
    subcommands as in the tree `evidock --help` lists, for every top-level name."""
    import typer.main

    from evidock import cli

    whole: Any = typer.main.get_command(cli.app)
    assert sorted(n for n, c in whole.commands.items() if not c.hidden) == sorted(cli.PARTS)
    for name in cli.PARTS:
        alone: Any = typer.main.get_command(cli.build(name))
        assert sorted(n for n, c in alone.commands.items() if not c.hidden) == [name]
        assert _shape(alone.commands[name]) == _shape(whole.commands[name]), name
        assert sorted(alone.commands) == sorted([name, "delete", "edit", "rm"])


def test_a_named_command_runs_and_a_typo_still_gets_the_whole_tree() -> None:
    def evidock(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evidock", *args], capture_output=True,
                              text=True, cwd=REPO, timeout=60, env={"COLUMNS": "200",
                                                                    "PATH": "/usr/bin:/bin"})

    ran = evidock("ingest", "--help")
    assert ran.returncode == 0 and "Usage: python -m evidock ingest [OPTIONS]" in ran.stdout
    typo = evidock("ingets")
    assert typo.returncode == 2 and "No such command 'ingets'" in typo.stderr
