"""recharge report daily"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from recharge_cli import parsers
from recharge_cli.commands.options import WAIT_OPTION, lock_option
from recharge_cli.commands.shared import runtime
from recharge_cli.errors import ExitStatus
from recharge_cli.inputs import writable_folder

app = typer.Typer(no_args_is_help=True, help="The daily operations report (for cron).")


@app.command("daily")
def daily(
    ctx: typer.Context,
    date: str | None = typer.Option(None, "--date", help="the day, YYYY-MM-DD (default: yesterday)"),
    out: Path | None = typer.Option(None, "--out", help="report folder (default "
                                    "reports/daily-<date>)"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip the PNG charts"),
    lock: str | None = lock_option("report-daily"),
    wait: float = WAIT_OPTION,
) -> None:
    """The morning operations report: report.md, PNG charts and CSV; exit 1 if verify fails.

    \b
    Examples:
      recharge report daily
      recharge report daily --date 2026-11-23 --out /srv/reports/2026-11-23
    """
    from recharge_cli import daily_report

    rt = runtime(ctx)
    day = parsers.date(date, "--date") or dt.date.today() - dt.timedelta(days=1)
    out = writable_folder(out or Path("reports") / f"daily-{day.isoformat()}", "--out")
    if day > dt.date.today():
        rt.output.warn(f"{day} is in the future: the report can only show zeros")
    with rt.locked(lock, wait):
        report = daily_report.gather(rt.read_db(), day)
    if not (report["day"]["legs"] or report["day"]["recharges"]):
        rt.output.warn(f"no trips and no recharges on {day}: check --date and the time zone "
                       f"({report['time_zone']})")
    files = daily_report.write(out, report, plots=not no_plot)
    rt.output.message(f"report written to {out}/ ({', '.join(f.name for f in files)})")
    day_figures = {k: v for k, v in report["day"].items() if k != "day"}  # the day is `date`
    rt.output.emit({"date": report["date"], "out": str(out), **day_figures,
                    "verify_violations": report["violations"]})
    if report["violations"]:
        rt.output.error(f"verify found {report['violations']} violation(s); see {out}/report.md")
        raise typer.Exit(ExitStatus.CHECK_FAILED)
