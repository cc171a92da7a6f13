"""`recharge report daily`: the morning operations report — the day against the 7 days
before it, busiest stations and localities, recharge points, cards by status, verify."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from recharge_cli import db, verify
from recharge_cli.charts import pyplot
from recharge_cli.jsonable import Row
from recharge_cli.render import write_csv
from recharge_cli.report_folder import markdown_table, save_figure, write_markdown

PREVIOUS_DAYS = 7
TOP = 10
# Each CSV's header, written even when a section has no rows.
CSV_COLUMNS = {
    "days": ["day", "recharged", "reversed", "net", "recharges", "fares", "benefit_fares",
             "legs", "journeys", "transfers", "transfer_share"],
    "stations": ["station_id", "station", "locality", "legs", "transfers", "fares"],
    "localities": ["locality", "legs", "transfers", "fares"],
    "points": ["point_id", "point", "locality", "recharges", "recharged"],
    "cards_by_status": ["status", "cards", "changed_to_on_day"],
}


def gather(conn: psycopg.Connection[Row], day: dt.date) -> Row:
    """Every figure of the report, from the stored functions."""
    first = day - dt.timedelta(days=PREVIOUS_DAYS)
    revenue = {r["bucket"]: r for r in db.call(conn, "public.stats_revenue", (first, day, "day"))}
    trips = {r["bucket"]: r for r in db.call(conn, "public.stats_trips", (first, day, "day"))}
    days = []
    for n in range(PREVIOUS_DAYS + 1):
        key = (first + dt.timedelta(days=n)).isoformat()
        money, legs = revenue.get(key, {}), trips.get(key, {})
        days.append({"day": key, "recharged": money.get("recharged", 0),
                     "reversed": money.get("reversed", 0), "net": money.get("net", 0),
                     "benefit_fares": money.get("benefit_fares") or 0,
                     "recharges": money.get("recharges", 0), "fares": legs.get("fares", 0),
                     "legs": legs.get("legs", 0), "journeys": legs.get("journeys", 0),
                     "transfers": legs.get("transfers", 0),
                     "transfer_share": round(legs["transfers"] / legs["legs"], 4)
                     if legs.get("legs") else 0.0})
    localities = sorted(db.call(conn, "public.stats_trips", (day, day, "locality")),
                        key=lambda r: (-r["legs"], r["bucket"]))[:TOP]
    found = verify.run(conn).violations  # what changed since the last clean run
    return {
        "date": day.isoformat(), "time_zone": db.time_zone(conn), "days": days,
        "day": days[-1], "previous_mean": {k: sum(d[k] for d in days[:-1]) / PREVIOUS_DAYS
                                           for k in ("recharged", "reversed", "net", "fares",
                                                     "benefit_fares", "legs", "journeys")},
        "stations": db.call(conn, "public.report_top_stations", (day, TOP)),
        "localities": [{"locality": r["bucket"], "legs": r["legs"], "transfers": r["transfers"],
                        "fares": r["fares"]} for r in localities],
        "points": db.call(conn, "public.report_recharge_points", (day, TOP)),
        "cards_by_status": db.call(conn, "public.report_card_status", (day,)),
        "verify": verify.summary(found), "violations": len(found),
    }


def change(today: float, mean: float) -> str:
    return f"{(today - mean) / mean:+.1%}" if mean else "n/a"


def percent(share: float) -> str:
    """A share as report.md shows it, in every table alike."""
    return f"{share:.1%}"


def verify_rows(report: Row) -> list[Row]:
    """The verify table of report.md: each invariant clean or failed, with its count."""
    return [{"invariant": r["invariant"], "description": r["description"],
             "result": "clean" if r["holds"] else "failed", "violations": r["violations"]}
            for r in report["verify"]]


def write(out: Path, report: Row, plots: bool = True) -> list[Path]:
    """report.md, CSV files and PNG charts into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = [write_csv(out / f"{name}.csv", report[name], columns)
               for name, columns in CSV_COLUMNS.items()]
    if plots:
        written += _charts(out, report)
    return [*written, write_markdown(out / "report.md", markdown(report, plots))]


def markdown(report: Row, plots: bool) -> list[str]:
    day, mean = report["day"], report["previous_mean"]
    failed = sum(not r["holds"] for r in report["verify"])
    table = markdown_table

    lines = [
        f"# Daily report {report['date']}", "",
        f"Days in {report['time_zone']}. Verify: "
        + (f"**clean** (all {len(report['verify'])} invariants hold)" if not failed else
           f"**failed**: {report['violations']:,} violation(s) of {failed} invariant(s)"), "",
        "| | the day | mean of previous 7 days | change |", "|---|---:|---:|---:|",
        *(f"| {label} | {day[k]:,} | {mean[k]:,.0f} | {change(day[k], mean[k])} |"
          for label, k in (("recharged (pesos)", "recharged"), ("reversed (pesos)", "reversed"),
                           ("net (pesos)", "net"), ("fares (pesos)", "fares"),
                           ("fares paid by benefit trips (pesos)", "benefit_fares"),
                           ("trip legs", "legs"), ("journeys", "journeys"))),
        f"| transfer share | {percent(day['transfer_share'])} | | |", "",
    ]
    if plots:
        lines += ["![Revenue and trips, last 8 days](days.png)", ""]
    lines += ["## Busiest stations", "", table(report["stations"]), ""]
    if plots:
        lines += ["![Busiest stations](stations.png)", ""]
    lines += ["## Localities", "", table(report["localities"]), "",
              "## Recharge points", "", table(report["points"]), "",
              "## Cards by status (now, and changes to each status during the day)", "",
              table(report["cards_by_status"]), "",
              "## Verify", "", table(verify_rows(report)), "",
              "## Last 8 days", "", table([{**d, "transfer_share": percent(d["transfer_share"])}
                                           for d in report["days"]])]
    return lines


def _charts(out: Path, report: Row) -> list[Path]:
    plt = pyplot()
    days = report["days"]
    labels = [d["day"][5:] for d in days]
    colors = ["#bbbbbb"] * (len(days) - 1) + ["#2a9d8f"]
    fig, (recharged, fares, legs) = plt.subplots(1, 3, figsize=(14, 4))
    recharged.bar(labels, [d["recharged"] / 1e6 for d in days], color=colors)
    recharged.set_title("recharged")
    recharged.set_ylabel("million pesos")
    fares.bar(labels, [d["fares"] / 1e6 for d in days], color=colors)
    fares.set_title("fares paid")
    fares.set_ylabel("million pesos")
    legs.bar(labels, [d["legs"] for d in days], color=colors, label="trip legs")
    legs.set_title("trip legs (bars) and transfer share (line)")
    legs.set_ylabel("trip legs")
    share = legs.twinx()
    share.plot(labels, [d["transfer_share"] * 100 for d in days], "o-", color="#264653",
               label="transfer share")
    share.set_ylabel("transfers, % of legs")
    share.set_ylim(bottom=0)
    for ax in (recharged, fares, legs):
        ax.tick_params(axis="x", labelrotation=45)
        ax.grid(alpha=0.3, axis="y")
        ax.set_xlabel("day (MM-DD)")
    fig.suptitle(f"Daily report {report['date']} (highlighted) vs the previous 7 days, each "
                 "on its own axis")
    fig.tight_layout()
    written = [save_figure(fig, out / "days.png")]

    stations = list(reversed(report["stations"]))
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(stations), 1) + 1.5))
    ax.barh([f"{s['station']} ({s['locality']})" for s in stations],
            [s["legs"] for s in stations], color="#2a9d8f")
    ax.set_xlabel("trip legs")
    ax.set_title(f"Busiest stations on {report['date']}")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return [*written, save_figure(fig, out / "stations.png")]
