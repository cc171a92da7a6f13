"""recharge cache stats | flush | warm"""

from __future__ import annotations

import typer

from recharge_cli import cache_admin, stats
from recharge_cli.commands.options import CARDS, WAIT_OPTION, lock_option
from recharge_cli.commands.shared import runtime

app = typer.Typer(no_args_is_help=True, help="Cache statistics, flush, warm-up, and one card's "
                  "keys.")


def _require_cache(ctx: typer.Context):
    rt = runtime(ctx)
    return rt, rt.cache(check=False, required=True)  # `warm`, `evict` check at first use


@app.command("stats")
def cache_stats(ctx: typer.Context) -> None:
    """Key count and memory of this prefix, hit ratio and server facts."""
    rt, cache = _require_cache(ctx)
    rt.output.emit(cache_admin.describe(cache))


@app.command("flush")
def flush(ctx: typer.Context, lock: str | None = lock_option(), wait: float = WAIT_OPTION,
          everything: bool = typer.Option(False, "--all", help="also the card versions and "
                                          "coherence markers (only with no writes under way)")
          ) -> None:
    """Delete this prefix's cached values (SCAN + UNLINK, never FLUSHDB). The card versions
    and coherence markers stay unless --all: they hold no data, and keep a write-through
    still under way from putting an older balance back.

    \b
    Examples:
      recharge cache flush
    """
    rt, cache = _require_cache(ctx)
    with rt.locked(lock, wait):
        rt.output.emit({"prefix": cache.prefix, "deleted": cache.flush(everything)})


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


@app.command("show")
def show(ctx: typer.Context, card: list[int] = CARDS) -> None:
    """Each cached key of the cards with its TTL and value, next to PostgreSQL's value and
    whether they agree (exit 3 after the others when a card does not exist).

    \b
    Examples:
      recharge cache show --card 789
    """
    rt, cache = _require_cache(ctx)
    rows, missing = cache_admin.show(rt.db(), cache, card)
    rt.output.emit(rows)
    if missing is not None:
        raise missing


@app.command("evict")
def evict(ctx: typer.Context, card: list[int] = CARDS) -> None:
    """Remove the cards' cached balance and trips; readers refill from PostgreSQL (the
    version key stays, so no older write can come back).

    \b
    Examples:
      recharge cache evict --card 789 --card 790
    """
    rt, cache = _require_cache(ctx)
    rows, missing = cache_admin.evict(rt.db(), cache, card)
    rt.output.emit(rows)
    if missing is not None:
        raise missing
