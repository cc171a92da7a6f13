"""Thin Typer commands: parse options, make one call into a plain module, render.

One module per command group; what groups share is in `options` (options and their
parsers), `recharge_cli.parsers` (dates, times, ranges) and `shared` (the runtime, key announcement,
confirmation, statistics display). A command module imports no other command module.
"""
