"""Thin Typer commands: parse options, make one call into a plain module, render.

One module per command group; what groups share is in `options` (options and their
parsers), `recharge_cli.parsers` (dates, times, ranges) and `shared` (the runtime, key announcement,
confirmation, statistics display). A command module imports no other command module.
"""

# commands/bench.py still imports these from here
from recharge_cli.commands.options import choice
from recharge_cli.commands.shared import runtime
from recharge_cli.inputs import writable_folder

__all__ = ["choice", "runtime", "writable_folder"]
