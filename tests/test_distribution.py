"""The schema can be distributed by card_id (Citus) without changes, checked from the live
catalog: every card-owned table's primary and unique keys include card_id, every API
function names its tables fully, and every single-card API function takes the card as
its distribution argument."""

from __future__ import annotations

import re
from typing import Any

import psycopg

# API functions that act on one card, named by this argument (create_distributed_function).
SINGLE_CARD = {"recharge_card", "record_trip", "card_balance", "card_trips", "card_recharges",
               "card_set_status", "recharge_reverse", "card_show", "card_statement"}
# Functions that act on several cards by design (distributed transactions under Citus):
# a replacement moves a balance from one card to a new one; the others read or write sets.
MANY_CARDS = {"card_replace", "card_balances", "recharge_bulk", "cards_list"}
TABLE_USE = r"(?:FROM|JOIN|UPDATE|INSERT\s+INTO|DELETE\s+FROM|LOCK\s+TABLE)\s+({names})\b"


def _tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [r["relname"] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchall()]


def test_card_owned_keys_include_card_id(conn) -> None:
    rows = conn.execute("""
        SELECT t.relname AS table_name, k.conname, k.contype,
               array_agg(a.attname ORDER BY a.attname) AS columns
        FROM pg_constraint k
        JOIN pg_class t ON t.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (k.conkey)
        WHERE k.contype IN ('p', 'u')
          AND EXISTS (SELECT 1 FROM pg_attribute c WHERE c.attrelid = t.oid
                      AND c.attname = 'card_id' AND NOT c.attisdropped)
        GROUP BY t.relname, k.conname, k.contype""").fetchall()
    owned = {r["table_name"] for r in rows}
    # (recharges and trips are views over the ledger: one row per movement)
    assert {"cards", "ledger", "idempotency_keys", "audit_log"} <= owned
    assert [r for r in rows if "card_id" not in r["columns"]] == []
    unique_indexes = conn.execute("""
        SELECT x.relname AS index_name, array_agg(a.attname) AS columns
        FROM pg_index i
        JOIN pg_class x ON x.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (i.indkey)
        WHERE i.indisunique AND t.relname = ANY (%s)
        GROUP BY x.relname""", (sorted(owned),)).fetchall()
    assert "ledger_key" in {r["index_name"] for r in unique_indexes}
    assert [r for r in unique_indexes if "card_id" not in r["columns"]] == []


def test_api_functions_name_tables_fully_and_take_their_card(conn) -> None:
    pattern = re.compile(TABLE_USE.format(names="|".join(map(re.escape, _tables(conn)))),
                         re.IGNORECASE)
    functions = conn.execute("""
        SELECT p.proname, p.prosrc, p.prosecdef, coalesce(p.proargnames, '{}') AS args
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prokind = 'f'
          AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
    """).fetchall()
    unqualified = {f["proname"]: pattern.findall(f["prosrc"]) for f in functions}
    assert {name: found for name, found in unqualified.items() if found} == {}
    api = {f["proname"]: f for f in functions if f["prosecdef"]}
    assert set(api) >= SINGLE_CARD | MANY_CARDS
    for name in SINGLE_CARD:
        assert api[name]["args"][0] == "p_card_id", name
