/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The daemon: one sd-event loop owning the VRRP instances, the link monitor,
 * the notifier and the control socket. Everything here runs on that loop;
 * nothing blocks it for longer than a netlink round trip.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "common/ratelimit.h"
#include "config.h"
#include "vrrp/fsm.h"
#include "vrrp/group.h"

struct nl_sock;
struct hamgr_daemon;
struct hamgr_group_rt;
struct link_monitor;
struct notifier;
struct control_server;
struct wg_follower;
struct check_rt;
struct endpoint_rt;
struct hamgr_sync;

/* Why an instance cannot run; several may hold at once. */
enum instance_fault {
        INSTANCE_FAULT_IFACE_MISSING,
        INSTANCE_FAULT_IFACE_DOWN,
        INSTANCE_FAULT_NO_ADDRESS,
        INSTANCE_FAULT_TRACKED_DOWN,
        INSTANCE_FAULT_SOCKET,
        INSTANCE_FAULT_CHECK,               /* a check tracked with weight 0 is DOWN */
        _INSTANCE_FAULT_MAX,
};

const char *instance_fault_to_string(enum instance_fault f);

/* Why an advertisement for our vrid was dropped, for the causes that point
 * at a misconfiguration (two masters would follow). Counted and logged at
 * WARNING, at most once a minute per cause and instance. */
enum instance_drop {
        INSTANCE_DROP_VERSION,              /* a VRRP version other than ours */
        INSTANCE_DROP_INTERVAL,             /* v2: another advertisement interval */
        INSTANCE_DROP_SOURCE,               /* unicast: sender not in unicast_peers */
        INSTANCE_DROP_TTL,                  /* TTL / hop limit not 255 (multicast mode) */
        INSTANCE_DROP_CHECKSUM,
        INSTANCE_DROP_ADDRESS_CONFLICT,     /* another node sends from our primary address */
        INSTANCE_DROP_AUTH,                 /* v2: authentication type or password not ours */
        _INSTANCE_DROP_MAX,
};

/* The status JSON key of a drop cause ("address_conflict"). */
const char *instance_drop_to_string(enum instance_drop d);

struct instance_counters {
        uint64_t adverts_sent;
        uint64_t adverts_received;
        uint64_t adverts_dropped;     /* parsed but not for us, or refused by policy */
        uint64_t packets_invalid;     /* failed the codec */
        uint64_t send_errors;
        uint64_t transitions;
        uint64_t became_master;
        uint64_t drops[_INSTANCE_DROP_MAX];  /* by cause; also in adverts_dropped or packets_invalid */
};

/* What hamgr knows of one virtual IP on the interface. An address owner's
 * (priority 255) virtual IPs that are on the interface before it installs
 * them are the interface's own addresses (RFC 9568 "IPvX address owner"):
 * hamgr never removes those. */
struct instance_vip {
        bool owned;                         /* there before us, as an owner's own address */
        bool added;                         /* installed by us */
};

struct hamgr_instance {
        struct hamgr_daemon *daemon;
        struct hamgr_vrrp_config *config;   /* points into daemon->config */
        struct vrrp_fsm fsm;
        struct hamgr_group_rt *group;
        size_t group_index;

        int ifindex;                        /* 0 while the interface is missing */
        uint8_t mac[6];
        struct ip_address primary;          /* source of our advertisements */
        bool have_primary;
        uint32_t faults;                    /* bit set of enum instance_fault */
        char fault_detail[128];             /* e.g. "tracked interface eth1 down" */
        bool fault_reported;                /* last value given to the fsm */
        bool started;                       /* STARTUP or FAULT delivered once */
        uint8_t effective_priority;         /* configured priority adjusted by check weights */
        struct instance_vip *vips;          /* one per config->virtual_ips */

        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *announce_timer;
        uint32_t announce_left;             /* packets left in the current burst */
        bool announce_second_due;           /* the delayed second burst is still to come */
        uint64_t announce_started_usec;     /* first packet of the first burst */
        uint64_t split_seen_usec;           /* MASTER: last advert of a lower-priority master; 0 = none */

        /* For status: the last transition and when (CLOCK_MONOTONIC usec). */
        enum vrrp_state last_from;
        enum vrrp_reason last_reason;
        uint64_t last_change_usec;
        struct ip_address last_master;      /* sender of the last accepted advert */
        uint8_t last_master_priority;
        struct instance_counters counters;
        const char *last_invalid_reason;
        /* One per config->virtual_routes (instance-routes.h); NULL until used. */
        struct instance_route_state *route_state;
        struct ratelimit drop_log[_INSTANCE_DROP_MAX];
};

/* A sync group at run time. Standalone instances get a group of one, so the
 * protocol always goes through vrrp_group_step(). */
struct hamgr_group_rt {
        char *name;                         /* NULL for a standalone instance */
        struct vrrp_group group;
        struct hamgr_instance *members[VRRP_GROUP_MAX_MEMBERS];
        size_t n_members;
        enum vrrp_state notified_state;     /* last group state sent to notify */
};

struct hamgr_daemon {
        sd_event *event;
        char *config_path;
        struct hamgr_config *config;
        struct nl_sock *nl;                 /* NETLINK_ROUTE for address changes */
        struct link_monitor *links;
        struct notifier *notifier;
        struct control_server *control;
        struct hamgr_instance **instances;
        size_t n_instances;
        struct hamgr_group_rt **groups;
        size_t n_groups;
        struct wg_follower **followers;
        size_t n_followers;
        struct check_rt **checks;
        size_t n_checks;
        struct endpoint_rt **endpoints;
        size_t n_endpoints;
        struct hamgr_sync *sync;
        bool stopping;
        uint64_t started_usec;
        sd_event_source *stop_timeout;
        uint64_t clock_floor_usec;          /* latest daemon_now_fresh() */
};

/* daemon.c */
int daemon_new(const char *config_path, struct hamgr_daemon **ret);
struct hamgr_daemon *daemon_free(struct hamgr_daemon *d);
/* Run until SIGTERM/SIGINT has been handled; returns the exit status. */
int daemon_run(struct hamgr_daemon *d);
/* Reload the configuration file; instances whose settings are unchanged keep
 * their state. Returns 0, or -errno leaving the running config in place. */
int daemon_reload(struct hamgr_daemon *d);
/* CLOCK_MONOTONIC as of this loop iteration's wake-up (sd_event_now()), or
 * the latest daemon_now_fresh() reading if that is later: never goes back. */
uint64_t daemon_now(struct hamgr_daemon *d);
/* CLOCK_MONOTONIC read now, for an input whose time matters more than the
 * iteration's: the process may have been stopped or starved between the
 * wake-up and this handler. Later daemon_now() calls return at least this. */
uint64_t daemon_now_fresh(struct hamgr_daemon *d);
/* Called by the notifier when its queues drain, to finish a shutdown. */
void daemon_maybe_exit(struct hamgr_daemon *d);
/* Refresh the systemd STATUS= line. */
void daemon_update_status(struct hamgr_daemon *d);
/* A check changed status: re-evaluate the instances. */
void daemon_checks_changed(struct hamgr_daemon *d);

/* instance.c */
int instance_new(struct hamgr_daemon *d, struct hamgr_vrrp_config *config, struct hamgr_instance **ret);
struct hamgr_instance *instance_free(struct hamgr_instance *inst);
/* Re-read link state from the monitor and report fault changes to the fsm.
 * Before the instance has started this also delivers STARTUP or FAULT. */
void instance_evaluate(struct hamgr_instance *inst);
/* Remove virtual routes and virtual IPs a previous run may have left
 * (called before start). An address owner's virtual IPs that are on the
 * interface are its own addresses: kept, marked owned. */
void instance_remove_stale_vips(struct hamgr_instance *inst);
/* Deliver EVENT through the instance's group and carry out the actions. */
void instance_dispatch(struct hamgr_instance *inst, const struct vrrp_event *event);
/* Swap in a new config that does not change the protocol identity. */
void instance_reconfigure(struct hamgr_instance *inst, struct hamgr_vrrp_config *config);
bool instance_config_compatible(const struct hamgr_vrrp_config *a, const struct hamgr_vrrp_config *b);
/* Fill a vrrp_fsm_config from an instance config and primary address. */
void instance_fsm_config(const struct hamgr_vrrp_config *c, const struct ip_address *primary,
                         struct vrrp_fsm_config *ret);
