"""The Typer root: global options, sub-command groups, and the one error handler."""

from __future__ import annotations

import contextlib
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer vendors click
from typer.core import TyperGroup

from recharge_cli import interrupts
from recharge_cli.errors import EXIT_CODES_HELP, ExitStatus, redact, translate
from recharge_cli.render import Output
from recharge_cli.runtime import Runtime


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


# Sub-commands load on first use, so start-up stays small: name → (module in
# recharge_cli.commands, attribute), the attribute a Typer app (a group) or a function.
COMMANDS: dict[str, tuple[str, str]] = {
    "recharge": ("cards", "recharge"), "balance": ("cards", "balance"),
    "recharges": ("cards", "recharges"), "reverse": ("lifecycle", "reverse"),
    "verify": ("verify", "verify"), "users": ("lifecycle", "users"),
    "cards": ("lifecycle", "cards"), "benefits": ("lifecycle", "benefits"), "fares": ("lifecycle", "fares"),
    "limits": ("lifecycle", "limits"), "audit": ("lifecycle", "audit"),
    "trips": ("trips", "app"), "stats": ("stats", "app"), "cache": ("cache", "app"),
    "db": ("database", "app"), "local": ("local", "app"), "report": ("report", "app"),
    "bench": ("bench", "app"), "health": ("health", "health_command"),
    "stations": ("reference", "stations"), "routes": ("reference", "routes"),
    "points": ("reference", "points"), "localities": ("reference", "localities"),
    "transfer-rules": ("reference", "transfer_rules"),
}


def _load(name: str) -> Any:
    """The click command of `name`, imported and built now."""
    import importlib

    module_name, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(f"recharge_cli.commands.{module_name}"), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        holder = typer.Typer()
        holder.command(name)(target)
        command = typer.main.get_command(holder)
    command.name = name
    _plain_help(command)
    return command


def _plain_help(command: Any) -> None:
    """Plain help text everywhere, like the root's (no Rich boxes)."""
    command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _silence_stdout() -> None:
    """Send what is left for stdout nowhere (its reader is gone), so that the final flush
    at exit does not fail again."""
    import os

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class RechargeGroup(TyperGroup):
    """Runs a command and turns every failure into one stderr line and an exit status."""

    runtime: Runtime | None = None

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name in COMMANDS and name not in self.commands:
            self.add_command(_load(name), name)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As click's, with "did you mean" among every command (most are not loaded yet)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx))
            ctx.fail(f"No such command {name!r}.{_did_you_mean(close)}")
        return super().resolve_command(ctx, args)

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        RechargeGroup.runtime = None
        started = time.perf_counter()
        argv = global_options_first(list(sys.argv[1:] if args is None else args), self.params)
        interrupts.reset()
        try:
            result = super().main(argv, prog_name or "recharge", complete_var,
                                  standalone_mode=False, **extra)
            status = result if isinstance(result, int) else ExitStatus.OK
            if status == ExitStatus.INTERRUPTED:  # Typer turns KeyboardInterrupt into 130
                _output().error("interrupted; nothing was left half done")
            elif interrupts.pending():
                _output().error("interrupted; the operation under way was completed first "
                                "(its result is above)")
                status = ExitStatus.INTERRUPTED
            sys.stdout.flush()  # a closed pipe shows here, not at exit
        except (KeyboardInterrupt, typer.Abort):
            _output().error("interrupted; nothing was left half done")
            status = ExitStatus.INTERRUPTED
        except (BrokenPipeError, SystemExit) as exc:
            # The reader stopped reading (`| head`): what ran, ran, and is no failure (the
            # command line layer turns a closed pipe into SystemExit(1)).
            if isinstance(exc, SystemExit) and not isinstance(exc.__context__, BrokenPipeError):
                raise
            _silence_stdout()
            status = ExitStatus.OK
        except NoArgsIsHelpError as exc:  # `recharge`, `recharge stats`, …
            sys.stdout.write(exc.ctx.get_help() + "\n")
            status = ExitStatus.OK
        except ClickException as exc:  # usage errors carry their own message and exit code
            Output().error(_usage_message(exc))
            status = exc.exit_code
        except Exception as exc:
            status = handle(exc, debug="--debug" in argv)
        finally:
            if RechargeGroup.runtime is not None:
                RechargeGroup.runtime.close()
            interrupts.reset()  # nothing is delivered again once the status is chosen
        _write_metrics(int(status), time.perf_counter() - started)
        if standalone_mode:
            sys.exit(int(status))
        return int(status)


def _global_names(params: list[Any]) -> tuple[set[str], set[str]]:
    """The names of the root callback's options that take a value, and of its flags
    (Typer's completion options pass no value to the callback: they are not moved)."""
    options = [param for param in params if param.expose_value]
    return ({name for param in options if not param.is_flag for name in param.opts},
            {name for param in options if param.is_flag for name in param.opts})


def global_options_first(argv: list[str], params: list[Any]) -> list[str]:
    """Global options (the root callback's, `params`) are accepted anywhere (`recharge stats
    revenue --format csv`, `recharge balance --card 1 --no-cache`): they are moved before
    the command."""
    with_value, flags = _global_names(params)
    moved: list[str] = []
    rest: list[str] = []
    command_seen = False
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest.extend(argv[i:])
            break
        name = token.split("=", 1)[0]
        takes_value = name in with_value and "=" not in token
        if name in with_value or token in flags:
            (moved if command_seen else rest).extend(argv[i:i + 1 + takes_value])
            i += 1 + takes_value
            continue
        command_seen = command_seen or not token.startswith("-")
        rest.append(token)
        i += 1
    return moved + rest


def _usage_message(exc: Any) -> str:
    """A usage error in one line; a mistyped option says which ones it may have meant."""
    if getattr(exc, "option_name", None) and getattr(exc, "possibilities", None):
        return f"{exc.message}.{_did_you_mean(sorted(exc.possibilities))}"
    return exc.format_message().replace("\n", " ")


def _did_you_mean(close: list[str]) -> str:
    """" Did you mean 'x'?" naming the close matches, or nothing when there are none."""
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def _write_metrics(status: int, seconds: float) -> None:
    runtime = RechargeGroup.runtime
    if runtime is None or runtime.metrics_file is None:
        return
    from recharge_cli import metrics

    try:
        metrics.write(runtime.metrics_file, runtime.command or "recharge", status, seconds,
                      runtime.output.rows)
    except OSError as exc:
        runtime.output.warn(f"could not write --metrics-file {runtime.metrics_file}: {exc}")


def _output() -> Output:
    return RechargeGroup.runtime.output if RechargeGroup.runtime else Output()


def handle(exc: BaseException, debug: bool) -> int:
    """Map an exception to its exit status, printing one line (and a traceback with --debug)."""
    output = _output()
    error = translate(exc)
    if debug:
        import traceback

        output.err.write(redact("".join(traceback.format_exception(exc))))
    if error is not None:
        output.error(redact(str(error)))
        return int(error.status)
    first_line = (str(exc).strip().splitlines() or [""])[0]
    output.error(f"internal error: {redact(type(exc).__name__ + ': ' + first_line)}"
                 + ("" if debug else " (run with --debug for details)"))
    return int(ExitStatus.INTERNAL)


app = typer.Typer(
    cls=RechargeGroup,
    help="Administer and benchmark a transit stored-value card system.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL conninfo or URL "
                                   "[env RECHARGE_DSN, DATABASE_URL, PG*]", show_default=False),
    admin_dsn: str | None = typer.Option(None, "--admin-dsn", help="schema owner for db migrate, "
                                         "db seed and bench [env RECHARGE_ADMIN_DSN; default "
                                         "--dsn]"),
    read_dsn: str | None = typer.Option(None, "--read-dsn", help="read replica for statistics "
                                        "[env RECHARGE_READ_DSN]"),
    redis_url: str | None = typer.Option(None, "--redis-url", help="redis://, rediss:// or "
                                         "unix:// URL [env RECHARGE_REDIS_URL, REDIS_URL]"),
    redis_cluster: bool = typer.Option(False, "--redis-cluster", help="the Redis URL names one "
                                       "node of a Redis/Valkey Cluster [env "
                                       "RECHARGE_REDIS_CLUSTER=1]"),
    max_replica_lag: float | None = typer.Option(None, "--max-replica-lag", metavar="SECONDS",
                                                 help="statistics fall back to the primary when "
                                                 "the read replica is further behind [env "
                                                 "RECHARGE_MAX_REPLICA_LAG; default 30]"),
    config: Path | None = typer.Option(None, "--config", help="TOML config file "
                                       "[env RECHARGE_CONFIG; default <home>/config.toml]"),
    output_format: Format | None = typer.Option(None, "--format", help="output format: jsonl "
                                                "prints one object per line (default: table on "
                                                "a terminal, else json)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="read everything from PostgreSQL "
                                  "[env RECHARGE_NO_CACHE=1]"),
    metrics_file: Path | None = typer.Option(None, "--metrics-file", metavar="PATH",
                                             help="write a Prometheus textfile (duration, rows, "
                                             "exit code, last success) here when the command "
                                             "ends"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print errors only on stderr"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks of internal errors"),
) -> None:
    # --debug is read from the command line by `handle`: a failure can come before this runs
    from recharge_cli.settings import resolve

    output = Output(format=output_format.value if output_format else None, quiet=quiet)
    settings = resolve(dsn=dsn, admin_dsn=admin_dsn, read_dsn=read_dsn, redis_url=redis_url,
                       redis_cluster=redis_cluster, max_replica_lag=max_replica_lag,
                       no_cache=no_cache, config=config)
    ctx.obj = RechargeGroup.runtime = Runtime(settings=settings, output=output)
    ctx.obj.command = ctx.invoked_subcommand
    if metrics_file is not None:
        from recharge_cli import metrics

        ctx.obj.metrics_file = metrics.check(metrics_file)


def main() -> None:
    interrupts.install()
    app()
