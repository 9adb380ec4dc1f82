/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * hamgr configuration (libconfig syntax). See etc/hamgr.conf and hamgr.conf(5).
 *
 * Loading validates everything that can be validated without the running
 * system: ranges, duplicates, references between sections, unknown keys.
 * Interfaces are not looked up here (a missing interface is a run-time
 * FAULT, not a config error).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/ipaddr.h"
#include "health/check.h"
#include "vrrp/packet.h"
#include "wg/wg.h"

/* The build sets both from the install prefix (CMakeLists.txt), so the
 * daemon looks where `cmake --install` and the unit put things. */
#ifndef HAMGR_DEFAULT_CONFIG
#define HAMGR_DEFAULT_CONFIG         "/etc/hamgr/hamgr.conf"
#endif
#ifndef HAMGR_EXAMPLE_CONFIG
#define HAMGR_EXAMPLE_CONFIG         "/usr/share/doc/hamgr/hamgr.conf.example"
#endif
#define HAMGR_DEFAULT_CONTROL_SOCKET "/run/hamgr/control.sock"
#define HAMGR_DEFAULT_STATE_DIR      "/var/lib/hamgr"

struct hamgr_garp_config {
        uint32_t repeat;        /* packets per burst, 1..100 (default 3) */
        uint32_t interval_ms;   /* between packets of a burst, 0..10000 (default 100) */
        uint32_t refresh_s;     /* repeat the burst this often while MASTER; 0 = never */
        uint32_t delay_s;       /* second burst this long after the first, 0..3600; 0 = none (default 5) */
        uint32_t delay_repeat;  /* packets in the second burst, 1..100 (default 3) */
};

/* A check tracked by a VRRP instance. */
struct hamgr_track_check {
        char *check;                 /* name of a hamgr_check_config */
        /* -254..254. 0: the instance is FAULT while the check is DOWN.
         * > 0: added to the priority while the check is UP; < 0: subtracted
         * while it is DOWN (keepalived's rule). The result is clamped to
         * 1..254; an address owner (255) is never adjusted. */
        int weight;
        int line;
};

enum hamgr_route_type {
        HAMGR_ROUTE_UNICAST,         /* "unicast" (default) */
        HAMGR_ROUTE_BLACKHOLE,       /* "blackhole": dropped silently */
        HAMGR_ROUTE_UNREACHABLE,     /* "unreachable": dropped, ICMP unreachable */
        HAMGR_ROUTE_PROHIBIT,        /* "prohibit": dropped, ICMP prohibited */
        _HAMGR_ROUTE_TYPE_MAX,
};

const char *hamgr_route_type_to_string(enum hamgr_route_type t);

/* A route installed while the instance is MASTER (key "virtual_routes"). */
struct hamgr_virtual_route {
        struct ip_prefix to;         /* the network address (no host bits set) */
        struct ip_address via;       /* gateway, same family; AF_UNSPEC = none (a link route) */
        struct ip_address src;       /* preferred source, same family; AF_UNSPEC = none */
        char *dev;                   /* unicast: NULL = the instance's interface; others: always NULL */
        uint32_t metric;             /* default 0 for IPv4, 1024 for IPv6 (the kernel's defaults) */
        uint32_t table;              /* 1..2^32-1 except 255 (local); default 254 (main) */
        enum hamgr_route_type type;
        int line;
};

/* Everything but `line` equal. */
bool hamgr_virtual_route_equal(const struct hamgr_virtual_route *a, const struct hamgr_virtual_route *b);

struct hamgr_vrrp_config {
        char *name;
        char *interface;
        uint8_t vrid;                /* 1..255 */
        uint8_t priority;            /* 1..255 (default 100) */
        uint8_t version;             /* 2 or 3 (default 3) */
        uint32_t advert_interval_ms; /* v3: 10..40950, multiple of 10; v2: 1000..255000, whole seconds (default 1000) */
        bool preempt;                /* default true */
        uint32_t preempt_delay_ms;   /* 0..3600000 (default 0) */
        bool accept_mode;            /* default false */
        enum vrrp_checksum_mode checksum; /* key "checksum" = "rfc5798" (default) | "rfc9568" */
        /* Family of the advertisement: that of the first virtual IP. Virtual
         * IPs of the other family move with the instance but are not carried
         * in the advertisement (keepalived's "excluded" addresses). */
        int family;
        struct ip_prefix *virtual_ips;
        size_t n_virtual_ips;
        struct ip_address *unicast_peers; /* empty: multicast; same family as `family` */
        size_t n_unicast_peers;
        /* Unicast only. TTL / hop limit of our adverts, 1..255 (default 255).
         * In unicast mode the received TTL is not checked (peers may be
         * routed), as keepalived does. */
        uint8_t unicast_ttl;
        /* Unicast only: source address of our adverts (keepalived's
         * unicast_src_ip), a local address of `family`; AF_UNSPEC = the
         * interface's primary address. A global IPv6 source allows global
         * IPv6 unicast_peers (pairs across routers). */
        struct ip_address unicast_source;
        char **track_interfaces;
        size_t n_track_interfaces;
        struct hamgr_garp_config garp;
        struct hamgr_track_check *track_checks;
        size_t n_track_checks;
        /* Added in order after the virtual IPs on becoming MASTER, removed
         * in reverse order before them on leaving MASTER. */
        struct hamgr_virtual_route *virtual_routes;
        size_t n_virtual_routes;
        /* Version 2 only: RFC 2338 simple-password authentication (type 1),
         * keepalived's "auth_type PASS". 1..8 characters, sent zero-padded;
         * NULL = none. Stops misconfigured neighbours, not attackers: the
         * password travels in clear text. */
        char *auth_pass;
        int line;                    /* line of the instance's group in the file */
};

struct hamgr_check_config {
        char *name;                  /* unique, like instance names */
        enum health_check_type type;
        uint32_t interval_ms;        /* 10..3600000 (default 1000) */
        uint32_t timeout_ms;         /* 10..3600000, <= interval_ms (default: interval_ms) */
        uint32_t rise;               /* 1..100 (default 2) */
        uint32_t fall;               /* 1..100 (default 3) */
        char *interface;             /* wireguard, link: required */
        uint32_t max_handshake_age_s;/* wireguard: a peer is fresh below this age, 1..86400 (default 180) */
        struct ip_address target;    /* icmp, tcp: required ("address" key; tcp "address:port" or "[v6]:port") */
        uint16_t port;               /* tcp */
        char *command;               /* exec: absolute path, run without arguments */
        int line;
};

/* A WireGuard interface whose tunnels follow a VRRP instance or group. */
struct hamgr_wireguard_config {
        char *interface;
        enum wg_backend backend;     /* "auto" (default) | "kernel" | "uapi" */
        char *follow;                /* name of a vrrp instance or a group */
        /* Source of the gateway's WireGuard packets while MASTER, normally a
         * virtual IP of the followed instance(s); family AF_UNSPEC = none. */
        struct ip_address source_address;
        int line;
};

/* Spoke side: rotate one peer among candidate gateway endpoints. */
struct hamgr_endpoint_config {
        char *interface;
        uint8_t peer[WG_KEY_LEN];    /* public key ("peer", base64) */
        char **candidates;           /* "host:port" or "[v6]:port", resolved at each rotation; 1..16 */
        size_t n_candidates;
        uint32_t stale_after_s;      /* handshake older than this: rotate; 5..3600 (default 10 ... must exceed 5 s REKEY_TIMEOUT) */
        bool prefer_first;           /* return to the first candidate when it answers again (default false) */
        enum wg_backend backend;     /* as for wireguard entries; AUTO: that of a wireguard entry of the interface, else auto */
        int line;
};

struct hamgr_group_config {
        char *name;
        char **instances;            /* names of hamgr_vrrp_config entries */
        size_t n_instances;
        int line;
};

struct hamgr_notify_config {
        char *script;                /* generic script, keepalived's 4 arguments; NULL = none */
        char *master;                /* per-state scripts; NULL = none */
        char *backup;
        char *fault;
        char *stop;
        uint32_t timeout_ms;         /* 1..3600000 (default 10000) */
};

/* A node this one replicates with, pinned by its sync public key. */
struct hamgr_sync_peer_config {
        char *name;
        char *address;               /* "IPv4:port" or "[IPv6]:port" */
        uint8_t public_key[WG_KEY_LEN];
        int line;
};

/* Replication of the WireGuard interfaces listed under `wireguard`. */
struct hamgr_sync_config {
        bool enabled;                /* a sync section is present */
        char *listen;                /* "IPv4:port" or "[IPv6]:port" */
        char *private_key_file;      /* absolute path; see hamgr genkey */
        int private_key_file_line;
        uint32_t poll_interval_ms;   /* 100..3600000 (default 1000) */
        uint32_t bootstrap_grace_s;  /* 0..86400 (default 30): without a state, wait this long for a peer's */
        uint32_t rekey_interval_ms;  /* 1000..86400000 (default 120000): fresh handshake */
        uint32_t tombstone_retention_s; /* minimum age of a collected tombstone (default 7 days) */
        struct hamgr_sync_peer_config *peers;
        size_t n_peers;
        int line;
};

struct hamgr_config {
        char *path;                  /* the file this was loaded from */
        char *node_name;             /* default: the host name */
        char *state_dir;
        char *control_socket;
        struct hamgr_vrrp_config *vrrp;
        size_t n_vrrp;
        struct hamgr_group_config *groups;
        size_t n_groups;
        struct hamgr_notify_config notify;
        struct hamgr_check_config *checks;
        size_t n_checks;
        struct hamgr_wireguard_config *wireguard;
        size_t n_wireguard;
        struct hamgr_endpoint_config *endpoints;
        size_t n_endpoints;
        struct hamgr_sync_config sync;
};

/* One problem found while loading. */
struct hamgr_config_error {
        int line;                    /* 0 when the error has no line (file missing) */
        char *message;
};

struct hamgr_config_errors {
        struct hamgr_config_error *items;
        size_t n;
};

/*
 * Load PATH. Returns 0 and a new config in *ret, or a negative errno:
 * -EINVAL with every problem appended to *errors (all errors are
 * collected, not only the first); -ENOENT / -EACCES etc. if the file cannot
 * be read (also recorded in *errors, line 0); -EBADF for a path that is
 * not a regular file (a FIFO or a device is refused without blocking).
 * PATH "-" reads standard input. *ret is untouched on failure.
 */
int hamgr_config_load(const char *path, struct hamgr_config **ret, struct hamgr_config_errors *errors);

/* As hamgr_config_load() but from memory; NAME is used in messages. */
int hamgr_config_load_string(const char *text, const char *name, struct hamgr_config **ret,
                             struct hamgr_config_errors *errors);

/* Print each error as "FILE:LINE: message" (or "FILE: message" for line 0). */
void hamgr_config_errors_print(const struct hamgr_config_errors *errors, const char *file, FILE *out);

void hamgr_config_errors_clear(struct hamgr_config_errors *errors);

/*
 * Advice about a valid CONFIG that does not stop it from loading ("hamgr
 * check" prints it and still succeeds). Each message, starting with
 * "warning: ", is appended to *warnings with the line it is about. Returns
 * 0, or -ENOMEM (messages appended so far are kept).
 * Today: an IPv6 instance whose first virtual IP is not link-local (RFC
 * 9568 5.2.9: the first address of an IPv6 advertisement should be the
 * virtual router's link-local address); a non-zero track_checks weight on
 * an address owner (priority 255, never adjusted); preempt_delay_ms with
 * preempt = false.
 */
int hamgr_config_warnings(const struct hamgr_config *config, struct hamgr_config_errors *warnings);

/* Destructors accept NULL. */
struct hamgr_config *hamgr_config_free(struct hamgr_config *c);
static inline void hamgr_config_freep(struct hamgr_config **c) {
        hamgr_config_free(*c);
}

/* Find an instance or group by name; NULL if none. */
const struct hamgr_vrrp_config *hamgr_config_find_vrrp(const struct hamgr_config *c, const char *name);
const struct hamgr_group_config *hamgr_config_find_group(const struct hamgr_config *c, const char *name);
const struct hamgr_check_config *hamgr_config_find_check(const struct hamgr_config *c, const char *name);

/* True when the two instance configs would run the same protocol instance
 * (track_checks compared as a set),
 * so a reload keeps its state (everything compared except `line`). */
bool hamgr_vrrp_config_equal(const struct hamgr_vrrp_config *a, const struct hamgr_vrrp_config *b);
