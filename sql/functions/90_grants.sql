-- What the application role may run: the API functions (SECURITY DEFINER, defined in the
-- files before this one) and nothing else. Re-applied whenever this list changes.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    recharge_card(bigint, bigint, integer, text),
    recharge_bulk(integer, integer[], bigint[], bigint[], text[]),
    record_trip(bigint, integer, integer, timestamptz, text),
    card_balance(bigint), card_balances(bigint[]),
    card_trips(bigint, integer, timestamptz, bigint),
    card_recharges(bigint, integer, timestamptz, bigint),
    stats_revenue(date, date, text), stats_trips(date, date, text),
    stats_users_count(), stats_users_active(date, date), stats_users_latest(integer),
    report_top_stations(date, integer), report_recharge_points(date, integer),
    report_card_status(date), verify_ledger(), rollup_build(),
    cache_identity(), cache_epoch_bump(), cache_data_replaced(), job_record(text, boolean, jsonb), health_jobs(),
    user_add(text, text, date, text, boolean, text, text), card_issue(bigint, text, text),
    card_set_status(bigint, text, text, text, text), card_replace(bigint, text, text, text),
    recharge_reverse(bigint, bigint, text, text, text), card_show(bigint, integer),
    cards_list(text, bigint, integer, bigint), card_statement(bigint, date, date),
    fares_list(timestamptz), fare_set(text, bigint, timestamptz, text, text), limits_show(),
    limits_set(bigint, bigint, bigint, bigint, text, text), audit_list(bigint, integer, bigint, bigint),
    audit_horizon(bigint), audit_tail(bigint, integer),
    stations_list(text, text, text, integer, integer), station_show(integer),
    routes_list(text, text, integer, integer), route_show(integer),
    points_list(text, integer, integer), localities_list(), transfer_rules_show(),
    transfer_rule_set(integer, integer, timestamptz, text, text),
    benefit_rules_list(date), user_show(bigint, text), users_find(text, integer),
    user_update(bigint, text, text, date, text, boolean, text, text),
    card_personalise(bigint, bigint, text, text), cards_hotlist(timestamptz)
TO recharge_app;
