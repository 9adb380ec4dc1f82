/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VRRP state machine on a fake clock. Each scenario is a list of steps:
 * deliver an event at a time, then check the state, the actions and the
 * next deadline. Expected deadlines are worked out by hand from the RFC
 * formulas (in the comments), not from the functions under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "vrrp/fsm.h"

enum {
        SEND = 1 << 0,
        ADD = 1 << 1,
        DEL = 1 << 2,
        ANN = 1 << 3,
        CHG = 1 << 4,
        TO_MASTER = SEND | ADD | ANN | CHG,
        REASSERT = SEND | ANN,      /* a MASTER answering a losing master */
};

struct step {
        uint64_t t;
        struct vrrp_event ev;
        const struct vrrp_fsm_config *reconfig; /* instead of ev: vrrp_fsm_reconfigure() */
        enum vrrp_state state;
        unsigned acts;
        uint8_t prio;                           /* advert_priority, checked with SEND */
        enum vrrp_reason reason;                /* checked with CHG */
        uint64_t deadline;
};

struct scenario {
        const char *name;
        struct vrrp_fsm_config config;
        const struct step *steps;
        size_t n_steps;
};

#define V4(a, b, c, d) { .family = AF_INET, .addr.bytes = { a, b, c, d } }
#define LOCAL V4(10, 0, 0, 2)
#define PEER_LOW V4(10, 0, 0, 1)
#define PEER_HIGH V4(10, 0, 0, 3)

#define EV(type_) { .type = VRRP_EVENT_##type_ }
#define ADV(p, cs) { .type = VRRP_EVENT_ADVERT, .priority = (p), .max_adver_int_cs = (cs), .src = PEER_LOW }
#define ADV_FROM(p, cs, src_) { .type = VRRP_EVENT_ADVERT, .priority = (p), .max_adver_int_cs = (cs), .src = src_ }

#define S(t_, ev_, st_, acts_, prio_, reason_, dl_)                                     \
        { .t = (t_), .ev = ev_, .state = VRRP_STATE_##st_, .acts = (acts_), .prio = (prio_), \
          .reason = VRRP_REASON_##reason_, .deadline = (dl_) }
#define RECONF(t_, cfg_, st_, dl_) \
        { .t = (t_), .reconfig = (cfg_), .state = VRRP_STATE_##st_, .deadline = (dl_) }

#define CFG(v, p, cs, pre, delay) \
        { .version = (v), .priority = (p), .advert_interval_cs = (cs), .preempt = (pre), \
          .preempt_delay_usec = (delay), .primary = LOCAL }

#define SCENARIO(id, cfg)                                                              \
        static const struct scenario id = { #id, cfg, id##_steps, ELEMENTSOF(id##_steps) }

/* Timer values used below (usec), interval 1 s unless noted:
 *   Master_Down(p) = 3 * 1000000 + (256 - p) * 1000000 / 256
 *   p=100: 3609375   p=200: 3218750   p=255: 3003906 */

/* --- startup --- */

static const struct step owner_startup_steps[] = {
        S(0, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 1000000),
        S(999999, EV(TIMER), MASTER, 0, 0, NONE, 1000000),
        S(1000000, EV(TIMER), MASTER, SEND, 255, NONE, 2000000),
        S(1000001, EV(STARTUP), MASTER, 0, 0, NONE, 2000000),
        /* an owner only yields to an equal priority with a higher address;
         * the losers are answered (advert timer restarted), once per window */
        S(1500000, ADV_FROM(254, 100, PEER_HIGH), MASTER, REASSERT, 255, NONE, 2500000),
        S(1600000, ADV_FROM(255, 100, PEER_LOW), MASTER, 0, 0, NONE, 2500000),
        S(1700000, ADV_FROM(255, 100, PEER_HIGH), BACKUP, SEND | DEL | CHG, 255, TIE_BREAK, 1700000 + 3003906),
};
SCENARIO(owner_startup, CFG(3, 255, 100, true, 0));

static const struct step backup_startup_steps[] = {
        S(0, EV(TIMER), INIT, 0, 0, NONE, 0),
        S(0, ADV(200, 100), INIT, 0, 0, NONE, 0),
        S(5, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 5 + 3609375),
        S(6, EV(STARTUP), BACKUP, 0, 0, NONE, 5 + 3609375),
        S(3609379, EV(TIMER), BACKUP, 0, 0, NONE, 5 + 3609375),
        S(3609380, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 3609380 + 1000000),
};
SCENARIO(backup_startup, CFG(3, 100, 100, true, 0));

/* --- the master learns nothing from lower adverts, backups learn the interval (v3 only) --- */

static const struct step v3_learns_interval_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        /* 2 s: 3 * 2000000 + 156 * 2000000 / 256 = 7218750 */
        S(500000, ADV(200, 200), BACKUP, 0, 0, NONE, 500000 + 7218750),
        S(7718749, EV(TIMER), BACKUP, 0, 0, NONE, 7718750),
        /* as master it advertises its own configured interval */
        S(7718750, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 7718750 + 1000000),
};
SCENARIO(v3_learns_interval, CFG(3, 100, 100, true, 0));

static const struct step v2_ignores_interval_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        S(500000, ADV(200, 200), BACKUP, 0, 0, NONE, 500000 + 3609375),
        S(4109374, EV(TIMER), BACKUP, 0, 0, NONE, 4109375),
        S(4109375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 4109375 + 1000000),
};
SCENARIO(v2_ignores_interval, CFG(2, 100, 100, true, 0));

/* --- preemption --- */

static const struct step preempt_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        /* lower-priority master: discarded, so Master_Down keeps running */
        S(1000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3218750),
        S(2000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3218750),
        S(3000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3218750),
        S(3218749, EV(TIMER), BACKUP, 0, 0, NONE, 3218750),
        S(3218750, EV(TIMER), MASTER, TO_MASTER, 200, PREEMPT, 4218750),
        /* the old master's last advert, sent before it heard us: answered */
        S(4000000, ADV(100, 100), MASTER, REASSERT, 200, NONE, 5000000),
};
SCENARIO(preempt, CFG(3, 200, 100, true, 0));

static const struct step no_preempt_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        S(1000000, ADV(100, 100), BACKUP, 0, 0, NONE, 1000000 + 3218750),
        S(2000000, ADV(100, 100), BACKUP, 0, 0, NONE, 2000000 + 3218750),
        S(3000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3000000 + 3218750),
        S(3218750, EV(TIMER), BACKUP, 0, 0, NONE, 3000000 + 3218750),
        S(4000000, ADV(100, 100), BACKUP, 0, 0, NONE, 4000000 + 3218750),
        S(100000000, ADV(100, 100), BACKUP, 0, 0, NONE, 100000000 + 3218750),
        /* the lower master dies: an ordinary Master_Down takeover */
        S(103218749, EV(TIMER), BACKUP, 0, 0, NONE, 103218750),
        S(103218750, EV(TIMER), MASTER, TO_MASTER, 200, MASTER_DOWN, 104218750),
};
SCENARIO(no_preempt, CFG(3, 200, 100, false, 0));

static const struct step preempt_delay_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        /* first lower advert at 1 s: preemption allowed from 6 s; tolerated until then */
        S(1000000, ADV(100, 100), BACKUP, 0, 0, NONE, 1000000 + 3218750),
        S(3000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3000000 + 3218750),
        S(5999999, ADV(100, 100), BACKUP, 0, 0, NONE, 5999999 + 3218750),
        S(6000000, ADV(100, 100), BACKUP, 0, 0, NONE, 5999999 + 3218750),
        S(7000000, ADV(100, 100), BACKUP, 0, 0, NONE, 5999999 + 3218750),
        S(9218748, EV(TIMER), BACKUP, 0, 0, NONE, 9218749),
        S(9218749, EV(TIMER), MASTER, TO_MASTER, 200, PREEMPT, 10218749),
};
SCENARIO(preempt_delay, CFG(3, 200, 100, true, 5000000));

static const struct step preempt_delay_restarts_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        S(1000000, ADV(100, 100), BACKUP, 0, 0, NONE, 1000000 + 3218750),
        S(2000000, ADV(100, 100), BACKUP, 0, 0, NONE, 2000000 + 3218750),
        /* a higher master shows up: the delay is forgotten ... */
        S(2500000, ADV(250, 100), BACKUP, 0, 0, NONE, 2500000 + 3218750),
        /* ... and restarts at the next lower advert: allowed from 6 s */
        S(3000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3000000 + 3218750),
        S(4500000, ADV(100, 100), BACKUP, 0, 0, NONE, 4500000 + 3218750),
        S(5999999, ADV(100, 100), BACKUP, 0, 0, NONE, 5999999 + 3218750),
        S(6000000, ADV(100, 100), BACKUP, 0, 0, NONE, 5999999 + 3218750),
        S(9218749, EV(TIMER), MASTER, TO_MASTER, 200, PREEMPT, 10218749),
};
SCENARIO(preempt_delay_restarts, CFG(3, 200, 100, true, 3000000));

/* delay expiring while the lower master is already gone: plain master-down */
static const struct step preempt_delay_master_dies_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        S(1000000, ADV(100, 100), BACKUP, 0, 0, NONE, 4218750),
        S(4218750, EV(TIMER), MASTER, TO_MASTER, 200, MASTER_DOWN, 5218750),
};
SCENARIO(preempt_delay_master_dies, CFG(3, 200, 100, true, 10000000));

static const struct step owner_always_preempts_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        RECONF(100, &(const struct vrrp_fsm_config) CFG(3, 255, 100, false, 0), BACKUP, 3218750),
        S(1000000, ADV(200, 100), BACKUP, 0, 0, NONE, 3218750),
        S(3218750, EV(TIMER), MASTER, TO_MASTER, 255, PREEMPT, 4218750),
};
SCENARIO(owner_always_preempts, CFG(3, 200, 100, false, 0));

/* --- priority 0 --- */

static const struct step release_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        /* master at 500 ms: 3 * 500000 + 156 * 500000 / 256 = 1500000 + 304687 */
        S(1000000, ADV(200, 50), BACKUP, 0, 0, NONE, 1000000 + 1804687),
        /* released: Skew_Time from the learned interval */
        S(1500000, ADV(0, 50), BACKUP, 0, 0, NONE, 1500000 + 304687),
        S(1804686, EV(TIMER), BACKUP, 0, 0, NONE, 1804687),
        S(1804687, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 2804687),
};
SCENARIO(release, CFG(3, 100, 100, true, 0));

static const struct step release_v2_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        /* v2 skew is (256 - p) / 256 s whatever the interval */
        S(1000000, ADV(0, 50), BACKUP, 0, 0, NONE, 1000000 + 609375),
        S(1609375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 2609375),
};
SCENARIO(release_v2, CFG(2, 100, 100, true, 0));

/* a lower master that releases is a master-down, not a preemption */
static const struct step release_while_preempting_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3218750),
        S(1000000, ADV(100, 100), BACKUP, 0, 0, NONE, 3218750),
        S(1500000, ADV(0, 100), BACKUP, 0, 0, NONE, 1500000 + 218750),
        S(1718750, EV(TIMER), MASTER, TO_MASTER, 200, MASTER_DOWN, 2718750),
};
SCENARIO(release_while_preempting, CFG(3, 200, 100, true, 0));

/* --- master --- */

static const struct step tie_break_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        /* a backup accepts an equal priority from any address */
        S(1000000, ADV_FROM(100, 100, PEER_LOW), BACKUP, 0, 0, NONE, 1000000 + 3609375),
        S(4609375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 5609375),
        /* equal priority, lower address: we win and answer */
        S(5000000, ADV_FROM(100, 100, PEER_LOW), MASTER, REASSERT, 100, NONE, 6000000),
        /* equal priority, higher address: we yield */
        S(5100000, ADV_FROM(100, 100, PEER_HIGH), BACKUP, SEND | DEL | CHG, 100, TIE_BREAK, 5100000 + 3609375),
        S(5200000, EV(TIMER), BACKUP, 0, 0, NONE, 5100000 + 3609375),
};
SCENARIO(tie_break, CFG(3, 100, 100, true, 0));

static const struct step master_yields_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        S(3609375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 4609375),
        /* lower priority, even from a higher address: we stay and answer */
        S(4000000, ADV_FROM(99, 100, PEER_HIGH), MASTER, REASSERT, 100, NONE, 5000000),
        S(4999999, EV(TIMER), MASTER, 0, 0, NONE, 5000000),
        S(5000000, EV(TIMER), MASTER, SEND, 100, NONE, 6000000),
        /* someone released: reassert at once */
        S(5000000, ADV(0, 100), MASTER, SEND, 100, NONE, 6000000),
        /* higher priority at 3 s: 3 * 3000000 + 156 * 3000000 / 256 = 10828125 */
        S(5500000, ADV(101, 300), BACKUP, SEND | DEL | CHG, 100, HIGHER_PRIORITY, 5500000 + 10828125),
};
SCENARIO(master_yields, CFG(3, 100, 100, true, 0));

static const struct step master_yields_v2_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        S(3609375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 4609375),
        S(4000000, ADV(200, 300), BACKUP, SEND | DEL | CHG, 100, HIGHER_PRIORITY, 4000000 + 3609375),
};
SCENARIO(master_yields_v2, CFG(2, 100, 100, true, 0));

/* --- a master answers another master that loses to it (split healed) ---
 * 100 ms adverts: the reply advert at most once per 100 ms, the re-announce
 * at most once per second. Master_Down(200) at 100 ms:
 * 3 * 100000 + 56 * 100000 / 256 = 321875 */

static const struct step reassert_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 321875),
        S(321875, EV(TIMER), MASTER, TO_MASTER, 200, MASTER_DOWN, 421875),
        /* a lower master: advert now (the timer restarts from it) and announce */
        S(400000, ADV(100, 10), MASTER, REASSERT, 200, NONE, 500000),
        /* again within 100 ms: nothing */
        S(450000, ADV(100, 10), MASTER, 0, 0, NONE, 500000),
        S(500000, EV(TIMER), MASTER, SEND, 200, NONE, 600000),
        /* after 100 ms the advert again, but no announce within the second */
        S(520000, ADV(100, 10), MASTER, SEND, 200, NONE, 620000),
        S(1299999, ADV(100, 10), MASTER, SEND, 200, NONE, 1399999),
        /* equal priority from a lower address loses too: a second later, both */
        S(1400000, ADV_FROM(200, 10, PEER_LOW), MASTER, REASSERT, 200, NONE, 1500000),
        /* equal priority from a higher address, or a higher priority, wins as
         * before; we yield with a last advert of our own priority, so that
         * the winner hears a losing master even if its advert came first */
        S(1450000, ADV_FROM(201, 10, PEER_LOW), BACKUP, SEND | DEL | CHG, 200, HIGHER_PRIORITY, 1450000 + 321875),
        S(1771875, EV(TIMER), MASTER, TO_MASTER, 200, MASTER_DOWN, 1871875),
        /* a new mastership does not inherit the old windows */
        S(1800000, ADV(100, 10), MASTER, REASSERT, 200, NONE, 1900000),
        S(1850000, ADV_FROM(200, 10, PEER_HIGH), BACKUP, SEND | DEL | CHG, 200, TIE_BREAK, 1850000 + 321875),
};
SCENARIO(reassert, CFG(3, 200, 10, true, 0));

/* v2 and a long interval: the windows are the interval (3 s) */
static const struct step reassert_v2_steps[] = {
        S(0, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 3000000),
        S(1000000, ADV(100, 300), MASTER, REASSERT, 255, NONE, 4000000),
        S(3999999, ADV(100, 300), MASTER, 0, 0, NONE, 4000000),
        S(4000000, ADV(100, 300), MASTER, REASSERT, 255, NONE, 7000000),
};
SCENARIO(reassert_v2, CFG(2, 255, 300, true, 0));

/* --- fault, shutdown, group events --- */

static const struct step fault_master_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        S(3609375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 4609375),
        S(4000000, EV(FAULT), FAULT, SEND | DEL | CHG, 0, FAULT, 0),
        S(4609375, EV(TIMER), FAULT, 0, 0, NONE, 0),
        S(4700000, ADV(200, 100), FAULT, 0, 0, NONE, 0),
        S(4800000, EV(FAULT), FAULT, 0, 0, NONE, 0),
        S(4850000, EV(STARTUP), FAULT, 0, 0, NONE, 0),
        S(4900000, EV(FORCE_MASTER), FAULT, 0, 0, NONE, 0),
        S(5000000, EV(FAULT_CLEAR), BACKUP, CHG, 0, FAULT_CLEARED, 5000000 + 3609375),
        S(5100000, EV(FAULT_CLEAR), BACKUP, 0, 0, NONE, 5000000 + 3609375),
        S(6000000, EV(FAULT), FAULT, CHG, 0, FAULT, 0),
};
SCENARIO(fault_master, CFG(3, 100, 100, true, 0));

static const struct step fault_owner_steps[] = {
        S(0, EV(FAULT), FAULT, CHG, 0, FAULT, 0),
        S(1000, EV(FAULT_CLEAR), MASTER, TO_MASTER, 255, FAULT_CLEARED, 1001000),
        S(2000, EV(FAULT), FAULT, SEND | DEL | CHG, 0, FAULT, 0),
        S(3000, EV(SHUTDOWN), STOP, CHG, 0, SHUTDOWN, 0),
        S(4000, EV(FAULT), STOP, 0, 0, NONE, 0),
        S(5000, EV(FAULT_CLEAR), STOP, 0, 0, NONE, 0),
};
SCENARIO(fault_owner, CFG(3, 255, 100, true, 0));

static const struct step shutdown_master_steps[] = {
        S(0, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 1000000),
        S(500000, EV(SHUTDOWN), STOP, SEND | DEL | CHG, 0, SHUTDOWN, 0),
        S(1000000, EV(TIMER), STOP, 0, 0, NONE, 0),
        S(1100000, ADV(200, 100), STOP, 0, 0, NONE, 0),
        S(1200000, EV(SHUTDOWN), STOP, 0, 0, NONE, 0),
        S(2000000, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 3000000),
};
SCENARIO(shutdown_master, CFG(3, 255, 100, true, 0));

/* The owner's whole life: MASTER at once whenever it can run, and on FAULT
 * and STOP a priority-0 release so the backup takes over after Skew_Time.
 * DEL asks to remove the virtual IPs; the instance keeps those that are the
 * owner's own interface addresses (hamgr.conf(5), "Address owner"), so the
 * fsm does not distinguish them. */
static const struct step owner_lifecycle_steps[] = {
        S(0, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 1000000),
        S(600000, EV(FAULT), FAULT, SEND | DEL | CHG, 0, FAULT, 0),
        S(700000, ADV(100, 100), FAULT, 0, 0, NONE, 0),
        S(800000, EV(FAULT_CLEAR), MASTER, TO_MASTER, 255, FAULT_CLEARED, 1800000),
        S(1000000, EV(SHUTDOWN), STOP, SEND | DEL | CHG, 0, SHUTDOWN, 0),
        S(2000000, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 3000000),
};
SCENARIO(owner_lifecycle, CFG(3, 255, 100, false, 0));

static const struct step shutdown_backup_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        S(500000, EV(SHUTDOWN), STOP, CHG, 0, SHUTDOWN, 0),
        S(3609375, EV(TIMER), STOP, 0, 0, NONE, 0),
        S(4000000, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 4000000 + 3609375),
};
SCENARIO(shutdown_backup, CFG(3, 100, 100, true, 0));

static const struct step shutdown_init_steps[] = {
        S(0, EV(SHUTDOWN), STOP, CHG, 0, SHUTDOWN, 0),
};
SCENARIO(shutdown_init, CFG(3, 100, 100, true, 0));

static const struct step force_steps[] = {
        S(0, EV(FORCE_MASTER), INIT, 0, 0, NONE, 0),
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        S(1000, EV(FORCE_BACKUP), BACKUP, 0, 0, NONE, 3609375),
        S(2000, EV(FORCE_MASTER), MASTER, TO_MASTER, 100, GROUP, 1002000),
        S(3000, EV(FORCE_MASTER), MASTER, 0, 0, NONE, 1002000),
        /* no priority 0 here: just go quiet */
        S(4000, EV(FORCE_BACKUP), BACKUP, DEL | CHG, 0, GROUP, 4000 + 3609375),
        S(3613375, EV(TIMER), MASTER, TO_MASTER, 100, MASTER_DOWN, 4613375),
};
SCENARIO(force, CFG(3, 100, 100, true, 0));

/* --- reconfiguration --- */

static const struct step reconfigure_master_steps[] = {
        S(0, EV(STARTUP), MASTER, TO_MASTER, 255, ADDRESS_OWNER, 1000000),
        /* the running advert timer is kept; the new interval counts from the next advert */
        RECONF(500000, &(const struct vrrp_fsm_config) CFG(3, 255, 300, true, 0), MASTER, 1000000),
        S(1000000, EV(TIMER), MASTER, SEND, 255, NONE, 4000000),
        RECONF(1500000, &(const struct vrrp_fsm_config) CFG(3, 100, 300, true, 0), MASTER, 4000000),
        S(4000000, EV(TIMER), MASTER, SEND, 100, NONE, 7000000),
        /* Master_Down from the new interval: 3 * 3000000 + 156 * 3000000 / 256 */
        S(5000000, EV(FORCE_BACKUP), BACKUP, DEL | CHG, 0, GROUP, 5000000 + 10828125),
};
SCENARIO(reconfigure_master, CFG(3, 255, 100, true, 0));

static const struct step reconfigure_backup_steps[] = {
        S(0, EV(STARTUP), BACKUP, CHG, 0, STARTUP, 3609375),
        RECONF(100, &(const struct vrrp_fsm_config) CFG(3, 200, 100, true, 0), BACKUP, 3609375),
        /* the next advert uses the new priority: Master_Down(200) */
        S(1000000, ADV(250, 100), BACKUP, 0, 0, NONE, 1000000 + 3218750),
};
SCENARIO(reconfigure_backup, CFG(3, 100, 100, true, 0));

static void check(const struct scenario *sc, size_t i, const char *what, uint64_t got, uint64_t want) {
        if (got == want)
                return;
        print_error("%s: step %zu (t=%llu): %s is %llu, expected %llu\n", sc->name, i,
                    (unsigned long long) sc->steps[i].t, what, (unsigned long long) got,
                    (unsigned long long) want);
        fail();
}

static void run_scenario(void **state) {
        const struct scenario *sc = *state;
        struct vrrp_fsm fsm;

        vrrp_fsm_init(&fsm, &sc->config);
        assert_int_equal(fsm.state, VRRP_STATE_INIT);
        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 0);

        for (size_t i = 0; i < sc->n_steps; i++) {
                const struct step *st = &sc->steps[i];
                enum vrrp_state before = fsm.state;
                struct vrrp_actions a;

                if (st->reconfig) {
                        vrrp_fsm_reconfigure(&fsm, st->reconfig);
                        check(sc, i, "state", fsm.state, st->state);
                        check(sc, i, "deadline", vrrp_fsm_next_deadline(&fsm), st->deadline);
                        continue;
                }

                /* garbage must be overwritten */
                memset(&a, 0xa5, sizeof(a));
                vrrp_fsm_step(&fsm, &st->ev, st->t, &a);

                check(sc, i, "state", fsm.state, st->state);
                check(sc, i, "send_advert", a.send_advert, !!(st->acts & SEND));
                check(sc, i, "advert_priority", a.advert_priority, st->acts & SEND ? st->prio : 0);
                check(sc, i, "add_vips", a.add_vips, !!(st->acts & ADD));
                check(sc, i, "remove_vips", a.remove_vips, !!(st->acts & DEL));
                check(sc, i, "announce", a.announce, !!(st->acts & ANN));
                check(sc, i, "state_changed", a.state_changed, !!(st->acts & CHG));
                if (st->acts & CHG) {
                        check(sc, i, "old_state", a.old_state, before);
                        check(sc, i, "new_state", a.new_state, st->state);
                        check(sc, i, "reason", a.reason, st->reason);
                } else {
                        check(sc, i, "reason", a.reason, VRRP_REASON_NONE);
                        check(sc, i, "state", before, st->state);
                }
                check(sc, i, "deadline", vrrp_fsm_next_deadline(&fsm), st->deadline);
        }
}

/* Master_Down for several priorities and intervals, to the microsecond. */
struct timing {
        uint8_t version;
        uint8_t priority;
        uint16_t interval_cs;
        uint64_t skew;
        uint64_t master_down;
};

static const struct timing timings[] = {
        /* v3: skew = (256 - p) * interval_usec / 256, truncated */
        { 3, 1, 10, 99609, 399609 },                  /* 255 * 100000 / 256 = 99609.375 */
        { 3, 100, 10, 60937, 360937 },                /* 156 * 100000 / 256 = 60937.5 */
        { 3, 200, 10, 21875, 321875 },
        { 3, 254, 10, 781, 300781 },                  /* 2 * 100000 / 256 = 781.25 */
        { 3, 1, 100, 996093, 3996093 },
        { 3, 100, 100, 609375, 3609375 },
        { 3, 200, 100, 218750, 3218750 },
        { 3, 254, 100, 7812, 3007812 },
        { 3, 1, 4095, 40790039, 163640039 },          /* 255 * 40950000 / 256 = 40790039.06 */
        { 3, 100, 4095, 24953906, 147803906 },        /* 156 * 40950000 / 256 = 24953906.25 */
        { 3, 200, 4095, 8957812, 131807812 },         /* 56 * 40950000 / 256 = 8957812.5 */
        { 3, 254, 4095, 319921, 123169921 },          /* 2 * 40950000 / 256 = 319921.875 */
        /* v2: skew = (256 - p) / 256 s regardless of the interval */
        { 2, 1, 100, 996093, 3996093 },
        { 2, 100, 100, 609375, 3609375 },
        { 2, 200, 100, 218750, 3218750 },
        { 2, 254, 100, 7812, 3007812 },
        { 2, 1, 300, 996093, 9996093 },
        { 2, 100, 300, 609375, 9609375 },
        { 2, 200, 300, 218750, 9218750 },
        { 2, 254, 300, 7812, 9007812 },
};

static void test_master_down_timing(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(timings); i++) {
                const struct timing *tm = &timings[i];
                const struct vrrp_fsm_config cfg = CFG(tm->version, tm->priority, tm->interval_cs, true, 0);
                const uint64_t t0 = 123456789, t1 = t0 + 1000;
                const struct vrrp_event startup = EV(STARTUP), timer = EV(TIMER);
                /* a higher-priority master advertising twice our interval; v2 ignores it */
                const struct vrrp_event adv = ADV(255, 2 * tm->interval_cs);
                struct vrrp_actions a;
                struct vrrp_fsm fsm;

                print_message("v%u priority %u interval %u0 ms\n", tm->version, tm->priority,
                              tm->interval_cs);
                assert_int_equal(vrrp_skew_time_usec(tm->version, tm->priority, tm->interval_cs), tm->skew);
                assert_int_equal(vrrp_master_down_interval_usec(tm->version, tm->priority, tm->interval_cs),
                                 tm->master_down);

                vrrp_fsm_init(&fsm, &cfg);
                vrrp_fsm_step(&fsm, &startup, t0, &a);
                assert_int_equal(fsm.state, VRRP_STATE_BACKUP);
                assert_int_equal(vrrp_fsm_next_deadline(&fsm), t0 + tm->master_down);

                vrrp_fsm_step(&fsm, &timer, t0 + tm->master_down - 1, &a);
                assert_int_equal(fsm.state, VRRP_STATE_BACKUP);
                assert_false(a.send_advert);
                vrrp_fsm_step(&fsm, &timer, t0 + tm->master_down, &a);
                assert_int_equal(fsm.state, VRRP_STATE_MASTER);
                assert_int_equal(a.reason, VRRP_REASON_MASTER_DOWN);
                assert_int_equal(vrrp_fsm_next_deadline(&fsm), t0 + tm->master_down + tm->interval_cs * 10000ULL);

                /* same again from a master's advert */
                vrrp_fsm_init(&fsm, &cfg);
                vrrp_fsm_step(&fsm, &startup, t0, &a);
                vrrp_fsm_step(&fsm, &adv, t1, &a);
                uint64_t md = tm->version == 3 ?
                        vrrp_master_down_interval_usec(3, tm->priority, 2 * tm->interval_cs) : tm->master_down;
                if (tm->version == 3)
                        /* doubling the interval doubles Master_Down, give or take the truncation */
                        assert_true(md >= 2 * tm->master_down && md <= 2 * tm->master_down + 1);
                assert_int_equal(vrrp_fsm_next_deadline(&fsm), t1 + md);
                vrrp_fsm_step(&fsm, &timer, t1 + md - 1, &a);
                assert_int_equal(fsm.state, VRRP_STATE_BACKUP);
                vrrp_fsm_step(&fsm, &timer, t1 + md, &a);
                assert_int_equal(fsm.state, VRRP_STATE_MASTER);
        }
}

static void test_next_deadline(void **state) {
        struct vrrp_fsm fsm = {};

        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 0);
        fsm.adver_deadline = 7;
        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 7);
        fsm.master_down_deadline = 5;
        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 5);
        fsm.master_down_deadline = 9;
        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 7);
        fsm.adver_deadline = 0;
        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 9);
}

/* A lower master seen at time 0 with no delay must still count as seen. */
static void test_preempt_at_time_zero(void **state) {
        const struct vrrp_fsm_config cfg = CFG(3, 200, 100, true, 0);
        const struct vrrp_event startup = EV(STARTUP), adv = ADV(100, 100);
        struct vrrp_actions a;
        struct vrrp_fsm fsm;

        vrrp_fsm_init(&fsm, &cfg);
        vrrp_fsm_step(&fsm, &startup, 0, &a);
        vrrp_fsm_step(&fsm, &adv, 0, &a);
        assert_int_not_equal(fsm.preempt_allowed_at, 0);
        assert_true(fsm.preempting);
        assert_int_equal(vrrp_fsm_next_deadline(&fsm), 3218750);
}

/* The learned interval is kept for status output: v3 only. */
static void test_learned_interval_field(void **state) {
        const struct vrrp_event startup = EV(STARTUP), adv = ADV(200, 250);
        struct vrrp_actions a;
        struct vrrp_fsm fsm;

        for (uint8_t v = 2; v <= 3; v++) {
                const struct vrrp_fsm_config cfg = CFG(v, 100, 100, true, 0);

                vrrp_fsm_init(&fsm, &cfg);
                assert_int_equal(fsm.master_adver_interval_cs, 100);
                vrrp_fsm_step(&fsm, &startup, 0, &a);
                vrrp_fsm_step(&fsm, &adv, 1000, &a);
                assert_int_equal(fsm.master_adver_interval_cs, v == 3 ? 250 : 100);

                /* an advert claiming interval 0 teaches nothing */
                const struct vrrp_event zero = ADV(200, 0);
                vrrp_fsm_step(&fsm, &zero, 2000, &a);
                assert_int_equal(fsm.master_adver_interval_cs, v == 3 ? 250 : 100);
                assert_true(vrrp_fsm_next_deadline(&fsm) > 2000 + 3000000);

                /* a new configured interval is the master's for v2; v3 keeps what it learned */
                const struct vrrp_fsm_config slower = CFG(v, 100, 300, true, 0);
                vrrp_fsm_reconfigure(&fsm, &slower);
                assert_int_equal(fsm.master_adver_interval_cs, v == 3 ? 250 : 300);
        }
}

/* A peer flooding lower-priority adverts (one per ms for 3 s, 100 ms
 * adverts): one re-announce per second, one reply advert per 100 ms. */
static void test_reassert_flood(void **state) {
        const struct vrrp_fsm_config cfg = CFG(3, 200, 10, true, 0);
        const struct vrrp_event lower = ADV(100, 10);
        unsigned adverts = 0, announces = 0;
        struct vrrp_fsm fsm;
        struct vrrp_actions a;
        uint64_t t0;

        vrrp_fsm_init(&fsm, &cfg);
        vrrp_fsm_step(&fsm, &(const struct vrrp_event) EV(STARTUP), 0, &a);
        vrrp_fsm_step(&fsm, &(const struct vrrp_event) EV(TIMER), 321875, &a);
        assert_int_equal(fsm.state, VRRP_STATE_MASTER);

        t0 = 400000;
        for (uint64_t t = t0; t < t0 + 3000000; t += 1000) {
                vrrp_fsm_step(&fsm, &lower, t, &a);
                assert_int_equal(fsm.state, VRRP_STATE_MASTER);
                assert_false(a.state_changed);
                adverts += a.send_advert;
                announces += a.announce;
        }
        assert_int_equal(announces, 3);
        assert_int_equal(adverts, 30);

        assert_int_equal(vrrp_reannounce_interval_usec(1), 1000000);
        assert_int_equal(vrrp_reannounce_interval_usec(100), 1000000);
        assert_int_equal(vrrp_reannounce_interval_usec(101), 1010000);
        assert_int_equal(vrrp_reannounce_interval_usec(4095), 40950000);
}

static void test_name_tables(void **state) {
        for (int i = 0; i < _VRRP_STATE_MAX; i++)
                assert_non_null(vrrp_state_to_string(i));
        for (int i = 0; i < _VRRP_EVENT_MAX; i++)
                assert_non_null(vrrp_event_type_to_string(i));
        for (int i = 0; i < _VRRP_REASON_MAX; i++)
                assert_non_null(vrrp_reason_to_string(i));

        assert_null(vrrp_state_to_string(_VRRP_STATE_MAX));
        assert_null(vrrp_event_type_to_string(_VRRP_EVENT_MAX));
        assert_null(vrrp_reason_to_string(_VRRP_REASON_MAX));
        assert_null(vrrp_state_to_string(-1));

        assert_string_equal(vrrp_state_to_string(VRRP_STATE_MASTER), "MASTER");
        assert_string_equal(vrrp_state_to_string(VRRP_STATE_STOP), "STOP");
        assert_string_equal(vrrp_reason_to_string(VRRP_REASON_MASTER_DOWN), "master-down");
        assert_string_equal(vrrp_reason_to_string(VRRP_REASON_TIE_BREAK), "tie-break");
        assert_string_equal(vrrp_reason_to_string(VRRP_REASON_GROUP), "group");
}

#define SCENARIO_TEST(id) { #id, run_scenario, NULL, NULL, (void *) &id }

int main(void) {
        const struct CMUnitTest tests[] = {
                SCENARIO_TEST(owner_startup),
                SCENARIO_TEST(backup_startup),
                SCENARIO_TEST(v3_learns_interval),
                SCENARIO_TEST(v2_ignores_interval),
                SCENARIO_TEST(preempt),
                SCENARIO_TEST(no_preempt),
                SCENARIO_TEST(preempt_delay),
                SCENARIO_TEST(preempt_delay_restarts),
                SCENARIO_TEST(preempt_delay_master_dies),
                SCENARIO_TEST(owner_always_preempts),
                SCENARIO_TEST(release),
                SCENARIO_TEST(release_v2),
                SCENARIO_TEST(release_while_preempting),
                SCENARIO_TEST(tie_break),
                SCENARIO_TEST(master_yields),
                SCENARIO_TEST(reassert),
                SCENARIO_TEST(reassert_v2),
                SCENARIO_TEST(master_yields_v2),
                SCENARIO_TEST(fault_master),
                SCENARIO_TEST(fault_owner),
                SCENARIO_TEST(shutdown_master),
                SCENARIO_TEST(owner_lifecycle),
                SCENARIO_TEST(shutdown_backup),
                SCENARIO_TEST(shutdown_init),
                SCENARIO_TEST(force),
                SCENARIO_TEST(reconfigure_master),
                SCENARIO_TEST(reconfigure_backup),
                cmocka_unit_test(test_master_down_timing),
                cmocka_unit_test(test_next_deadline),
                cmocka_unit_test(test_preempt_at_time_zero),
                cmocka_unit_test(test_learned_interval_field),
                cmocka_unit_test(test_reassert_flood),
                cmocka_unit_test(test_name_tables),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
