/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Sync groups over the pure fsm, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "vrrp/group.h"

enum {
        SEND = 1 << 0,
        ADD = 1 << 1,
        DEL = 1 << 2,
        ANN = 1 << 3,
        CHG = 1 << 4,
        TO_MASTER = SEND | ADD | ANN | CHG,
};

#define V4(a, b, c, d) { .family = AF_INET, .addr.bytes = { a, b, c, d } }

struct fixture {
        struct vrrp_fsm fsm[3];
        struct vrrp_group group;
        struct vrrp_actions a[3];
        size_t n;
};

static void setup_group(struct fixture *f, const uint8_t *prios, size_t n) {
        struct vrrp_fsm *members[3];

        assert_true(n <= ELEMENTSOF(f->fsm));
        *f = (struct fixture) { .n = n };
        for (size_t i = 0; i < n; i++) {
                const struct vrrp_fsm_config cfg = {
                        .version = 3,
                        .priority = prios[i],
                        .advert_interval_cs = 100,
                        .preempt = true,
                        .primary = V4(10, 0, (uint8_t) i, 2),
                };

                vrrp_fsm_init(&f->fsm[i], &cfg);
                members[i] = &f->fsm[i];
        }
        assert_int_equal(vrrp_group_init(&f->group, members, n), 0);
}

static void step(struct fixture *f, size_t idx, struct vrrp_event ev, uint64_t now) {
        /* garbage must be overwritten for every member */
        memset(f->a, 0xa5, sizeof(f->a));
        vrrp_group_step(&f->group, idx, &ev, now, f->a);
}

static void step_type(struct fixture *f, size_t idx, enum vrrp_event_type type, uint64_t now) {
        step(f, idx, (struct vrrp_event) { .type = type }, now);
}

static void expect(size_t i, const char *what, uint64_t got, uint64_t want) {
        if (got == want)
                return;
        print_error("member %zu: %s is %llu, expected %llu\n", i, what, (unsigned long long) got,
                    (unsigned long long) want);
        fail();
}

static void check_actions(const struct fixture *f, size_t i, unsigned acts, uint8_t prio,
                          enum vrrp_state old_state, enum vrrp_state new_state, enum vrrp_reason reason) {
        const struct vrrp_actions *a = &f->a[i];

        expect(i, "state", f->fsm[i].state, new_state);
        expect(i, "send_advert", a->send_advert, !!(acts & SEND));
        if (acts & SEND)
                expect(i, "advert_priority", a->advert_priority, prio);
        expect(i, "add_vips", a->add_vips, !!(acts & ADD));
        expect(i, "remove_vips", a->remove_vips, !!(acts & DEL));
        expect(i, "announce", a->announce, !!(acts & ANN));
        expect(i, "state_changed", a->state_changed, !!(acts & CHG));
        if (acts & CHG) {
                expect(i, "old_state", a->old_state, old_state);
                expect(i, "new_state", a->new_state, new_state);
                expect(i, "reason", a->reason, reason);
        } else
                expect(i, "reason", a->reason, VRRP_REASON_NONE);
}

static void check_untouched(const struct fixture *f, size_t i, enum vrrp_state state) {
        check_actions(f, i, 0, 0, state, state, VRRP_REASON_NONE);
}

static void start_all(struct fixture *f, uint64_t now) {
        for (size_t i = 0; i < f->n; i++)
                step_type(f, i, VRRP_EVENT_STARTUP, now);
        for (size_t i = 0; i < f->n; i++)
                assert_int_equal(f->fsm[i].state, VRRP_STATE_BACKUP);
}

/* Master_Down_Interval at a 1 s interval: 3000000 + (256 - p) * 1000000 / 256 */
#define MD100 UINT64_C(3609375)
#define MD150 UINT64_C(3414062)
#define MD200 UINT64_C(3218750)

/* No master anywhere: the members time out one by one, highest priority
 * first; each waits for the others, and the last one takes the group. */
static void make_all_master(struct fixture *f) {
        start_all(f, 0);
        assert_int_equal(vrrp_fsm_next_deadline(&f->fsm[1]), MD150);

        step_type(f, 2, VRRP_EVENT_TIMER, MD200);
        for (size_t i = 0; i < f->n; i++)
                check_untouched(f, i, VRRP_STATE_BACKUP);
        assert_true(f->group.wants_master[2]);
        assert_int_equal(vrrp_fsm_next_deadline(&f->fsm[2]), MD200 + MD200);

        step_type(f, 1, VRRP_EVENT_TIMER, MD150);
        for (size_t i = 0; i < f->n; i++)
                check_untouched(f, i, VRRP_STATE_BACKUP);

        step_type(f, 0, VRRP_EVENT_TIMER, MD100 - 1);
        for (size_t i = 0; i < f->n; i++)
                check_untouched(f, i, VRRP_STATE_BACKUP);

        step_type(f, 0, VRRP_EVENT_TIMER, MD100);
        check_actions(f, 0, TO_MASTER, 100, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_MASTER_DOWN);
        check_actions(f, 1, TO_MASTER, 150, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
        check_actions(f, 2, TO_MASTER, 200, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
        for (size_t i = 0; i < f->n; i++) {
                assert_int_equal(f->fsm[i].master_down_deadline, 0);
                assert_int_equal(vrrp_fsm_next_deadline(&f->fsm[i]), MD100 + 1000000);
                assert_false(f->group.wants_master[i]);
        }
}

static const uint8_t prios3[] = { 100, 150, 200 };
static const uint8_t prios2[] = { 100, 200 };

static void test_master_down_all_master(void **state) {
        struct fixture f;

        setup_group(&f, prios3, 3);
        make_all_master(&f);

        /* a master's own advert timer concerns nobody else */
        step_type(&f, 2, VRRP_EVENT_TIMER, MD100 + 1000000);
        check_untouched(&f, 0, VRRP_STATE_MASTER);
        check_untouched(&f, 1, VRRP_STATE_MASTER);
        check_actions(&f, 2, SEND, 200, VRRP_STATE_MASTER, VRRP_STATE_MASTER, VRRP_REASON_NONE);
}

static void advert(struct fixture *f, size_t idx, uint8_t prio, uint64_t now) {
        step(f, idx, (struct vrrp_event) { .type = VRRP_EVENT_ADVERT, .priority = prio, .max_adver_int_cs = 100 },
             now);
}

/* Every member sees a lower-priority master on its link: the group preempts
 * when the last of them, the lowest priority, times out. */
static void test_preempt_all_master(void **state) {
        struct fixture f;

        setup_group(&f, prios3, 3);
        start_all(&f, 0);

        for (size_t i = 0; i < 3; i++) {
                advert(&f, i, 90, 1000000);
                check_untouched(&f, i, VRRP_STATE_BACKUP);
        }
        step_type(&f, 2, VRRP_EVENT_TIMER, 1000000 + MD200);
        step_type(&f, 1, VRRP_EVENT_TIMER, 1000000 + MD150);
        for (size_t i = 0; i < 3; i++)
                check_untouched(&f, i, VRRP_STATE_BACKUP);
        /* still discarding the lower master's adverts while held */
        advert(&f, 2, 90, 1000000 + MD150 + 1);
        check_untouched(&f, 2, VRRP_STATE_BACKUP);
        assert_true(f.group.wants_master[2]);

        step_type(&f, 0, VRRP_EVENT_TIMER, 1000000 + MD100);
        check_actions(&f, 0, TO_MASTER, 100, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_PREEMPT);
        check_actions(&f, 1, TO_MASTER, 150, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
        check_actions(&f, 2, TO_MASTER, 200, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
}

/* Members 1 and 2 would preempt the other node's master, member 0 accepts
 * it (120 > 100): the group stays BACKUP, for as long as that lasts, and
 * does nothing at all meanwhile. */
static void test_preempt_needs_every_member(void **state) {
        uint64_t now = 1000000;
        struct fixture f;

        setup_group(&f, prios3, 3);
        start_all(&f, 0);

        for (; now < 60000000; now += 100000) {
                if (now % 1000000 == 0) {
                        advert(&f, 0, 120, now);
                        for (size_t i = 0; i < 3; i++)
                                check_untouched(&f, i, VRRP_STATE_BACKUP);
                        advert(&f, 1, 120, now);
                        advert(&f, 2, 120, now);
                        for (size_t i = 0; i < 3; i++)
                                check_untouched(&f, i, VRRP_STATE_BACKUP);
                }
                for (size_t i = 0; i < 3; i++) {
                        step_type(&f, i, VRRP_EVENT_TIMER, now);
                        for (size_t k = 0; k < 3; k++)
                                check_untouched(&f, k, VRRP_STATE_BACKUP);
                }
        }
        assert_false(f.group.wants_master[0]);
        assert_true(f.group.wants_master[1]);
        assert_true(f.group.wants_master[2]);

        /* the master dies: member 0 times out last and takes the group */
        now = 59000000 + MD100;
        step_type(&f, 1, VRRP_EVENT_TIMER, now);
        step_type(&f, 2, VRRP_EVENT_TIMER, now);
        for (size_t i = 0; i < 3; i++)
                check_untouched(&f, i, VRRP_STATE_BACKUP);
        step_type(&f, 0, VRRP_EVENT_TIMER, now);
        check_actions(&f, 0, TO_MASTER, 100, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_MASTER_DOWN);
        check_actions(&f, 1, TO_MASTER, 150, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
        check_actions(&f, 2, TO_MASTER, 200, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
}

/* A member that wanted MASTER and then hears a master it accepts holds the
 * group again. */
static void test_wanting_cleared_by_accepted_advert(void **state) {
        struct fixture f;

        setup_group(&f, prios2, 2);
        start_all(&f, 0);

        step_type(&f, 1, VRRP_EVENT_TIMER, MD200);
        check_untouched(&f, 1, VRRP_STATE_BACKUP);
        assert_true(f.group.wants_master[1]);

        advert(&f, 1, 250, MD200 + 100000);
        check_untouched(&f, 1, VRRP_STATE_BACKUP);
        assert_false(f.group.wants_master[1]);
        /* a release does not count as a live master */
        advert(&f, 0, 0, MD200 + 200000);
        assert_false(f.group.wants_master[0]);

        /* after Skew_Time member 0 wants MASTER, but member 1 holds the group */
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[0]), MD200 + 200000 + 609375);
        step_type(&f, 0, VRRP_EVENT_TIMER, MD200 + 200000 + 609375);
        check_untouched(&f, 0, VRRP_STATE_BACKUP);
        check_untouched(&f, 1, VRRP_STATE_BACKUP);
        assert_true(f.group.wants_master[0]);
}

static void test_higher_priority_all_backup(void **state) {
        const uint64_t now = 5000000;
        struct fixture f;

        setup_group(&f, prios3, 3);
        make_all_master(&f);

        /* member 0 sees a better master on the other node (v3, 2 s interval) */
        step(&f, 0, (struct vrrp_event) { .type = VRRP_EVENT_ADVERT, .priority = 101, .max_adver_int_cs = 200 },
             now);
        /* the member that lost says so once, with its own priority (for the winner's re-announce) */
        check_actions(&f, 0, SEND | DEL | CHG, 100, VRRP_STATE_MASTER, VRRP_STATE_BACKUP, VRRP_REASON_HIGHER_PRIORITY);
        /* the others just go quiet: no priority 0 */
        check_actions(&f, 1, DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_BACKUP, VRRP_REASON_GROUP);
        check_actions(&f, 2, DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_BACKUP, VRRP_REASON_GROUP);

        /* 3 * 2000000 + 156 * 2000000 / 256 */
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[0]), now + 7218750);
        /* forced ones count with their own interval: 3000000 + 106 * 1000000 / 256 */
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[1]), now + 3414062);
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[2]), now + 3218750);

        /* lower adverts to a master do not move the group; the member that
         * heard one answers (the daemon extends its re-announce to the group) */
        setup_group(&f, prios3, 3);
        make_all_master(&f);
        step(&f, 1, (struct vrrp_event) { .type = VRRP_EVENT_ADVERT, .priority = 149, .max_adver_int_cs = 100 },
             now);
        check_actions(&f, 1, SEND | ANN, 150, VRRP_STATE_MASTER, VRRP_STATE_MASTER, VRRP_REASON_NONE);
        check_untouched(&f, 0, VRRP_STATE_MASTER);
        check_untouched(&f, 2, VRRP_STATE_MASTER);
}

static void test_fault(void **state) {
        struct fixture f;

        setup_group(&f, prios3, 3);
        make_all_master(&f);

        step_type(&f, 1, VRRP_EVENT_FAULT, 4000000);
        check_actions(&f, 0, SEND | DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_FAULT, VRRP_REASON_GROUP);
        check_actions(&f, 1, SEND | DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_FAULT, VRRP_REASON_FAULT);
        check_actions(&f, 2, SEND | DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_FAULT, VRRP_REASON_GROUP);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[i]), 0);

        /* a second member faults on its own: nothing more to do */
        step_type(&f, 2, VRRP_EVENT_FAULT, 4100000);
        for (size_t i = 0; i < 3; i++)
                check_untouched(&f, i, VRRP_STATE_FAULT);

        /* member 1 recovers but member 2 still has its own fault */
        step_type(&f, 1, VRRP_EVENT_FAULT_CLEAR, 4200000);
        for (size_t i = 0; i < 3; i++)
                check_untouched(&f, i, VRRP_STATE_FAULT);

        /* a clear from a member without a fault changes nothing either */
        step_type(&f, 0, VRRP_EVENT_FAULT_CLEAR, 4250000);
        for (size_t i = 0; i < 3; i++)
                check_untouched(&f, i, VRRP_STATE_FAULT);

        /* protocol events while faulted are ignored */
        step_type(&f, 0, VRRP_EVENT_TIMER, 9000000);
        step(&f, 1, (struct vrrp_event) { .type = VRRP_EVENT_ADVERT, .priority = 1, .max_adver_int_cs = 100 },
             9000000);
        for (size_t i = 0; i < 3; i++)
                check_untouched(&f, i, VRRP_STATE_FAULT);

        /* the last own fault clears: everybody back to BACKUP */
        step_type(&f, 2, VRRP_EVENT_FAULT_CLEAR, 10000000);
        for (size_t i = 0; i < 3; i++)
                check_actions(&f, i, CHG, 0, VRRP_STATE_FAULT, VRRP_STATE_BACKUP, VRRP_REASON_FAULT_CLEARED);
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[0]), 10000000 + 3609375);
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[2]), 10000000 + 3218750);
}

static const uint8_t prios_owner[] = { 255, 100 };

static void test_owner(void **state) {
        struct fixture f;

        setup_group(&f, prios_owner, 2);

        /* the owner goes master at once; member 1 has not started yet */
        step_type(&f, 0, VRRP_EVENT_STARTUP, 0);
        check_actions(&f, 0, TO_MASTER, 255, VRRP_STATE_INIT, VRRP_STATE_MASTER, VRRP_REASON_ADDRESS_OWNER);
        check_untouched(&f, 1, VRRP_STATE_INIT);

        /* starting member 1 joins the master group: net INIT -> MASTER */
        step_type(&f, 1, VRRP_EVENT_STARTUP, 1000);
        check_untouched(&f, 0, VRRP_STATE_MASTER);
        check_actions(&f, 1, TO_MASTER, 100, VRRP_STATE_INIT, VRRP_STATE_MASTER, VRRP_REASON_GROUP);

        /* member 1 faults: the owner releases too */
        step_type(&f, 1, VRRP_EVENT_FAULT, 2000);
        check_actions(&f, 0, SEND | DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_FAULT, VRRP_REASON_GROUP);
        check_actions(&f, 1, SEND | DEL | CHG, 0, VRRP_STATE_MASTER, VRRP_STATE_FAULT, VRRP_REASON_FAULT);

        /* cleared: the owner is master again and takes member 1 with it */
        step_type(&f, 1, VRRP_EVENT_FAULT_CLEAR, 3000);
        check_actions(&f, 0, TO_MASTER, 255, VRRP_STATE_FAULT, VRRP_STATE_MASTER, VRRP_REASON_FAULT_CLEARED);
        check_actions(&f, 1, TO_MASTER, 100, VRRP_STATE_FAULT, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[1]), 3000 + 1000000);
}

/* Started the other way round: the non-owner waits in BACKUP until the owner starts. */
static void test_owner_started_last(void **state) {
        struct fixture f;

        setup_group(&f, prios_owner, 2);

        step_type(&f, 1, VRRP_EVENT_STARTUP, 0);
        check_untouched(&f, 0, VRRP_STATE_INIT);
        check_actions(&f, 1, CHG, 0, VRRP_STATE_INIT, VRRP_STATE_BACKUP, VRRP_REASON_STARTUP);

        step_type(&f, 0, VRRP_EVENT_STARTUP, 1000);
        check_actions(&f, 0, TO_MASTER, 255, VRRP_STATE_INIT, VRRP_STATE_MASTER, VRRP_REASON_ADDRESS_OWNER);
        check_actions(&f, 1, TO_MASTER, 100, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
}

static void test_startup_while_faulted(void **state) {
        struct fixture f;

        setup_group(&f, prios2, 2);
        start_all(&f, 0);

        step_type(&f, 1, VRRP_EVENT_SHUTDOWN, 1000);
        check_untouched(&f, 0, VRRP_STATE_BACKUP);
        check_actions(&f, 1, CHG, 0, VRRP_STATE_BACKUP, VRRP_STATE_STOP, VRRP_REASON_SHUTDOWN);

        step_type(&f, 0, VRRP_EVENT_FAULT, 2000);
        check_actions(&f, 0, CHG, 0, VRRP_STATE_BACKUP, VRRP_STATE_FAULT, VRRP_REASON_FAULT);
        check_untouched(&f, 1, VRRP_STATE_STOP);

        /* member 1 restarts into the faulted group: straight to FAULT, nothing sent */
        step_type(&f, 1, VRRP_EVENT_STARTUP, 3000);
        check_untouched(&f, 0, VRRP_STATE_FAULT);
        check_actions(&f, 1, CHG, 0, VRRP_STATE_STOP, VRRP_STATE_FAULT, VRRP_REASON_GROUP);
        assert_int_equal(vrrp_fsm_next_deadline(&f.fsm[1]), 0);

        step_type(&f, 0, VRRP_EVENT_FAULT_CLEAR, 4000);
        check_actions(&f, 0, CHG, 0, VRRP_STATE_FAULT, VRRP_STATE_BACKUP, VRRP_REASON_FAULT_CLEARED);
        check_actions(&f, 1, CHG, 0, VRRP_STATE_FAULT, VRRP_STATE_BACKUP, VRRP_REASON_FAULT_CLEARED);
}

/* A fault before anyone started takes the whole group from INIT to FAULT. */
static void test_fault_before_startup(void **state) {
        struct fixture f;

        setup_group(&f, prios2, 2);
        step_type(&f, 1, VRRP_EVENT_FAULT, 0);
        check_actions(&f, 0, CHG, 0, VRRP_STATE_INIT, VRRP_STATE_FAULT, VRRP_REASON_GROUP);
        check_actions(&f, 1, CHG, 0, VRRP_STATE_INIT, VRRP_STATE_FAULT, VRRP_REASON_FAULT);

        step_type(&f, 0, VRRP_EVENT_STARTUP, 10);
        check_untouched(&f, 0, VRRP_STATE_FAULT);
        check_untouched(&f, 1, VRRP_STATE_FAULT);

        step_type(&f, 1, VRRP_EVENT_FAULT_CLEAR, 20);
        check_actions(&f, 0, CHG, 0, VRRP_STATE_FAULT, VRRP_STATE_BACKUP, VRRP_REASON_FAULT_CLEARED);
        check_actions(&f, 1, CHG, 0, VRRP_STATE_FAULT, VRRP_STATE_BACKUP, VRRP_REASON_FAULT_CLEARED);
}

/* Group-made transitions are not propagated again. */
static void test_forced_not_propagated(void **state) {
        struct fixture f;

        setup_group(&f, prios2, 2);
        start_all(&f, 0);

        step_type(&f, 0, VRRP_EVENT_FORCE_MASTER, 1000);
        check_actions(&f, 0, TO_MASTER, 100, VRRP_STATE_BACKUP, VRRP_STATE_MASTER, VRRP_REASON_GROUP);
        check_untouched(&f, 1, VRRP_STATE_BACKUP);
}

static void test_init_and_bounds(void **state) {
        struct vrrp_fsm fsm = {}, *members[VRRP_GROUP_MAX_MEMBERS + 1];
        struct vrrp_fsm *with_null[2] = { &fsm, NULL };
        struct vrrp_group group;
        struct vrrp_actions a[1];

        for (size_t i = 0; i < ELEMENTSOF(members); i++)
                members[i] = &fsm;

        assert_int_equal(vrrp_group_init(&group, members, 0), -EINVAL);
        assert_int_equal(vrrp_group_init(&group, members, VRRP_GROUP_MAX_MEMBERS + 1), -EINVAL);
        assert_int_equal(vrrp_group_init(&group, with_null, 2), -EINVAL);
        assert_int_equal(vrrp_group_init(&group, members, VRRP_GROUP_MAX_MEMBERS), 0);
        assert_int_equal(group.n_members, VRRP_GROUP_MAX_MEMBERS);

        assert_int_equal(vrrp_group_init(&group, members, 1), 0);
        assert_int_equal(group.n_members, 1);
        assert_false(group.own_fault[0]);

        /* an out-of-range member is ignored, but the actions are still written */
        memset(a, 0xa5, sizeof(a));
        vrrp_group_step(&group, 1, &(struct vrrp_event) { .type = VRRP_EVENT_FAULT }, 0, a);
        assert_false(a[0].state_changed);
        assert_false(a[0].send_advert);
        assert_false(group.own_fault[0]);
        assert_int_equal(fsm.state, VRRP_STATE_INIT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_master_down_all_master),
                cmocka_unit_test(test_preempt_all_master),
                cmocka_unit_test(test_preempt_needs_every_member),
                cmocka_unit_test(test_wanting_cleared_by_accepted_advert),
                cmocka_unit_test(test_higher_priority_all_backup),
                cmocka_unit_test(test_fault),
                cmocka_unit_test(test_owner),
                cmocka_unit_test(test_owner_started_last),
                cmocka_unit_test(test_startup_while_faulted),
                cmocka_unit_test(test_fault_before_startup),
                cmocka_unit_test(test_forced_not_propagated),
                cmocka_unit_test(test_init_and_bounds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
