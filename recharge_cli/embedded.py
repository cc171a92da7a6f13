"""The embedded default made ready for work: the servers of `local` running, the schema
migrated when the SQL changed and the demo data loaded once (announced on stderr)."""

from __future__ import annotations

from recharge_cli import local
from recharge_cli.errors import translate
from recharge_cli.render import Output
from recharge_cli.settings import Settings


def settings_for(settings: Settings, lay: local.Layout, state: local.LocalState) -> Settings:
    """`settings` pointed at the running embedded servers (replica and cluster included)."""
    return settings.with_servers(local.dsn_for(lay, state), local.cache_url_for(lay, state),
                                 local.replica_dsn_for(lay, state), state.cluster)


def ready(settings: Settings, output: Output, *, start_all: bool = False, replica: bool = False,
          cluster: bool = False) -> Settings:
    """Servers running (`start_all` checks every one, `replica` and `cluster` add those),
    the schema migrated when the SQL changed, the demo data loaded once. Returns the
    settings that reach the servers."""
    if start_all or replica or cluster:
        state = local.start(settings.home, output.message, replica, cluster)
        lay = local.layout(settings.home)
    else:
        try:
            state, lay = local.ensure_running(settings.home, output.message)
        except OSError as exc:
            raise translate(exc, reaching="the embedded servers") from exc
    resolved = settings_for(settings, lay, state)
    _prepare(resolved, state, output)
    return resolved


def _prepare(settings: Settings, state: local.LocalState, output: Output) -> None:
    """Migrate when the SQL changed and load the demo data once."""
    from recharge_cli import db, demo, migrations, stats

    current = migrations.fingerprint()
    if state.migrations == current and state.seeded:
        return
    with db.connect(settings.dsn or "") as conn:
        applied = migrations.migrate(conn)
        if applied:
            output.message(f"Applied {len(applied)} migration(s) to the embedded database")
            if state.seeded:  # data from an older version: bring the rollups up to date
                stats.build_rollups(conn)
        if not state.seeded:
            # the load is one transaction: data present means all of it (an interrupted
            # first run left none, and this run loads it again)
            if demo.is_empty(conn):
                output.message("Loading the demo data set into the embedded database (once) …")
                result = demo.load(conn, output=output)
                output.message(f"Loaded {result['cards']:,} cards and {result['trips']:,} trip "
                               f"legs in {result['seconds']:.1f} s")
            else:
                demo.finish(conn)
            state.seeded = True
    state.migrations = current
    local.write_state(settings.home.resolve(), state)
