"""The exception hierarchy and the one place that maps failures to exit codes:
`translate` for any exception (SQLSTATEs, connection errors, Redis, OS errors while
starting a server), `sqlstate_status` for a rule failure reported as a code."""

from __future__ import annotations

import re
import sys
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes; documented in README.md and `recharge --help`."""

    OK = 0
    INTERNAL = 1
    CHECK_FAILED = 1  # verify, report daily, db status: a check found a violation
    USAGE = 2
    NOT_FOUND = 3
    REJECTED = 4
    IDEMPOTENCY_CONFLICT = 5
    UNAVAILABLE = 69
    TEMPORARY = 75
    INTERRUPTED = 130


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 internal error; 2 invalid usage or input; 3 not found; "
    "4 rejected by a business rule; 5 idempotency key reused with other parameters; "
    "69 a required service unreachable (PostgreSQL; Redis for cache commands); "
    "75 temporary failure or unknown outcome, safe to retry with the same --key; "
    "130 interrupted.")


class RechargeError(Exception):
    """A failure the user should see as one line and an exit code."""

    status: ExitStatus = ExitStatus.INTERNAL

    def __init__(self, message: str, status: ExitStatus | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidInput(RechargeError):
    status = ExitStatus.USAGE


class NotFound(RechargeError):
    status = ExitStatus.NOT_FOUND


class Rejected(RechargeError):
    status = ExitStatus.REJECTED


class IdempotencyConflict(RechargeError):
    status = ExitStatus.IDEMPOTENCY_CONFLICT


class ServiceUnavailable(RechargeError):
    status = ExitStatus.UNAVAILABLE


class TemporaryFailure(RechargeError):
    status = ExitStatus.TEMPORARY


class OutcomeUnknown(TemporaryFailure):
    """The connection was lost after a write was sent: it may or may not have committed."""

    def __init__(self, key: str, cause: str) -> None:
        super().__init__(f"outcome unknown: {cause} after the request was sent — "
                         f"retry with --key {key} (a retry with the same key never moves money twice)")


class MigrationError(RechargeError):
    status = ExitStatus.INTERNAL


# SQLSTATEs raised by the stored functions in sql/ (class "RC" is ours).
_SQLSTATE_ERRORS: dict[str, type[RechargeError]] = {
    "RC002": InvalidInput,
    "RC003": NotFound,
    "RC004": Rejected,
    "RC005": IdempotencyConflict,
}
# The schema changed under a running command (a migration committed while it waited):
# nothing was written, and a retry runs the new functions.
_SCHEMA_CHANGED = {"RC075", "42703"}
# PostgreSQL conditions that are safe to retry.
_RETRYABLE = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "08000", "08003",
              "08006", "08001", "08004"}
# Failures after which PostgreSQL certainly rolled the statement back.
ROLLED_BACK = {"40001", "40P01", "55P03", "57014"}

_MISSING_DATABASE = re.compile(r'FATAL: +database "(.*?)" does not exist')
_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_PASSWORD_IN_CONNINFO = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide passwords in URLs (`user:secret@`) and conninfo strings (`password=secret`)."""
    text = _PASSWORD_IN_URL.sub(r"\1***\3", text)
    return _PASSWORD_IN_CONNINFO.sub(r"\1***", text)


def translate(exc: BaseException, *, reaching: str | None = None) -> RechargeError | None:
    """What the user sees of a failure, or None when it is a bug. `reaching` names what was
    being connected to or started when `exc` came ("PostgreSQL", "the embedded servers"):
    failing to reach it is exit 69 (a DSN libpq cannot parse, or one naming a database the
    server does not have, is exit 2)."""
    if isinstance(exc, RechargeError):
        return exc
    psycopg = sys.modules.get("psycopg")  # not imported: not a psycopg exception
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return _connect_failure(exc, reaching) if reaching else from_database(exc)
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(exc, redis.RedisError):
        return from_redis(exc)
    if reaching and isinstance(exc, OSError):
        return ServiceUnavailable(f"cannot start {reaching}: {exc}")
    return None


def _connect_failure(exc: BaseException, reaching: str) -> RechargeError | None:
    import psycopg

    if isinstance(exc, psycopg.ProgrammingError):  # libpq could not parse the conninfo
        return InvalidInput(f"invalid PostgreSQL DSN: {redact(first_line(str(exc)))} (use "
                            "key=value pairs or a postgresql:// URL)")
    if isinstance(exc, psycopg.OperationalError):
        missing = _MISSING_DATABASE.search(str(exc))
        if missing:  # the server answered: the setting names the wrong database
            return InvalidInput(f'database "{missing.group(1)}" does not exist on that '
                                "PostgreSQL server: check the DSN, or create the database")
        return ServiceUnavailable(f"{reaching} is unreachable: {redact(first_line(str(exc)))}")
    return from_database(exc)


def sqlstate_status(sqlstate: str) -> ExitStatus:
    """The exit status of a rule failure a stored function reports as a code (RC00x)."""
    return _SQLSTATE_ERRORS[sqlstate].status


def from_database(exc: BaseException) -> RechargeError | None:
    """Translate a psycopg exception into a RechargeError, or None if it is a bug."""
    import psycopg

    sqlstate = getattr(exc, "sqlstate", None)
    message = first_line(getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc))
    if sqlstate in _SQLSTATE_ERRORS:
        return _SQLSTATE_ERRORS[sqlstate](message)
    if sqlstate in ("22003", "22P02", "22008", "22007"):
        return InvalidInput(message)
    if sqlstate in _SCHEMA_CHANGED:
        return TemporaryFailure(f"the database schema changed while this command ran ({message});"
                                " nothing was written: retry (with the same --key)")
    if sqlstate in ("42883", "42P01"):  # undefined function or table: no (current) schema
        return InvalidInput(f"this database does not have the recharge schema, or has an older "
                            f"one ({message}): run `recharge db migrate` as the schema owner")
    if sqlstate == "23505" and getattr(exc.diag, "constraint_name", None) == "idempotency_keys_pkey":
        # the same key was claimed concurrently for another card
        return IdempotencyConflict("idempotency key was already used with different parameters")
    if sqlstate == "23503":
        return NotFound(message)
    if sqlstate in _RETRYABLE:
        return TemporaryFailure(f"temporary database failure, safe to retry: {message}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # connected earlier (connect failures are exit 69 where they happen): the
        # server went away or restarted mid-command
        return TemporaryFailure(f"lost the connection to PostgreSQL ({redact(message)}); "
                                "safe to retry")
    return None


def from_redis(exc: BaseException) -> RechargeError:
    """A Redis failure where Redis itself is the job (cache administration): exit 69. (Reads
    and writes never get here: they fall back to PostgreSQL.)"""
    return ServiceUnavailable(f"Redis failed: {redact(first_line(str(exc) or type(exc).__name__))}")


def outcome_unknown(exc: BaseException, key: str) -> RechargeError | None:
    """For a failed write: OutcomeUnknown when the connection broke after sending, else the
    usual translation (or None for a bug)."""
    import psycopg

    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and \
            getattr(exc, "sqlstate", None) not in ROLLED_BACK:
        return OutcomeUnknown(key, "the connection to PostgreSQL was lost")
    return from_database(exc)


def first_line(text: str) -> str:
    """The first non-blank line of a message (errors are shown as one line)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
