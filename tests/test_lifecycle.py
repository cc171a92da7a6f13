"""A card's life from the CLI: users, issue, status changes, replacement, reversal,
statements, fares, limits, audit; races between conflicting actions; and a state machine
of random lifecycle commands that never breaks an invariant."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from recharge_cli import cards, db, desk, lifecycle
from recharge_cli.cache import Cache
from recharge_cli.errors import RechargeError
from tests.conftest import Database, new_card

STATUS_FIELDS = {"card_id", "status", "previous_status", "changed_at", "replayed"}


def violations(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM verify_ledger()").fetchall()


def test_a_cards_whole_life(cli, conn) -> None:
    doc = f"CC{uuid.uuid4().int % 10**10}"
    user = cli("users", "add", "--document", doc, "--name", "Ana Gómez", "--key", f"u-{doc}")
    assert user.exit_code == 0, user.stderr
    assert set(user.json()) >= {"user_id", "replayed"} and not user.json()["replayed"]
    again = cli("users", "add", "--document", doc, "--name", "Ana Gómez", "--key", f"u-{doc}")
    assert again.json() == {**user.json(), "replayed": True}
    assert cli("users", "add", "--document", doc, "--name", "Other", "--key", f"u-{doc}"
               ).exit_code == 5
    assert cli("users", "add", "--document", doc, "--name", "Twin").exit_code == 4
    user_id = user.json()["user_id"]

    issued = cli("cards", "issue", "--user", str(user_id))
    assert issued.exit_code == 0 and "idempotency key:" in issued.stderr
    card = issued.json()
    assert {k: card[k] for k in ("user_id", "status", "balance", "replayed")} == \
        {"user_id": user_id, "status": "active", "balance": 0, "replayed": False}
    card_id = card["card_id"]
    assert cli("cards", "issue", "--user", "999999999").exit_code == 3

    topped = cli("recharge", "--card", str(card_id), "--amount", "20000").json()
    shown = cli("cards", "show", "--card", str(card_id), "--movements", "5").json()
    assert set(shown) >= {"card_id", "user_id", "status", "balance", "version", "issued_at",
                          "last_movement_at", "movements"}
    assert shown["balance"] == 20000 and shown["movements"][0]["kind"] == "recharge"

    blocked = cli("cards", "block", "--card", str(card_id), "--reason", "stolen",
                  "--operator", "ops1", "--key", f"b-{card_id}")
    assert blocked.exit_code == 0 and set(blocked.json()) >= STATUS_FIELDS
    assert (blocked.json()["status"], blocked.json()["previous_status"]) == ("blocked", "active")
    assert cli("cards", "block", "--card", str(card_id), "--reason", "stolen", "--operator", "ops1",
               "--key", f"b-{card_id}").json()["replayed"] is True
    assert cli("recharge", "--card", str(card_id), "--amount", "1000").exit_code == 4
    assert cli("balance", "--card", str(card_id)).json()["status"] == "blocked"
    assert cli("cards", "block", "--card", str(card_id)).exit_code == 4  # already blocked
    assert cli("cards", "unblock", "--card", str(card_id)).json()["status"] == "active"
    assert cli("cards", "lost", "--card", str(card_id)).json()["status"] == "lost"
    assert cli("cards", "unblock", "--card", str(card_id)).exit_code == 4  # lost is final

    replaced = cli("cards", "replace", "--card", str(card_id), "--reason", "lost")
    assert replaced.exit_code == 0, replaced.stderr
    body = replaced.json()
    assert set(body) >= {"old_card_id", "new_card_id", "amount_moved", "replayed"}
    assert (body["old_card_id"], body["amount_moved"]) == (card_id, 20000)
    new_id = body["new_card_id"]
    assert cli("balance", "--card", str(card_id)).json()["balance"] == 0
    assert cli("balance", "--card", str(new_id)).json()["balance"] == 20000
    assert cli("cards", "replace", "--card", str(card_id)).exit_code == 4  # only once
    anonymous = new_card(conn, status="blocked")
    assert cli("cards", "replace", "--card", str(anonymous)).exit_code == 4

    first = cli("recharge", "--card", str(new_id), "--amount", "5000").json()
    reversed_ = cli("reverse", "--card", str(new_id), "--recharge", str(first["recharge_id"]),
                    "--reason", "wrong card")
    assert reversed_.exit_code == 0, reversed_.stderr
    assert {k: reversed_.json()[k] for k in ("card_id", "recharge_id", "amount", "balance")} == \
        {"card_id": new_id, "recharge_id": first["recharge_id"], "amount": 5000, "balance": 20000}
    assert "reversal_id" in reversed_.json()
    assert cli("reverse", "--card", str(new_id), "--recharge", str(first["recharge_id"])
               ).exit_code == 4  # at most once
    assert cli("reverse", "--card", str(new_id), "--recharge", str(topped["recharge_id"])
               ).exit_code == 3  # that recharge belongs to the old card
    cli("trips", "record", "--card", str(new_id), "--station", "5")
    spent = new_card(conn, balance=5000)
    cli("trips", "record", "--card", str(spent), "--station", "5")
    opening = conn.execute("SELECT recharge_id FROM recharges WHERE card_id = %s",
                           (spent,)).fetchone()["recharge_id"]
    assert cli("reverse", "--card", str(spent), "--recharge", str(opening)
               ).exit_code == 4  # the balance no longer covers it
    assert cli("reverse", "--card", "88888888", "--recharge", "1").exit_code == 3

    rows = cli("cards", "statement", "--card", str(new_id)).json()
    assert [r["kind"] for r in rows] == ["transfer", "recharge", "correction", "fare"]
    assert set(rows[0]) == {"entry_id", "kind", "amount", "balance_after", "created_at",
                            "reference"}
    running = 0
    for row in rows:
        running += row["amount"]
        assert row["balance_after"] == running
    assert rows[0]["reference"] == f"from card {card_id}"
    assert cli("cards", "statement", "--card", str(new_id), "--from", "2030-01-01").json() == []

    listed = cli("cards", "list", "--user", str(user_id)).json()
    assert [c["card_id"] for c in listed] == [card_id, new_id]
    page = cli("cards", "list", "--user", str(user_id), "--limit", "1", "--after", str(card_id))
    assert [c["card_id"] for c in page.json()] == [new_id]
    assert cli("cards", "list", "--status", "stolen").exit_code == 2

    audit = cli("audit", "list", "--card", str(card_id)).json()
    assert [a["action"] for a in audit][:2] == ["replace", "status"]
    assert {"ops1"} <= {a["operator"] for a in audit}
    issued_as = cli("audit", "list", "--card", str(new_id)).json()[-1]
    assert (issued_as["action"], issued_as["details"]) == \
        ("issue", {"user_id": user_id, "replaces": card_id, "amount": 20000})
    assert violations(conn) == []


def test_fares_and_limits(cli, conn) -> None:
    listed = cli("fares", "list").json()
    assert set(listed[0]) == {"code", "amount", "valid_from", "valid_to"}
    now = cli("fares", "list", "--at", "2026-06-01T08:00").json()
    assert {f["code"]: f["amount"] for f in now} == {"CABLE": 3550, "STANDARD": 3550,
                                                     "TRANSFER_FREE": 0}
    assert cli("fares", "set", "--code", "STANDARD", "--amount", "4000",
               "--from", "2026-11-01").exit_code == 4  # trips already used that period
    later = cli("fares", "set", "--code", "CABLE", "--amount", "3900", "--from", "2099-01-01",
                "--key", "cable-2099")
    assert later.exit_code == 0, later.stderr
    assert cli("fares", "set", "--code", "CABLE", "--amount", "3900", "--from", "2099-01-01",
               "--key", "cable-2099").json()["replayed"] is True
    assert cli("fares", "set", "--code", "NOPE", "--amount", "1", "--from", "2099-01-01"
               ).exit_code == 3
    shown = cli("limits", "show").json()
    assert set(shown) >= {"min_recharge", "max_recharge", "max_balance", "credit_allowance",
                          "transfer_window_minutes", "max_transfers", "max_tap_age_days"}
    assert shown["transfer_window_minutes"] == 125 and shown["min_recharge"] == 500
    changed = cli("limits", "set", "--credit-allowance", str(shown["credit_allowance"] + 1))
    assert changed.exit_code == 0 and changed.json()["credit_allowance"] == \
        shown["credit_allowance"] + 1
    assert cli("limits", "set", "--min-recharge", "999999999").exit_code == 2  # > max
    assert cli("limits", "set").exit_code == 2
    cli("limits", "set", "--credit-allowance", str(shown["credit_allowance"]))
    actions = [a["action"] for a in cli("audit", "list", "--limit", "3").json()]
    assert actions == ["limits", "limits", "fare"]


def audit_rows(conn: psycopg.Connection[Any]) -> int:
    return conn.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"]


def test_every_write_replays_and_refuses_a_changed_request(cli, conn) -> None:
    """Each write with --key: the same request again is a replay (same result, nothing
    moves); the key with other parameters is exit 5, prints nothing on stdout and changes
    nothing. Without --key the generated key is named on stderr before the write."""
    tag = uuid.uuid4().hex[:8]
    doc = f"CC{uuid.uuid4().int % 10**10}"

    def replayed(*args: str) -> dict[str, Any]:
        first, again = cli(*args), cli(*args)
        assert first.exit_code == 0 and again.exit_code == 0, (args, first.stderr, again.stderr)
        assert first.json()["replayed"] is False and again.json()["replayed"] is True
        assert {k: v for k, v in again.json().items() if k != "replayed"} == \
            {k: v for k, v in first.json().items() if k != "replayed"}
        assert "idempotency key:" not in first.stderr  # the caller named the key
        return first.json()

    def refused(*args: str) -> None:
        before = audit_rows(conn)
        clash = cli(*args)
        assert clash.exit_code == 5 and clash.stdout == "", (args, clash.exit_code, clash.stderr)
        assert clash.stderr.count("error:") == 1 and "different parameters" in clash.stderr
        assert audit_rows(conn) == before

    generated = cli("users", "add", "--document", doc, "--name", "Eva Díaz")
    key = generated.json()["idempotency_key"]
    assert f"idempotency key: {key}" in generated.stderr
    user_id = generated.json()["user_id"]
    assert cli("users", "add", "--document", doc, "--name", "Eva Díaz", "--key", key
               ).json() == {**generated.json(), "replayed": True}

    card_id = replayed("cards", "issue", "--user", str(user_id), "--key", f"issue-{tag}")["card_id"]
    refused("cards", "issue", "--key", f"issue-{tag}")  # anonymous this time
    recharge_id = cli("recharge", "--card", str(card_id), "--amount", "9000"
                      ).json()["recharge_id"]
    cli("recharge", "--card", str(card_id), "--amount", "4000")

    reversal = replayed("reverse", "--card", str(card_id), "--recharge", str(recharge_id),
                        "--reason", "typo", "--key", f"undo-{tag}")
    assert reversal["balance"] == 4000
    refused("reverse", "--card", str(card_id), "--recharge", str(recharge_id),
            "--reason", "another reason", "--key", f"undo-{tag}")

    replayed("cards", "block", "--card", str(card_id), "--key", f"status-{tag}")
    refused("cards", "lost", "--card", str(card_id), "--key", f"status-{tag}")
    # keys are scoped per card: the same key on another card names another operation
    other = cli("cards", "issue", "--user", str(user_id)).json()["card_id"]
    assert cli("cards", "block", "--card", str(other), "--key", f"status-{tag}"
               ).json()["replayed"] is False

    moved = replayed("cards", "replace", "--card", str(card_id), "--key", f"replace-{tag}")
    assert moved["amount_moved"] == 4000
    refused("cards", "replace", "--card", str(card_id), "--reason", "other",
            "--key", f"replace-{tag}")
    assert cli("cards", "list", "--user", str(user_id)).json()[0]["replaced_by"] == \
        moved["new_card_id"]

    # (the other fare tests append STANDARD and CABLE periods; this one is the transfer fare's)
    replayed("fares", "set", "--code", "TRANSFER_FREE", "--amount", "0", "--from", "2098-01-01",
             "--key", f"fare-{tag}")
    refused("fares", "set", "--code", "TRANSFER_FREE", "--amount", "200", "--from", "2098-01-01",
            "--key", f"fare-{tag}")

    allowance = cli("limits", "show").json()["credit_allowance"]
    replayed("limits", "set", "--credit-allowance", str(allowance), "--key", f"limits-{tag}")
    refused("limits", "set", "--credit-allowance", str(allowance + 1), "--key", f"limits-{tag}")
    assert cli("limits", "show").json()["credit_allowance"] == allowance
    assert violations(conn) == []


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run actions at once; each result or the RechargeError it raised."""
    results: list[Any] = [None] * len(actions)
    barrier = threading.Barrier(len(actions))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = actions[i]()
        except RechargeError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def _connected(database: Database, action: Callable[[psycopg.Connection[Any], Cache], Any]
               ) -> Callable[[], Any]:
    def run() -> Any:
        with database.connect() as conn:
            return action(conn, database.cache())
    return run


def _race_round(database: Database, conn: psycopg.Connection[Any]) -> None:
    card = new_card(conn, balance=20_000, user_id=1)
    block, topup, tap = race(
        _connected(database, lambda c, k: lifecycle.set_status(c, k, card, "block", None, "t")),
        _connected(database, lambda c, k: cards.recharge(c, k, card, 1000)),
        _connected(database, lambda c, k: cards.record_trip(c, k, card, 5)))
    assert not isinstance(block, RechargeError)
    moved = sum(1 for r in (topup, tap) if not isinstance(r, RechargeError))
    entries = conn.execute("SELECT count(*) AS n FROM ledger WHERE card_id = %s",
                           (card,)).fetchone()["n"]
    assert entries == 1 + moved  # the opening recharge and each action that won
    assert all(r.status == 4 for r in (topup, tap) if isinstance(r, RechargeError))

    lifecycle.set_status(conn, database.cache(), card, "lost", None, "t")
    first, second = race(
        _connected(database, lambda c, k: lifecycle.replace(c, k, card, None, "t")),
        _connected(database, lambda c, k: lifecycle.replace(c, k, card, None, "t")))
    winners = [r for r in (first, second) if not isinstance(r, RechargeError)]
    assert len(winners) == 1 and winners[0]["amount_moved"] > 0
    assert [r.status for r in (first, second) if isinstance(r, RechargeError)] == [4]

    fresh = new_card(conn, user_id=1)
    top = cards.recharge(conn, database.cache(), fresh, 5000)
    undo, ride = race(
        _connected(database, lambda c, k: lifecycle.reverse(c, k, fresh, top["recharge_id"],
                                                            None, "t")),
        _connected(database, lambda c, k: cards.record_trip(c, k, fresh, 5)))
    balance = db.call_one(conn, "public.card_balance", (fresh,))["balance"]
    if isinstance(undo, RechargeError):  # the tap won the card first
        assert undo.status == 4 and balance == 5000 - 3550
    else:  # the reversal first; the tap then rode on credit
        assert balance == 0 - 3550 and not isinstance(ride, RechargeError)


def test_races_leave_one_winner_and_every_invariant(database: Database, conn) -> None:
    for _ in range(3):
        _race_round(database, conn)
    assert violations(conn) == []


class Lifecycle(RuleBasedStateMachine):
    """Random lifecycle commands on a few cards; the model says which must succeed."""

    database: Database

    @initialize()
    def start(self) -> None:
        self.conn = self.database.connect()
        self.cache = self.database.cache()
        self.cards: dict[int, dict[str, Any]] = {}
        self.recharges: list[tuple[int, int, int]] = []

    def _try(self, action: Callable[[], Any]) -> tuple[Any, int]:
        try:
            return action(), 0
        except RechargeError as exc:
            return None, int(exc.status)

    @rule(personalised=st.booleans())
    def issue(self, personalised: bool) -> None:
        row = lifecycle.issue(self.conn, 1 if personalised else None, "model")
        self.cards[row["card_id"]] = {"status": "active", "user": personalised, "replaced": False,
                                      "balance": 0}

    @rule(data=st.data(), amount=st.integers(500, 60_000))
    def recharge(self, data: st.DataObject, amount: int) -> None:
        if not self.cards:
            return
        card_id = data.draw(st.sampled_from(sorted(self.cards)))
        card = self.cards[card_id]
        row, status = self._try(lambda: cards.recharge(self.conn, self.cache, card_id, amount))
        ok = card["status"] == "active" and card["balance"] + amount <= 500_000
        assert (status == 0) == ok, (card, amount, status)
        if ok:
            card["balance"] += amount
            self.recharges.append((card_id, row["recharge_id"], amount))

    @rule(data=st.data(), action=st.sampled_from(lifecycle.STATUS_ACTIONS))
    def change_status(self, data: st.DataObject, action: str) -> None:
        if not self.cards:
            return
        card_id = data.draw(st.sampled_from(sorted(self.cards)))
        card = self.cards[card_id]
        _, status = self._try(lambda: lifecycle.set_status(self.conn, self.cache, card_id, action,
                                                           "model", "model"))
        allowed = not card["replaced"] and (
            (action == "block" and card["status"] == "active")
            or (action == "unblock" and card["status"] == "blocked")
            or (action == "lost" and card["status"] != "lost"))
        assert (status == 0) == allowed, (card, action, status)
        if allowed:
            card["status"] = {"block": "blocked", "unblock": "active", "lost": "lost"}[action]

    @rule(data=st.data())
    def replace(self, data: st.DataObject) -> None:
        if not self.cards:
            return
        card_id = data.draw(st.sampled_from(sorted(self.cards)))
        card = self.cards[card_id]
        row, status = self._try(lambda: lifecycle.replace(self.conn, self.cache, card_id, None,
                                                          "model"))
        allowed = card["user"] and not card["replaced"] and card["status"] in ("blocked", "lost")
        assert (status == 0) == allowed, (card, status)
        if allowed:
            self.cards[row["new_card_id"]] = {"status": "active", "user": True, "replaced": False,
                                              "balance": card["balance"]}
            card.update(replaced=True, balance=0)

    @rule(data=st.data())
    def personalise(self, data: st.DataObject) -> None:
        if not self.cards:
            return
        card_id = data.draw(st.sampled_from(sorted(self.cards)))
        card = self.cards[card_id]
        _, status = self._try(lambda: desk.personalise(self.conn, self.cache, card_id, 1, "model"))
        allowed = not card["user"] and not card["replaced"] and card["status"] == "active"
        assert status == (0 if allowed else 4), (card, status)
        if allowed:
            card["user"] = True

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        if not self.recharges:
            return
        card_id, recharge_id, amount = data.draw(st.sampled_from(self.recharges))
        _, status = self._try(lambda: lifecycle.reverse(self.conn, self.cache, card_id,
                                                        recharge_id, None, "model"))
        card = self.cards[card_id]
        allowed = card["balance"] >= amount
        assert (status == 0) == allowed, (card, amount, status)
        if allowed:
            card["balance"] -= amount
            self.recharges.remove((card_id, recharge_id, amount))

    @invariant()
    def database_agrees(self) -> None:
        if not hasattr(self, "conn") or not self.cards:
            return
        rows = db.call(self.conn, "public.card_balances", (sorted(self.cards),))
        assert {r["card_id"]: (r["status"], r["balance"]) for r in rows} == \
            {c: (m["status"], m["balance"]) for c, m in self.cards.items()}
        assert violations(self.conn) == []

    def teardown(self) -> None:
        if hasattr(self, "conn"):
            self.conn.close()
            self.cache.close()


def test_lifecycle_state_machine(empty_database: Database) -> None:
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO users (user_id, document, full_name, registered_at) "
                     "VALUES (1, 'CC1', 'Model User', now())")
    Lifecycle.database = empty_database
    search = bool(os.environ.get("HYPOTHESIS_SEARCH"))
    run_state_machine_as_test(Lifecycle, settings=settings(
        max_examples=100 if search else 12, stateful_step_count=40 if search else 25,
        deadline=None, derandomize=not search))


@pytest.mark.parametrize("args", [
    ["cards", "block", "--card", "0"], ["cards", "show", "--card", "abc"],
    ["cards", "list", "--limit", "0"], ["reverse", "--card", "1", "--recharge", "-5"],
    ["fares", "set", "--code", "STANDARD", "--amount", "100", "--from", "tomorrow"],
    ["cards", "statement", "--card", "1", "--from", "2026-02-30"],
    ["users", "add", "--document", "x", "--name", "A"],
])
def test_bad_lifecycle_input_is_exit_2(cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, (args, result.exit_code, result.stderr)
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
