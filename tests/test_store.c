/* test_store.c - the store conformance suite: every test runs against the in-memory store and
   the PostgreSQL store, through the pgsched_store_* wrappers (SPEC §2, §4, §5, §7, §8, §10).

   Build:  cc -std=c99 -Wall -Wextra -Wpedantic -Werror -g -I. -I$(pg_config --includedir) \
              tests/test_store.c -o build/test_store -lcmocka -lpq -lpthread
   Run:    PGSCHED_TEST_DSN='host=/tmp port=5432 dbname=postgres' build/test_store [pattern]
           PGSCHED_TEST_SKIP_PG=1 build/test_store      (memory store only)
           PGSCHED_TEST_CLAIM_ROWS=1000 ...  (rows per thread of the 8-thread claim race;
                                              default 5000, the acceptance figure)
   The PostgreSQL group fails when PGSCHED_TEST_DSN is unset, unless PGSCHED_TEST_SKIP_PG=1.
   An optional argument (or PGSCHED_TEST_FILTER) runs only the tests whose name matches
   (cmocka's '*' and '?'; tests/test_filter.h, the same in every test binary).
   Each PostgreSQL test works in its own schema t_<pid>_<n>, dropped afterwards; a few also
   create roles r_<pid>_<n> or databases t_<pid>_<n>_db (dropped too), so the DSN's user must
   be allowed to create roles and databases. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include "store/fixture.inc"
#include "store/validation.inc"
#include "store/lifecycle.inc"
#include "store/queries.inc"
#include "store/events.inc"
#include "store/concurrency.inc"
#include "store/pg.inc"
#include "store/poison.inc"
#include "store/bulk.inc"

/* Tests that run on both stores. */
#define BOTH_STORES(X)                                                                         \
    X(invalid_names_are_refused_with_the_same_error_by_every_store)                            \
    X(invalid_keys_are_refused_with_the_same_error_by_every_store)                             \
    X(names_and_keys_at_their_limits_are_stored_exactly)                                       \
    X(invalid_params_are_refused_with_the_same_error_and_write_nothing)                        \
    X(valid_json_params_are_stored_byte_for_byte)                                              \
    X(params_of_exactly_1_MiB_are_accepted_and_one_byte_more_is_too_large)                     \
    X(deeply_nested_params_get_the_same_answer_from_every_store)                               \
    X(invalid_schedules_are_refused_with_the_same_error)                                       \
    X(an_interval_over_100_years_is_refused_with_the_same_error)                               \
    X(cron_text_is_stored_as_given_without_being_parsed_by_the_store)                          \
    X(invalid_node_ids_are_refused_with_the_same_error)                                        \
    X(node_ids_of_the_allowed_characters_up_to_64_bytes_are_accepted)                          \
    X(impossible_outcomes_are_refused_with_the_same_error)                                     \
    X(null_pointers_are_invalid_arguments)                                                     \
    X(calls_without_an_error_buffer_still_return_their_code)                                   \
    X(hostile_names_keys_and_params_are_stored_verbatim_and_run_no_sql)                        \
    X(scheduling_a_new_instance_creates_a_pending_row)                                         \
    X(a_zero_due_time_means_the_store_clock_now)                                               \
    X(due_times_keep_microsecond_precision_far_into_the_future)                                \
    X(each_schedule_kind_stores_its_own_fields)                                                \
    X(rescheduling_a_pending_row_replaces_it_but_keeps_the_earlier_due_time)                   \
    X(rescheduling_resets_the_attempt_count)                                                   \
    X(rescheduling_a_finished_row_takes_the_new_due_time)                                      \
    X(rescheduling_a_running_row_is_refused_and_changes_nothing)                               \
    X(a_deferred_reschedule_applies_when_the_run_ends_keeping_the_earlier_due_time)            \
    X(a_deferred_reschedule_revives_a_run_that_finished_the_row)                               \
    X(a_deferred_reschedule_gives_a_failed_run_a_fresh_budget)                                 \
    X(a_deferred_reschedule_applies_after_a_stall_take_back)                                   \
    X(a_later_deferred_reschedule_replaces_an_earlier_one)                                     \
    X(a_deferred_reschedule_wins_over_an_earlier_remove_of_the_running_row)                    \
    X(claim_takes_due_rows_in_due_order_up_to_max)                                             \
    X(claim_makes_the_row_running_for_the_node_with_a_fresh_lease)                             \
    X(claim_takes_only_pending_due_rows_of_the_given_names)                                    \
    X(claim_reports_no_next_due_time_when_nothing_is_pending)                                  \
    X(claim_appends_to_the_list_it_is_given)                                                   \
    X(lease_tokens_differ_on_every_claim_and_are_never_zero)                                   \
    X(a_cancel_request_does_not_leak_into_the_next_run)                                        \
    X(heartbeat_renews_held_leases_so_they_do_not_stall)                                       \
    X(heartbeat_without_renew_only_reads)                                                      \
    X(heartbeat_reports_each_lost_lease)                                                       \
    X(heartbeat_tells_a_stale_and_a_fresh_lease_of_one_row_apart)                              \
    X(heartbeat_reports_cancel_requests_of_held_leases)                                        \
    X(heartbeat_of_a_lease_with_its_token_but_another_node_id_is_lost_and_renews_nothing)      \
    X(heartbeat_reports_no_lease_busy_when_no_other_transaction_locks_its_row)                 \
    X(heartbeat_without_leases_marks_the_node_seen)                                            \
    X(stale_lease_token_cannot_finish_or_renew)                                                \
    X(a_successful_one_time_run_completes_and_is_recorded)                                     \
    X(a_pending_outcome_without_a_time_is_due_after_the_retry_delay)                           \
    X(attempt_rules_reset_keep_and_uncount_the_attempt)                                        \
    X(runs_and_failures_count_each_outcome_kind)                                               \
    X(last_error_is_set_by_failures_and_kept_by_other_outcomes)                                \
    X(error_text_of_4_KiB_is_kept_byte_for_byte_and_longer_text_alike_by_every_store)          \
    X(error_text_with_invalid_utf8_gets_the_same_answer_from_every_store)                      \
    X(a_retry_delay_past_year_9999_gets_the_same_answer_from_every_store)                      \
    X(a_finish_batch_applies_each_outcome_on_its_own)                                          \
    X(finishing_the_same_lease_twice_writes_once)                                              \
    X(a_finished_lease_sent_again_after_another_node_claimed_the_row_is_lost)                  \
    X(outcomes_for_a_removed_running_row_answer_each_for_itself)                               \
    X(a_token_that_never_held_a_row_is_lost_on_a_row_that_never_ran)                           \
    X(a_batch_naming_the_same_lease_twice_applies_it_once)                                     \
    X(a_claim_naming_a_type_twice_hands_out_each_row_once)                                     \
    X(keys_that_differ_in_case_space_or_normalisation_are_different_rows)                      \
    X(stalled_run_is_taken_back_by_another_node_with_a_fresh_token)                            \
    X(stalled_attempt_history_names_the_node_that_ran_it)                                      \
    X(a_run_is_stalled_only_once_the_stall_timeout_has_passed)                                 \
    X(take_back_takes_at_most_max_rows)                                                        \
    X(take_back_with_a_limit_takes_the_longest_silent_run_first)                               \
    X(take_back_leaves_pending_and_finished_rows_alone)                                        \
    X(a_stalled_run_counts_as_a_failed_attempt)                                                \
    X(cancelling_a_running_row_asks_its_node_to_stop)                                          \
    X(cancelling_a_pending_one_time_row_cancels_it_without_running)                            \
    X(cancelling_a_pending_recurring_row_changes_nothing)                                      \
    X(cancelling_a_finished_row_changes_nothing)                                               \
    X(a_requested_cancel_wins_over_a_failure_a_stall_or_a_release_of_a_one_time_run)           \
    X(a_requested_cancel_of_a_recurring_run_leaves_it_pending_at_the_cancelled_due_time)       \
    X(without_a_cancel_request_a_failure_applies_as_usual_despite_a_cancelled_status)          \
    X(a_failure_without_a_cancelled_status_applies_even_when_a_cancel_was_requested)           \
    X(a_requested_cancel_does_not_turn_a_success_into_a_cancel)                                \
    X(changing_a_missing_row_is_not_found)                                                     \
    X(triggering_a_pending_row_makes_it_due_now)                                               \
    X(triggering_a_running_or_finished_row_is_refused)                                         \
    X(removing_a_row_that_is_not_running_deletes_it)                                           \
    X(removing_a_running_row_is_deferred_until_its_run_ends)                                   \
    X(a_removed_running_row_that_stalls_is_deleted_when_taken_back_and_finished)               \
    X(a_removed_row_can_be_scheduled_again_with_a_higher_version)                              \
    X(the_store_clock_is_the_injected_clock_or_the_database_clock)                             \
    X(setup_twice_is_harmless)                                                                 \
    X(get_of_a_missing_row_is_not_found_and_appends_nothing)                                   \
    X(list_is_in_name_then_key_byte_order)                                                     \
    X(list_filters_by_name_and_status)                                                         \
    X(list_pages_through_every_row_once_with_after_name_and_after_key)                         \
    X(list_without_a_limit_returns_at_most_1000_rows)                                          \
    X(history_is_newest_first_and_filters_by_name_and_key)                                     \
    X(history_without_a_limit_returns_at_most_100_records)                                     \
    X(versions_increase_with_every_change_across_the_store)                                    \
    X(next_due_is_the_earliest_pending_due_time_of_the_given_types)                            \
    X(finished_one_time_rows_are_deleted_after_their_retention)                                \
    X(run_history_is_deleted_after_its_retention)                                              \
    X(cleanup_parts_set_to_never_are_skipped)                                                  \
    X(orphans_are_idle_rows_of_types_no_node_registered_within_the_orphan_timeout)             \
    X(a_stopped_nodes_types_become_orphans_one_orphan_timeout_after_it_stopped)                \
    X(registering_a_node_again_replaces_its_types)                                             \
    X(dead_node_records_are_deleted_after_the_history_retention)                               \
    X(a_stopped_nodes_record_outlives_the_history_retention_until_the_orphan_timeout)          \
    X(cleanup_deletes_at_most_its_limit_per_part)                                              \
    X(durations_longer_than_any_age_are_accepted_alike_by_every_store)                         \
    X(a_listener_wait_times_out_when_nothing_happens)                                          \
    X(listen_wake_ends_a_wait_early)                                                           \
    X(every_change_reaches_every_listener)                                                     \
    X(events_arrive_in_version_order_per_instance)                                             \
    X(a_listener_that_falls_behind_gets_every_event_or_a_resync)                               \
    X(closing_one_listener_leaves_the_others_listening)                                        \
    X(claims_from_8_threads_never_hand_out_a_row_twice)                                        \
    X(racing_finish_heartbeat_and_take_back_honour_one_lease_per_row)                          \
    X(concurrent_reschedules_never_move_a_row_version_backwards)                             \
    X(a_batch_gives_each_request_what_one_schedule_would)                                      \
    X(a_batch_of_valid_requests_returns_ok_and_an_empty_batch_does_nothing)                    \
    X(a_batch_naming_a_row_twice_applies_the_requests_in_order)                                \
    X(a_batch_larger_than_one_statement_writes_every_request)                                  \
    X(a_batch_raises_one_change_event_per_row_it_wrote)

/* Tests of what only the PostgreSQL store has. */
#define PG_ONLY(X)                                                                             \
    X(pg_schema_and_prefix_that_are_not_plain_names_are_refused)                               \
    X(pg_mixed_case_schema_and_prefix_are_quoted_exactly)                                      \
    X(pg_the_longest_prefix_that_fits_works_and_one_byte_more_is_refused)                      \
    X(pg_setup_creates_a_missing_schema)                                                       \
    X(pg_setup_without_tables_fails_with_schema_version)                                       \
    X(pg_setup_refuses_a_schema_written_by_a_newer_version)                                    \
    X(pg_a_version_1_schema_with_rows_upgrades_to_version_2)                                   \
    X(pg_a_check_only_setup_refuses_a_schema_older_than_this_library)                         \
    X(pg_a_role_with_only_row_privileges_can_run_a_node)                                       \
    X(pg_setup_names_each_privilege_a_check_only_role_lacks)                                   \
    X(pg_setup_refuses_a_select_only_role_naming_what_it_lacks)                                \
    X(pg_default_mode_run_by_a_row_privilege_role_hints_at_no_create_schema)                   \
    X(pg_eight_nodes_setting_up_a_fresh_schema_at_once_migrate_it_once)                        \
    X(pg_several_prefixes_set_up_at_once_in_a_new_schema_all_succeed)                          \
    X(pg_a_setup_waiting_for_the_migration_lock_waits_past_the_lock_timeout)                   \
    X(pg_a_database_not_in_utf8_is_refused_at_setup_naming_its_encoding)                       \
    X(pg_calls_recover_after_the_store_connections_are_terminated)                             \
    X(pg_a_pooled_connection_the_server_closed_while_idle_is_replaced_before_use)              \
    X(pg_connections_run_read_committed_whatever_the_session_default)                          \
    X(pg_the_pool_prefers_a_live_connection_over_a_slot_waiting_out_its_backoff)               \
    X(pg_a_listener_gets_a_resync_after_its_connection_is_restored)                            \
    X(pg_an_unreachable_database_is_a_connection_error_that_hides_the_password)                \
    X(pg_a_password_never_appears_in_a_connect_error)                                          \
    X(pg_listeners_hear_nothing_from_another_schema_with_the_same_prefix)                      \
    X(pg_an_oversized_notification_becomes_a_resync_and_the_claim_still_commits)               \
    X(pg_a_remove_racing_a_claim_defers_and_flags_the_row_that_became_running)                 \
    X(pg_a_remove_racing_an_outcome_deletes_the_row_that_became_pending)                       \
    X(pg_a_cancel_racing_a_claim_asks_the_new_owner_to_stop)                                   \
    X(pg_a_cancel_racing_an_outcome_cancels_the_one_time_row_that_became_pending)              \
    X(pg_a_trigger_racing_an_outcome_makes_the_row_that_became_pending_due_now)                \
    X(pg_heartbeat_and_finish_skip_a_row_another_transaction_has_locked)                       \
    X(pg_no_statement_calls_a_look_alike_planted_in_public)                                    \
    X(pg_every_connection_pins_its_search_path_keeping_the_users_other_options)               \
    X(pg_poison_row_outcome_with_runs_at_the_limit_is_quarantined_and_the_batch_goes_on)       \
    X(pg_poison_row_outcome_with_failures_at_the_limit_is_quarantined_and_the_batch_goes_on)   \
    X(pg_poison_row_deferred_change_of_unknown_kind_is_refused_or_quarantined)                 \
    X(pg_poison_row_deferred_change_with_null_params_is_refused_or_quarantined)                \
    X(pg_poison_row_with_attempt_at_the_limit_does_not_block_claims)                           \
    X(pg_poison_row_due_at_minus_infinity_is_refused_or_does_not_block_claims)                 \
    X(pg_poison_row_with_a_key_over_the_limit_is_not_handed_out_and_leases_renew)              \
    X(pg_poison_row_with_a_control_character_in_its_key_is_not_handed_out_and_leases_renew)    \
    X(pg_poison_row_stalled_with_an_over_long_name_is_quarantined_not_taken_back_forever)      \
    X(pg_poison_row_running_without_a_heartbeat_time_is_taken_back)                            \
    X(pg_upgrading_a_version_1_schema_quarantines_rows_it_now_refuses_and_keeps_the_rest)      \
    X(pg_a_batch_in_the_callers_transaction_exists_only_if_it_commits)                         \
    X(pg_the_callers_search_path_cannot_redirect_the_schedule_statement)                       \
    X(pg_the_statement_is_prepared_once_on_the_callers_connection)                             \
    X(pg_a_callers_failed_transaction_is_refused_without_sending_anything)                     \
    X(pg_a_version_1_schema_with_rows_is_upgraded_to_version_2)

/* Tests of what only the memory store has. */
#define MEMORY_ONLY(X)                                                                         \
    X(a_listeners_queue_shrinks_back_once_a_burst_is_drained)                                  \
    X(the_memory_store_cannot_schedule_in_a_callers_transaction)

#define MEMORY_ENTRY(f) {#f, f##_cm, memory_fixture_setup, fixture_teardown, NULL},
#define PG_ENTRY(f) {#f, f##_cm, pg_fixture_setup, fixture_teardown, NULL},

static const struct CMUnitTest memory_tests[] = {BOTH_STORES(MEMORY_ENTRY) MEMORY_ONLY(MEMORY_ENTRY)};
static const struct CMUnitTest pg_tests[] = {BOTH_STORES(PG_ENTRY) PG_ONLY(PG_ENTRY)};

static void postgresql_dsn_is_configured(void **state)
{
    (void)state;
    fail_msg("PGSCHED_TEST_DSN is not set: set it to a libpq connection string of a database "
             "where this user may create schemas and roles (tests/pgcluster.sh starts one), or "
             "set PGSCHED_TEST_SKIP_PG=1 to run the memory store only");
}

static void postgresql_is_reachable(void **state)
{
    (void)state;
    fail_msg("cannot connect to PGSCHED_TEST_DSN: %s", g_admin ? PQerrorMessage(g_admin) : "?");
}

#include "test_filter.h"

int main(int argc, char **argv)
{
    const char *skip = getenv("PGSCHED_TEST_SKIP_PG");
    int failures = 0;
    test_filter_from(argc, argv);
    failures += cmocka_run_group_tests_name("store conformance: memory", memory_tests, NULL, NULL);
    if (skip && strcmp(skip, "1") == 0) {
        printf("[  SKIPPED ] store conformance: postgresql (PGSCHED_TEST_SKIP_PG=1)\n");
        return failures ? 1 : 0;
    }
    g_dsn = getenv("PGSCHED_TEST_DSN");
    if (!g_dsn || !g_dsn[0]) {
        const struct CMUnitTest missing[] = {cmocka_unit_test(postgresql_dsn_is_configured)};
        cmocka_set_test_filter(NULL);
        failures += cmocka_run_group_tests_name("store conformance: postgresql", missing, NULL,
                                                NULL);
        return failures ? 1 : 0;
    }
    g_admin = PQconnectdb(g_dsn);
    if (PQstatus(g_admin) != CONNECTION_OK) {
        const struct CMUnitTest down[] = {cmocka_unit_test(postgresql_is_reachable)};
        cmocka_set_test_filter(NULL);
        failures += cmocka_run_group_tests_name("store conformance: postgresql", down, NULL, NULL);
        PQfinish(g_admin);
        return failures ? 1 : 0;
    }
    PQclear(PQexec(g_admin, "SET client_min_messages = warning"));
    failures += cmocka_run_group_tests_name("store conformance: postgresql", pg_tests, NULL, NULL);
    PQfinish(g_admin);
    return failures ? 1 : 0;
}
