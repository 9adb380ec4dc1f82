/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Two nodes, each a sync group {wan, lan}, on a simulated network: every
 * advertisement a member sends reaches the other node's member of the same
 * name at once, unless that link drops it in that direction. One fake
 * clock; the harness wakes whichever fsm has the earliest deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "vrrp/group.h"

enum { WAN, LAN, N_LINKS };
enum { A, B, N_NODES };

#define SEC UINT64_C(1000000)
/* Master_Down_Interval at a 1 s interval: 3 s + (256 - p) / 256 s */
#define MD100 UINT64_C(3609375)

struct node {
        struct vrrp_fsm fsm[N_LINKS];
        struct vrrp_group group;
        bool dead;                      /* neither sends nor runs */
        unsigned transitions;
        uint64_t all_master_at;         /* last time the whole group became MASTER */
};

struct packet {
        int from, link;
        uint8_t priority;
};

struct net {
        struct node node[N_NODES];
        bool drop[N_LINKS][N_NODES];    /* drop what node X sends on that link */
        uint64_t now;
        struct packet queue[64];
        size_t n_queue;
};

static void net_init(struct net *net, const uint8_t prio[N_NODES][N_LINKS]) {
        *net = (struct net) {};
        for (int n = 0; n < N_NODES; n++) {
                struct vrrp_fsm *members[N_LINKS];

                for (int l = 0; l < N_LINKS; l++) {
                        const struct vrrp_fsm_config cfg = {
                                .version = 3,
                                .priority = prio[n][l],
                                .advert_interval_cs = 100,
                                .preempt = true,
                                .primary = { .family = AF_INET, .addr.bytes = { 10, 0, (uint8_t) l, (uint8_t) (n + 1) } },
                        };

                        vrrp_fsm_init(&net->node[n].fsm[l], &cfg);
                        members[l] = &net->node[n].fsm[l];
                }
                assert_int_equal(vrrp_group_init(&net->node[n].group, members, N_LINKS), 0);
        }
}

static bool all_in(const struct node *node, enum vrrp_state s) {
        for (int l = 0; l < N_LINKS; l++)
                if (node->fsm[l].state != s)
                        return false;
        return true;
}

static void deliver(struct net *net, int n, int l, const struct vrrp_event *ev) {
        struct node *node = &net->node[n];
        struct vrrp_actions a[N_LINKS];

        if (node->dead)
                return;
        vrrp_group_step(&node->group, (size_t) l, ev, net->now, a);
        for (int k = 0; k < N_LINKS; k++) {
                if (a[k].state_changed)
                        node->transitions++;
                if (a[k].send_advert) {
                        assert_true(net->n_queue < ELEMENTSOF(net->queue));
                        net->queue[net->n_queue++] = (struct packet) { n, k, a[k].advert_priority };
                }
        }
        if (all_in(node, VRRP_STATE_MASTER) && a[l].state_changed)
                node->all_master_at = net->now;
}

static void drain(struct net *net) {
        for (size_t i = 0; i < net->n_queue; i++) {
                const struct packet p = net->queue[i];
                const int to = 1 - p.from;
                struct vrrp_event ev = {
                        .type = VRRP_EVENT_ADVERT,
                        .priority = p.priority,
                        .max_adver_int_cs = 100,
                        .src = net->node[p.from].fsm[p.link].config.primary,
                };

                if (net->node[p.from].dead || net->drop[p.link][p.from])
                        continue;
                deliver(net, to, p.link, &ev);
        }
        net->n_queue = 0;
}

static void start(struct net *net, int n, uint64_t at) {
        const struct vrrp_event ev = { .type = VRRP_EVENT_STARTUP };

        net->now = at;
        for (int l = 0; l < N_LINKS; l++) {
                deliver(net, n, l, &ev);
                drain(net);
        }
}

/* Run every timer up to UNTIL (inclusive), in deadline order. */
static void run_until(struct net *net, uint64_t until) {
        const struct vrrp_event timer = { .type = VRRP_EVENT_TIMER };

        for (;;) {
                uint64_t best = 0;
                int bn = -1, bl = -1;

                for (int n = 0; n < N_NODES; n++)
                        for (int l = 0; l < N_LINKS && !net->node[n].dead; l++) {
                                uint64_t d = vrrp_fsm_next_deadline(&net->node[n].fsm[l]);

                                if (d != 0 && (bn < 0 || d < best)) {
                                        best = d;
                                        bn = n;
                                        bl = l;
                                }
                        }
                if (bn < 0 || best > until)
                        break;
                assert_true(best >= net->now);
                net->now = best;
                deliver(net, bn, bl, &timer);
                drain(net);
        }
        net->now = until;
}

static void assert_node(const struct net *net, int n, enum vrrp_state s) {
        for (int l = 0; l < N_LINKS; l++)
                if (net->node[n].fsm[l].state != s) {
                        print_error("node %c member %d is %s, expected %s\n", 'A' + n, l,
                                    vrrp_state_to_string(net->node[n].fsm[l].state), vrrp_state_to_string(s));
                        fail();
                }
}

static void reset_counts(struct net *net) {
        for (int n = 0; n < N_NODES; n++)
                net->node[n].transitions = 0;
}

/* A higher on both links, both started together: A is MASTER, B BACKUP. */
static const uint8_t prio_a_higher[N_NODES][N_LINKS] = { { 200, 200 }, { 100, 100 } };

static void converge(struct net *net, const uint8_t prio[N_NODES][N_LINKS]) {
        net_init(net, prio);
        start(net, A, 0);
        start(net, B, 500000);
        run_until(net, 10 * SEC);
        assert_node(net, A, VRRP_STATE_MASTER);
        assert_node(net, B, VRRP_STATE_BACKUP);
        reset_counts(net);
}

/* VRRP lost on the lan link only (both directions): B's lan member times
 * out, but B's wan member still hears A, so B's group stays BACKUP and
 * nothing moves anywhere. */
static void test_partial_partition_no_flap(void **state) {
        struct net net;

        converge(&net, prio_a_higher);
        net.drop[LAN][A] = net.drop[LAN][B] = true;
        run_until(&net, net.now + 60 * SEC);
        assert_int_equal(net.node[B].transitions, 0);
        assert_int_equal(net.node[A].transitions, 0);
        assert_node(&net, A, VRRP_STATE_MASTER);
        assert_node(&net, B, VRRP_STATE_BACKUP);
        assert_true(net.node[B].group.wants_master[LAN]);
        assert_false(net.node[B].group.wants_master[WAN]);

        /* the link heals: still nothing to do */
        net.drop[LAN][A] = net.drop[LAN][B] = false;
        run_until(&net, net.now + 20 * SEC);
        assert_int_equal(net.node[B].transitions, 0);
        assert_int_equal(net.node[A].transitions, 0);
        assert_false(net.node[B].group.wants_master[LAN]);
}

/* One direction only (A's lan adverts lost): same outcome. */
static void test_one_way_loss_no_flap(void **state) {
        struct net net;

        converge(&net, prio_a_higher);
        net.drop[LAN][A] = true;
        run_until(&net, net.now + 60 * SEC);
        assert_int_equal(net.node[B].transitions, 0);
        assert_int_equal(net.node[A].transitions, 0);
}

/* A dies on every link while the lan link was already down: B's wan member
 * times out one Master_Down_Interval after A's last advert, and the whole
 * group goes MASTER then. */
static void test_real_failure_fails_over(void **state) {
        struct net net;
        uint64_t last_advert;

        converge(&net, prio_a_higher);
        net.drop[LAN][A] = net.drop[LAN][B] = true;
        run_until(&net, net.now + 30 * SEC + 500000);
        assert_int_equal(net.node[B].transitions, 0);

        /* A advertises on whole seconds since it went MASTER; kill it
         * right after one of them. */
        last_advert = net.node[A].fsm[WAN].adver_deadline - SEC;
        net.node[A].dead = true;
        run_until(&net, last_advert + MD100 - 1);
        assert_node(&net, B, VRRP_STATE_BACKUP);
        run_until(&net, last_advert + MD100);
        assert_node(&net, B, VRRP_STATE_MASTER);
        assert_int_equal(net.node[B].all_master_at, last_advert + MD100);
        assert_int_equal(net.node[B].transitions, 2);

        /* and it stays there */
        run_until(&net, net.now + 30 * SEC);
        assert_int_equal(net.node[B].transitions, 2);
}

/* Same failure with every link up before it. */
static void test_real_failure_all_links_up(void **state) {
        struct net net;
        uint64_t last_advert;

        converge(&net, prio_a_higher);
        last_advert = net.node[A].fsm[WAN].adver_deadline - SEC;
        net.node[A].dead = true;
        run_until(&net, last_advert + MD100);
        assert_node(&net, B, VRRP_STATE_MASTER);
        assert_int_equal(net.node[B].all_master_at, last_advert + MD100);
        assert_int_equal(net.node[B].transitions, 2);
}

/* A shuts down cleanly: priority 0 on both links, and B's group takes over
 * after Skew_Time of its lower member, not Master_Down. */
static void test_release_fails_over_after_skew(void **state) {
        const struct vrrp_event shutdown = { .type = VRRP_EVENT_SHUTDOWN };
        struct net net;
        uint64_t t;

        converge(&net, prio_a_higher);
        run_until(&net, net.now + 5 * SEC + 300000);
        t = net.now;
        for (int l = 0; l < N_LINKS; l++) {
                deliver(&net, A, l, &shutdown);
                drain(&net);
        }
        assert_node(&net, A, VRRP_STATE_STOP);
        /* Skew_Time(100) at 1 s: 156 * 1000000 / 256 = 609375 */
        run_until(&net, t + 609375 - 1);
        assert_node(&net, B, VRRP_STATE_BACKUP);
        run_until(&net, t + 609375);
        assert_node(&net, B, VRRP_STATE_MASTER);
        assert_int_equal(net.node[B].transitions, 2);
}

/* Priorities ordered differently: A higher on wan, B higher on lan. The
 * first group to go MASTER (A, started first) keeps it: B's lan member
 * would preempt A's, but B's wan member accepts A's, so B does not move.
 * The stable outcome is A MASTER on both links, no flapping. */
static const uint8_t prio_crossed[N_NODES][N_LINKS] = { { 200, 100 }, { 100, 200 } };

static void test_crossed_priorities_stable(void **state) {
        struct net net;

        net_init(&net, prio_crossed);
        start(&net, A, 0);
        start(&net, B, 500000);
        run_until(&net, 10 * SEC);
        assert_node(&net, A, VRRP_STATE_MASTER);
        assert_node(&net, B, VRRP_STATE_BACKUP);
        assert_int_equal(net.node[A].transitions, 4); /* INIT -> BACKUP -> MASTER, twice */
        assert_int_equal(net.node[B].transitions, 2); /* INIT -> BACKUP, twice */
        assert_true(net.node[B].group.wants_master[LAN]);

        reset_counts(&net);
        run_until(&net, net.now + 60 * SEC);
        assert_int_equal(net.node[A].transitions, 0);
        assert_int_equal(net.node[B].transitions, 0);

        /* and with the lan link down too */
        net.drop[LAN][A] = net.drop[LAN][B] = true;
        run_until(&net, net.now + 60 * SEC);
        assert_int_equal(net.node[A].transitions, 0);
        assert_int_equal(net.node[B].transitions, 0);
}

/* A weighted check lowers only A's wan member below B's: B's wan member
 * wants to preempt, B's lan member still accepts A. Nothing moves. */
static void test_one_member_lowered_stable(void **state) {
        struct net net;
        struct vrrp_fsm_config cfg;

        converge(&net, prio_a_higher);
        cfg = net.node[A].fsm[WAN].config;
        cfg.priority = 50;
        vrrp_fsm_reconfigure(&net.node[A].fsm[WAN], &cfg);
        run_until(&net, net.now + 60 * SEC);
        assert_int_equal(net.node[A].transitions, 0);
        assert_int_equal(net.node[B].transitions, 0);
        assert_true(net.node[B].group.wants_master[WAN]);

        /* lowered on lan too: now every member of B would preempt, and B
         * takes over once, A follows once */
        cfg = net.node[A].fsm[LAN].config;
        cfg.priority = 50;
        vrrp_fsm_reconfigure(&net.node[A].fsm[LAN], &cfg);
        run_until(&net, net.now + 60 * SEC);
        assert_node(&net, A, VRRP_STATE_BACKUP);
        assert_node(&net, B, VRRP_STATE_MASTER);
        assert_int_equal(net.node[A].transitions, 2);
        assert_int_equal(net.node[B].transitions, 2);
}

/* A lower node started alone takes over once; the higher node, started
 * later, preempts it once on both links. */
static void test_startup_one_by_one(void **state) {
        struct net net;

        net_init(&net, prio_a_higher);
        start(&net, B, 0);
        run_until(&net, 5 * SEC);
        assert_node(&net, B, VRRP_STATE_MASTER);
        start(&net, A, 5 * SEC);
        run_until(&net, 20 * SEC);
        assert_node(&net, A, VRRP_STATE_MASTER);
        assert_node(&net, B, VRRP_STATE_BACKUP);
        assert_int_equal(net.node[A].transitions, 4);
        assert_int_equal(net.node[B].transitions, 6);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_partial_partition_no_flap),
                cmocka_unit_test(test_one_way_loss_no_flap),
                cmocka_unit_test(test_real_failure_fails_over),
                cmocka_unit_test(test_real_failure_all_links_up),
                cmocka_unit_test(test_release_fails_over_after_skew),
                cmocka_unit_test(test_crossed_priorities_stable),
                cmocka_unit_test(test_one_member_lowered_stable),
                cmocka_unit_test(test_startup_one_by_one),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
