"""recharge cache stats | flush | warm"""

from __future__ import annotations

import typer

from recharge_cli import cache_admin, stats
from recharge_cli.commands import WAIT_OPTION, lock_option, runtime

app = typer.Typer(no_args_is_help=True, help="Cache statistics, flush and warm-up.")


def _require_cache(ctx: typer.Context):
    rt = runtime(ctx)
    return rt, rt.cache(required=True)


@app.command("stats")
def cache_stats(ctx: typer.Context) -> None:
    """Key count and memory of this prefix, hit ratio and server facts."""
    rt, cache = _require_cache(ctx)
    rt.output.emit(cache_admin.describe(cache))


@app.command("flush")
def flush(ctx: typer.Context, lock: str | None = lock_option(), wait: float = WAIT_OPTION) -> None:
    """Delete this prefix's keys only (SCAN + UNLINK, never FLUSHDB).

    \b
    Examples:
      recharge cache flush
    """
    rt, cache = _require_cache(ctx)
    with rt.locked(lock, wait):
        rt.output.emit({"prefix": cache.prefix, "deleted": cache.flush()})


@app.command("warm")
def warm(ctx: typer.Context, lock: str | None = lock_option("cache-warm"),
         wait: float = WAIT_OPTION) -> None:
    """Precompute the common statistics (for a cron job before business hours).

    \b
    Examples:
      recharge --quiet cache warm
    """
    rt, cache = _require_cache(ctx)
    conn = rt.read_db()
    done = []
    with rt.locked(lock, wait), rt.output.progress("Warming statistics",
                                                    total=len(stats.COMMON)) as bar:
        for name, params in stats.COMMON:
            result = stats.get(conn, cache, name, params, fresh=True)
            done.append({"statistic": name, **params, "computed_at": result["computed_at"]})
            bar.advance()
    rt.output.emit(done)
