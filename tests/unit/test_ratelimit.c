/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/macro.h"
#include "common/ratelimit.h"

#define MINUTE (60 * USEC_PER_SEC)

static void test_first_passes_rest_counted(void **state) {
        struct ratelimit rl = { .interval_usec = MINUTE };
        uint64_t suppressed = 99;

        /* The first event passes at once, whatever the clock reads. */
        assert_true(ratelimit_below(&rl, 0, &suppressed));
        assert_int_equal(suppressed, 0);
        /* A burst inside the window is held back and counted. */
        for (uint64_t t = 1; t <= 500; t++)
                assert_false(ratelimit_below(&rl, t * 100 * USEC_PER_MSEC, &suppressed));
        assert_int_equal(rl.suppressed, 500);
        /* ret_suppressed is untouched while events are held back. */
        assert_int_equal(suppressed, 0);
        assert_false(ratelimit_below(&rl, MINUTE - 1, &suppressed));
        /* At the window's end one passes and reports what was held back. */
        assert_true(ratelimit_below(&rl, MINUTE, &suppressed));
        assert_int_equal(suppressed, 501);
        assert_int_equal(rl.suppressed, 0);
        /* The window restarts from the event that passed. */
        assert_false(ratelimit_below(&rl, 2 * MINUTE - 1, NULL));
        assert_true(ratelimit_below(&rl, 2 * MINUTE, &suppressed));
        assert_int_equal(suppressed, 1);
}

static void test_quiet_then_event(void **state) {
        struct ratelimit rl = { .interval_usec = MINUTE };
        uint64_t suppressed = 7;

        assert_true(ratelimit_below(&rl, 5 * USEC_PER_SEC, NULL));
        /* Long after: passes with nothing suppressed. */
        assert_true(ratelimit_below(&rl, 10 * MINUTE, &suppressed));
        assert_int_equal(suppressed, 0);
}

static void test_clock_back(void **state) {
        struct ratelimit rl = { .interval_usec = MINUTE };

        assert_true(ratelimit_below(&rl, 10 * MINUTE, NULL));
        /* A clock that went back does not open the gate. */
        assert_false(ratelimit_below(&rl, 1, NULL));
        assert_false(ratelimit_below(&rl, 10 * MINUTE + 1, NULL));
        assert_int_equal(rl.suppressed, 2);
}

static void test_zero_interval(void **state) {
        struct ratelimit rl = {};
        uint64_t suppressed = 3;

        for (int i = 0; i < 3; i++) {
                assert_true(ratelimit_below(&rl, 42, &suppressed));
                assert_int_equal(suppressed, 0);
        }
}

static void test_independent(void **state) {
        /* One limiter per cause: one cause's burst does not hide another's. */
        struct ratelimit a = { .interval_usec = MINUTE }, b = { .interval_usec = MINUTE };

        assert_true(ratelimit_below(&a, 0, NULL));
        assert_false(ratelimit_below(&a, 1, NULL));
        assert_true(ratelimit_below(&b, 2, NULL));
        assert_false(ratelimit_below(&b, 3, NULL));
}

static void test_log_suffix(void **state) {
        struct ratelimit rl = { .interval_usec = MINUTE };
        char more[64] = "untouched";

        assert_true(ratelimit_log(&rl, 0, more, sizeof(more)));
        assert_string_equal(more, "");
        strcpy(more, "untouched");
        assert_false(ratelimit_log(&rl, 1, more, sizeof(more)));
        assert_false(ratelimit_log(&rl, 2, more, sizeof(more)));
        assert_string_equal(more, "untouched");
        assert_true(ratelimit_log(&rl, MINUTE, more, sizeof(more)));
        assert_string_equal(more, " (2 more since the last line)");
        /* Cut to LEN, still terminated. */
        assert_false(ratelimit_log(&rl, MINUTE + 1, more, sizeof(more)));
        assert_true(ratelimit_log(&rl, 2 * MINUTE, more, 6));
        assert_string_equal(more, " (1 m");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_first_passes_rest_counted),
                cmocka_unit_test(test_quiet_then_event),
                cmocka_unit_test(test_clock_back),
                cmocka_unit_test(test_zero_interval),
                cmocka_unit_test(test_independent),
                cmocka_unit_test(test_log_suffix),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
