"""What every `evidock` command shares: its options, its one error handler, its output.

A command is decorated with :func:`command` and returns what it found:

- a flat dict, printed by :func:`~evidock.output.show` (``key: value`` lines, or one
  JSON object with ``--json``);
- a :class:`Reply`: the JSON object, how people see it, and the exit code;
- None: it printed what it had to (or nothing) and succeeded.

Any :class:`~integrity.errors.EvidockError` it raises ends it with the error's exit code
and one line on stderr (``{"error": …}`` on stdout with ``--json``).

This module stays light on purpose: building the command tree (``evidock --help``) must
not load the catalog, SQLAlchemy, boto3, ffmpeg or APScheduler, so commands import
those inside their bodies; most commands are clients of the station service
(:mod:`evidock.client`) and never load them at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ParamSpec

import typer

from evidock.output import emit_json, fail, show
from integrity.errors import EvidockError

P = ParamSpec("P")

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the record).")]


@dataclass(frozen=True)
class Reply:
    """A command's result: ``data`` for ``--json``, ``human`` for people (default:
    ``data`` as ``key: value`` lines; None prints nothing), then ``exit_code``."""

    data: object
    human: Callable[[], None] | None = None
    exit_code: int = 0


Outcome = Reply | Mapping[str, object] | None


def command(fn: Callable[P, Outcome]) -> Callable[P, None]:
    """The one error handler and printer; ``--json`` is read from the ``as_json`` flag."""
    return _handled(fn, always_json=False)


def json_command(fn: Callable[P, Outcome]) -> Callable[P, None]:
    """As :func:`command` for commands whose only output is JSON (errors too)."""
    return _handled(fn, always_json=True)


def _handled(fn: Callable[P, Outcome], *, always_json: bool) -> Callable[P, None]:
    # functools.wraps keeps the name, docstring and signature typer builds options from.
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        as_json = always_json or kwargs.get("as_json") is True
        try:
            outcome = fn(*args, **kwargs)
        except EvidockError as exc:
            fail(exc, as_json=as_json)
        _print(outcome, as_json)

    return run


def _print(outcome: Outcome, as_json: bool) -> None:
    if outcome is None:
        return
    if not isinstance(outcome, Reply):
        show(dict(outcome), as_json)
        return
    if as_json:
        emit_json(outcome.data)
    elif outcome.human is not None:
        outcome.human()
    elif isinstance(outcome.data, Mapping):
        show(dict(outcome.data), as_json=False)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


__all__ = ["ConfigOpt", "JsonOpt", "Outcome", "ReasonOpt", "Reply", "command",
           "json_command"]
