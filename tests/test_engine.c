/* test_engine.c - the engine suite: nodes, job types, runs, leases, shutdown, notifications,
   callbacks and several nodes on one store, on the memory store and on PostgreSQL.

   Build: cc -std=c99 -Wall -Wextra -Wpedantic -Werror -g -I. -I$(pg_config --includedir) \
          tests/test_engine.c -o build/test_engine -lcmocka -lpq -lpthread
   Run:   PGSCHED_TEST_DSN='host=... dbname=...' build/test_engine
          (without PGSCHED_TEST_DSN the PostgreSQL group fails, unless PGSCHED_TEST_SKIP_PG=1)
   Env:   build/test_engine '<glob>' or PGSCHED_TEST_FILTER=<glob> runs only matching tests
          (tests/test_filter.h; ENGINE_TEST_FILTER still works)
          ENGINE_TEST_VERBOSE=1      print the engine's log and measured latencies

   Each test is written once (in tests/engine/, a fragment per concern) and listed below
   for the stores where it makes sense. */
#define PGSCHED_IMPLEMENTATION
#include "pgsched.h"

#include "engine/fixture.inc"
#include "engine/config.inc"
#include "engine/runs.inc"
#include "engine/leases.inc"
#include "engine/shutdown.inc"
#include "engine/wakeups.inc"
#include "engine/callbacks.inc"
#include "engine/nodes.inc"
#include "engine/maintenance.inc"
#include "engine/clocks.inc"
#include "engine/pg_only.inc"
#include "engine/memory_only.inc"
#include "engine/hardening.inc"
#include "engine/bulk.inc"
#include "engine/metrics.inc"

/* Tests that run on both stores. */
#define BOTH_TESTS(X)                                                                          \
    X(config_zero_fields_take_defaults)                                                        \
    X(config_read_back_has_every_default_filled_in)                                            \
    X(config_read_back_keeps_given_values)                                                     \
    X(a_cancelled_queued_row_ends_cancelled_without_running)                                   \
    X(a_removed_queued_row_is_deleted_without_running)                                    \
    X(shutdown_gives_queued_rows_back_without_counting_an_attempt)                             \
    X(a_queued_row_keeps_its_lease_while_it_waits)                                             \
    X(an_idle_node_with_default_intervals_polls_rarely_and_still_runs_jobs_at_once)            \
    X(a_queue_stuck_behind_a_long_run_goes_to_an_idle_node)                                    \
    X(register_rules_enforced)                                                                 \
    X(start_twice_refused)                                                                     \
    X(calls_before_init_refused)                                                               \
    X(calls_after_shutdown_refused)                                                            \
    X(shutdown_idempotent_in_every_state)                                                      \
    X(node_leaves_user_store_alone)                                                            \
    X(schedule_unregistered_type_refused)                                                      \
    X(schedule_bad_specs_refused)                                                              \
    X(unsatisfiable_cron_rejected_at_schedule)                                                 \
    X(max_retries_defaults_resolved)                                                           \
    X(handlerless_type_scheduled_not_run)                                                      \
    X(once_job_runs_and_completes)                                                             \
    X(an_outcome_is_written_while_a_claim_is_in_flight)                                        \
    X(a_claim_is_made_while_an_outcome_write_is_in_flight)                                     \
    X(a_node_claims_no_more_while_its_unwritten_outcomes_reach_the_bound)                      \
    X(once_job_at_future_time_runs_on_time)                                                    \
    X(params_per_instance_kept_across_runs)                                                    \
    X(failure_retries_with_exponential_backoff_then_fails)                                     \
    X(retry_backoff_is_jittered_between_half_and_full_delay)                                   \
    X(recurring_exhausted_resets_budget)                                                       \
    X(error_text_stored_with_row_and_history)                                                  \
    X(handler_garbage_return_is_failure)                                                       \
    X(timeout_cancels_run_and_fails)                                                           \
    X(timeout_expired_is_failure_even_if_handler_succeeds_late)                                \
    X(timeout_fires_on_time_when_nothing_else_wakes_the_dispatcher)                            \
    X(cancel_running_once_job)                                                                 \
    X(cancel_running_recurring_keeps_schedule)                                                 \
    X(cancel_flag_cleared_when_run_ends)                                                       \
    X(unseen_cancel_wins_over_failure_of_once_job)                                             \
    X(unseen_cancel_wins_over_failure_of_recurring_job)                                        \
    X(cancel_then_handler_success_is_success)                                                  \
    X(cancel_pending_once_job_cancels_without_running)                                         \
    X(cancel_pending_recurring_or_finished_does_nothing)                                       \
    X(remove_deletes_a_row_that_is_not_running)                                                      \
    X(remove_of_a_running_row_deletes_it_when_its_run_ends)                                                    \
    X(trigger_makes_pending_job_due_now)                                                       \
    X(reschedule_pending_replaces_and_keeps_earlier_run)                                       \
    X(reschedule_running_refused_or_applied_after_run)                                         \
    X(interval_next_run_counts_from_run_end)                                                   \
    X(cron_job_runs_at_each_occurrence_once)                                                   \
    X(cron_missed_occurrences_coalesced)                                                       \
    X(cron_default_zone_stored_with_row)                                                       \
    X(cron_row_without_zone_runs_at_utc_time_on_node_with_default_zone)                        \
    X(cron_every_macro_stored_as_interval)                                                     \
    X(custom_schedule_uses_type_callback)                                                      \
    X(custom_next_run_past_year_9999_ends_the_schedule)                                        \
    X(a_custom_row_run_by_a_type_without_next_run_callback_fails_after_one_run)                \
    X(an_interval_with_no_run_before_year_10000_completes_like_a_cron_schedule)                \
    X(control_characters_of_a_hand_written_key_are_escaped_in_log_lines)                       \
    X(a_refused_outcome_does_not_hold_back_other_outcomes)                                     \
    X(run_immediately_runs_recurring_job_now)                                                  \
    X(a_zeroed_spec_runs_once_now)                                                             \
    X(get_returns_one_job_in_a_single_allocation_of_the_node_allocator)                        \
    X(a_delay_is_counted_from_the_store_clock_now)                                             \
    X(schedule_at_sets_first_recurring_run)                                                    \
    X(run_history_rows_newest_first)                                                           \
    X(max_concurrent_bounds_parallel_runs)                                                     \
    X(handler_uses_node_api_without_deadlock)                                                  \
    X(stall_take_back_counts_an_attempt)                                                       \
    X(a_crashed_nodes_run_is_taken_back_in_time_beside_a_busy_node)                            \
    X(cancel_of_run_whose_node_died_applies_at_take_back)                                      \
    X(heartbeats_keep_long_run_alive)                                                          \
    X(heartbeat_at_half_the_stall_timeout_keeps_long_run_alive)                                \
    X(heartbeats_renew_leases_with_an_allocator_that_returns_dirty_memory)                     \
    X(stall_exhausts_retries_of_crashing_job)                                                  \
    X(lost_lease_cancels_local_run_and_writes_nothing)                                         \
    X(stale_node_cannot_overwrite_newer_run)                                                   \
    X(stale_run_is_stopped_when_its_node_claims_the_row_again)                                 \
    X(node_that_cannot_renew_its_leases_stops_its_runs_and_writes_nothing)                     \
    X(success_after_self_fencing_is_recorded_once_the_database_is_back)                        \
    X(success_after_self_fencing_is_lost_when_another_node_took_the_row)                       \
    X(shutdown_records_outcomes_that_arrive_in_time)                                           \
    X(shutdown_keeps_lease_of_run_that_ignores_cancel_until_it_returns)                        \
    X(late_success_after_shutdown_timeout_is_recorded_and_destroy_waits)                       \
    X(destroy_from_a_thread_created_after_shutdown_frees_the_node)                             \
    X(drain_lets_runs_finish_before_asking_them_to_stop)                                       \
    X(drain_asks_runs_to_stop_when_it_ends)                                                    \
    X(cancel_reason_says_why_a_run_is_asked_to_stop)                                           \
    X(claim_whose_reply_was_lost_gives_its_rows_back_at_once)                                  \
    X(giving_back_lost_claims_leaves_the_nodes_own_runs_alone)                                 \
    X(giving_back_lost_claims_runs_every_waiting_job_once)                                     \
    X(shutdown_from_handler_or_callback_refused)                                               \
    X(destroy_shuts_down_running_node)                                                         \
    X(log_callback_may_call_node_api_during_shutdown)                                          \
    X(destroy_from_handler_or_callback_refused)                                                \
    X(run_handed_over_as_shutdown_begins_does_not_start)                                       \
    X(concurrent_second_shutdown_waits_for_the_first)                                          \
    X(wakes_at_next_due_time_without_notifications)                                            \
    X(idle_nodes_sleep_without_using_the_cpu)                                                  \
    X(due_time_learned_while_a_claim_is_in_flight_is_kept)                                     \
    X(notification_starts_job_on_other_node_at_once)                                           \
    X(a_batch_scheduled_on_another_node_starts_each_job_at_its_due_time)                       \
    X(trigger_and_cancel_reach_other_node_without_debounce)                                    \
    X(remote_cancel_without_notifications_within_check_period)                                 \
    X(status_callbacks_exact_sequence_of_once_success)                                         \
    X(status_callbacks_work_without_notifications)                                             \
    X(a_node_with_on_status_that_cannot_register_fails_to_start)                               \
    X(status_callbacks_report_other_nodes_changes)                                             \
    X(status_callback_may_call_node_api)                                                       \
    X(status_callbacks_keep_own_change_when_remote_is_faster)                                  \
    X(status_callbacks_deliver_every_change_in_order)                                          \
    X(status_callbacks_of_a_5000_job_bulk_schedule_arrive_once_each_in_order)                  \
    X(nodes_never_run_one_instance_at_once)                                                    \
    X(nodes_never_overlap_slow_recurring_job)                                                  \
    X(retention_deletes_finished_once_rows_and_history)                                        \
    X(orphan_cleanup_keeps_types_of_live_nodes)                                                \
    X(store_clock_used_not_node_clock)                                                         \
    X(schedule_jobs_writes_each_valid_spec_and_reports_each_failure)                           \
    X(schedule_jobs_refuses_missing_arrays_and_accepts_an_empty_call)                          \
    X(long_run_times_are_64_bit)

/* Configuration checks (no store I/O) and memory-store specifics. */
#define MEMORY_TESTS(X)                                                                        \
    X(histogram_bounds_are_the_documented_ones)                                                \
    X(type_counters_count_runs_by_outcome)                                                     \
    X(prometheus_text_has_every_family_and_escapes_labels)                                     \
    X(prometheus_text_sized_like_snprintf)                                                     \
    X(connection_state_follows_the_store)                                                      \
    X(config_negative_durations_rejected)                                                      \
    X(config_heartbeat_above_half_stall_rejected)                                              \
    X(config_max_concurrent_out_of_range_rejected)                                             \
    X(config_retry_base_above_cap_rejected)                                                    \
    X(config_bad_identifiers_rejected)                                                         \
    X(config_pg_fields_checked_as_the_store_checks_them)                                       \
    X(config_unknown_default_zone_rejected)                                                    \
    X(config_needs_store_or_conninfo)                                                          \
    X(create_does_no_io_init_reports_connection)                                               \
    X(schedule_tx_needs_postgresql_store)                                                      \
    X(status_callback_of_own_change_with_lost_notification_arrives_within_seconds)             \
    X(concurrent_start_starts_the_node_once)                                                   \
    X(a_hand_moved_clock_drives_the_nodes_timers)                                              \
    X(a_clock_that_moves_by_itself_is_read_again_within_milliseconds)                          \
    X(store_without_notifications_is_polled_quietly)                                           \
    X(failing_listen_neither_stops_jobs_nor_spins)                                             \
    X(a_busy_lease_is_renewed_again_soon_and_its_run_goes_on)                                  \
    X(an_outcome_whose_row_was_locked_is_written_again_within_milliseconds)                   \
    X(a_cron_job_stays_on_time_when_claims_are_slow_now_and_then)                             \
    X(a_claim_takes_rows_before_their_due_time_only_for_free_workers)                         \
    X(a_node_with_every_worker_busy_sends_no_claim_ahead_of_a_due_time)

#define PG_TESTS(X)                                                                            \
    X(schedule_in_caller_transaction)                                                          \
    X(schedule_jobs_in_caller_transaction)                                                     \
    X(a_delay_in_the_callers_transaction_counts_from_its_now)                                  \
    X(a_node_without_on_status_takes_notifications_as_hints_without_reading_their_rows)     \
    X(conninfo_node_owns_few_connections_and_closes_them)                                      \
    X(a_node_store_takes_pg_allocator_and_log_when_given)                                      \
    X(connections_are_named_pgsched_unless_conninfo_names_them)                                \
    X(claim_lost_with_terminated_connections_gives_its_rows_back_at_once)                      \
    X(connection_loss_survived_and_outcome_recorded)                                           \
    X(row_locked_elsewhere_does_not_hold_back_other_leases)                                    \
    X(locked_due_row_does_not_make_the_node_poll_in_a_tight_loop)                              \
    X(listener_reconnect_makes_the_node_poll_at_once)                                         \
    X(forged_cancel_notifications_do_not_cancel_and_real_cancels_still_arrive)                 \
    X(forged_status_events_are_not_delivered_and_real_ones_still_are)                          \
    X(a_flood_of_forged_notifications_keeps_the_callback_queue_bounded)                        \
    X(poison_rows_do_not_stall_a_node_and_a_good_job_runs_on_time)

#define T_MEM(name) {#name, name##_cm, memory_setup, efx_teardown, NULL},
#define T_PG(name) {#name, name##_cm, pg_setup, efx_teardown, NULL},

#include "test_filter.h"

int main(int argc, char **argv)
{
    static const struct CMUnitTest memory_tests[] = {MEMORY_TESTS(T_MEM) BOTH_TESTS(T_MEM)};
    static const struct CMUnitTest pg_tests[] = {BOTH_TESTS(T_PG) PG_TESTS(T_PG)};
    const char *skip = getenv("PGSCHED_TEST_SKIP_PG");
    int failures = 0;

    g_verbose = getenv("ENGINE_TEST_VERBOSE") && getenv("ENGINE_TEST_VERBOSE")[0] &&
                strcmp(getenv("ENGINE_TEST_VERBOSE"), "0") != 0;
    test_filter_from(argc, argv);

    failures += cmocka_run_group_tests_name("engine (memory store)", memory_tests, NULL, NULL);

    g_dsn = getenv("PGSCHED_TEST_DSN");
    if (!g_dsn || !g_dsn[0]) {
        if (skip && strcmp(skip, "1") == 0) {
            printf("[  SKIPPED ] %lu test(s), listed below:\n"
                   "[  SKIPPED ] engine (PostgreSQL store): every test (PGSCHED_TEST_SKIP_PG=1)\n",
                   (unsigned long)(sizeof pg_tests / sizeof pg_tests[0]));
            fflush(stdout);
        } else {
            fprintf(stderr,
                    "[  FAILED  ] engine (PostgreSQL): PGSCHED_TEST_DSN is not set. Start a "
                    "cluster (eval \"$(tests/pgcluster.sh start)\") or set "
                    "PGSCHED_TEST_SKIP_PG=1 to skip the PostgreSQL tests.\n");
            failures++;
        }
    } else {
        g_admin = PQconnectdb(g_dsn);
        if (PQstatus(g_admin) != CONNECTION_OK) {
            fprintf(stderr, "[  FAILED  ] engine (PostgreSQL): cannot connect to "
                            "PGSCHED_TEST_DSN: %s",
                    PQerrorMessage(g_admin));
            PQfinish(g_admin);
            g_admin = NULL;
            failures++;
        } else {
            PQclear(PQexec(g_admin, "SET client_min_messages = warning"));
            failures += cmocka_run_group_tests_name("engine (PostgreSQL store)", pg_tests, NULL,
                                                    NULL);
            PQfinish(g_admin);
            g_admin = NULL;
        }
    }
    return failures ? 1 : 0;
}
