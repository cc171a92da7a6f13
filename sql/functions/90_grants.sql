-- What the application role may run: the API functions (SECURITY DEFINER, defined in the
-- files before this one) and nothing else. Re-applied whenever this list changes.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    recharge_card(bigint, bigint, integer, text),
    record_trip(bigint, integer, integer, timestamptz, text),
    card_balance(bigint), card_balances(bigint[]),
    card_trips(bigint, integer, timestamptz, bigint),
    card_recharges(bigint, integer, timestamptz, bigint),
    stats_revenue(date, date, text), stats_trips(date, date, text),
    stats_users_count(), stats_users_active(date, date), stats_users_latest(integer),
    report_top_stations(date, integer), report_recharge_points(date, integer),
    report_card_status(date), verify_ledger(), rollup_build(),
    cache_epoch(), cache_epoch_bump()
TO recharge_app;
