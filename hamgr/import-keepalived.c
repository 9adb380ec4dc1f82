/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/ipaddr.h"
#include "common/macro.h"
#include "config-internal.h"
#include "import-keepalived.h"
#include "keepalived-parse.h"
#include "vrrp/packet.h"

#define INCLUDE_MAX_DEPTH 8
#define MARK "# import-keepalived: "

struct strv {
        char **v;
        size_t n;
        size_t allocated;
};

struct track {
        char *check;                    /* keepalived script name; resolved at the end */
        int weight;
        bool has_weight;
        bool reverse;
        bool link;                      /* a weighted track_interface: a check of type link */
        int line;
};

struct instance {
        char *kname;                    /* as written in keepalived.conf */
        char *name;                     /* hamgr's */
        int line;
        char *interface;
        int vrid;                       /* 0: unset */
        int priority;                   /* -1: unset */
        int version;                    /* 0: unset */
        long advert_ms;                 /* -1: unset */
        int preempt;                    /* -1: unset */
        long preempt_delay_ms;
        int accept;
        int family;
        struct strv vips;               /* "address[/len]" */
        struct strv peers;
        char *unicast_src;
        int unicast_ttl;
        struct strv track_ifaces;
        struct track *tracks;
        size_t n_tracks;
        struct strv routes;             /* libconfig groups, formatted */
        struct strv route_keys;
        long garp_delay, garp_repeat, garp_refresh, garp_interval_ms;
        char *auth_pass;
        bool auth_ah;
        struct strv comments;           /* written inside the instance */
        char *skip;                     /* why the whole instance is commented out */
        long group;                     /* index in importer.groups, -1: none */
};

struct script {
        char *kname;
        char *name;
        int line;
        char *command;
        char *link_iface;               /* a check of type link, for a weighted track_interface */
        long interval_ms, timeout_ms, rise, fall;
        int weight;
        bool reverse;
        char *unusable;                 /* why it cannot be a hamgr check */
        bool used;
        struct strv comments;
};

struct group {
        char *kname;
        char *name;
        int line;
        char *skip;
        struct strv kept;               /* hamgr names of the members */
        struct strv seen;               /* checks with a weight in some member */
        struct strv members;            /* keepalived instance names */
        struct track *tracks;
        size_t n_tracks;
        struct strv comments;
};

struct notify_set {
        char *master, *backup, *fault, *stop, *script;
        char *from;                     /* "vrrp_instance NAME" that set them */
};

struct importer {
        const char *source;
        keepalived_include_fn include;
        void *userdata;
        unsigned depth;
        int error_line;
        const char *error;

        struct strv head;               /* comments before everything */
        char *node_name;
        int default_version;
        long g_garp_delay, g_garp_repeat, g_garp_refresh, g_garp_interval_ms;

        struct instance *instances;
        size_t n_instances;
        struct script *scripts;
        size_t n_scripts;
        struct group *groups;
        size_t n_groups;
        struct notify_set notify;
        struct strv notify_comments;
};

/* ---- small helpers ------------------------------------------------------- */

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static void strv_done(struct strv *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        *s = (struct strv) {};
}

_printf_(2, 3) static int strv_pushf(struct strv *s, const char *fmt, ...) {
        char **v, *p;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&p, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (s->n == s->allocated) {
                size_t m = s->allocated ? s->allocated * 2 : 8;

                v = reallocarray(s->v, m, sizeof(*v));
                if (!v) {
                        free(p);
                        return -ENOMEM;
                }
                s->v = v;
                s->allocated = m;
        }
        s->v[s->n++] = p;
        return 0;
}

static bool strv_contains(const struct strv *s, const char *x) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->v[i], x))
                        return true;
        return false;
}

static int set_str(char **dst, const char *src) {
        char *p = strdup(src);

        if (!p)
                return -ENOMEM;
        free(*dst);
        *dst = p;
        return 0;
}

/* The statement's words from I on, joined by blanks, for a comment. */
static char *joined(const struct kconf_stmt *s, size_t from) {
        size_t len = 1;
        char *p;

        for (size_t i = from; i < s->n_words; i++)
                len += strlen(s->words[i]) + 1;
        p = calloc(1, len);
        if (!p)
                return NULL;
        for (size_t i = from; i < s->n_words; i++) {
                if (i > from)
                        strcat(p, " ");
                strcat(p, s->words[i]);
        }
        return p;
}

/* Adds "# import-keepalived: line N: <statement>: WHY" to LIST. */
_printf_(3, 4) static int note(struct strv *list, const struct kconf_stmt *s, const char *why, ...) {
        _cleanup_(freep) char *what = NULL, *reason = NULL;
        va_list ap;
        int r;

        va_start(ap, why);
        r = vasprintf(&reason, why, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (!s)
                return strv_pushf(list, MARK "%s", reason);
        what = joined(s, 0);
        if (!what)
                return -ENOMEM;
        return strv_pushf(list, MARK "line %d: '%s%s': %s", s->line, what, s->has_block ? " { ... }" : "", reason);
}

/* Text that can go into a libconfig string as it is, apart from escaping
 * quotes and backslashes: printable ASCII or UTF-8, no control characters. */
static bool text_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static void put_str(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

static bool parse_long(const char *s, long min, long max, long *ret) {
        char *end;
        long v;

        if (!s || !*s)
                return false;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || *end || v < min || v > max)
                return false;
        *ret = v;
        return true;
}

/* keepalived takes seconds with decimals in places ("0.1"). */
static bool parse_seconds_ms(const char *s, long max_ms, long *ret) {
        char *end;
        double d;

        if (!s || !*s || strspn(s, "0123456789.") != strlen(s))
                return false;
        errno = 0;
        d = strtod(s, &end);
        if (errno != 0 || *end || !isfinite(d) || d < 0 || d * 1000 > (double) max_ms)
                return false;
        *ret = lround(d * 1000);
        return true;
}

/* A hamgr name for keepalived's NAME: characters outside hamgr's set become
 * '_', cut at 32, and made unique against TAKEN by a suffix. */
static char *hamgr_name(const char *kname, const char *const *taken, size_t n_taken) {
        char base[NAME_LEN_MAX + 1], *out;
        size_t n = 0;

        for (const char *p = kname; *p && n < NAME_LEN_MAX; p++)
                base[n++] = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", *p) ? *p : '_';
        if (n == 0)
                base[n++] = 'x';
        base[n] = '\0';
        for (unsigned k = 1; k < 10000; k++) {
                bool clash = false;

                if (k == 1)
                        out = strdup(base);
                else if (asprintf(&out, "%.*s-%u", NAME_LEN_MAX - 5, base, k) < 0)
                        out = NULL;
                if (!out)
                        return NULL;
                for (size_t i = 0; i < n_taken && !clash; i++)
                        clash = taken[i] && streq(taken[i], out);
                if (!clash)
                        return out;
                free(out);
        }
        return NULL;
}

static const char *word(const struct kconf_stmt *s, size_t i) {
        return i < s->n_words ? s->words[i] : NULL;
}

/* A program line that hamgr can run: an absolute path and nothing else. */
static const char *program_problem(const char *cmd) {
        if (!text_ok(cmd))
                return "it contains control characters";
        if (strpbrk(cmd, " \t"))
                return "hamgr runs a path without arguments of its own: put the command line in an "
                       "executable script (#!/bin/sh, then exec COMMAND \"$@\") and give its path";
        if (cmd[0] != '/')
                return "hamgr needs an absolute path";
        return NULL;
}

/* ---- include ------------------------------------------------------------ */

typedef int (*walk_fn)(struct importer *imp, const struct kconf_stmt *list, size_t n, void *ctx);

/* Follows "include PATH" through the callback, walking the file's statements
 * with WALK in the current context; anything else becomes a note. */
static int do_include(struct importer *imp, const struct kconf_stmt *s, struct strv *notes, walk_fn walk,
                      void *ctx) {
        struct kconf_stmt *tree = NULL;
        const char *path = word(s, 1), *reason = NULL;
        char *buf = NULL;
        size_t len = 0;
        int line = 0, r;

        if (!path || s->n_words != 2 || s->has_block)
                return note(notes, s, "not understood: include takes one path");
        if (!imp->include)
                return note(notes, s, "not followed (reading from standard input); convert that file on its own");
        if (strpbrk(path, "*?["))
                return note(notes, s, "not followed: hamgr import-keepalived does not expand globs; "
                            "convert those files and merge them by hand");
        if (imp->depth >= INCLUDE_MAX_DEPTH)
                return note(notes, s, "not followed: includes nested deeper than %d", INCLUDE_MAX_DEPTH);
        r = imp->include(path, &buf, &len, imp->userdata);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return note(notes, s, "not followed: cannot read it: %s", strerror(-r));
        r = kconf_parse(buf, len, &tree, &line, &reason);
        free(buf);
        if (r == -EBADMSG)
                return note(notes, s, "not followed: line %d of that file: %s", line, reason);
        if (r < 0)
                return r;
        r = strv_pushf(notes, MARK "line %d: following include %s", s->line, path);
        if (r >= 0) {
                imp->depth++;
                r = walk(imp, tree->children, tree->n_children, ctx);
                imp->depth--;
        }
        kconf_free(tree);
        return r;
}

/* ---- vrrp_script -------------------------------------------------------- */

static int walk_script(struct importer *imp, const struct kconf_stmt *list, size_t n, void *ctx) {
        struct script *sc = ctx;
        long v;
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct kconf_stmt *s = &list[i];
                const char *k = s->words[0], *a = word(s, 1);

                if (streq(k, "include"))
                        r = do_include(imp, s, &sc->comments, walk_script, sc);
                else if (streq(k, "script") && a) {
                        const char *why = program_problem(a);

                        if (s->n_words > 2)
                                why = "hamgr runs a path without arguments of its own: put the command line "
                                      "in an executable script (#!/bin/sh, then exec COMMAND \"$@\") and give "
                                      "its path";
                        if (why) {
                                free(sc->unusable);
                                if (asprintf(&sc->unusable, "script %s: %s", a, why) < 0)
                                        return -ENOMEM;
                        } else
                                r = set_str(&sc->command, a);
                } else if (streq(k, "interval") && parse_seconds_ms(a, 3600000, &v) && v >= 10)
                        sc->interval_ms = v;
                else if (streq(k, "timeout") && parse_seconds_ms(a, 3600000, &v) && v >= 10)
                        sc->timeout_ms = v;
                else if (streq(k, "rise") && parse_long(a, 1, 100, &v))
                        sc->rise = v;
                else if (streq(k, "fall") && parse_long(a, 1, 100, &v))
                        sc->fall = v;
                else if (streq(k, "weight") && parse_long(a, -254, 254, &v)) {
                        sc->weight = (int) v;
                        if (streq(word(s, 2) ?: "", "reverse"))
                                sc->reverse = true;
                } else if (streq(k, "user"))
                        r = note(&sc->comments, s, "hamgr runs checks as its own user (root); "
                                 "drop privileges in the program if it needs to");
                else if (streq(k, "init_fail"))
                        r = note(&sc->comments, s, "no equivalent: a hamgr check starts neither up nor down "
                                 "and decides after rise or fall results");
                else
                        r = note(&sc->comments, s, "not supported in a hamgr check (or a value out of range)");
        }
        return r;
}

static struct script *script_add(struct importer *imp, const char *kname, int line) {
        struct script *v = reallocarray(imp->scripts, imp->n_scripts + 1, sizeof(*v));

        if (!v)
                return NULL;
        imp->scripts = v;
        v = &v[imp->n_scripts];
        /* keepalived's defaults, which differ from hamgr's for rise and fall. */
        *v = (struct script) { .line = line, .interval_ms = 1000, .timeout_ms = -1, .rise = 1, .fall = 1 };
        v->kname = strdup(kname);
        if (!v->kname)
                return NULL;
        imp->n_scripts++;
        return v;
}

static struct script *script_find(struct importer *imp, const char *kname) {
        for (size_t i = 0; i < imp->n_scripts; i++)
                if (!imp->scripts[i].link_iface && streq(imp->scripts[i].kname, kname))
                        return &imp->scripts[i];
        return NULL;
}

/* ---- tracking ----------------------------------------------------------- */

static int track_add(struct track **tracks, size_t *n, const char *check, int weight, bool has_weight,
                     bool reverse, bool link, int line) {
        struct track *v = reallocarray(*tracks, *n + 1, sizeof(*v));

        if (!v)
                return -ENOMEM;
        *tracks = v;
        v[*n] = (struct track) { .weight = weight, .has_weight = has_weight, .reverse = reverse, .link = link,
                                 .line = line };
        v[*n].check = strdup(check);
        if (!v[*n].check)
                return -ENOMEM;
        (*n)++;
        return 0;
}

/* "name [weight N [reverse]]" lines of a track_script block. */
static int parse_track_scripts(const struct kconf_stmt *b, struct track **tracks, size_t *n, struct strv *notes) {
        int r = 0;

        for (size_t i = 0; i < b->n_children && r >= 0; i++) {
                const struct kconf_stmt *s = &b->children[i];
                long w = 0;
                bool has = false, reverse = false;

                if (s->n_words >= 3 && streq(s->words[1], "weight")) {
                        if (!parse_long(s->words[2], -254, 254, &w)) {
                                r = note(notes, s, "weight out of range -254..254");
                                continue;
                        }
                        has = true;
                        reverse = streq(word(s, 3) ?: "", "reverse");
                } else if (s->n_words != 1 || s->has_block) {
                        r = note(notes, s, "not understood");
                        continue;
                }
                r = track_add(tracks, n, s->words[0], (int) w, has, reverse, false, s->line);
        }
        return r;
}

/* "iface [weight N]": weight 0 is hamgr's track_interfaces (FAULT while
 * down); another weight becomes a link check with that weight. */
static int parse_track_interfaces(const struct kconf_stmt *b, struct strv *ifaces, struct track **tracks,
                                  size_t *n, struct strv *notes) {
        int r = 0;

        for (size_t i = 0; i < b->n_children && r >= 0; i++) {
                const struct kconf_stmt *s = &b->children[i];
                const char *ifname = s->words[0];
                long w = 0;

                if (s->n_words >= 3 && streq(s->words[1], "weight")) {
                        if (!parse_long(s->words[2], -254, 254, &w)) {
                                r = note(notes, s, "weight out of range -254..254");
                                continue;
                        }
                        if (s->n_words > 3) {
                                r = note(notes, s, "'reverse' has no equivalent in hamgr; not tracked");
                                continue;
                        }
                } else if (s->n_words != 1 || s->has_block) {
                        r = note(notes, s, "not understood");
                        continue;
                }
                if (!ifname_is_valid(ifname))
                        r = note(notes, s, "not a valid interface name");
                else if (w == 0) {
                        if (!strv_contains(ifaces, ifname))
                                r = strv_pushf(ifaces, "%s", ifname);
                } else {
                        r = note(notes, s, "a weighted interface becomes a check of type link with weight %ld", w);
                        if (r >= 0)
                                r = track_add(tracks, n, ifname, (int) w, true, false, true, s->line);
                }
        }
        return r;
}

/* ---- notify ------------------------------------------------------------- */

static int parse_notify(struct importer *imp, const struct kconf_stmt *s, const char *owner, struct strv *notes) {
        static const struct {
                const char *key;
                size_t offset;
        } map[] = {
                { "notify_master", offsetof(struct notify_set, master) },
                { "notify_backup", offsetof(struct notify_set, backup) },
                { "notify_fault", offsetof(struct notify_set, fault) },
                { "notify_stop", offsetof(struct notify_set, stop) },
                { "notify", offsetof(struct notify_set, script) },
        };
        const char *cmd = word(s, 1), *why;
        char **slot = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (streq(s->words[0], map[i].key))
                        slot = (char **) ((char *) &imp->notify + map[i].offset);
        if (!slot)
                return note(notes, s, "no equivalent in hamgr's notify section");
        if (!cmd || s->has_block)
                return note(notes, s, "not understood");
        why = program_problem(cmd);
        if (why)
                return note(notes, s, "%s", why);
        if (s->n_words > 2) {
                r = note(notes, s, "hamgr runs notify programs as its own user (root); the user and group are "
                         "dropped");
                if (r < 0)
                        return r;
        }
        /* hamgr's notify section is global; keepalived's belongs to an
         * instance or group. The first one wins. */
        if (*slot && !streq(*slot, cmd))
                return note(notes, s, "hamgr has one notify section for every instance and group and it "
                            "already runs %s (from %s); the program gets the instance or group name as "
                            "an argument or in HAMGR_INSTANCE, see hamgr(8)", *slot, imp->notify.from);
        if (!imp->notify.from && set_str(&imp->notify.from, owner) < 0)
                return -ENOMEM;
        if (s->words[0][6] == '\0')
                r = note(notes, s, "becomes notify.script, which hamgr runs with keepalived's arguments "
                         "(TYPE NAME STATE PRIORITY)");
        else
                r = note(notes, s, "becomes notify.%s; unlike keepalived, hamgr passes it the four "
                         "arguments of notify too (TYPE NAME STATE PRIORITY), see hamgr(8)", s->words[0] + 7);
        if (r < 0)
                return r;
        return set_str(slot, cmd);
}

/* ---- vrrp_instance ------------------------------------------------------ */

static int parse_vips(struct instance *in, const struct kconf_stmt *b, bool excluded) {
        int r = 0;

        for (size_t i = 0; i < b->n_children && r >= 0; i++) {
                const struct kconf_stmt *s = &b->children[i];
                struct ip_prefix p;
                bool skip = false;

                if (ip_prefix_parse(s->words[0], &p) < 0) {
                        r = note(&in->comments, s, "not an address[/prefix]; left out");
                        continue;
                }
                if (hamgr_vip_unusable(&p)) {
                        r = note(&in->comments, s, "%s is %s, which cannot be a virtual router's address; left out",
                                 s->words[0], hamgr_vip_unusable(&p));
                        continue;
                }
                for (size_t j = 1; j < s->n_words && r >= 0; j += 2) {
                        const char *o = s->words[j], *a = word(s, j + 1);

                        if (streq(o, "dev") && a && in->interface && !streq(a, in->interface)) {
                                r = note(&in->comments, s, "hamgr adds virtual IPs to the instance's interface "
                                         "only; make it an instance of its own on %s", a);
                                skip = true;
                        } else if (streq(o, "dev") && a)
                                continue;
                        else if (streq(o, "label"))
                                r = note(&in->comments, s, "address labels are not set by hamgr (the address "
                                         "is added without one)");
                        else if (streq(o, "brd") || streq(o, "broadcast"))
                                r = note(&in->comments, s, "hamgr sets no broadcast address");
                        else if (streq(o, "scope"))
                                r = note(&in->comments, s, "hamgr adds virtual IPs with global scope");
                        else {
                                r = note(&in->comments, s, "option '%s' not supported; the address is added "
                                         "without it", o);
                                j--; /* options without an argument (no_track, home, ...) */
                        }
                }
                if (r < 0 || skip)
                        continue;
                if (excluded && in->family && p.address.family == in->family) {
                        r = note(&in->comments, s, "an excluded address of the instance's family: hamgr "
                                 "advertises it with the others");
                        if (r < 0)
                                return r;
                }
                if (!in->family && !excluded)
                        in->family = p.address.family;
                r = strv_pushf(&in->vips, "%s", s->words[0]);
        }
        return r;
}

static bool peer_listed(const struct strv *list, const struct ip_address *a) {
        for (size_t i = 0; i < list->n; i++) {
                struct ip_address b;

                if (ip_address_parse(list->v[i], &b) >= 0 && ip_address_equal(&b, a))
                        return true;
        }
        return false;
}

static int parse_peers(struct instance *in, const struct kconf_stmt *b) {
        int r = 0;

        for (size_t i = 0; i < b->n_children && r >= 0; i++) {
                const struct kconf_stmt *s = &b->children[i];
                struct ip_address a;

                if (ip_address_parse(s->words[0], &a) < 0)
                        r = note(&in->comments, s, "not an address; left out");
                else if (hamgr_peer_unusable(&a))
                        r = note(&in->comments, s, "%s is %s; left out", s->words[0], hamgr_peer_unusable(&a));
                else {
                        if (s->n_words > 1)
                                r = note(&in->comments, s, "per-peer options are not supported; hamgr does not "
                                         "check the TTL in unicast mode");
                        if (r >= 0 && !peer_listed(&in->peers, &a))
                                r = strv_pushf(&in->peers, "%s", s->words[0]);
                }
        }
        return r;
}

static bool prefix_host_bits_clear(const struct ip_prefix *p) {
        size_t alen = ip_family_addr_len(p->address.family);

        for (size_t bit = p->prefixlen; bit < alen * 8; bit++)
                if (p->address.addr.bytes[bit / 8] & (0x80 >> (bit % 8)))
                        return false;
        return true;
}

/* One line of virtual_routes: [src IP] [to] [TYPE] PREFIX options. */
static int parse_route(struct instance *in, const struct kconf_stmt *s) {
        _cleanup_(freep) char *text = NULL, *key = NULL;
        const char *to = NULL, *via = NULL, *dev = NULL, *src = NULL, *type = NULL, *table = NULL;
        long metric = -1, tnum = 0;
        struct ip_prefix dst;
        struct ip_address a;
        size_t len = 0;
        FILE *f;
        int r = 0;

        for (size_t i = 0; i < s->n_words; i++) {
                const char *w = s->words[i], *arg = word(s, i + 1);

                if (streq(w, "to") && !to)
                        continue;
                if (!to && (streq(w, "blackhole") || streq(w, "unreachable") || streq(w, "prohibit"))) {
                        type = w;
                        continue;
                }
                if (!to && ip_prefix_parse(w, &dst) >= 0) {
                        to = w;
                        continue;
                }
                if (!arg && !streq(w, "no_track"))
                        return note(&in->comments, s, "'%s' without a value; route left out", w);
                if (streq(w, "src"))
                        src = arg;
                else if (streq(w, "via") || streq(w, "gw"))
                        via = arg;
                else if (streq(w, "dev"))
                        dev = arg;
                else if (streq(w, "table"))
                        table = arg;
                else if (streq(w, "metric") || streq(w, "preference") || streq(w, "priority")) {
                        if (!parse_long(arg, 0, 4294967295L, &metric))
                                return note(&in->comments, s, "metric out of range; route left out");
                } else if (streq(w, "no_track")) {
                        continue; /* hamgr never tracks its routes */
                } else if (streq(w, "or"))
                        return note(&in->comments, s, "multipath routes are not supported; route left out");
                else if (streq(w, "scope") || streq(w, "protocol") || streq(w, "proto")) {
                        r = note(&in->comments, s, "'%s %s' not supported: hamgr sets it itself", w, arg);
                        if (r < 0)
                                return r;
                } else
                        return note(&in->comments, s, "option '%s' not supported; route left out", w);
                i++;
        }
        if (!to)
                return note(&in->comments, s, "no destination; route left out");
        if (!prefix_host_bits_clear(&dst))
                return note(&in->comments, s, "destination has host bits set; route left out");
        if (via && (ip_address_parse(via, &a) < 0 || a.family != dst.address.family))
                return note(&in->comments, s, "gateway is not an address of the destination's family; route left out");
        if (src && (ip_address_parse(src, &a) < 0 || a.family != dst.address.family))
                return note(&in->comments, s, "src is not an address of the destination's family; route left out");
        if (dev && !ifname_is_valid(dev))
                return note(&in->comments, s, "not a valid interface name; route left out");
        if (type && (via || dev))
                return note(&in->comments, s, "a %s route has no next hop; route left out", type);
        if (table && !streq(table, "main") && !streq(table, "default") &&
            (!parse_long(table, 1, 4294967295L, &tnum) || tnum == 255))
                return note(&in->comments, s, "table must be a number (not 255), main or default: hamgr does "
                            "not read rt_tables; route left out");

        /* What names a route in the kernel, spelt one way: hamgr refuses
         * the same destination, table and metric twice. */
        {
                char canon[INET6_ADDRSTRLEN];
                long t = tnum > 0 ? tnum : table && streq(table, "default") ? 253 : 254;
                long m = metric >= 0 ? metric : dst.address.family == AF_INET6 ? 1024 : 0;

                if (asprintf(&key, "%s/%u %ld %ld", ip_address_to_string(&dst.address, canon, sizeof(canon)),
                             dst.prefixlen, t, m) < 0)
                        return -ENOMEM;
        }
        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        fputs("{ to = ", f);
        put_str(f, to);
        fputs(";", f);
        if (via) {
                fputs(" via = ", f);
                put_str(f, via);
                fputs(";", f);
        }
        if (dev) {
                fputs(" dev = ", f);
                put_str(f, dev);
                fputs(";", f);
        }
        if (src) {
                fputs(" src = ", f);
                put_str(f, src);
                fputs(";", f);
        }
        if (metric >= 0)
                fprintf(f, " metric = %ld;", metric);
        if (table && tnum > 0)
                fprintf(f, " table = %ld;", tnum);
        else if (table)
                fprintf(f, " table = \"%s\";", table);
        if (type)
                fprintf(f, " type = \"%s\";", type);
        fputs(" }", f);
        if (fclose(f) != 0)
                return -ENOMEM;
        r = strv_pushf(&in->routes, "%s", text);
        if (r >= 0)
                r = strv_pushf(&in->route_keys, "%s", key);
        return r;
}

static int parse_auth(struct instance *in, const struct kconf_stmt *b) {
        const char *type = NULL, *pass = NULL;
        int r = 0;

        for (size_t i = 0; i < b->n_children; i++) {
                const struct kconf_stmt *s = &b->children[i];

                if (streq(s->words[0], "auth_type") && word(s, 1))
                        type = s->words[1];
                else if (streq(s->words[0], "auth_pass") && word(s, 1))
                        pass = s->words[1];
                else if ((r = note(&in->comments, s, "not understood")) < 0)
                        return r;
        }
        if (type && streq(type, "AH")) {
                in->auth_ah = true;
                return note(&in->comments, b, "auth_type AH (IPsec AH, RFC 2338) is not supported by hamgr: "
                            "this instance sends no authentication, so a keepalived peer with AH drops its "
                            "adverts; use PASS (auth_pass) or none on both");
        }
        if (!type || !streq(type, "PASS") || !pass)
                return note(&in->comments, b, "needs auth_type PASS and an auth_pass; left out");
        if (!text_ok(pass))
                return note(&in->comments, b, "the password has control characters; left out");
        if (strlen(pass) > VRRP_V2_AUTH_LEN) {
                r = note(&in->comments, b, "only the first %d characters of a password are sent (keepalived "
                         "ignores the rest too)", VRRP_V2_AUTH_LEN);
                if (r < 0)
                        return r;
        }
        free(in->auth_pass);
        in->auth_pass = strndup(pass, VRRP_V2_AUTH_LEN);
        return in->auth_pass ? 0 : -ENOMEM;
}

static int walk_instance(struct importer *imp, const struct kconf_stmt *list, size_t n, void *ctx) {
        struct instance *in = ctx;
        _cleanup_(freep) char *owner = NULL;
        long v;
        int r = 0;

        if (asprintf(&owner, "vrrp_instance %s", in->kname) < 0)
                return -ENOMEM;
        /* The interface first: virtual_ipaddress "dev" compares with it. */
        for (size_t i = 0; i < n; i++)
                if (streq(list[i].words[0], "interface") && list[i].n_words == 2 &&
                    ifname_is_valid(list[i].words[1]) && set_str(&in->interface, list[i].words[1]) < 0)
                        return -ENOMEM;

        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct kconf_stmt *s = &list[i];
                const char *k = s->words[0], *a = word(s, 1);
                bool block = s->has_block;

                if (streq(k, "include"))
                        r = do_include(imp, s, &in->comments, walk_instance, in);
                else if (streq(k, "interface") && !block) {
                        if (!a || !ifname_is_valid(a))
                                r = note(&in->comments, s, "not a valid interface name");
                } else if (streq(k, "state") && !block)
                        r = note(&in->comments, s, "hamgr has no initial state: every instance starts as "
                                 "BACKUP and the priority elects the master (keepalived ends up there too)");
                else if (streq(k, "virtual_router_id") && parse_long(a, 1, 255, &v))
                        in->vrid = (int) v;
                else if (streq(k, "priority") && parse_long(a, 1, 255, &v))
                        in->priority = (int) v;
                else if (streq(k, "version") && parse_long(a, 2, 3, &v))
                        in->version = (int) v;
                else if (streq(k, "advert_int") && parse_seconds_ms(a, 255000, &v) && v > 0)
                        in->advert_ms = v;
                else if (streq(k, "nopreempt") && !a)
                        in->preempt = 0;
                else if (streq(k, "preempt") && !a)
                        in->preempt = 1;
                else if (streq(k, "preempt_delay") && parse_seconds_ms(a, 3600000, &v))
                        in->preempt_delay_ms = v;
                else if (streq(k, "accept") && !a)
                        in->accept = 1;
                else if (streq(k, "no_accept") && !a)
                        in->accept = 0;
                else if (streq(k, "unicast_src_ip") && a && ip_address_parse(a, &(struct ip_address) {}) >= 0)
                        r = set_str(&in->unicast_src, a);
                else if (streq(k, "unicast_ttl") && parse_long(a, 1, 255, &v))
                        in->unicast_ttl = (int) v;
                else if (streq(k, "unicast_peer") && block)
                        r = parse_peers(in, s);
                else if (streq(k, "virtual_ipaddress") && block)
                        r = parse_vips(in, s, false);
                else if (streq(k, "virtual_ipaddress_excluded") && block)
                        r = parse_vips(in, s, true);
                else if (streq(k, "virtual_routes") && block) {
                        for (size_t j = 0; j < s->n_children && r >= 0; j++)
                                r = parse_route(in, &s->children[j]);
                } else if (streq(k, "track_interface") && block)
                        r = parse_track_interfaces(s, &in->track_ifaces, &in->tracks, &in->n_tracks, &in->comments);
                else if (streq(k, "track_script") && block)
                        r = parse_track_scripts(s, &in->tracks, &in->n_tracks, &in->comments);
                else if (streq(k, "authentication") && block)
                        r = parse_auth(in, s);
                else if (streq(k, "garp_master_delay") && parse_long(a, 0, 3600, &v))
                        in->garp_delay = v;
                else if (streq(k, "garp_master_repeat") && parse_long(a, 1, 100, &v))
                        in->garp_repeat = v;
                else if (streq(k, "garp_master_refresh") && parse_long(a, 0, 86400, &v))
                        in->garp_refresh = v;
                else if (streq(k, "garp_interval") && parse_seconds_ms(a, 10000, &v))
                        in->garp_interval_ms = v;
                else if (streq(k, "garp_lower_prio_repeat") || streq(k, "garp_master_refresh_repeat") ||
                         streq(k, "garp_lower_prio_delay") || streq(k, "gna_interval"))
                        r = note(&in->comments, s, "no separate setting in hamgr: after a lower-priority "
                                 "advert and on refresh hamgr sends the garp repeat/interval_ms bursts, and "
                                 "neighbour advertisements share interval_ms");
                else if (strncmp(k, "notify", 6) == 0)
                        r = parse_notify(imp, s, owner, &in->comments);
                else if (streq(k, "dont_track_primary"))
                        r = note(&in->comments, s, "no equivalent: hamgr always tracks its own interface");
                else if (streq(k, "mcast_src_ip"))
                        r = note(&in->comments, s, "no equivalent: multicast adverts come from the interface's "
                                 "primary address");
                else if (streq(k, "use_vmac") || streq(k, "vmac_xmit_base"))
                        r = note(&in->comments, s, "not supported: hamgr moves addresses, not a virtual MAC; "
                                 "gratuitous ARP/NA tell the neighbours");
                else
                        r = note(&in->comments, s, "not supported by hamgr (or a value out of range); left out");
        }
        return r;
}

/* ---- sync groups, global_defs ------------------------------------------ */

static int walk_group(struct importer *imp, const struct kconf_stmt *list, size_t n, void *ctx) {
        struct group *g = ctx;
        _cleanup_(freep) char *owner = NULL;
        int r = 0;

        if (asprintf(&owner, "vrrp_sync_group %s", g->kname) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct kconf_stmt *s = &list[i];
                const char *k = s->words[0];

                if (streq(k, "include"))
                        r = do_include(imp, s, &g->comments, walk_group, g);
                else if (streq(k, "group") && s->has_block) {
                        for (size_t j = 0; j < s->n_children && r >= 0; j++)
                                for (size_t w = 0; w < s->children[j].n_words && r >= 0; w++)
                                        if (!strv_contains(&g->members, s->children[j].words[w]))
                                                r = strv_pushf(&g->members, "%s", s->children[j].words[w]);
                } else if (streq(k, "track_script") && s->has_block)
                        r = parse_track_scripts(s, &g->tracks, &g->n_tracks, &g->comments);
                else if (streq(k, "track_interface") && s->has_block) {
                        struct strv ifaces = {};

                        r = parse_track_interfaces(s, &ifaces, &g->tracks, &g->n_tracks, &g->comments);
                        /* hamgr tracks interfaces per instance: on the first member. */
                        for (size_t j = 0; j < ifaces.n && r >= 0; j++)
                                r = track_add(&g->tracks, &g->n_tracks, ifaces.v[j], 0, false, false, true,
                                              s->line);
                        strv_done(&ifaces);
                } else if (strncmp(k, "notify", 6) == 0)
                        r = parse_notify(imp, s, owner, &g->comments);
                else if (streq(k, "global_tracking") || streq(k, "sync_group_tracking_weight"))
                        r = note(&g->comments, s, "not needed: in hamgr a group's weights always act on every "
                                 "member");
                else
                        r = note(&g->comments, s, "not supported by hamgr; left out");
        }
        return r;
}

static int walk_global(struct importer *imp, const struct kconf_stmt *list, size_t n, void *ctx) {
        long v;
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct kconf_stmt *s = &list[i];
                const char *k = s->words[0], *a = word(s, 1);

                if (streq(k, "include"))
                        r = do_include(imp, s, &imp->head, walk_global, ctx);
                else if (streq(k, "vrrp_version") && parse_long(a, 2, 3, &v))
                        imp->default_version = (int) v;
                else if (streq(k, "router_id") && a && name_is_valid(a) && strlen(a) <= 64)
                        r = set_str(&imp->node_name, a);
                else if (streq(k, "vrrp_garp_master_delay") && parse_long(a, 0, 3600, &v))
                        imp->g_garp_delay = v;
                else if (streq(k, "vrrp_garp_master_repeat") && parse_long(a, 1, 100, &v))
                        imp->g_garp_repeat = v;
                else if (streq(k, "vrrp_garp_master_refresh") && parse_long(a, 0, 86400, &v))
                        imp->g_garp_refresh = v;
                else if (streq(k, "vrrp_garp_interval") && parse_seconds_ms(a, 10000, &v))
                        imp->g_garp_interval_ms = v;
                else if (streq(k, "vrrp_strict"))
                        r = note(&imp->head, s, "no strict mode in hamgr: it accepts what RFC 9568 allows and "
                                 "adds no firewall rules (see accept_mode in hamgr.conf(5))");
                else if (streq(k, "script_user") || streq(k, "enable_script_security"))
                        r = note(&imp->head, s, "not needed: hamgr runs checks and notify programs as its "
                                 "own user; keep their files writable by root only");
                else
                        r = note(&imp->head, s, "global setting without a hamgr equivalent; left out");
        }
        return r;
}

/* ---- top level ---------------------------------------------------------- */

static int walk_top(struct importer *imp, const struct kconf_stmt *list, size_t n, void *ctx) {
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct kconf_stmt *s = &list[i];
                const char *k = s->words[0], *a = word(s, 1);

                if (streq(k, "include"))
                        r = do_include(imp, s, &imp->head, walk_top, ctx);
                else if (streq(k, "global_defs") && s->has_block)
                        r = walk_global(imp, s->children, s->n_children, NULL);
                else if (streq(k, "vrrp_script") && s->has_block && a && s->n_words == 2) {
                        struct script *sc;

                        if (script_find(imp, a)) {
                                r = note(&imp->head, s, "a second vrrp_script of that name; left out");
                                continue;
                        }
                        sc = script_add(imp, a, s->line);
                        if (!sc)
                                return -ENOMEM;
                        r = walk_script(imp, s->children, s->n_children, sc);
                } else if (streq(k, "vrrp_instance") && s->has_block && a && s->n_words == 2) {
                        struct instance *in = reallocarray(imp->instances, imp->n_instances + 1, sizeof(*in));

                        if (!in)
                                return -ENOMEM;
                        imp->instances = in;
                        in = &in[imp->n_instances++];
                        *in = (struct instance) {
                                .line = s->line, .priority = -1, .advert_ms = -1, .preempt = -1,
                                .preempt_delay_ms = -1, .accept = -1, .unicast_ttl = -1, .garp_delay = -1,
                                .garp_repeat = -1, .garp_refresh = -1, .garp_interval_ms = -1, .group = -1,
                        };
                        in->kname = strdup(a);
                        if (!in->kname)
                                return -ENOMEM;
                        r = walk_instance(imp, s->children, s->n_children, in);
                } else if (streq(k, "vrrp_sync_group") && s->has_block && a && s->n_words == 2) {
                        struct group *g = reallocarray(imp->groups, imp->n_groups + 1, sizeof(*g));

                        if (!g)
                                return -ENOMEM;
                        imp->groups = g;
                        g = &g[imp->n_groups++];
                        *g = (struct group) { .line = s->line };
                        g->kname = strdup(a);
                        if (!g->kname)
                                return -ENOMEM;
                        r = walk_group(imp, s->children, s->n_children, g);
                } else if (k[0] == '$' || k[0] == '@')
                        r = note(&imp->head, s, "keepalived parameters and conditional lines are not expanded; "
                                 "convert the expanded configuration (keepalived --config-test can show it)");
                else if (streq(k, "virtual_server") || streq(k, "virtual_server_group"))
                        r = note(&imp->head, s, "IPVS load balancing is not part of hamgr");
                else
                        r = note(&imp->head, s, "no hamgr equivalent; left out");
        }
        return r;
}

/* ---- resolving names and clashes ---------------------------------------- */

/* Whether an instance before UPTO has P among its virtual IPs. */
static bool vip_taken(const struct importer *imp, size_t upto, const struct ip_prefix *p) {
        for (size_t i = 0; i < upto; i++) {
                const struct instance *o = &imp->instances[i];

                if (o->skip)
                        continue;
                for (size_t j = 0; j < o->vips.n; j++) {
                        struct ip_prefix q;

                        if (ip_prefix_parse(o->vips.v[j], &q) >= 0 && ip_address_equal(&q.address, &p->address))
                                return true;
                }
        }
        return false;
}

/* Whether the address of P is in LIST ("address[/len]" strings). */
static bool vip_listed(const struct strv *list, const struct ip_prefix *p) {
        for (size_t i = 0; i < list->n; i++) {
                struct ip_prefix q;

                if (ip_prefix_parse(list->v[i], &q) >= 0 && ip_address_equal(&q.address, &p->address))
                        return true;
        }
        return false;
}

static int skip_instance(struct instance *in, const char *why) {
        return set_str(&in->skip, why);
}

static int finish_instance(struct importer *imp, size_t idx) {
        struct instance *in = &imp->instances[idx];
        const char **taken;
        struct strv kept = {};
        bool global_src = false;
        int r = 0;

        taken = calloc(imp->n_instances, sizeof(*taken));
        if (!taken)
                return -ENOMEM;
        for (size_t i = 0; i < idx; i++)
                taken[i] = imp->instances[i].name;
        in->name = hamgr_name(in->kname, taken, idx);
        free(taken);
        if (!in->name)
                return -ENOMEM;
        if (!streq(in->name, in->kname)) {
                r = strv_pushf(&in->comments, MARK "named '%s': keepalived's name '%s' has characters or a "
                               "length hamgr does not take", in->name, in->kname);
                if (r < 0)
                        return r;
        }

        if (!in->version)
                in->version = imp->default_version ? imp->default_version : 2;
        if (!in->interface)
                return skip_instance(in, "no (valid) interface");
        if (!in->vrid)
                return skip_instance(in, "no (valid) virtual_router_id");

        /* Virtual IPs: drop what hamgr would refuse, keep the order. */
        in->family = 0;
        for (size_t i = 0; i < in->vips.n; i++) {
                struct ip_prefix p;

                if (ip_prefix_parse(in->vips.v[i], &p) < 0)
                        continue;
                if (!in->family)
                        in->family = p.address.family;
                if (in->family == AF_INET6 && in->version == 2) {
                        in->version = 3;
                        r = strv_pushf(&in->comments, MARK "version 3: VRRPv2 has no IPv6 (keepalived "
                                       "switches to v3 for IPv6 too)");
                        if (r < 0)
                                goto cleanup;
                }
                if (p.address.family == AF_INET6 && in->version == 2)
                        r = strv_pushf(&in->comments, MARK "virtual IP %s left out: IPv6 needs version 3 "
                                       "and this is a v2 instance", in->vips.v[i]);
                else if (vip_taken(imp, idx, &p))
                        r = strv_pushf(&in->comments, MARK "virtual IP %s left out: an earlier instance "
                                       "has it already (hamgr allows an address in one instance only)",
                                       in->vips.v[i]);
                else if (vip_listed(&kept, &p))
                        continue;
                else
                        r = strv_pushf(&kept, "%s", in->vips.v[i]);
                if (r < 0)
                        goto cleanup;
        }
        strv_done(&in->vips);
        in->vips = kept;
        kept = (struct strv) {};
        if (in->vips.n == 0) {
                r = skip_instance(in, "no virtual IP hamgr can use");
                goto cleanup;
        }
        {
                struct ip_prefix first;

                (void) ip_prefix_parse(in->vips.v[0], &first);
                in->family = first.address.family;
        }
        for (size_t i = 0; i < idx; i++) {
                const struct instance *o = &imp->instances[i];

                if (!o->skip && o->vrid == in->vrid && o->family == in->family &&
                    streq(o->interface, in->interface)) {
                        char why[128];

                        snprintf(why, sizeof(why), "virtual_router_id %d is already used on %s by '%s'",
                                 in->vrid, in->interface, o->kname);
                        r = skip_instance(in, why);
                        goto cleanup;
                }
        }

        if (in->advert_ms >= 0) {
                long ms = in->advert_ms;

                if (in->version == 2 && ms % 1000 != 0)
                        ms = ms < 1000 ? 1000 : (ms + 500) / 1000 * 1000;
                else if (in->version == 3)
                        ms = ms < 10 ? 10 : ms > 40950 ? 40950 : (ms + 5) / 10 * 10;
                if (ms != in->advert_ms) {
                        r = strv_pushf(&in->comments, MARK "advert_int %ld ms becomes %ld ms: version %d "
                                       "carries %s", in->advert_ms, ms, in->version,
                                       in->version == 2 ? "whole seconds" : "centiseconds up to 40.95 s");
                        if (r < 0)
                                goto cleanup;
                        in->advert_ms = ms;
                }
        }

        /* The source first: a global IPv6 one allows global IPv6 peers. */
        if (in->unicast_src) {
                struct ip_address a;
                const char *why = NULL;

                (void) ip_address_parse(in->unicast_src, &a);
                if (in->peers.n == 0)
                        why = "hamgr takes it in unicast mode only and there is no unicast_peer";
                else if (a.family != in->family)
                        why = "not of the instance's family";
                else
                        for (size_t i = 0; i < in->vips.n && !why; i++) {
                                struct ip_prefix v;

                                if (ip_prefix_parse(in->vips.v[i], &v) >= 0 && ip_address_equal(&v.address, &a))
                                        why = "it is one of the virtual IPs";
                        }
                if (why) {
                        r = strv_pushf(&in->comments, MARK "unicast_src_ip %s left out: %s", in->unicast_src, why);
                        if (r < 0)
                                goto cleanup;
                        in->unicast_src = mfree(in->unicast_src);
                } else if (a.family == AF_INET6 && !ip_address_is_link_local(&a))
                        global_src = true;
        }
        for (size_t i = 0; i < in->peers.n; i++) {
                struct ip_address a;

                (void) ip_address_parse(in->peers.v[i], &a);
                if (a.family != in->family)
                        r = strv_pushf(&in->comments, MARK "unicast peer %s left out: not of the instance's "
                                       "family", in->peers.v[i]);
                else if (vip_listed(&in->vips, &(struct ip_prefix) { .address = a }))
                        r = strv_pushf(&in->comments, MARK "unicast peer %s left out: it is one of the virtual "
                                       "IPs (whoever is MASTER would advertise to itself)", in->peers.v[i]);
                else if (a.family == AF_INET6 && !ip_address_is_link_local(&a) && !global_src)
                        r = strv_pushf(&in->comments, MARK "unicast peer %s left out: IPv6 adverts leave from "
                                       "the link-local address, so peers are link-local unless unicast_src_ip "
                                       "is a global address", in->peers.v[i]);
                else
                        r = strv_pushf(&kept, "%s", in->peers.v[i]);
                if (r < 0)
                        goto cleanup;
        }
        strv_done(&in->peers);
        in->peers = kept;
        kept = (struct strv) {};
        if (in->unicast_src && in->peers.n == 0) {
                r = strv_pushf(&in->comments, MARK "unicast_src_ip %s left out: no unicast_peer is left",
                               in->unicast_src);
                if (r < 0)
                        goto cleanup;
                in->unicast_src = mfree(in->unicast_src);
        }
        if (in->unicast_ttl >= 0 && in->peers.n == 0) {
                r = strv_pushf(&in->comments, MARK "unicast_ttl left out: there is no unicast_peer");
                if (r < 0)
                        goto cleanup;
                in->unicast_ttl = -1;
        }
        if (in->auth_pass && in->version != 2) {
                r = strv_pushf(&in->comments, MARK "authentication left out: VRRPv3 has none (keepalived "
                               "ignores it with version 3 too)");
                if (r < 0)
                        goto cleanup;
                in->auth_pass = mfree(in->auth_pass);
        }
        if (in->auth_ah && in->version != 2)
                in->auth_ah = false;

        /* Routes: destination, table and metric name a route; once overall. */
        for (size_t i = 0; i < in->routes.n; i++) {
                bool dup = strv_contains(&kept, in->route_keys.v[i]);

                for (size_t j = 0; j < idx && !dup; j++)
                        dup = !imp->instances[j].skip && strv_contains(&imp->instances[j].route_keys,
                                                                       in->route_keys.v[i]);
                if (dup) {
                        r = strv_pushf(&in->comments, MARK "route %s left out: the same destination, table "
                                       "and metric is already a virtual route", in->routes.v[i]);
                        if (r < 0)
                                goto cleanup;
                        in->routes.v[i][0] = '\0';
                } else if ((r = strv_pushf(&kept, "%s", in->route_keys.v[i])) < 0)
                        goto cleanup;
        }
        strv_done(&in->route_keys);
        in->route_keys = kept;
        kept = (struct strv) {};

        if (in->garp_delay < 0)
                in->garp_delay = imp->g_garp_delay;
        if (in->garp_repeat < 0)
                in->garp_repeat = imp->g_garp_repeat;
        if (in->garp_refresh < 0)
                in->garp_refresh = imp->g_garp_refresh;
        if (in->garp_interval_ms < 0)
                in->garp_interval_ms = imp->g_garp_interval_ms;
        r = 0;
cleanup:
        strv_done(&kept);
        return r;
}

static struct instance *instance_find(struct importer *imp, const char *kname) {
        for (size_t i = 0; i < imp->n_instances; i++)
                if (streq(imp->instances[i].kname, kname))
                        return &imp->instances[i];
        return NULL;
}

static struct script *link_check(struct importer *imp, const char *ifname) {
        struct script *sc;
        char kname[64];
        const char **taken;

        for (size_t i = 0; i < imp->n_scripts; i++)
                if (imp->scripts[i].link_iface && streq(imp->scripts[i].link_iface, ifname))
                        return &imp->scripts[i];
        snprintf(kname, sizeof(kname), "link-%s", ifname);
        sc = script_add(imp, kname, 0);
        if (!sc)
                return NULL;
        /* keepalived follows the link through netlink at once; a fast
         * poll with rise and fall 1 comes closest. */
        sc->interval_ms = 200;
        sc->link_iface = strdup(ifname);
        taken = calloc(imp->n_scripts, sizeof(*taken));
        if (!sc->link_iface || !taken) {
                free(taken);
                return NULL;
        }
        for (size_t i = 0; i + 1 < imp->n_scripts; i++)
                taken[i] = imp->scripts[i].name;
        sc->name = hamgr_name(kname, taken, imp->n_scripts - 1);
        free(taken);
        return sc->name ? sc : NULL;
}

/* Gives each convertible script its hamgr name (used or not). */
static int name_scripts(struct importer *imp) {
        for (size_t i = 0; i < imp->n_scripts; i++) {
                struct script *sc = &imp->scripts[i];
                const char **taken = calloc(i + 1, sizeof(*taken));

                if (!taken)
                        return -ENOMEM;
                for (size_t j = 0; j < i; j++)
                        taken[j] = imp->scripts[j].name;
                sc->name = hamgr_name(sc->kname, taken, i);
                free(taken);
                if (!sc->name)
                        return -ENOMEM;
                if (!sc->unusable && !sc->command && asprintf(&sc->unusable, "it has no script") < 0)
                        return -ENOMEM;
                if (sc->timeout_ms > sc->interval_ms) {
                        if (strv_pushf(&sc->comments, MARK "timeout %ld ms cut to the interval, %ld ms: hamgr "
                                       "never runs a check twice at once", sc->timeout_ms, sc->interval_ms) < 0)
                                return -ENOMEM;
                        sc->timeout_ms = sc->interval_ms;
                }
        }
        return 0;
}

struct resolved {
        const char *check;              /* hamgr name */
        int weight;
};

/* The track_checks of IN, with the weighted checks of its group in SEEN
 * (a check may carry a weight in one member of a group only). */
static int resolve_tracks(struct importer *imp, struct instance *in, struct strv *seen, struct resolved **ret,
                          size_t *ret_n) {
        struct resolved *out;
        size_t n = 0;
        int r = 0;

        out = calloc(in->n_tracks + 1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < in->n_tracks && r >= 0; i++) {
                const struct track *t = &in->tracks[i];
                struct script *sc = t->link ? link_check(imp, t->check) : script_find(imp, t->check);
                int weight;
                bool dup = false;

                if (t->link && !sc) {
                        r = -ENOMEM;
                        break;
                }
                if (!sc) {
                        r = strv_pushf(&in->comments, MARK "line %d: track_script %s left out: there is no "
                                       "vrrp_script of that name", t->line, t->check);
                        continue;
                }
                if (sc->unusable) {
                        r = strv_pushf(&in->comments, MARK "line %d: track_script %s left out: its vrrp_script "
                                       "cannot be a hamgr check (%s)", t->line, t->check, sc->unusable);
                        continue;
                }
                weight = t->has_weight ? t->weight : sc->weight;
                if (t->reverse || (!t->has_weight && sc->reverse)) {
                        r = strv_pushf(&in->comments, MARK "line %d: track_script %s left out: 'reverse' has "
                                       "no equivalent in hamgr", t->line, t->check);
                        continue;
                }
                for (size_t j = 0; j < n; j++)
                        dup = dup || streq(out[j].check, sc->name);
                if (dup) {
                        r = strv_pushf(&in->comments, MARK "line %d: %s tracked twice; once kept", t->line,
                                       t->check);
                        continue;
                }
                if (weight != 0 && seen) {
                        if (strv_contains(seen, sc->name)) {
                                r = strv_pushf(&in->comments, MARK "line %d: %s left out here: it carries a "
                                               "weight in another member of the group, and hamgr applies a "
                                               "group's weights to every member", t->line, t->check);
                                continue;
                        }
                        r = strv_pushf(seen, "%s", sc->name);
                        if (r < 0)
                                break;
                }
                sc->used = true;
                out[n++] = (struct resolved) { .check = sc->name, .weight = weight };
        }
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        *ret_n = n;
        return 0;
}

static int resolve_groups(struct importer *imp) {
        int r = 0;

        for (size_t i = 0; i < imp->n_groups && r >= 0; i++) {
                struct group *g = &imp->groups[i];
                const char **taken = calloc(i + 1, sizeof(*taken));
                struct instance *first = NULL;

                if (!taken)
                        return -ENOMEM;
                for (size_t j = 0; j < i; j++)
                        taken[j] = imp->groups[j].name;
                g->name = hamgr_name(g->kname, taken, i);
                free(taken);
                if (!g->name)
                        return -ENOMEM;
                for (size_t j = 0; j < g->members.n && r >= 0; j++) {
                        struct instance *in = instance_find(imp, g->members.v[j]);

                        if (!in)
                                r = strv_pushf(&g->comments, MARK "member %s left out: no vrrp_instance of "
                                               "that name", g->members.v[j]);
                        else if (in->skip)
                                r = strv_pushf(&g->comments, MARK "member %s left out: the instance is left "
                                               "out", g->members.v[j]);
                        else if (in->group >= 0)
                                r = strv_pushf(&g->comments, MARK "member %s left out: it is in group %s "
                                               "already (hamgr allows one group per instance)",
                                               g->members.v[j], imp->groups[in->group].kname);
                        else if (g->kept.n >= 64)
                                r = strv_pushf(&g->comments, MARK "member %s left out: a group has at most 64 "
                                               "members", g->members.v[j]);
                        else {
                                in->group = (long) i;
                                if (!first)
                                        first = in;
                                r = strv_pushf(&g->kept, "%s", in->name);
                        }
                }
                if (r < 0)
                        return r;
                if (!first) {
                        r = set_str(&g->skip, "no member left");
                        continue;
                }
                /* A group's tracking goes on its first member: in hamgr a
                 * member's fault or weight moves the whole group. */
                for (size_t j = 0; j < g->n_tracks && r >= 0; j++) {
                        const struct track *t = &g->tracks[j];

                        if (t->link && !t->has_weight) {
                                if (!strv_contains(&first->track_ifaces, t->check))
                                        r = strv_pushf(&first->track_ifaces, "%s", t->check);
                        } else
                                r = track_add(&first->tracks, &first->n_tracks, t->check, t->weight, t->has_weight,
                                              t->reverse, t->link, t->line);
                }
                if (r >= 0 && g->n_tracks > 0)
                        r = strv_pushf(&g->comments, MARK "the group's track_script/track_interface are on "
                                       "member %s: a member's fault or weight moves the whole group in hamgr",
                                       first->name);
        }
        return r;
}

/* ---- output ------------------------------------------------------------- */

static void put_comments(FILE *f, const struct strv *c, const char *indent) {
        for (size_t i = 0; i < c->n; i++)
                fprintf(f, "%s%s\n", indent, c->v[i]);
}

static void put_list(FILE *f, const char *indent, const char *key, const struct strv *v) {
        fprintf(f, "%s%s = [ ", indent, key);
        for (size_t i = 0; i < v->n; i++) {
                if (i > 0)
                        fputs(", ", f);
                put_str(f, v->v[i]);
        }
        fputs(" ];\n", f);
}

static void put_instance(FILE *f, const struct instance *in, const struct resolved *tr, size_t n_tr) {
        const char *ind = "                ";
        size_t n_routes = 0;

        fprintf(f, "        {\n%s# from vrrp_instance %s (line %d)\n", ind, in->kname, in->line);
        put_comments(f, &in->comments, ind);
        fprintf(f, "%sname = ", ind);
        put_str(f, in->name);
        fprintf(f, ";\n%sinterface = ", ind);
        put_str(f, in->interface);
        fprintf(f, ";\n%svrid = %d;\n", ind, in->vrid);
        if (in->priority > 0)
                fprintf(f, "%spriority = %d;\n", ind, in->priority);
        fprintf(f, "%sversion = %d;\n", ind, in->version);
        if (in->advert_ms > 0)
                fprintf(f, "%sadvert_interval_ms = %ld;\n", ind, in->advert_ms);
        if (in->preempt >= 0)
                fprintf(f, "%spreempt = %s;\n", ind, in->preempt ? "true" : "false");
        if (in->preempt_delay_ms >= 0)
                fprintf(f, "%spreempt_delay_ms = %ld;\n", ind, in->preempt_delay_ms);
        if (in->accept >= 0)
                fprintf(f, "%saccept_mode = %s;\n", ind, in->accept ? "true" : "false");
        put_list(f, ind, "virtual_ips", &in->vips);
        if (in->peers.n > 0)
                put_list(f, ind, "unicast_peers", &in->peers);
        if (in->unicast_src) {
                fprintf(f, "%sunicast_source = ", ind);
                put_str(f, in->unicast_src);
                fputs(";\n", f);
        }
        if (in->unicast_ttl >= 0)
                fprintf(f, "%sunicast_ttl = %d;\n", ind, in->unicast_ttl);
        if (in->track_ifaces.n > 0)
                put_list(f, ind, "track_interfaces", &in->track_ifaces);
        if (n_tr > 0) {
                fprintf(f, "%strack_checks = (\n", ind);
                for (size_t i = 0; i < n_tr; i++) {
                        fprintf(f, "%s        { check = ", ind);
                        put_str(f, tr[i].check);
                        fprintf(f, "; weight = %d; }%s\n", tr[i].weight, i + 1 < n_tr ? "," : "");
                }
                fprintf(f, "%s);\n", ind);
        }
        for (size_t i = 0; i < in->routes.n; i++)
                n_routes += in->routes.v[i][0] != '\0';
        if (n_routes > 0) {
                size_t k = 0;

                fprintf(f, "%svirtual_routes = (\n", ind);
                for (size_t i = 0; i < in->routes.n; i++)
                        if (in->routes.v[i][0])
                                fprintf(f, "%s        %s%s\n", ind, in->routes.v[i], ++k < n_routes ? "," : "");
                fprintf(f, "%s);\n", ind);
        }
        if (in->garp_delay >= 0 || in->garp_repeat >= 0 || in->garp_refresh >= 0 || in->garp_interval_ms >= 0) {
                fprintf(f, "%sgarp = {\n", ind);
                if (in->garp_repeat >= 0)
                        fprintf(f, "%s        repeat = %ld;\n%s        delay_repeat = %ld;\n", ind, in->garp_repeat,
                                ind, in->garp_repeat);
                if (in->garp_interval_ms >= 0)
                        fprintf(f, "%s        interval_ms = %ld;\n", ind, in->garp_interval_ms);
                if (in->garp_delay >= 0)
                        fprintf(f, "%s        delay_s = %ld;\n", ind, in->garp_delay);
                if (in->garp_refresh >= 0)
                        fprintf(f, "%s        refresh_s = %ld;\n", ind, in->garp_refresh);
                fprintf(f, "%s};\n", ind);
        }
        if (in->auth_pass) {
                fprintf(f, "%s# keepalived's auth_type PASS: clear text, it is not security\n%sauth_pass = ", ind, ind);
                put_str(f, in->auth_pass);
                fputs(";\n", f);
        }
        fputs("        }", f);
}

static int put_all(struct importer *imp, FILE *f) {
        struct resolved **tracks;
        size_t *n_tracks, kept = 0, k;
        int r = 0;

        tracks = calloc(imp->n_instances + 1, sizeof(*tracks));
        n_tracks = calloc(imp->n_instances + 1, sizeof(*n_tracks));
        if (!tracks || !n_tracks) {
                r = -ENOMEM;
                goto cleanup;
        }
        for (size_t i = 0; i < imp->n_instances && r >= 0; i++) {
                struct instance *in = &imp->instances[i];

                if (in->skip)
                        continue;
                kept++;
                r = resolve_tracks(imp, in, in->group >= 0 ? &imp->groups[in->group].seen : NULL, &tracks[i],
                                   &n_tracks[i]);
        }
        if (r < 0)
                goto cleanup;

        fprintf(f, "# hamgr configuration converted from %s by hamgr import-keepalived.\n"
                   "# Read the import-keepalived comments, then validate: hamgr check -c FILE\n", imp->source);
        put_comments(f, &imp->head, "");
        if (imp->node_name) {
                fputs("node = {\n        # keepalived's router_id\n        name = ", f);
                put_str(f, imp->node_name);
                fputs(";\n};\n", f);
        }

        for (size_t i = 0; i < imp->n_instances; i++) {
                const struct instance *in = &imp->instances[i];

                if (!in->skip)
                        continue;
                fprintf(f, MARK "vrrp_instance %s (line %d) left out: %s\n", in->kname, in->line, in->skip);
                put_comments(f, &in->comments, "#   ");
        }
        if (kept > 0) {
                fputs("vrrp = (\n", f);
                k = 0;
                for (size_t i = 0; i < imp->n_instances; i++) {
                        if (imp->instances[i].skip)
                                continue;
                        put_instance(f, &imp->instances[i], tracks[i], n_tracks[i]);
                        fputs(++k < kept ? ",\n" : "\n", f);
                }
                fputs(");\n", f);
        }

        kept = 0;
        for (size_t i = 0; i < imp->n_groups; i++) {
                const struct group *g = &imp->groups[i];

                if (g->skip) {
                        fprintf(f, MARK "vrrp_sync_group %s (line %d) left out: %s\n", g->kname, g->line, g->skip);
                        put_comments(f, &g->comments, "#   ");
                } else
                        kept++;
        }
        if (kept > 0) {
                fputs("groups = (\n", f);
                k = 0;
                for (size_t i = 0; i < imp->n_groups; i++) {
                        const struct group *g = &imp->groups[i];

                        if (g->skip)
                                continue;
                        fprintf(f, "        {\n                # from vrrp_sync_group %s (line %d)\n", g->kname,
                                g->line);
                        put_comments(f, &g->comments, "                ");
                        fputs("                name = ", f);
                        put_str(f, g->name);
                        fputs(";\n", f);
                        put_list(f, "                ", "instances", &g->kept);
                        fputs(++k < kept ? "        },\n" : "        }\n", f);
                }
                fputs(");\n", f);
        }

        kept = 0;
        for (size_t i = 0; i < imp->n_scripts; i++) {
                const struct script *sc = &imp->scripts[i];

                if (sc->used)
                        kept++;
                else if (!sc->link_iface) {
                        fprintf(f, MARK "vrrp_script %s (line %d) left out: %s\n", sc->kname, sc->line,
                                sc->unusable ? sc->unusable : "no instance tracks it (keepalived does not run it either)");
                        put_comments(f, &sc->comments, "#   ");
                }
        }
        if (kept > 0) {
                fputs("checks = (\n", f);
                k = 0;
                for (size_t i = 0; i < imp->n_scripts; i++) {
                        const struct script *sc = &imp->scripts[i];
                        const char *ind = "                ";

                        if (!sc->used)
                                continue;
                        fputs("        {\n", f);
                        if (sc->link_iface)
                                fprintf(f, "%s# from a weighted track_interface %s\n", ind, sc->link_iface);
                        else
                                fprintf(f, "%s# from vrrp_script %s (line %d); rise and fall are keepalived's "
                                        "defaults unless set\n", ind, sc->kname, sc->line);
                        put_comments(f, &sc->comments, ind);
                        fprintf(f, "%sname = ", ind);
                        put_str(f, sc->name);
                        fprintf(f, ";\n%stype = \"%s\";\n", ind, sc->link_iface ? "link" : "exec");
                        if (sc->link_iface) {
                                fprintf(f, "%sinterface = ", ind);
                                put_str(f, sc->link_iface);
                        } else {
                                fprintf(f, "%scommand = ", ind);
                                put_str(f, sc->command);
                        }
                        fprintf(f, ";\n%sinterval_ms = %ld;\n", ind, sc->interval_ms);
                        if (sc->timeout_ms > 0)
                                fprintf(f, "%stimeout_ms = %ld;\n", ind, sc->timeout_ms);
                        fprintf(f, "%srise = %ld;\n%sfall = %ld;\n", ind, sc->rise, ind, sc->fall);
                        fputs(++k < kept ? "        },\n" : "        }\n", f);
                }
                fputs(");\n", f);
        }

        put_comments(f, &imp->notify_comments, "");
        if (imp->notify.master || imp->notify.backup || imp->notify.fault || imp->notify.stop ||
            imp->notify.script) {
                const char *const keys[] = { "script", "master", "backup", "fault", "stop" };
                const char *const vals[] = { imp->notify.script, imp->notify.master, imp->notify.backup,
                                             imp->notify.fault, imp->notify.stop };

                fprintf(f, "notify = {\n        # from %s\n", imp->notify.from);
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (vals[i]) {
                                fprintf(f, "        %s = ", keys[i]);
                                put_str(f, vals[i]);
                                fputs(";\n", f);
                        }
                fputs("};\n", f);
        }

cleanup:
        if (tracks)
                for (size_t i = 0; i < imp->n_instances; i++)
                        free(tracks[i]);
        free(tracks);
        free(n_tracks);
        return r;
}

static void importer_done(struct importer *imp) {
        strv_done(&imp->head);
        free(imp->node_name);
        for (size_t i = 0; i < imp->n_instances; i++) {
                struct instance *in = &imp->instances[i];

                free(in->kname);
                free(in->name);
                free(in->interface);
                strv_done(&in->vips);
                strv_done(&in->peers);
                free(in->unicast_src);
                strv_done(&in->track_ifaces);
                for (size_t j = 0; j < in->n_tracks; j++)
                        free(in->tracks[j].check);
                free(in->tracks);
                strv_done(&in->routes);
                strv_done(&in->route_keys);
                if (in->auth_pass)
                        explicit_bzero(in->auth_pass, strlen(in->auth_pass));
                free(in->auth_pass);
                strv_done(&in->comments);
                free(in->skip);
        }
        free(imp->instances);
        for (size_t i = 0; i < imp->n_scripts; i++) {
                struct script *sc = &imp->scripts[i];

                free(sc->kname);
                free(sc->name);
                free(sc->command);
                free(sc->link_iface);
                free(sc->unusable);
                strv_done(&sc->comments);
        }
        free(imp->scripts);
        for (size_t i = 0; i < imp->n_groups; i++) {
                struct group *g = &imp->groups[i];

                free(g->kname);
                free(g->name);
                free(g->skip);
                strv_done(&g->members);
                strv_done(&g->kept);
                strv_done(&g->seen);
                for (size_t j = 0; j < g->n_tracks; j++)
                        free(g->tracks[j].check);
                free(g->tracks);
                strv_done(&g->comments);
        }
        free(imp->groups);
        free(imp->notify.master);
        free(imp->notify.backup);
        free(imp->notify.fault);
        free(imp->notify.stop);
        free(imp->notify.script);
        free(imp->notify.from);
        strv_done(&imp->notify_comments);
}

int keepalived_import(const char *buf, size_t len, const char *source, keepalived_include_fn include,
                      void *userdata, char **ret_text, int *ret_line, const char **ret_reason) {
        struct importer imp = {
                .source = source ? source : "keepalived.conf",
                .include = include,
                .userdata = userdata,
                .g_garp_delay = -1, .g_garp_repeat = -1, .g_garp_refresh = -1, .g_garp_interval_ms = -1,
        };
        struct kconf_stmt *root = NULL;
        char *text = NULL;
        size_t text_len = 0;
        FILE *f = NULL;
        int line = 0, r;
        const char *reason = NULL;

        r = kconf_parse(buf, len, &root, &line, &reason);
        if (r < 0)
                goto cleanup;
        r = walk_top(&imp, root->children, root->n_children, NULL);
        if (r < 0)
                goto cleanup;
        for (size_t i = 0; i < imp.n_instances && r >= 0; i++)
                r = finish_instance(&imp, i);
        if (r >= 0)
                r = name_scripts(&imp);
        if (r >= 0)
                r = resolve_groups(&imp);
        if (r < 0)
                goto cleanup;
        f = open_memstream(&text, &text_len);
        if (!f) {
                r = -ENOMEM;
                goto cleanup;
        }
        r = put_all(&imp, f);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                goto cleanup;
        }
        *ret_text = text;

cleanup:
        kconf_free(root);
        importer_done(&imp);
        if (r == -EBADMSG) {
                if (ret_line)
                        *ret_line = line;
                if (ret_reason)
                        *ret_reason = reason;
        }
        return r;
}
