"""Parsers of option values (dates, times, rate lists): one place, one style of message
that says what is wrong and how to write it (exit 2)."""

from __future__ import annotations

import datetime as dt
import re

from recharge_cli.errors import InvalidInput

EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _in_range(day: dt.date, option: str, value: str, earliest: dt.date = EARLIEST_DATE,
              latest: dt.date = LATEST_DATE) -> None:
    if not earliest <= day <= latest:
        raise InvalidInput(f"invalid {option} {value!r}: give a day between {earliest} and "
                           f"{latest}")


def date(value: str | None, option: str, earliest: dt.date = EARLIEST_DATE,
         latest: dt.date = LATEST_DATE) -> dt.date | None:
    """A `YYYY-MM-DD` option, said precisely when wrong (format, no such day, range)."""
    if value is None:
        return None
    if not _ISO_DATE.fullmatch(value.strip()):
        raise InvalidInput(f"invalid {option} {value!r}: use YYYY-MM-DD, e.g. 2026-01-31")
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(f"invalid {option} {value!r}: there is no such day ({exc})") from exc
    _in_range(day, option, value, earliest, latest)
    return day


def birth_date(value: str | None) -> dt.date | None:
    """`--birth-date YYYY-MM-DD`: a day from 1900-01-01 to today."""
    return date(value, "--birth-date", dt.date(1900, 1, 1), dt.date.today())


def month(value: str | None, option: str = "--month") -> dt.date | None:
    """A `YYYY-MM` option, as the first day of that month."""
    if value is None:
        return None
    found = re.fullmatch(r"(\d{4})-(\d{2})", value.strip())
    if not found or not 1 <= int(found[2]) <= 12:
        raise InvalidInput(f"invalid {option} {value!r}: use YYYY-MM, e.g. 2026-02")
    first = dt.date(int(found[1]), int(found[2]), 1)
    _in_range(first, option, value)
    return first


def time(value: str | None, option: str = "--at") -> str | None:
    """An ISO-8601 time (a day alone means its midnight); without an offset it is in the
    database's time zone, so the text itself goes to PostgreSQL once it is known valid."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        reason = "there is no such day or time" if _ISO_DATE.match(value.strip()) else \
            "use ISO 8601, e.g. 2026-11-24T07:45"
        raise InvalidInput(f"invalid {option} {value!r}: {reason}") from exc
    _in_range(moment.date(), option, value)
    return value.strip()


def date_range(date_from: str | None, date_to: str | None) -> tuple[dt.date | None, dt.date | None]:
    """`--from` and `--to` days, the first not after the second."""
    first, last = date(date_from, "--from"), date(date_to, "--to")
    if first and last and first > last:
        raise InvalidInput(f"--from {first} is after --to {last}: swap them")
    return first, last


def rates(text: str | None) -> list[float]:
    """`--rates 500,1000,2000`: positive operations/s, ascending, each once."""
    if not text:
        return []
    try:
        found = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"invalid --rates {text!r}: give operations per second separated by "
                           "commas, e.g. 500,1000,2000") from None
    if not found or any(not 0 < r <= 1_000_000 for r in found):
        raise InvalidInput(f"invalid --rates {text!r}: every rate must be above 0 and at most "
                           "1,000,000/s")
    return sorted(set(found))


def window(date_from: str | None, date_to: str | None) -> dict[str, dt.date | None]:
    """`--from` and `--to` days as a statistic's window (`from`, `to`)."""
    first, last = date_range(date_from, date_to)
    return {"from": first, "to": last}
