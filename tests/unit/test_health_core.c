/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "health/core.h"

/*
 * Each case feeds a string of probe results ('+' ok, '-' fail) and states
 * the status expected after every step ('?' unknown, 'U' up, 'D' down).
 * The fake clock advances one second per probe.
 */
struct seq_case {
        const char *name;
        unsigned rise, fall;
        const char *input;
        const char *expect;
};

static const struct seq_case seq_cases[] = {
        { "unknown rises after rise oks",       3, 2, "+++",          "??U" },
        { "unknown falls after fall fails",     3, 2, "--",           "?D" },
        { "contrary result restarts rise run",  3, 2, "++-+++",       "?????U" },
        { "contrary result restarts fall run",  2, 3, "--+---",       "?????D" },
        { "first fail then enough oks",         2, 3, "-++",          "??U" },
        { "first ok then enough fails",         3, 2, "+--",          "??D" },
        { "up to down needs fall in a row",     1, 3, "+--+---",      "UUUUUUD" },
        { "down to up needs rise in a row",     2, 1, "-+-++",        "DDDDU" },
        { "rise 1 fall 1 follows every probe",  1, 1, "+-+-+",        "UDUDU" },
        { "flapping never decides",             2, 2, "+-+-+-+-",     "????????" },
        { "flapping does not leave up",         2, 2, "++-+-+-+",     "?UUUUUUU" },
        { "flapping does not leave down",       2, 2, "--+-+-+-",     "?DDDDDDD" },
        { "steady up changes once",             2, 2, "++++++",       "?UUUUU" },
        { "steady down changes once",           2, 2, "------",       "?DDDDD" },
        { "full cycle",                         2, 3, "++---++",      "?UUUDDU" },
        { "zero rise is one",                   0, 5, "+",            "U" },
        { "zero fall is one",                   5, 0, "-",            "D" },
};

static enum health_status status_of(char c) {
        switch (c) {
        case 'U':
                return HEALTH_UP;
        case 'D':
                return HEALTH_DOWN;
        default:
                return HEALTH_UNKNOWN;
        }
}

/* Length of the run of C ending at index I of S. */
static unsigned run_ending_at(const char *s, size_t i, char c) {
        unsigned n = 0;

        for (size_t j = i + 1; j > 0 && s[j - 1] == c; j--)
                n++;
        return n;
}

static void test_sequences(void **state) {
        for (size_t k = 0; k < ELEMENTSOF(seq_cases); k++) {
                const struct seq_case *c = &seq_cases[k];
                struct health_core h;
                enum health_status prev = HEALTH_UNKNOWN;
                uint64_t now = 1000 * USEC_PER_SEC, expect_change = 0;
                size_t len = strlen(c->input);

                assert_int_equal(len, strlen(c->expect));
                health_core_init(&h, c->rise, c->fall);
                assert_int_equal(h.status, HEALTH_UNKNOWN);
                assert_int_equal(h.last_change_usec, 0);

                for (size_t i = 0; i < len; i++) {
                        bool ok = c->input[i] == '+';
                        enum health_status want = status_of(c->expect[i]);
                        bool changed;

                        now += USEC_PER_SEC;
                        changed = health_core_update(&h, ok, now);
                        if (want != prev)
                                expect_change = now;

                        if (h.status != want || changed != (want != prev))
                                fail_msg("case \"%s\" step %zu ('%c'): status %s changed %d, want %s changed %d",
                                         c->name, i, c->input[i], health_status_to_string(h.status), changed,
                                         health_status_to_string(want), want != prev);
                        assert_int_equal(h.last_change_usec, expect_change);
                        assert_int_equal(h.consecutive_ok, ok ? run_ending_at(c->input, i, '+') : 0);
                        assert_int_equal(h.consecutive_fail, ok ? 0 : run_ending_at(c->input, i, '-'));
                        prev = want;
                }
        }
}

static void test_init_resets(void **state) {
        struct health_core h;

        health_core_init(&h, 1, 1);
        assert_true(health_core_update(&h, true, 5));
        assert_int_equal(h.status, HEALTH_UP);

        health_core_init(&h, 4, 7);
        assert_int_equal(h.rise, 4);
        assert_int_equal(h.fall, 7);
        assert_int_equal(h.status, HEALTH_UNKNOWN);
        assert_int_equal(h.consecutive_ok, 0);
        assert_int_equal(h.consecutive_fail, 0);
        assert_int_equal(h.last_change_usec, 0);

        health_core_init(&h, 0, 0);
        assert_int_equal(h.rise, 1);
        assert_int_equal(h.fall, 1);
}

/* A check healthy for longer than UINT_MAX probes must neither wrap its run
 * counter (which would look like a fresh run) nor report spurious changes. */
static void test_counter_saturates(void **state) {
        struct health_core h;

        health_core_init(&h, UINT_MAX, 1);
        h.consecutive_ok = UINT_MAX - 2;
        assert_false(health_core_update(&h, true, 1));
        assert_int_equal(h.status, HEALTH_UNKNOWN);
        assert_true(health_core_update(&h, true, 2));
        assert_int_equal(h.status, HEALTH_UP);
        assert_int_equal(h.consecutive_ok, UINT_MAX);
        for (int i = 0; i < 3; i++) {
                assert_false(health_core_update(&h, true, 3 + i));
                assert_int_equal(h.consecutive_ok, UINT_MAX);
        }
        assert_int_equal(h.last_change_usec, 2);

        assert_true(health_core_update(&h, false, 10));
        assert_int_equal(h.status, HEALTH_DOWN);
        assert_int_equal(h.consecutive_ok, 0);

        health_core_init(&h, 1, UINT_MAX);
        h.status = HEALTH_DOWN;
        h.consecutive_fail = UINT_MAX;
        assert_false(health_core_update(&h, false, 11));
        assert_int_equal(h.consecutive_fail, UINT_MAX);
}

static void test_status_names(void **state) {
        assert_string_equal(health_status_to_string(HEALTH_UNKNOWN), "unknown");
        assert_string_equal(health_status_to_string(HEALTH_UP), "up");
        assert_string_equal(health_status_to_string(HEALTH_DOWN), "down");
        for (int s = 0; s < _HEALTH_STATUS_MAX; s++)
                assert_non_null(health_status_to_string(s));
        assert_null(health_status_to_string(_HEALTH_STATUS_MAX));
        assert_null(health_status_to_string((enum health_status) -1));
}

#define W(w, s) ((struct health_weight) { .weight = (w), .status = HEALTH_##s })

static void test_priority_no_checks(void **state) {
        assert_int_equal(health_priority_adjust(100, NULL, 0), 100);
        assert_int_equal(health_priority_adjust(1, NULL, 0), 1);
        assert_int_equal(health_priority_adjust(254, NULL, 0), 254);
}

static void test_priority_sign_rules(void **state) {
        struct health_weight c;

        /* positive weight: only while UP */
        c = W(20, UP);
        assert_int_equal(health_priority_adjust(100, &c, 1), 120);
        c = W(20, DOWN);
        assert_int_equal(health_priority_adjust(100, &c, 1), 100);
        c = W(20, UNKNOWN);
        assert_int_equal(health_priority_adjust(100, &c, 1), 100);

        /* negative weight: only while DOWN */
        c = W(-30, DOWN);
        assert_int_equal(health_priority_adjust(100, &c, 1), 70);
        c = W(-30, UP);
        assert_int_equal(health_priority_adjust(100, &c, 1), 100);
        c = W(-30, UNKNOWN);
        assert_int_equal(health_priority_adjust(100, &c, 1), 100);

        /* zero weight: never */
        c = W(0, UP);
        assert_int_equal(health_priority_adjust(100, &c, 1), 100);
        c = W(0, DOWN);
        assert_int_equal(health_priority_adjust(100, &c, 1), 100);
}

static void test_priority_sum(void **state) {
        const struct health_weight checks[] = {
                W(20, UP),        /* +20 */
                W(-30, DOWN),     /* -30 */
                W(5, DOWN),       /* no effect */
                W(-7, UP),        /* no effect */
                W(10, UNKNOWN),   /* no effect */
                W(-2, DOWN),      /* -2 */
                W(3, UP),         /* +3 */
        };

        assert_int_equal(health_priority_adjust(100, checks, ELEMENTSOF(checks)), 91);
        /* n limits how many entries are read */
        assert_int_equal(health_priority_adjust(100, checks, 2), 90);
}

static void test_priority_clamp(void **state) {
        struct health_weight c;
        const struct health_weight big_up[] = { W(253, UP), W(253, UP) };
        const struct health_weight big_down[] = { W(-253, DOWN), W(-253, DOWN) };

        c = W(10, UP);
        assert_int_equal(health_priority_adjust(244, &c, 1), 254);
        assert_int_equal(health_priority_adjust(245, &c, 1), 254);
        assert_int_equal(health_priority_adjust(243, &c, 1), 253);
        /* checks can never make a backup look like an address owner */
        c = W(1, UP);
        assert_int_equal(health_priority_adjust(254, &c, 1), 254);
        assert_int_equal(health_priority_adjust(1, big_up, ELEMENTSOF(big_up)), 254);

        c = W(-10, DOWN);
        assert_int_equal(health_priority_adjust(11, &c, 1), 1);
        assert_int_equal(health_priority_adjust(10, &c, 1), 1);
        assert_int_equal(health_priority_adjust(12, &c, 1), 2);
        /* ... nor make it send priority 0 (release) */
        c = W(-1, DOWN);
        assert_int_equal(health_priority_adjust(1, &c, 1), 1);
        assert_int_equal(health_priority_adjust(254, big_down, ELEMENTSOF(big_down)), 1);
}

/* Extreme weights must not overflow the sum on the way to the clamp. */
static void test_priority_extreme_weights(void **state) {
        const struct health_weight ups[] = { W(INT_MAX, UP), W(INT_MAX, UP), W(INT_MAX, UP) };
        const struct health_weight downs[] = { W(INT_MIN, DOWN), W(INT_MIN, DOWN), W(INT_MIN, DOWN) };
        const struct health_weight cancel[] = { W(INT_MAX, UP), W(INT_MAX, UP), W(INT_MIN, DOWN), W(INT_MIN, DOWN) };

        assert_int_equal(health_priority_adjust(100, ups, ELEMENTSOF(ups)), 254);
        assert_int_equal(health_priority_adjust(100, downs, ELEMENTSOF(downs)), 1);
        /* 2*INT_MAX + 2*INT_MIN = -2 exactly */
        assert_int_equal(health_priority_adjust(100, cancel, ELEMENTSOF(cancel)), 98);
}

static void test_priority_owner_untouched(void **state) {
        const struct health_weight checks[] = { W(-100, DOWN), W(-200, DOWN), W(50, UP) };
        struct health_weight c = W(10, UP);

        assert_int_equal(health_priority_adjust(255, checks, ELEMENTSOF(checks)), 255);
        assert_int_equal(health_priority_adjust(255, &c, 1), 255);
        assert_int_equal(health_priority_adjust(255, NULL, 0), 255);
}

/* The intended use end to end: a core's status drives the adjustment. */
static void test_core_drives_priority(void **state) {
        struct health_core h;
        struct health_weight c = { .weight = -50 };
        uint64_t now = 0;

        health_core_init(&h, 2, 2);
        c.status = h.status;
        assert_int_equal(health_priority_adjust(150, &c, 1), 150);

        health_core_update(&h, false, now += USEC_PER_SEC);
        c.status = h.status;
        assert_int_equal(health_priority_adjust(150, &c, 1), 150);

        health_core_update(&h, false, now += USEC_PER_SEC);
        c.status = h.status;
        assert_int_equal(health_priority_adjust(150, &c, 1), 100);

        health_core_update(&h, true, now += USEC_PER_SEC);
        c.status = h.status;
        assert_int_equal(health_priority_adjust(150, &c, 1), 100);

        health_core_update(&h, true, now += USEC_PER_SEC);
        c.status = h.status;
        assert_int_equal(health_priority_adjust(150, &c, 1), 150);
        assert_int_equal(h.last_change_usec, 4 * USEC_PER_SEC);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sequences),
                cmocka_unit_test(test_init_resets),
                cmocka_unit_test(test_counter_saturates),
                cmocka_unit_test(test_status_names),
                cmocka_unit_test(test_priority_no_checks),
                cmocka_unit_test(test_priority_sign_rules),
                cmocka_unit_test(test_priority_sum),
                cmocka_unit_test(test_priority_clamp),
                cmocka_unit_test(test_priority_extreme_weights),
                cmocka_unit_test(test_priority_owner_untouched),
                cmocka_unit_test(test_core_drives_priority),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
