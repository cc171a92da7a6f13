"""The monthly grant of free trips (`benefits grant`): one set-based call of benefits_grant,
which lapses what earlier months left and loads the month's trips (sql/functions/
66_benefits.sql); a dry run is the same call, rolled back."""

from __future__ import annotations

import datetime as dt

import psycopg

from recharge_cli import db
from recharge_cli.jsonable import Row


def grant(conn: psycopg.Connection[Row], month: dt.date, dry_run: bool = False) -> Row:
    """The month's grant: how many users got trips, replayed or were skipped (their ids),
    and what lapsed."""
    with conn.transaction(force_rollback=dry_run):
        rows = db.call(conn, "public.benefits_grant", (month,))
    by = {outcome: [r for r in rows if r["outcome"] == outcome]
          for outcome in ("granted", "replayed", "skipped", "lapsed")}
    return {"month": month.strftime("%Y-%m"), "granted": len(by["granted"]),
            "trips_granted": sum(r["trips"] for r in by["granted"]),
            "replayed": len(by["replayed"]), "skipped": len(by["skipped"]),
            "cards_lapsed": len(by["lapsed"]),
            "trips_lapsed": sum(r["trips"] for r in by["lapsed"]),
            "skipped_users": [r["user_id"] for r in by["skipped"]], "dry_run": dry_run}
