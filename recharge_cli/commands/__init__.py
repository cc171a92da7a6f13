"""Thin Typer commands: parse options, make one call into a plain module, render."""

from __future__ import annotations

import typer

from recharge_cli.runtime import Runtime


def runtime(ctx: typer.Context) -> Runtime:
    return ctx.find_root().obj
