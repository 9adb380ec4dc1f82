/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "hamgr/config.h"
#include "wg/key.h"

#define SAMPLE_CONFIG HAMGR_SOURCE_DIR "/etc/hamgr.conf"

static void dump_errors(const struct hamgr_config_errors *e) {
        hamgr_config_errors_print(e, "test", stderr);
}

/* Loads TEXT expecting success; fails the test with the errors otherwise. */
static struct hamgr_config *load_ok(const char *text) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;
        int r;

        r = hamgr_config_load_string(text, "test", &c, &e);
        if (r != 0 || e.n != 0) {
                fprintf(stderr, "unexpected failure %d for:\n%s\n", r, text);
                dump_errors(&e);
        }
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);
        assert_non_null(c);
        hamgr_config_errors_clear(&e);
        return c;
}

/* Loads TEXT expecting exactly one error, at LINE, whose message contains MSG. */
static void expect_one_error(const char *text, int line, const char *msg) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;
        int r;

        r = hamgr_config_load_string(text, "test", &c, &e);
        if (e.n != 1 || e.items[0].line != line || !strstr(e.items[0].message, msg)) {
                fprintf(stderr, "for:\n%s\nwanted line %d containing \"%s\", got:\n", text, line, msg);
                dump_errors(&e);
        }
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        assert_int_equal(e.n, 1);
        assert_int_equal(e.items[0].line, line);
        assert_non_null(strstr(e.items[0].message, msg));
        hamgr_config_errors_clear(&e);
}

static void test_sample_config(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        struct hamgr_config_errors e = {};
        const struct hamgr_vrrp_config *wan, *lan;
        const struct hamgr_group_config *g;
        char buf[INET6_ADDRSTRLEN];
        int r;

        r = hamgr_config_load(SAMPLE_CONFIG, &c, &e);
        if (r < 0)
                hamgr_config_errors_print(&e, SAMPLE_CONFIG, stderr);
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);

        assert_string_equal(c->path, SAMPLE_CONFIG);
        assert_string_equal(c->node_name, "gw1");
        assert_string_equal(c->state_dir, "/var/lib/hamgr");
        assert_string_equal(c->control_socket, "/run/hamgr/control.sock");
        assert_int_equal(c->n_vrrp, 2);

        wan = hamgr_config_find_vrrp(c, "wan");
        assert_ptr_equal(wan, &c->vrrp[0]);
        assert_string_equal(wan->interface, "eth0");
        assert_int_equal(wan->vrid, 51);
        assert_int_equal(wan->priority, 150);
        assert_int_equal(wan->version, 3);
        assert_int_equal(wan->advert_interval_ms, 100);
        assert_true(wan->preempt);
        assert_int_equal(wan->preempt_delay_ms, 0);
        assert_false(wan->accept_mode);
        assert_int_equal(wan->checksum, VRRP_CHECKSUM_RFC5798);
        assert_int_equal(wan->family, AF_INET);
        assert_int_equal(wan->n_virtual_ips, 2);
        assert_string_equal(ip_address_to_string(&wan->virtual_ips[0].address, buf, sizeof(buf)), "10.77.0.10");
        assert_int_equal(wan->virtual_ips[0].prefixlen, 24);
        assert_int_equal(wan->virtual_ips[1].address.family, AF_INET6);
        assert_string_equal(ip_address_to_string(&wan->virtual_ips[1].address, buf, sizeof(buf)), "2001:db8::10");
        assert_int_equal(wan->virtual_ips[1].prefixlen, 64);
        assert_int_equal(wan->n_unicast_peers, 0);
        assert_int_equal(wan->n_track_interfaces, 1);
        assert_string_equal(wan->track_interfaces[0], "eth1");
        assert_int_equal(wan->garp.repeat, 3);
        assert_int_equal(wan->garp.interval_ms, 100);
        assert_int_equal(wan->garp.refresh_s, 0);
        assert_int_equal(wan->garp.delay_s, 5);
        assert_int_equal(wan->garp.delay_repeat, 3);
        assert_true(wan->line > 0);

        lan = hamgr_config_find_vrrp(c, "lan");
        assert_ptr_equal(lan, &c->vrrp[1]);
        assert_string_equal(lan->interface, "eth1");
        assert_int_equal(lan->vrid, 52);
        assert_int_equal(lan->family, AF_INET);
        assert_true(lan->line > wan->line);
        assert_null(hamgr_config_find_vrrp(c, "dmz"));

        assert_int_equal(c->n_groups, 1);
        g = hamgr_config_find_group(c, "gateway");
        assert_ptr_equal(g, &c->groups[0]);
        assert_int_equal(g->n_instances, 2);
        assert_string_equal(g->instances[0], "wan");
        assert_string_equal(g->instances[1], "lan");
        assert_null(hamgr_config_find_group(c, "wan"));

        assert_string_equal(c->notify.script, "/etc/hamgr/notify.sh");
        assert_null(c->notify.master);
        assert_null(c->notify.backup);
        assert_null(c->notify.fault);
        assert_null(c->notify.stop);
        assert_int_equal(c->notify.timeout_ms, 10000);
}

/*
 * The sample as its comments say to enable the WireGuard layer: one '#' off
 * each line from "#checks" on (up to "#sync" unless WITH_SYNC, to the end
 * of the file if it is set), and off "#track_checks".
 */
static char *sample_uncommented(bool with_sync) {
        _cleanup_(freep) char *out = NULL;
        bool in_block = false, in_sync = false;
        size_t len = 0, n_uncommented = 0, n_sync = 0;
        char *line = NULL;
        size_t cap = 0;
        FILE *f, *o;

        f = fopen(SAMPLE_CONFIG, "re");
        assert_non_null(f);
        o = open_memstream(&out, &len);
        assert_non_null(o);
        while (getline(&line, &cap, f) > 0) {
                const char *p = line + strspn(line, " \t");

                if (streq(line, "#checks = (\n"))
                        in_block = true;
                if (streq(line, "#sync = {\n")) {
                        assert_true(in_block);
                        in_sync = true;
                }
                if (in_block) {
                        /* Every line of the block is commented, so none is active by accident. */
                        assert_true(line[0] == '#' || line[0] == '\n');
                        if (in_sync && !with_sync)
                                fputs(line, o);
                        else {
                                fputs(line[0] == '#' ? line + 1 : line, o);
                                n_uncommented++;
                                n_sync += in_sync;
                        }
                } else if (strncmp(p, "#track_checks", strlen("#track_checks")) == 0 ||
                           strncmp(p, "#virtual_routes", strlen("#virtual_routes")) == 0) {
                        fwrite(line, 1, p - line, o);
                        fputs(p + 1, o);
                        n_uncommented++;
                } else
                        fputs(line, o);
        }
        free(line);
        fclose(f);
        fclose(o);
        assert_true(in_block);
        assert_true(in_sync);
        assert_true(n_uncommented > 50);
        assert_true(with_sync ? n_sync > 10 : n_sync == 0);
        return TAKE_PTR(out);
}

/*
 * The sample ships the WireGuard layer and replication commented out.
 * Enabled the way its comments say, each must load and mean what its
 * comments say.
 */
static void test_sample_wireguard_examples(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *plain = NULL, *c = NULL, *synced = NULL;
        _cleanup_(freep) char *text = NULL, *text_sync = NULL;
        const struct hamgr_vrrp_config *wan;
        const struct hamgr_check_config *k;
        const struct hamgr_sync_config *sc;
        char buf[INET6_ADDRSTRLEN];

        /* As shipped: none of it is active. */
        assert_int_equal(hamgr_config_load(SAMPLE_CONFIG, &plain, NULL), 0);
        assert_int_equal(plain->n_checks, 0);
        assert_int_equal(plain->n_wireguard, 0);
        assert_int_equal(plain->n_endpoints, 0);
        assert_false(plain->sync.enabled);
        assert_int_equal(hamgr_config_find_vrrp(plain, "wan")->n_track_checks, 0);
        assert_int_equal(hamgr_config_find_vrrp(plain, "wan")->n_virtual_routes, 0);

        text = sample_uncommented(false);
        text_sync = sample_uncommented(true);

        /* Replication is enabled separately, and then it is what the comments say. */
        synced = load_ok(text_sync);
        sc = &synced->sync;
        assert_true(sc->enabled);
        assert_string_equal(sc->listen, "192.168.10.2:7789");
        assert_string_equal(sc->private_key_file, "/etc/hamgr/sync.key");
        assert_int_equal(sc->poll_interval_ms, 1000);
        assert_int_equal(sc->n_peers, 1);
        assert_string_equal(sc->peers[0].name, "gw2");
        assert_string_equal(sc->peers[0].address, "192.168.10.3:7789");
        assert_false(wg_key_is_zero(sc->peers[0].public_key));
        assert_int_equal(synced->n_wireguard, 1);

        c = load_ok(text);
        assert_false(c->sync.enabled);
        wan = hamgr_config_find_vrrp(c, "wan");
        assert_int_equal(wan->n_track_checks, 2);
        assert_string_equal(wan->track_checks[0].check, "wg0");
        assert_int_equal(wan->track_checks[0].weight, 0);
        assert_string_equal(wan->track_checks[1].check, "upstream");
        assert_int_equal(wan->track_checks[1].weight, -20);
        assert_int_equal(wan->n_virtual_routes, 2);
        assert_string_equal(wan->virtual_routes[0].dev, "wg0");
        assert_string_equal(ip_address_to_string(&wan->virtual_routes[0].src, buf, sizeof(buf)), "10.77.0.10");
        assert_int_equal(wan->virtual_routes[1].to.prefixlen, 0);
        assert_int_equal(wan->virtual_routes[1].metric, 50);
        assert_int_equal(wan->virtual_routes[1].table, 100);

        assert_int_equal(c->n_checks, 5);
        k = hamgr_config_find_check(c, "wg0");
        assert_int_equal(k->type, HEALTH_CHECK_WIREGUARD);
        assert_string_equal(k->interface, "wg0");
        assert_int_equal(k->max_handshake_age_s, 180);
        assert_int_equal(k->interval_ms, 1000);
        assert_int_equal(k->timeout_ms, 1000);
        assert_int_equal(k->rise, 2);
        assert_int_equal(k->fall, 3);
        k = hamgr_config_find_check(c, "upstream");
        assert_int_equal(k->type, HEALTH_CHECK_ICMP);
        assert_int_equal(k->timeout_ms, 500);
        k = hamgr_config_find_check(c, "api");
        assert_int_equal(k->type, HEALTH_CHECK_TCP);
        assert_int_equal(k->target.family, AF_INET6);
        assert_int_equal(k->port, 443);
        assert_int_equal(hamgr_config_find_check(c, "script")->type, HEALTH_CHECK_EXEC);
        assert_string_equal(hamgr_config_find_check(c, "script")->command, "/usr/local/bin/check.sh");
        assert_int_equal(hamgr_config_find_check(c, "uplink")->type, HEALTH_CHECK_LINK);

        assert_int_equal(c->n_wireguard, 1);
        assert_string_equal(c->wireguard[0].interface, "wg0");
        assert_int_equal(c->wireguard[0].backend, WG_BACKEND_AUTO);
        assert_string_equal(c->wireguard[0].follow, "gateway");
        assert_string_equal(ip_address_to_string(&c->wireguard[0].source_address, buf, sizeof(buf)), "10.77.0.10");

        assert_int_equal(c->n_endpoints, 1);
        assert_string_equal(c->endpoints[0].interface, "wg0");
        assert_int_equal(c->endpoints[0].n_candidates, 3);
        assert_int_equal(c->endpoints[0].stale_after_s, 10);
        assert_false(c->endpoints[0].prefer_first);
}

static void test_defaults(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        const struct hamgr_vrrp_config *v;
        char host[HOST_NAME_MAX + 1] = {};

        c = load_ok("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7;\n"
                    "           virtual_ips = [ \"2001:db8::1\" ]; } );\n");
        assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
        assert_string_equal(c->node_name, host);
        assert_string_equal(c->state_dir, HAMGR_DEFAULT_STATE_DIR);
        assert_string_equal(c->control_socket, HAMGR_DEFAULT_CONTROL_SOCKET);
        assert_string_equal(c->path, "test");
        assert_int_equal(c->n_groups, 0);
        assert_null(c->notify.script);
        assert_null(c->notify.stop);
        assert_int_equal(c->notify.timeout_ms, 10000);

        assert_int_equal(c->n_vrrp, 1);
        v = &c->vrrp[0];
        assert_int_equal(v->line, 1);
        assert_int_equal(v->priority, 100);
        assert_int_equal(v->version, 3);
        assert_int_equal(v->advert_interval_ms, 1000);
        assert_true(v->preempt);
        assert_int_equal(v->preempt_delay_ms, 0);
        assert_false(v->accept_mode);
        assert_int_equal(v->checksum, VRRP_CHECKSUM_RFC5798);
        assert_int_equal(v->family, AF_INET6);
        assert_int_equal(v->virtual_ips[0].prefixlen, 128);
        assert_int_equal(v->n_unicast_peers, 0);
        assert_null(v->unicast_peers);
        assert_int_equal(v->n_track_interfaces, 0);
        assert_int_equal(v->garp.repeat, 3);
        assert_int_equal(v->garp.interval_ms, 100);
        assert_int_equal(v->garp.refresh_s, 0);
        assert_int_equal(v->garp.delay_s, 5);
        assert_int_equal(v->garp.delay_repeat, 3);
}

/* An IPv6 instance should list its link-local virtual address first: a
 * warning, not an error. */
static void test_warning_ipv6_first_not_link_local(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL, *ok = NULL, *sample = NULL;
        struct hamgr_config_errors w = {}, e = {};

        c = load_ok("vrrp = (\n"
                    "  { name = \"v4\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\", \"2001:db8::1\" ]; },\n"
                    "  { name = \"ll\"; interface = \"eth0\"; vrid = 2; virtual_ips = [ \"fe80::2\", \"2001:db8::2\" ]; },\n"
                    "  { name = \"global\"; interface = \"eth0\"; vrid = 3;\n"
                    "    virtual_ips = [ \"2001:db8::3/64\", \"fe80::3\" ]; }\n"
                    ");\n");
        assert_int_equal(hamgr_config_warnings(c, &w), 0);
        assert_int_equal(w.n, 1);
        assert_int_equal(w.items[0].line, 4);
        assert_non_null(strstr(w.items[0].message, "warning: "));
        assert_non_null(strstr(w.items[0].message, "'global'"));
        assert_non_null(strstr(w.items[0].message, "2001:db8::3 is not link-local"));
        assert_non_null(strstr(w.items[0].message, "RFC 9568 5.2.9"));
        hamgr_config_errors_clear(&w);

        ok = load_ok("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; virtual_ips = [ \"fe80::7/64\" ]; } );\n");
        assert_int_equal(hamgr_config_warnings(ok, &w), 0);
        assert_int_equal(w.n, 0);

        assert_int_equal(hamgr_config_load(SAMPLE_CONFIG, &sample, &e), 0);
        assert_int_equal(hamgr_config_warnings(sample, &w), 0);
        assert_int_equal(w.n, 0);
}

static void test_empty_config(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

        c = load_ok("# nothing\n");
        assert_int_equal(c->n_vrrp, 0);
        assert_null(c->vrrp);
}

/* Every setting at the edge of its range, the other way than the defaults. */
static void test_limits_accepted(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        const struct hamgr_vrrp_config *v;

        c = load_ok("node = { name = \"gw-2.example_x\"; state_dir = \"/tmp/s\"; control_socket = \"/tmp/c.sock\"; };\n"
                    "vrrp = (\n"
                    "  { name = \"a\"; interface = \"eth0\"; vrid = 255; priority = 255; advert_interval_ms = 40950;\n"
                    "    preempt = false; preempt_delay_ms = 3600000; accept_mode = true; checksum = \"rfc9568\";\n"
                    "    virtual_ips = ( \"10.0.0.1/32\" ); unicast_peers = [ \"10.0.0.2\", \"10.0.0.3\" ];\n"
                    "    track_interfaces = [ \"abcdefghijklmno\", \"eth1\" ];\n"
                    "    garp = { repeat = 100; interval_ms = 10000; refresh_s = 86400; delay_s = 3600; delay_repeat = 100; }; },\n"
                    "  { name = \"b\"; interface = \"eth0\"; vrid = 1; priority = 1; advert_interval_ms = 10;\n"
                    "    garp = { repeat = 1; interval_ms = 0; delay_s = 0; }; virtual_ips = [ \"10.0.0.9\" ]; },\n"
                    "  { name = \"c\"; interface = \"eth0\"; vrid = 2; version = 2; advert_interval_ms = 255000;\n"
                    "    virtual_ips = [ \"10.0.1.1/24\" ]; },\n"
                    "  { name = \"d\"; interface = \"eth0\"; vrid = 3; version = 2; advert_interval_ms = 1000;\n"
                    "    virtual_ips = [ \"10.0.2.1/24\" ]; }\n"
                    ");\n"
                    "notify = { timeout_ms = 3600000; };\n");
        assert_string_equal(c->node_name, "gw-2.example_x");
        assert_string_equal(c->state_dir, "/tmp/s");
        assert_string_equal(c->control_socket, "/tmp/c.sock");
        assert_int_equal(c->notify.timeout_ms, 3600000);
        assert_int_equal(c->n_vrrp, 4);

        v = hamgr_config_find_vrrp(c, "a");
        assert_int_equal(v->line, 3);
        assert_int_equal(v->vrid, 255);
        assert_int_equal(v->priority, 255);
        assert_int_equal(v->advert_interval_ms, 40950);
        assert_false(v->preempt);
        assert_int_equal(v->preempt_delay_ms, 3600000);
        assert_true(v->accept_mode);
        assert_int_equal(v->checksum, VRRP_CHECKSUM_RFC9568);
        assert_int_equal(v->n_unicast_peers, 2);
        assert_int_equal(v->unicast_peers[1].family, AF_INET);
        assert_int_equal(v->n_track_interfaces, 2);
        assert_string_equal(v->track_interfaces[0], "abcdefghijklmno");
        assert_int_equal(v->garp.repeat, 100);
        assert_int_equal(v->garp.interval_ms, 10000);
        assert_int_equal(v->garp.refresh_s, 86400);
        assert_int_equal(v->garp.delay_s, 3600);
        assert_int_equal(v->garp.delay_repeat, 100);

        v = hamgr_config_find_vrrp(c, "b");
        assert_int_equal(v->line, 8);
        assert_int_equal(v->vrid, 1);
        assert_int_equal(v->priority, 1);
        assert_int_equal(v->advert_interval_ms, 10);
        assert_int_equal(v->garp.repeat, 1);
        assert_int_equal(v->garp.interval_ms, 0);
        assert_int_equal(v->garp.delay_s, 0);
        /* Unset members of a present garp group keep their defaults. */
        assert_int_equal(v->garp.refresh_s, 0);
        assert_int_equal(v->garp.delay_repeat, 3);

        v = hamgr_config_find_vrrp(c, "c");
        assert_int_equal(v->version, 2);
        assert_int_equal(v->advert_interval_ms, 255000);
        assert_int_equal(hamgr_config_find_vrrp(c, "d")->advert_interval_ms, 1000);
}

/*
 * Single-setting errors. The instance is laid out so that SNIPPET is on
 * line 5; every case must produce exactly one error, on that line.
 */
struct error_case {
        const char *snippet;
        const char *message;
};

static const struct error_case instance_cases[] = {
        { "vrid = 0;", "vrid 0 out of range 1..255" },
        { "vrid = 256;", "vrid 256 out of range 1..255" },
        { "vrid = -1;", "vrid -1 out of range 1..255" },
        { "vrid = 4294967296L;", "vrid 4294967296 out of range 1..255" },
        { "vrid = \"51\";", "vrid must be an integer" },
        { "vrid = 1.5;", "vrid must be an integer" },
        { "vrid = 1; priority = 0;", "priority 0 out of range 1..255" },
        { "vrid = 1; priority = 256;", "priority 256 out of range 1..255" },
        { "vrid = 1; priority = true;", "priority must be an integer" },
        { "vrid = 1; version = 4;", "version 4 must be 2 or 3" },
        { "vrid = 1; version = 1;", "version 1 must be 2 or 3" },
        { "vrid = 1; advert_interval_ms = 0;", "advert_interval_ms 0 out of range 10..40950" },
        { "vrid = 1; advert_interval_ms = 40960;", "advert_interval_ms 40960 out of range 10..40950" },
        { "vrid = 1; advert_interval_ms = 15;", "advert_interval_ms 15 must be a multiple of 10" },
        { "vrid = 1; advert_interval_ms = 40949;", "advert_interval_ms 40949 must be a multiple of 10" },
        /* The version applies whatever order the settings come in. */
        { "vrid = 1; advert_interval_ms = 1500; version = 2;", "advert_interval_ms 1500 must be whole seconds" },
        { "vrid = 1; version = 2; advert_interval_ms = 100;", "advert_interval_ms 100 out of range 1000..255000" },
        { "vrid = 1; version = 2; advert_interval_ms = 256000;", "advert_interval_ms 256000 out of range 1000..255000" },
        { "vrid = 1; advert_interval_ms = \"1s\";", "advert_interval_ms must be an integer" },
        { "vrid = 1; preempt = 1;", "preempt must be a boolean" },
        { "vrid = 1; accept_mode = \"yes\";", "accept_mode must be a boolean" },
        { "vrid = 1; preempt_delay_ms = 3600001;", "preempt_delay_ms 3600001 out of range 0..3600000" },
        { "vrid = 1; preempt_delay_ms = -1;", "preempt_delay_ms -1 out of range 0..3600000" },
        { "vrid = 1; checksum = \"rfc1234\";", "checksum 'rfc1234' must be \"rfc5798\" or \"rfc9568\"" },
        { "vrid = 1; checksum = 5798;", "checksum must be a string" },
        { "vrid = 1; garp = { repeat = 0; };", "repeat 0 out of range 1..100" },
        { "vrid = 1; garp = { repeat = 101; };", "repeat 101 out of range 1..100" },
        { "vrid = 1; garp = { interval_ms = 10001; };", "interval_ms 10001 out of range 0..10000" },
        { "vrid = 1; garp = { refresh_s = 86401; };", "refresh_s 86401 out of range 0..86400" },
        { "vrid = 1; garp = { delay_s = 3601; };", "delay_s 3601 out of range 0..3600" },
        { "vrid = 1; garp = { delay_repeat = 0; };", "delay_repeat 0 out of range 1..100" },
        { "vrid = 1; garp = 3;", "garp must be a group" },
        { "vrid = 1; garp = { repeats = 3; };", "unknown setting 'repeats' in garp of vrrp instance 'wan'" },
        { "vrid = 1; prioritty = 100;", "unknown setting 'prioritty' in vrrp instance 'wan'" },
        { "vrid = 1; unicast_peers = \"10.0.0.2\";", "unicast_peers must be a list of strings" },
        { "vrid = 1; unicast_peers = [ \"10.0.0.300\" ];", "unicast peer '10.0.0.300' is not an IP address" },
        { "vrid = 1; unicast_peers = [ \"10.0.0.2/24\" ];", "unicast peer '10.0.0.2/24' is not an IP address" },
        { "vrid = 1; unicast_peers = [ \"2001:db8::2\" ];", "unicast peer '2001:db8::2' is IPv6 but the advertisements are IPv4" },
        { "vrid = 1; unicast_peers = [ \"10.0.0.2\", \"10.0.0.2\" ];", "duplicate unicast peer '10.0.0.2'" },
        { "vrid = 1; track_interfaces = [ 1 ];", "track_interfaces must contain only strings" },
        { "vrid = 1; track_interfaces = [ \"eth1\", \"eth1\" ];", "duplicate track interface 'eth1'" },
        { "vrid = 1; track_interfaces = [ \"a/b\" ];", "track interface 'a/b' is not a valid interface name" },
        { "vrid = 1; track_interfaces = [ \"abcdefghijklmnop\" ];", "track interface 'abcdefghijklmnop' is not a valid" },
};

static void test_instance_errors(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(instance_cases); i++) {
                char text[1024];

                snprintf(text, sizeof(text),
                         "vrrp = (\n"
                         "  { name = \"wan\";\n"
                         "    interface = \"eth0\";\n"
                         "    virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "    %s\n"
                         "  }\n"
                         ");\n",
                         instance_cases[i].snippet);
                expect_one_error(text, 5, instance_cases[i].message);
        }
}

static void test_missing_required(void **state) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;

        assert_int_equal(hamgr_config_load_string("vrrp = (\n"
                                                  "  { priority = 10; },\n"
                                                  "  { name = \"x\"; interface = \"eth0\"; vrid = 1;\n"
                                                  "    virtual_ips = [ \"10.0.0.1\" ]; },\n"
                                                  "  { name = \"y\"; }\n"
                                                  ");\n",
                                                  "test", &c, &e),
                         -EINVAL);
        assert_null(c);
        assert_int_equal(e.n, 7);
        assert_int_equal(e.items[0].line, 2);
        assert_string_equal(e.items[0].message, "missing required setting 'name' in vrrp instance #1");
        assert_int_equal(e.items[1].line, 2);
        assert_string_equal(e.items[1].message, "missing required setting 'interface' in vrrp instance #1");
        assert_int_equal(e.items[2].line, 2);
        assert_string_equal(e.items[2].message, "missing required setting 'vrid' in vrrp instance #1");
        assert_int_equal(e.items[3].line, 2);
        assert_string_equal(e.items[3].message, "missing required setting 'virtual_ips' in vrrp instance #1");
        for (size_t i = 4; i < 7; i++)
                assert_int_equal(e.items[i].line, 5);
        assert_string_equal(e.items[4].message, "missing required setting 'interface' in vrrp instance 'y'");
        hamgr_config_errors_clear(&e);
}

static void test_names(void **state) {
        expect_one_error("vrrp = ( { name = \"wan 1\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n",
                         1, "vrrp instance name 'wan 1' is invalid");
        expect_one_error("vrrp = ( { name = \"abcdefghijklmnopqrstuvwxyz0123456\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n",
                         1, "is invalid: use 1 to 32 characters");
        expect_one_error("vrrp = ( { name = \"\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n",
                         1, "vrrp instance name '' is invalid");
        /* Without a valid name the instance is named by position. */
        expect_one_error("vrrp = ( { name = 5; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n",
                         1, "name must be a string");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; },\n"
                         " { name = \"v\"; interface = \"eth1\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.1.1\" ]; },\n"
                         " { name = \"w\"; interface = \"eth2\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.2.1\" ]; } );\n",
                         5, "duplicate vrrp instance name 'w' (first at line 1)");
        expect_one_error("vrrp = ( { name = \"w\"; vrid = 1;\n"
                         "  interface = \"abcdefghijklmnop\";\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n",
                         2, "interface 'abcdefghijklmnop' is not a valid interface name");
        expect_one_error("vrrp = ( { name = \"w\"; vrid = 1;\n"
                         "  interface = \"\";\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n",
                         2, "interface '' is not a valid interface name");
        expect_one_error("vrrp = ( { name = \"w\"; vrid = 1; interface = \"eth0\";\n"
                         "  virtual_ips = [ \"10.0.0.1\" ]; } );\n"
                         "node = { name = \"gw 1\"; };\n",
                         3, "node name 'gw 1' is invalid");
}

static void test_virtual_ips(void **state) {
        char text[512];

        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ ]; } );\n",
                         2, "virtual_ips must list at least one address");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = \"10.0.0.1\"; } );\n",
                         2, "virtual_ips must be a list of strings");
        /* Array elements are reported on their own line. */
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [\n"
                         "    \"10.0.0.1/24\",\n"
                         "    \"10.0.0.2/33\",\n"
                         "    \"10.0.0.3\" ]; } );\n",
                         4, "virtual IP '10.0.0.2/33': prefix /33 is too long for IPv4 (at most /32)");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1/x\" ]; } );\n",
                         2, "virtual IP '10.0.0.1/x' is not an address with optional /prefix");
        /* Same address with another prefix is still the same address. */
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"10.0.0.1/24\",\n"
                         "    \"10.0.0.1/32\" ]; } );\n",
                         3, "duplicate virtual IP '10.0.0.1/32'");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"2001:db8::1/64\", \"2001:DB8::1\" ]; } );\n",
                         2, "duplicate virtual IP '2001:DB8::1'");
        /* v2 + IPv6: as the first (advertised) address or as a second one. */
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; version = 2;\n"
                         "  virtual_ips = [ \"2001:db8::1/64\" ]; } );\n",
                         2, "IPv6 virtual IP '2001:db8::1/64' needs version 3");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; version = 2;\n"
                         "  virtual_ips = [ \"10.0.0.1\",\n"
                         "                  \"2001:db8::1/64\" ]; } );\n",
                         3, "IPv6 virtual IP '2001:db8::1/64' needs version 3");
        /* The same address in two instances. */
        snprintf(text, sizeof(text),
                 "vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ]; },\n"
                 "         { name = \"l\"; interface = \"eth1\"; vrid = 2; virtual_ips = [ \"10.0.0.1/32\" ]; } );\n");
        expect_one_error(text, 2, "virtual IP 10.0.0.1 is also in vrrp instance 'w' (line 1)");
}

static void test_family(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

        /* The first address decides; peers follow it. */
        c = load_ok("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                    "  virtual_ips = [ \"fe80::1/64\", \"10.0.0.1/24\" ];\n"
                    "  unicast_peers = [ \"fe80::2\" ]; } );\n");
        assert_int_equal(c->vrrp[0].family, AF_INET6);
        assert_int_equal(c->vrrp[0].n_virtual_ips, 2);
        assert_int_equal(c->vrrp[0].unicast_peers[0].family, AF_INET6);

        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"fe80::1/64\", \"10.0.0.1/24\" ];\n"
                         "  unicast_peers = [ \"fe80::2\",\n"
                         "                    \"10.0.0.2\" ]; } );\n",
                         4, "unicast peer '10.0.0.2' is IPv4 but the advertisements are IPv6");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"
                         "  virtual_ips = [ \"2001:db8::1/64\" ];\n"
                         "  unicast_peers = [ \"2001:db8::2\" ]; } );\n",
                         3, "unicast peer '2001:db8::2' must be the peer's IPv6 link-local address (fe80::/10): "
                            "IPv6 advertisements are sent from link-local addresses");
}

static void test_unicast_options(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL, *d = NULL, *e = NULL;
        char buf[INET6_ADDRSTRLEN];

        /* Defaults: TTL 255, the interface's address. */
        c = load_ok("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                    "  unicast_peers = [ \"10.1.0.2\" ]; } );\n");
        assert_int_equal(c->vrrp[0].unicast_ttl, 255);
        assert_int_equal(c->vrrp[0].unicast_source.family, AF_UNSPEC);

        d = load_ok("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                    "  unicast_ttl = 32; unicast_source = \"10.0.0.3\"; unicast_peers = [ \"10.1.0.2\" ]; } );\n");
        assert_int_equal(d->vrrp[0].unicast_ttl, 32);
        assert_string_equal(ip_address_to_string(&d->vrrp[0].unicast_source, buf, sizeof(buf)), "10.0.0.3");

        /* A global IPv6 source lets IPv6 pairs list global peers (routed);
         * the order of the keys does not matter. */
        e = load_ok("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"2001:db8::1/64\" ];\n"
                    "  unicast_peers = [ \"2001:db8:1::2\" ]; unicast_source = \"2001:db8::3\"; } );\n");
        assert_int_equal(e->vrrp[0].unicast_peers[0].family, AF_INET6);
        assert_int_equal(e->vrrp[0].unicast_source.family, AF_INET6);
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"2001:db8::1/64\" ];\n"
                         "  unicast_source = \"fe80::3\";\n"
                         "  unicast_peers = [ \"2001:db8:1::2\" ]; } );\n",
                         3, "unicast peer '2001:db8:1::2' must be the peer's IPv6 link-local address");

        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_ttl = 0; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_ttl 0 out of range 1..255");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_ttl = 256; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_ttl 256 out of range 1..255");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_ttl = \"64\"; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_ttl must be an integer");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "\n  unicast_ttl = 64; } );\n",
                         3, "unicast_ttl needs unicast_peers");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_source = \"10.0.0.3\"; } );\n",
                         2, "unicast_source needs unicast_peers");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_source = \"10.0.0.300\"; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_source '10.0.0.300' is not an IP address");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_source = \"fe80::3\"; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_source 'fe80::3' is IPv6 but the advertisements are IPv4");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_source = \"10.0.0.1\"; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_source '10.0.0.1' is a virtual IP of this instance");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "  unicast_source = 3; unicast_peers = [ \"10.1.0.2\" ]; } );\n",
                         2, "unicast_source must be a string");
}

static void test_duplicate_vrid(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

        expect_one_error("vrrp = (\n"
                         "  { name = \"wan\"; interface = \"eth0\"; vrid = 51; virtual_ips = [ \"10.0.0.1\" ]; },\n"
                         "  { name = \"wan2\"; interface = \"eth0\";\n"
                         "    vrid = 51; virtual_ips = [ \"10.0.0.2\" ]; }\n"
                         ");\n",
                         4, "vrid 51 on interface eth0 (IPv4) is already used by vrrp instance 'wan' (line 2)");
        expect_one_error("vrrp = (\n"
                         "  { name = \"a\"; interface = \"eth0\"; vrid = 9; virtual_ips = [ \"2001:db8::1\" ]; },\n"
                         "  { name = \"b\"; interface = \"eth0\"; vrid = 9; virtual_ips = [ \"2001:db8::2\" ]; }\n"
                         ");\n",
                         3, "vrid 9 on interface eth0 (IPv6) is already used by vrrp instance 'a' (line 2)");

        /* Same vrid: other family, or other interface, are other routers. */
        c = load_ok("vrrp = (\n"
                    "  { name = \"v4\"; interface = \"eth0\"; vrid = 51; virtual_ips = [ \"10.0.0.1\" ]; },\n"
                    "  { name = \"v6\"; interface = \"eth0\"; vrid = 51; virtual_ips = [ \"2001:db8::1\" ]; },\n"
                    "  { name = \"lan\"; interface = \"eth1\"; vrid = 51; virtual_ips = [ \"10.1.0.1\" ]; }\n"
                    ");\n");
        assert_int_equal(c->n_vrrp, 3);
}

static void test_groups(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        static const char *const instances =
                "vrrp = ( { name = \"a\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ]; },\n"
                "         { name = \"b\"; interface = \"eth1\"; vrid = 1; virtual_ips = [ \"10.0.1.1\" ]; } );\n";
        static const struct error_case cases[] = {
                { "groups = ( { name = \"g\";\n  instances = [ \"a\", \"lan\" ]; } );",
                  "group member 'lan' is not a vrrp instance" },
                { "groups = ( { name = \"g\"; instances = [ \"a\" ]; },\n  { name = \"h\"; instances = [ \"b\", \"a\" ]; } );",
                  "vrrp instance 'a' is already in group 'g' (line 3)" },
                { "groups = ( { name = \"g\";\n  instances = [ \"a\", \"a\" ]; } );",
                  "vrrp instance 'a' is already in group 'g' (line 3)" },
                { "groups = ( { name = \"g\"; instances = [ \"a\" ]; },\n  { name = \"g\"; instances = [ \"b\" ]; } );",
                  "duplicate group name 'g' (first at line 3)" },
                { "groups = ( { name = \"g\";\n  instances = [ ]; } );", "instances has 0 members, allowed 1..64" },
                { "groups = ( { name = \"g\";\n  members = [ \"a\" ]; instances = [ \"a\" ]; } );",
                  "unknown setting 'members' in group 'g'" },
                { "groups = ( { name = \"f\"; instances = [ \"a\" ]; },\n  { name = \"g!\"; instances = [ \"b\" ]; } );",
                  "group name 'g!' is invalid" },
                { "\ngroups = { name = \"g\"; };", "groups must be a list" },
        };
        char text[1024];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(text, sizeof(text), "%s%s\n", instances, cases[i].snippet);
                expect_one_error(text, 4, cases[i].message);
        }

        /* A group without name is reported on its own line. */
        snprintf(text, sizeof(text), "%sgroups = (\n  { instances = [ \"a\" ]; } );\n", instances);
        expect_one_error(text, 4, "missing required setting 'name' in group #1");

        /* 65 members: the limit is checked before the names. */
        {
                char big[2048];
                int n = snprintf(big, sizeof(big), "%sgroups = ( { name = \"g\";\n instances = [", instances);

                for (int i = 0; i < 65; i++)
                        n += snprintf(big + n, sizeof(big) - n, "%s\"i%d\"", i ? ", " : " ", i);
                snprintf(big + n, sizeof(big) - n, " ]; } );\n");
                expect_one_error(big, 4, "instances has 65 members, allowed 1..64");
        }

        snprintf(text, sizeof(text), "%sgroups = ( { name = \"g\"; instances = [ \"b\", \"a\" ]; } );\n", instances);
        c = load_ok(text);
        assert_int_equal(c->n_groups, 1);
        assert_int_equal(c->groups[0].line, 3);
        assert_string_equal(c->groups[0].instances[0], "b");

        /* Members add up their weights, so a check weighs in one member only. */
        expect_one_error("checks = ( { name = \"up\"; type = \"icmp\"; address = \"192.0.2.1\"; } );\n"
                         "vrrp = ( { name = \"a\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                         "           track_checks = ( { check = \"up\"; weight = -20; } ); },\n"
                         "         { name = \"b\"; interface = \"eth1\"; vrid = 1; virtual_ips = [ \"10.0.1.1\" ];\n"
                         "           track_checks = ( { check = \"up\"; weight = -10; } ); } );\n"
                         "groups = ( { name = \"g\"; instances = [ \"a\", \"b\" ]; } );\n",
                         5, "check 'up' has a weight in vrrp instances 'a' (line 3) and 'b' of group 'g': a group adds "
                            "up the weights of all its members, give it a weight in one of them");
        hamgr_config_free(TAKE_PTR(c));
        /* Weight 0 (a fault) in both, or a weight in one and 0 in the other, is fine. */
        c = load_ok("checks = ( { name = \"up\"; type = \"icmp\"; address = \"192.0.2.1\"; } );\n"
                    "vrrp = ( { name = \"a\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                    "           track_checks = ( { check = \"up\"; weight = -20; } ); },\n"
                    "         { name = \"b\"; interface = \"eth1\"; vrid = 1; virtual_ips = [ \"10.0.1.1\" ];\n"
                    "           track_checks = ( { check = \"up\"; } ); },\n"
                    "         { name = \"c\"; interface = \"eth2\"; vrid = 1; virtual_ips = [ \"10.0.2.1\" ];\n"
                    "           track_checks = ( { check = \"up\"; } ); } );\n"
                    "groups = ( { name = \"g\"; instances = [ \"a\", \"b\", \"c\" ]; } );\n");
        assert_int_equal(c->groups[0].n_instances, 3);
}

static void test_notify(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

        c = load_ok("notify = { script = \"\"; master = \"/usr/local/bin/m\"; stop = \"/bin/true\"; timeout_ms = 1; };\n");
        assert_null(c->notify.script);
        assert_string_equal(c->notify.master, "/usr/local/bin/m");
        assert_null(c->notify.backup);
        assert_null(c->notify.fault);
        assert_string_equal(c->notify.stop, "/bin/true");
        assert_int_equal(c->notify.timeout_ms, 1);

        expect_one_error("notify = {\n  fault = \"notify.sh\"; };\n", 2, "notify fault 'notify.sh' must be an absolute path");
        expect_one_error("notify = {\n  timeout_ms = 0; };\n", 2, "timeout_ms 0 out of range 1..3600000");
        expect_one_error("notify = {\n  timeout_ms = 3600001; };\n", 2, "timeout_ms 3600001 out of range 1..3600000");
        expect_one_error("notify = {\n  master = 1; };\n", 2, "master must be a string");
        expect_one_error("notify = {\n  on_master = \"/x\"; };\n", 2, "unknown setting 'on_master' in notify");
        expect_one_error("notify = \"/x\";\n", 1, "notify must be a group");
}

static void test_node(void **state) {
        expect_one_error("node = {\n  state_dir = \"var/lib/hamgr\"; };\n", 2,
                         "state_dir 'var/lib/hamgr' must be an absolute path");
        expect_one_error("node = {\n  control_socket = \"\"; };\n", 2, "control_socket '' must be an absolute path");
        expect_one_error("node = {\n  control_socket = \"/run/hamgr/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"; };\n",
                         2, "control_socket is too long (at most 107 characters)");
        expect_one_error("node = {\n  hostname = \"gw1\"; };\n", 2, "unknown setting 'hostname' in node");
        expect_one_error("node = ( );\n", 1, "node must be a group");
}

static void test_unknown_top_level(void **state) {
        expect_one_error("node = { name = \"gw1\"; };\nwireguards = ( );\n", 2, "unknown setting 'wireguards' at top level");
        expect_one_error("node = { name = \"gw1\"; };\ncheck = ( );\n", 2, "unknown setting 'check' at top level");
        expect_one_error("vrrp_instances = ( );\n", 1, "unknown setting 'vrrp_instances' at top level");
        expect_one_error("\n\nvrrp = { name = \"x\"; };\n", 3, "vrrp must be a list of instances");
        expect_one_error("vrrp = ( \"wan\" );\n", 1, "vrrp instance #1 must be a group");
}

static void test_syntax_error(void **state) {
        expect_one_error("node = { name = \"gw1\"; };\n"
                         "vrrp = (\n"
                         "  { name = \"wan\"; vrid = = 5; }\n"
                         ");\n",
                         3, "syntax error");
        expect_one_error("a = 1;\na = 2;\n", 2, "duplicate setting name");
        expect_one_error("node = { name = \"gw1\"; };\n@include \"/etc/passwd\"\n", 2, "@include is not supported");
        expect_one_error("node = { name = \"gw1\"; };\n  /* x */ @include \"/etc/passwd\"\n", 2, "syntax error");
}

/* libconfig 1.5 wraps integers beyond 32 bits: 4294967347 would read as 51. */
static void test_integer_overflow(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; virtual_ips = [ \"10.0.0.1\" ];\n"
                         "  vrid = 4294967347; } );\n",
                         2, "integer 4294967347 does not fit in 32 bits");
        expect_one_error("notify = { timeout_ms = -4294967296; };\n", 1, "integer -4294967296 does not fit in 32 bits");
        expect_one_error("notify = {\n timeout_ms = 0x100002710; };\n", 2, "integer 0x100002710 does not fit in 32 bits");
        expect_one_error("notify = {\n timeout_ms = 99999999999999999999999; };\n", 2, "does not fit in 32 bits");
        expect_one_error("notify = {\n timeout_ms = 4294967296L; };\n", 2, "timeout_ms 4294967296 out of range 1..3600000");

        /* Big numbers in comments, strings and names are not integers; neither are floats. */
        c = load_ok("# 4294967347\n"
                    "/* 4294967347\n"
                    "@include \"x\" */ notify = { script = \"/opt/4294967347\\\"\n"
                    "@include\"; timeout_ms = 0x2710; };\n"
                    "node = { name = \"n-4294967347\"; state_dir = \"/x\"; };\n");
        assert_string_equal(c->notify.script, "/opt/4294967347\"\n@include");
        assert_int_equal(c->notify.timeout_ms, 10000);
        expect_one_error("notify = {\n timeout_ms = 99999999999.5; };\n", 2, "timeout_ms must be an integer");
}

static void test_multiple_errors(void **state) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;
        static const struct {
                int line;
                const char *message;
        } expected[] = {
                { 1, "unknown setting 'check' at top level" },
                { 2, "state_dir 'relative' must be an absolute path" },
                { 4, "unknown setting 'prioritty' in vrrp instance 'wan'" },
                { 5, "vrid 0 out of range 1..255" },
                { 6, "advert_interval_ms 25 must be a multiple of 10" },
                { 7, "garp of vrrp instance 'wan'" },
                { 10, "group member 'lan' is not a vrrp instance" },
                { 11, "notify script 'x.sh' must be an absolute path" },
        };

        assert_int_equal(hamgr_config_load_string("check = ( );\n"
                                                  "node = { state_dir = \"relative\"; };\n"
                                                  "vrrp = ( { name = \"wan\"; interface = \"eth0\";\n"
                                                  "  prioritty = 100;\n"
                                                  "  vrid = 0;\n"
                                                  "  advert_interval_ms = 25;\n"
                                                  "  garp = { count = 1; };\n"
                                                  "  virtual_ips = [ \"10.0.0.1\" ]; } );\n"
                                                  "groups = ( { name = \"g\";\n"
                                                  "  instances = [ \"wan\", \"lan\" ]; } );\n"
                                                  "notify = { script = \"x.sh\"; };\n",
                                                  "multi.conf", &c, &e),
                         -EINVAL);
        assert_null(c);
        if (e.n != ELEMENTSOF(expected))
                dump_errors(&e);
        assert_int_equal(e.n, ELEMENTSOF(expected));
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                assert_int_equal(e.items[i].line, expected[i].line);
                assert_non_null(strstr(e.items[i].message, expected[i].message));
        }

        /* Reported in file order, although notify is checked after vrrp. */
        hamgr_config_errors_clear(&e);
        assert_int_equal(hamgr_config_load_string("notify = { timeout_ms = 0; };\n"
                                                  "vrrp = ( { name = \"x\"; interface = \"eth0\"; virtual_ips = [ \"10.0.0.1\" ];\n"
                                                  "  vrid = 300; } );\n",
                                                  "x", &c, &e),
                         -EINVAL);
        assert_int_equal(e.n, 2);
        assert_int_equal(e.items[0].line, 1);
        assert_string_equal(e.items[0].message, "timeout_ms 0 out of range 1..3600000");
        assert_int_equal(e.items[1].line, 3);
        assert_string_equal(e.items[1].message, "vrid 300 out of range 1..255");
        hamgr_config_errors_clear(&e);

        /* A second load appends rather than replaces; a NULL list only counts. */
        assert_int_equal(hamgr_config_load_string("bogus = 1;\n", "x", &c, &e), -EINVAL);
        assert_int_equal(e.n, 1);
        assert_int_equal(hamgr_config_load_string("bogus = 2;\n", "x", &c, &e), -EINVAL);
        assert_int_equal(e.n, 2);
        assert_int_equal(hamgr_config_load_string("bogus = 1;\n", "x", &c, NULL), -EINVAL);
        assert_null(c);
        hamgr_config_errors_clear(&e);
        assert_int_equal(e.n, 0);
        assert_null(e.items);
        hamgr_config_errors_clear(NULL);
}

static void test_errors_print(void **state) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;
        char *out = NULL;
        size_t len = 0;
        FILE *f;

        assert_int_equal(hamgr_config_load_string("\nnotify = { timeout_ms = 0; };\n", "x", &c, &e), -EINVAL);
        assert_int_equal(hamgr_config_load("/nonexistent/hamgr.conf", &c, &e), -ENOENT);
        assert_null(c);
        assert_int_equal(e.n, 2);
        assert_int_equal(e.items[1].line, 0);

        f = open_memstream(&out, &len);
        assert_non_null(f);
        hamgr_config_errors_print(&e, "/etc/hamgr/hamgr.conf", f);
        fclose(f);
        assert_string_equal(out,
                            "/etc/hamgr/hamgr.conf:2: timeout_ms 0 out of range 1..3600000\n"
                            "/etc/hamgr/hamgr.conf: cannot read: No such file or directory\n");
        free(out);
        hamgr_config_errors_clear(&e);
}

static void test_load_file_errors(void **state) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = (struct hamgr_config *) &e; /* must stay untouched */
        char path[] = "/tmp/hamgr-test-config-XXXXXX";
        int fd;

        assert_int_equal(hamgr_config_load(HAMGR_SOURCE_DIR, &c, &e), -EISDIR);
        assert_ptr_equal(c, &e);

        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "a = 1;\0b = 2;\n", 14), 14);
        close(fd);
        assert_int_equal(hamgr_config_load(path, &c, &e), -EBADMSG);
        assert_ptr_equal(c, &e);

        /* A syntax error in a real file carries libconfig's line. */
        fd = open(path, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "node = {\n\n  name = ;\n};\n", 24), 24);
        close(fd);
        assert_int_equal(hamgr_config_load(path, &c, &e), -EINVAL);
        assert_ptr_equal(c, &e);
        unlink(path);

        assert_int_equal(e.n, 3);
        assert_int_equal(e.items[0].line, 0);
        assert_int_equal(e.items[1].line, 0);
        assert_string_equal(e.items[1].message, "file contains a NUL byte");
        assert_int_equal(e.items[2].line, 3);
        hamgr_config_errors_clear(&e);
}

/* A FIFO (no writer) or a device is refused at once, not read or waited on. */
static void test_load_not_regular(void **state) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = (struct hamgr_config *) &e; /* must stay untouched */
        char dir[] = "/tmp/hamgr-test-fifo-XXXXXX", path[64];

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/fifo", dir);
        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(hamgr_config_load(path, &c, &e), -EBADF);
        assert_int_equal(hamgr_config_load("/dev/null", &c, &e), -EBADF);
        assert_ptr_equal(c, &e);
        unlink(path);
        rmdir(dir);

        assert_int_equal(e.n, 2);
        assert_int_equal(e.items[0].line, 0);
        assert_string_equal(e.items[0].message,
                            "is a FIFO, not a regular file: give the path of the configuration file "
                            "(or - for standard input)");
        assert_string_equal(e.items[1].message,
                            "is a character device, not a regular file: give the path of the configuration file "
                            "(or - for standard input)");
        hamgr_config_errors_clear(&e);
}

/* One instance per variant; each differs from the base in exactly one field. */
static const char *const equal_variants[] = {
        "name = \"wan2\";",
        "interface = \"eth9\";",
        "vrid = 52;",
        "priority = 101;",
        "version = 2;",
        "advert_interval_ms = 2000;",
        "preempt = false;",
        "preempt_delay_ms = 1;",
        "unicast_ttl = 64;",
        "unicast_source = \"10.0.0.5\";",
        "accept_mode = true;",
        "checksum = \"rfc9568\";",
        "vips = 1;",
        "vips = 2;",
        "vips = 3;",
        "peers = 1;",
        "peers = 2;",
        "track = 1;",
        "track = 2;",
        "garp = { repeat = 4; };",
        "garp = { interval_ms = 101; };",
        "garp = { refresh_s = 1; };",
        "garp = { delay_s = 6; };",
        "garp = { delay_repeat = 4; };",
        "tc = 1;",
        "tc = 2;",
        "tc = 3;",
        "virtual_routes = ( { to = \"10.9.0.0/16\"; via = \"10.0.0.9\"; } );",
};

static struct hamgr_config *load_variant(const char *variant, const char *leading) {
        const char *name = "\"wan\"", *iface = "\"eth0\"", *vips = "\"10.0.0.1/24\", \"10.0.0.2/24\"";
        const char *peers = "\"10.0.0.7\", \"10.0.0.8\"", *track = "\"eth1\", \"eth2\"";
        const char *tc = "{ check = \"c1\"; weight = -10; }, { check = \"c2\"; }";
        char text[1024], setting[64] = "";
        int vrid = 51;

        /* Variants of the list settings are encoded as "key = N;" and expanded here. */
        if (variant && streq(variant, "name = \"wan2\";"))
                name = "\"wan2\"";
        else if (variant && streq(variant, "interface = \"eth9\";"))
                iface = "\"eth9\"";
        else if (variant && streq(variant, "vrid = 52;"))
                vrid = 52;
        else if (variant && streq(variant, "vips = 1;"))
                vips = "\"10.0.0.2/24\", \"10.0.0.1/24\"";   /* order */
        else if (variant && streq(variant, "vips = 2;"))
                vips = "\"10.0.0.1/25\", \"10.0.0.2/24\"";   /* prefix length */
        else if (variant && streq(variant, "vips = 3;"))
                vips = "\"10.0.0.1/24\"";                    /* count */
        else if (variant && streq(variant, "peers = 1;"))
                peers = "\"10.0.0.7\", \"10.0.0.9\"";
        else if (variant && streq(variant, "peers = 2;"))
                peers = "\"10.0.0.7\"";
        else if (variant && streq(variant, "track = 1;"))
                track = "\"eth1\", \"eth3\"";
        else if (variant && streq(variant, "track = 2;"))
                track = "\"eth1\"";
        else if (variant && streq(variant, "tc = 1;"))
                tc = "{ check = \"c1\"; weight = -11; }, { check = \"c2\"; }";   /* weight */
        else if (variant && streq(variant, "tc = 2;"))
                tc = "{ check = \"c1\"; weight = -10; }, { check = \"c3\"; }";   /* check */
        else if (variant && streq(variant, "tc = 3;"))
                tc = "{ check = \"c1\"; weight = -10; }";                       /* count */
        else if (variant && streq(variant, "tc = reordered;"))
                tc = "{ check = \"c2\"; }, { check = \"c1\"; weight = -10; }";
        else if (variant)
                snprintf(setting, sizeof(setting), "%s", variant);

        snprintf(text, sizeof(text),
                 "%schecks = ( { name = \"c1\"; type = \"link\"; interface = \"eth1\"; },\n"
                 "  { name = \"c2\"; type = \"link\"; interface = \"eth2\"; }, { name = \"c3\"; type = \"link\"; interface = \"eth3\"; } );\n"
                 "vrrp = ( { name = %s; interface = %s; vrid = %d; virtual_ips = [ %s ];\n"
                 "  unicast_peers = [ %s ]; track_interfaces = [ %s ]; track_checks = ( %s ); %s } );\n",
                 leading, name, iface, vrid, vips, peers, track, tc, setting);
        return load_ok(text);
}

static void test_config_equal(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *base = NULL, *moved = NULL, *sample1 = NULL,
                                                          *sample2 = NULL;

        base = load_variant(NULL, "");
        /* Another line, same settings: a reload must keep this instance. */
        moved = load_variant(NULL, "\n\n# comment\n");
        assert_int_not_equal(base->vrrp[0].line, moved->vrrp[0].line);
        assert_true(hamgr_vrrp_config_equal(&base->vrrp[0], &moved->vrrp[0]));
        assert_true(hamgr_vrrp_config_equal(&base->vrrp[0], &base->vrrp[0]));
        assert_false(hamgr_vrrp_config_equal(&base->vrrp[0], NULL));
        assert_true(hamgr_vrrp_config_equal(NULL, NULL));
        assert_int_equal(base->vrrp[0].n_track_checks, 2);

        /* Tracked checks are a set: their order is no change. */
        {
                _cleanup_(hamgr_config_freep) struct hamgr_config *r = load_variant("tc = reordered;", "");

                assert_true(hamgr_vrrp_config_equal(&base->vrrp[0], &r->vrrp[0]));
                assert_true(hamgr_vrrp_config_equal(&r->vrrp[0], &base->vrrp[0]));
        }

        for (size_t i = 0; i < ELEMENTSOF(equal_variants); i++) {
                _cleanup_(hamgr_config_freep) struct hamgr_config *v = load_variant(equal_variants[i], "");

                if (hamgr_vrrp_config_equal(&base->vrrp[0], &v->vrrp[0]))
                        fprintf(stderr, "variant \"%s\" compared equal\n", equal_variants[i]);
                assert_false(hamgr_vrrp_config_equal(&base->vrrp[0], &v->vrrp[0]));
                assert_false(hamgr_vrrp_config_equal(&v->vrrp[0], &base->vrrp[0]));
        }

        /* The first address decides the family, so reordering families is a change. */
        {
                _cleanup_(hamgr_config_freep) struct hamgr_config *a = NULL, *b = NULL;

                a = load_ok("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\", \"2001:db8::1\" ]; } );");
                b = load_ok("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"2001:db8::1\", \"10.0.0.1\" ]; } );");
                assert_false(hamgr_vrrp_config_equal(&a->vrrp[0], &b->vrrp[0]));
        }

        assert_int_equal(hamgr_config_load(SAMPLE_CONFIG, &sample1, NULL), 0);
        assert_int_equal(hamgr_config_load(SAMPLE_CONFIG, &sample2, NULL), 0);
        for (size_t i = 0; i < sample1->n_vrrp; i++)
                assert_true(hamgr_vrrp_config_equal(&sample1->vrrp[i], &sample2->vrrp[i]));
        assert_false(hamgr_vrrp_config_equal(&sample1->vrrp[0], &sample2->vrrp[1]));
}

#define ROUTE_INSTANCE "vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"

/* One route (ROUTE, the group's inside) on line 3 of an instance. */
static void expect_route_error(const char *route, const char *msg) {
        char text[1024];

        snprintf(text, sizeof(text), ROUTE_INSTANCE "  virtual_routes = (\n    { %s } ); } );\n", route);
        expect_one_error(text, 3, msg);
}

static void test_virtual_routes(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        const struct hamgr_virtual_route *r;
        char buf[INET6_ADDRSTRLEN];

        c = load_ok(ROUTE_INSTANCE
                    "  virtual_routes = (\n"
                    "    { to = \"10.200.0.0/16\"; via = \"10.0.0.254\"; src = \"10.0.0.1\"; },\n"
                    "    { to = \"0.0.0.0/0\"; via = \"10.0.0.254\"; metric = 50; table = 100; dev = \"eth1\"; },\n"
                    "    { to = \"fd99::/48\"; via = \"fe80::1\"; table = \"main\"; },\n"
                    "    { to = \"10.201.0.0/16\"; dev = \"wg0\"; metric = 4294967295L; table = \"default\"; },\n"
                    "    { to = \"203.0.113.0/24\"; type = \"blackhole\"; table = 4294967295L; },\n"
                    "    { to = \"198.51.100.0/24\"; type = \"unreachable\"; },\n"
                    "    { to = \"2001:db8::/32\"; type = \"prohibit\"; metric = 0; },\n"
                    "    { to = \"10.202.0.0/16\"; type = \"unicast\"; via = \"10.0.0.254\"; metric = 50; table = 100; }\n"
                    "  ); } );\n");
        assert_int_equal(c->vrrp[0].n_virtual_routes, 8);
        r = &c->vrrp[0].virtual_routes[0];
        assert_string_equal(ip_address_to_string(&r->to.address, buf, sizeof(buf)), "10.200.0.0");
        assert_int_equal(r->to.prefixlen, 16);
        assert_string_equal(ip_address_to_string(&r->via, buf, sizeof(buf)), "10.0.0.254");
        assert_string_equal(ip_address_to_string(&r->src, buf, sizeof(buf)), "10.0.0.1");
        assert_null(r->dev);
        assert_int_equal(r->metric, 0);
        assert_int_equal(r->table, 254);
        assert_int_equal(r->type, HAMGR_ROUTE_UNICAST);
        assert_int_equal(r->line, 3);
        r = &c->vrrp[0].virtual_routes[1];
        assert_int_equal(r->to.prefixlen, 0);
        assert_int_equal(r->metric, 50);
        assert_int_equal(r->table, 100);
        assert_string_equal(r->dev, "eth1");
        assert_int_equal(r->src.family, AF_UNSPEC);
        r = &c->vrrp[0].virtual_routes[2];
        assert_int_equal(r->to.address.family, AF_INET6);
        assert_int_equal(r->metric, 1024); /* the kernel's IPv6 default */
        assert_int_equal(r->table, 254);
        r = &c->vrrp[0].virtual_routes[3];
        assert_int_equal(r->via.family, AF_UNSPEC);
        assert_string_equal(r->dev, "wg0");
        assert_int_equal(r->metric, UINT32_MAX);
        assert_int_equal(r->table, 253);
        r = &c->vrrp[0].virtual_routes[4];
        assert_int_equal(r->type, HAMGR_ROUTE_BLACKHOLE);
        assert_int_equal(r->table, UINT32_MAX);
        assert_string_equal(hamgr_route_type_to_string(r->type), "blackhole");
        assert_int_equal(c->vrrp[0].virtual_routes[5].type, HAMGR_ROUTE_UNREACHABLE);
        assert_int_equal(c->vrrp[0].virtual_routes[6].type, HAMGR_ROUTE_PROHIBIT);
        assert_int_equal(c->vrrp[0].virtual_routes[6].metric, 0);
        assert_null(hamgr_route_type_to_string(_HAMGR_ROUTE_TYPE_MAX));

        /* Equality: every field but the line. */
        assert_true(hamgr_virtual_route_equal(&c->vrrp[0].virtual_routes[0], &c->vrrp[0].virtual_routes[0]));
        assert_false(hamgr_virtual_route_equal(&c->vrrp[0].virtual_routes[1], &c->vrrp[0].virtual_routes[7]));
        {
                struct hamgr_virtual_route a = c->vrrp[0].virtual_routes[7], b = a;

                b.line++;
                assert_true(hamgr_virtual_route_equal(&a, &b));
                b = a, b.metric++;
                assert_false(hamgr_virtual_route_equal(&a, &b));
                b = a, b.table++;
                assert_false(hamgr_virtual_route_equal(&a, &b));
                b = a, b.via.addr.bytes[3]++;
                assert_false(hamgr_virtual_route_equal(&a, &b));
                b = a, b.src = b.via;
                assert_false(hamgr_virtual_route_equal(&a, &b));
                b = a, b.to.prefixlen = 17;
                assert_false(hamgr_virtual_route_equal(&a, &b));
                b = a, b.type = HAMGR_ROUTE_BLACKHOLE;
                assert_false(hamgr_virtual_route_equal(&a, &b));
                b = a, b.dev = (char *) "eth0";
                assert_false(hamgr_virtual_route_equal(&a, &b));
        }

        /* Errors, each on the route's own line. */
        expect_route_error("to = \"10.0.0.0/33\";", "virtual route to '10.0.0.0/33' is not a prefix");
        expect_route_error("to = \"10.0.0.0/x\";", "is not a prefix");
        expect_route_error("to = \"10.1.2.3/16\";",
                           "virtual route to '10.1.2.3/16' has host bits set: the network is 10.1.0.0/16");
        expect_route_error("to = \"2001:db8::1/32\";", "the network is 2001:db8::/32");
        expect_route_error("to = 10;", "to must be a string");
        expect_route_error("to = \"10.0.0.0/8\"; via = \"2001:db8::1\";",
                           "via '2001:db8::1' is IPv6 but the route to 10.0.0.0/8 is IPv4");
        expect_route_error("to = \"fd00::/8\"; via = \"10.0.0.1\";", "via '10.0.0.1' is IPv4 but the route to fd00::/8 is IPv6");
        expect_route_error("to = \"10.0.0.0/8\"; src = \"fd00::1\";", "src 'fd00::1' is IPv6");
        expect_route_error("to = \"10.0.0.0/8\"; via = \"gw.example\";", "via 'gw.example' is not an IP address");
        expect_route_error("to = \"10.0.0.0/8\"; dev = \"eth0:1\";", "dev 'eth0:1' is not a valid interface name");
        expect_route_error("to = \"10.0.0.0/8\"; dev = \"abcdefghijklmnop\";", "is not a valid interface name");
        expect_route_error("to = \"10.0.0.0/8\"; metric = -1;", "metric -1 out of range 0..4294967295");
        expect_route_error("to = \"10.0.0.0/8\"; metric = \"low\";", "metric must be an integer");
        expect_route_error("to = \"10.0.0.0/8\"; table = 0;", "table 0 out of range 1..4294967295");
        expect_route_error("to = \"10.0.0.0/8\"; table = 255;", "table 255 is the kernel's local table");
        expect_route_error("to = \"10.0.0.0/8\"; table = \"vpn\";", "table 'vpn' must be a number or \"main\" or \"default\"");
        expect_route_error("to = \"10.0.0.0/8\"; type = \"local\";", "type 'local' must be \"unicast\", \"blackhole\"");
        expect_route_error("to = \"10.0.0.0/8\"; type = \"blackhole\"; via = \"10.0.0.2\";",
                           "'via' has no meaning for a route of type blackhole");
        expect_route_error("to = \"10.0.0.0/8\"; type = \"unreachable\"; dev = \"eth0\";",
                           "'dev' has no meaning for a route of type unreachable");
        expect_route_error("via = \"10.0.0.2\";", "missing required setting 'to' in virtual route #1 of vrrp instance 'w'");
        expect_route_error("to = \"10.0.0.0/8\"; gateway = \"10.0.0.2\";",
                           "unknown setting 'gateway' in virtual route #1 of vrrp instance 'w'");
        expect_one_error(ROUTE_INSTANCE "  virtual_routes = \"10.0.0.0/8\"; } );\n", 2,
                         "virtual_routes must be a list of routes");
        expect_one_error(ROUTE_INSTANCE "  virtual_routes = ( \"10.0.0.0/8\" ); } );\n", 2,
                         "virtual route #1 must be a group { to = \"PREFIX\"; ... }");
        /* One destination, table and metric is one kernel route. */
        expect_one_error(ROUTE_INSTANCE "  virtual_routes = ( { to = \"10.0.0.0/8\"; via = \"10.0.0.2\"; },\n"
                         "    { to = \"10.0.0.0/8\"; via = \"10.0.0.3\"; } ); } );\n",
                         3, "duplicate virtual route to 10.0.0.0/8 (table 254, metric 0, first at line 2)");
        expect_one_error(ROUTE_INSTANCE "  virtual_routes = ( { to = \"fd00::/8\"; metric = 1024; type = \"blackhole\"; },\n"
                         "    { to = \"fd00::/8\"; } ); } );\n",
                         3, "duplicate virtual route to fd00::/8 (table 254, metric 1024, first at line 2)");
        expect_one_error("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ];\n"
                         "    virtual_routes = ( { to = \"0.0.0.0/0\"; via = \"10.0.0.2\"; table = 7; } ); },\n"
                         "  { name = \"l\"; interface = \"eth1\"; vrid = 2; virtual_ips = [ \"10.1.0.1/24\" ];\n"
                         "    virtual_routes = ( { to = \"0.0.0.0/0\"; via = \"10.1.0.2\"; table = 7; } ); } );\n",
                         4, "virtual route to 0.0.0.0/0 (table 7, metric 0) is also in vrrp instance 'w' (line 2)");
        /* Same destination in another table or with another metric is another route. */
        hamgr_config_free(load_ok(ROUTE_INSTANCE "  virtual_routes = ( { to = \"10.0.0.0/8\"; via = \"10.0.0.2\"; },\n"
                                  "    { to = \"10.0.0.0/8\"; via = \"10.0.0.3\"; metric = 1; },\n"
                                  "    { to = \"10.0.0.0/8\"; via = \"10.0.0.3\"; table = 5; } ); } );\n"));
}

/* Loads TEXT expecting exactly the errors in WANT (line and full message), in order. */
struct line_error {
        int line;
        const char *message;
};

static void expect_errors(const char *text, const struct line_error *want, size_t n) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;
        bool same;
        int r;

        r = hamgr_config_load_string(text, "test", &c, &e);
        same = e.n == n;
        for (size_t i = 0; same && i < n; i++)
                same = e.items[i].line == want[i].line && streq(e.items[i].message, want[i].message);
        if (!same) {
                fprintf(stderr, "for:\n%s\nwanted:\n", text);
                for (size_t i = 0; i < n; i++)
                        fprintf(stderr, "test:%d: %s\n", want[i].line, want[i].message);
                fprintf(stderr, "got:\n");
                dump_errors(&e);
        }
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        assert_true(same);
        hamgr_config_errors_clear(&e);
}

#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  /* bytes 0..31 */
#define KEY_B "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="  /* bytes 100..131 */

#define CHECK_INSTANCE "vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1;\n"

/* Addresses that load as addresses but cannot be a VIP or a peer. */
static void test_unusable_addresses(void **state) {
        static const struct {
                const char *vip;
                const char *message;
        } vips[] = {
                { "224.0.0.18", "virtual IP '224.0.0.18' is a multicast address, which cannot be a virtual router's address" },
                { "127.0.0.2/8", "virtual IP '127.0.0.2/8' is a loopback address, which cannot be a virtual router's address" },
                { "0.0.0.0", "virtual IP '0.0.0.0' is the unspecified address, which cannot be a virtual router's address" },
                { "255.255.255.255", "virtual IP '255.255.255.255' is the broadcast address, which cannot be a virtual router's address" },
                { "169.254.1.1/16", "virtual IP '169.254.1.1/16' is an IPv4 link-local address (169.254.0.0/16), which cannot be a virtual router's address" },
                { "ff02::12", "virtual IP 'ff02::12' is a multicast address, which cannot be a virtual router's address" },
                { "::1", "virtual IP '::1' is the loopback address, which cannot be a virtual router's address" },
                { "::", "virtual IP '::' is the unspecified address, which cannot be a virtual router's address" },
                { "10.0.0.0/24", "virtual IP '10.0.0.0/24' is the network address of its /24 network, not a host address (give the address the router answers on, with the prefix of the subnet)" },
                { "10.0.0.255/24", "virtual IP '10.0.0.255/24' is the broadcast address of its /24 network, not a host address (give the address the router answers on, with the prefix of the subnet)" },
                { "2001:db8::/64", "virtual IP '2001:db8::/64' is the network address of its /64 network, not a host address (give the address the router answers on, with the prefix of the subnet)" },
                { "2001:db8::1/129", "virtual IP '2001:db8::1/129': prefix /129 is too long for IPv6 (at most /128)" },
        };
        char text[512];

        for (size_t i = 0; i < ELEMENTSOF(vips); i++) {
                struct line_error want = { 2, vips[i].message };

                snprintf(text, sizeof(text), CHECK_INSTANCE "  virtual_ips = [ \"%s\" ]; } );\n", vips[i].vip);
                expect_errors(text, &want, 1);
        }
        /* The edges that are host addresses: /31 and /127 (RFC 3021, 6164), host routes. */
        hamgr_config_free(load_ok(CHECK_INSTANCE "  virtual_ips = [ \"10.0.0.0/31\", \"10.0.0.255/32\", \"10.0.1.0/32\",\n"
                                  "    \"2001:db8::/127\", \"169.253.255.254/16\" ]; } );\n"));

        expect_errors(CHECK_INSTANCE "  virtual_ips = [ \"10.0.0.1/24\" ];\n"
                      "  unicast_peers = [ \"10.0.0.2\",\n"
                      "    \"10.0.0.1\",\n"
                      "    \"224.0.0.18\",\n"
                      "    \"127.0.0.1\", \"0.0.0.0\",\n"
                      "    \"10.0.0.3/24\" ]; } );\n",
                      (const struct line_error[]) {
                              { 4, "unicast peer '10.0.0.1' is a virtual IP of this instance; list the other router's own address" },
                              { 5, "unicast peer '224.0.0.18' is a multicast address; list the other router's own address" },
                              { 6, "unicast peer '127.0.0.1' is a loopback address; list the other router's own address" },
                              { 6, "unicast peer '0.0.0.0' is the unspecified address; list the other router's own address" },
                              { 7, "unicast peer '10.0.0.3/24' is not an IP address (give it without a /prefix)" },
                      }, 5);
}

/* Settings that load but would do nothing: notify and exec with arguments
 * are errors (they would never run), the rest warnings. */
static void test_settings_that_do_nothing(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        struct hamgr_config_errors w = {};

        expect_errors("notify = {\n"
                      "  master = \"/etc/hamgr/notify.sh MASTER\";\n"
                      "  script = \"/usr/bin/logger\"; };\n",
                      (const struct line_error[]) {
                              { 2, "notify master '/etc/hamgr/notify.sh MASTER' has arguments: hamgr runs a path, "
                                   "without a shell, and passes the state itself; put the command line in a script and "
                                   "give its path" },
                      }, 1);
        expect_errors("checks = ( { name = \"x\"; type = \"exec\";\n"
                      "  command = \"/bin/ping -c1 192.0.2.1\"; } );\n",
                      (const struct line_error[]) {
                              { 2, "command '/bin/ping -c1 192.0.2.1' has arguments: hamgr runs a path, without a "
                                   "shell; put the command line in a script and give its path" },
                      }, 1);

        c = load_ok("checks = ( { name = \"up\"; type = \"link\"; interface = \"eth1\"; },\n"
                    "           { name = \"down\"; type = \"link\"; interface = \"eth2\"; } );\n"
                    "vrrp = ( { name = \"owner\"; interface = \"eth0\"; vrid = 1; priority = 255;\n"
                    "  virtual_ips = [ \"10.0.0.1/24\" ];\n"
                    "  track_checks = ( { check = \"up\"; weight = 0; },\n"
                    "                   { check = \"down\"; weight = -10; } ); },\n"
                    "  { name = \"lazy\"; interface = \"eth0\"; vrid = 2; preempt = false; preempt_delay_ms = 5000;\n"
                    "    virtual_ips = [ \"10.0.1.1/24\" ]; } );\n");
        assert_int_equal(hamgr_config_warnings(c, &w), 0);
        if (w.n != 2)
                dump_errors(&w);
        assert_int_equal(w.n, 2);
        assert_int_equal(w.items[0].line, 6);
        assert_string_equal(w.items[0].message,
                            "warning: vrrp instance 'owner': weight -10 of check 'down' does nothing: the address "
                            "owner (priority 255) is never adjusted; lower the priority or use weight 0 (FAULT while "
                            "the check is down)");
        assert_int_equal(w.items[1].line, 7);
        assert_string_equal(w.items[1].message,
                            "warning: vrrp instance 'lazy': preempt_delay_ms does nothing with preempt = false; "
                            "remove one of them");
        hamgr_config_errors_clear(&w);
}

static void test_sync_listen_on_vip(void **state) {
        expect_errors("vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1/24\" ]; } );\n"
                      "wireguard = ( { interface = \"wg0\"; follow = \"w\"; } );\n"
                      "sync = { private_key_file = \"/etc/hamgr/sync.key\";\n"
                      "  listen = \"10.0.0.1:51900\";\n"
                      "  peers = ( { name = \"b\"; address = \"10.0.0.3:51900\"; public_key = \"" KEY_A "\"; } ); };\n",
                      (const struct line_error[]) {
                              { 4, "listen '10.0.0.1:51900' is a virtual IP of vrrp instance 'w': only the MASTER "
                                   "holds it, so the BACKUP could not replicate; listen on the node's own address" },
                      }, 1);
}

/* Every error of the file at once: an integer libconfig would wrap does
 * not hide the others, and its wrapped value adds no noise. */
static void test_all_errors_one_pass(void **state) {
        expect_errors("vrrp = ( { name = \"w\"; interface = \"eth0\"; virtual_ips = [ \"10.0.0.1\" ];\n"
                      "  vrid = 4294967296;\n"
                      "  priority = 300;\n"
                      "  advert_interval_ms = 99999999999; } );\n"
                      "notify = { timeout_ms = 0; };\n",
                      (const struct line_error[]) {
                              { 2, "integer 4294967296 does not fit in 32 bits" },
                              { 3, "priority 300 out of range 1..255" },
                              { 4, "integer 99999999999 does not fit in 32 bits" },
                              { 5, "timeout_ms 0 out of range 1..3600000" },
                      }, 4);
}

/* A keepalived.conf given to hamgr: libconfig's error, and what to do. */
static void test_keepalived_hint(void **state) {
        expect_errors("global_defs {\n"
                      "  router_id gw1\n"
                      "}\n"
                      "vrrp_instance VI_1 {\n"
                      "  virtual_router_id 51\n"
                      "}\n",
                      (const struct line_error[]) {
                              { 1, "syntax error" },
                              { 1, "this looks like a keepalived.conf, which hamgr does not read; convert it with "
                                   "'hamgr import-keepalived FILE' (see hamgr(8) and hamgr.conf(5))" },
                      }, 2);
}

static const char full_config[] =
        "node = { name = \"gw1\"; };\n"
        "checks = (\n"
        "  { name = \"wg0\"; type = \"wireguard\"; interface = \"wg0\"; interval_ms = 500; rise = 1; fall = 5;\n"
        "    max_handshake_age_s = 300; },\n"
        "  { name = \"upstream\"; type = \"icmp\"; address = \"192.0.2.1\"; interval_ms = 1000; timeout_ms = 500; },\n"
        "  { name = \"api\"; type = \"tcp\"; address = \"[2001:db8::5]:443\"; },\n"
        "  { name = \"script\"; type = \"exec\"; command = \"/usr/local/bin/check.sh\"; interval_ms = 3000; timeout_ms = 2000; },\n"
        "  { name = \"uplink\"; type = \"link\"; interface = \"eth1\"; rise = 100; fall = 100; interval_ms = 3600000; timeout_ms = 10; },\n"
        "  { name = \"web\"; type = \"tcp\"; address = \"192.0.2.80:65535\"; interval_ms = 10; }\n"
        ");\n"
        "vrrp = (\n"
        "  { name = \"wan\"; interface = \"eth0\"; vrid = 51; virtual_ips = [ \"10.77.0.10/24\", \"2001:db8::10/64\" ];\n"
        "    track_checks = ( { check = \"wg0\"; weight = 0; },\n"
        "                     { check = \"upstream\"; weight = -20; } ); },\n"
        "  { name = \"lan\"; interface = \"eth1\"; vrid = 52; virtual_ips = [ \"192.168.10.1/24\" ];\n"
        "    track_checks = ( { check = \"uplink\"; weight = 254; }, { check = \"api\"; },\n"
        "                     { check = \"web\"; weight = -254; } ); },\n"
        "  { name = \"dmz\"; interface = \"eth2\"; vrid = 53; virtual_ips = [ \"172.16.0.1/24\" ]; track_checks = ( ); }\n"
        ");\n"
        "groups = ( { name = \"gateway\"; instances = [ \"wan\", \"lan\" ]; } );\n"
        "wireguard = (\n"
        "  { interface = \"wg0\"; backend = \"auto\"; follow = \"gateway\"; source_address = \"10.77.0.10\"; },\n"
        "  { interface = \"wg1\"; backend = \"uapi\"; follow = \"dmz\"; },\n"
        "  { interface = \"wg2\"; backend = \"kernel\"; follow = \"gateway\"; source_address = \"2001:db8::10\"; },\n"
        "  { interface = \"wg3\"; follow = \"gateway\"; source_address = \"192.168.10.1\"; }\n"
        ");\n"
        "endpoints = (\n"
        "  { interface = \"wg0\"; peer = \"" KEY_A "\";\n"
        "    candidates = [ \"gw1.example:51820\", \"198.51.100.7:51820\", \"[2001:db8::7]:51820\" ];\n"
        "    stale_after_s = 3600; prefer_first = true; },\n"
        "  { interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = ( \"gw2.example:1\" ); stale_after_s = 5; },\n"
        "  { interface = \"wg1\"; peer = \"" KEY_A "\"; candidates = [ \"b:65535\" ]; backend = \"boringtun\"; }\n"
        ");\n";

static void test_full_config(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        const struct hamgr_check_config *k;
        const struct hamgr_vrrp_config *v;
        const struct hamgr_wireguard_config *w;
        const struct hamgr_endpoint_config *ep;
        char buf[INET6_ADDRSTRLEN];

        c = load_ok(full_config);

        assert_int_equal(c->n_checks, 6);
        k = hamgr_config_find_check(c, "wg0");
        assert_ptr_equal(k, &c->checks[0]);
        assert_int_equal(k->type, HEALTH_CHECK_WIREGUARD);
        assert_string_equal(k->interface, "wg0");
        assert_int_equal(k->interval_ms, 500);
        assert_int_equal(k->timeout_ms, 500); /* default: the interval */
        assert_int_equal(k->rise, 1);
        assert_int_equal(k->fall, 5);
        assert_int_equal(k->max_handshake_age_s, 300);
        assert_null(k->command);
        assert_int_equal(k->line, 3);

        k = hamgr_config_find_check(c, "upstream");
        assert_ptr_equal(k, &c->checks[1]);
        assert_int_equal(k->type, HEALTH_CHECK_ICMP);
        assert_int_equal(k->target.family, AF_INET);
        assert_string_equal(ip_address_to_string(&k->target, buf, sizeof(buf)), "192.0.2.1");
        assert_int_equal(k->interval_ms, 1000);
        assert_int_equal(k->timeout_ms, 500);
        assert_int_equal(k->rise, 2);
        assert_int_equal(k->fall, 3);
        assert_null(k->interface);
        assert_int_equal(k->line, 5);

        k = hamgr_config_find_check(c, "api");
        assert_int_equal(k->type, HEALTH_CHECK_TCP);
        assert_int_equal(k->target.family, AF_INET6);
        assert_string_equal(ip_address_to_string(&k->target, buf, sizeof(buf)), "2001:db8::5");
        assert_int_equal(k->port, 443);
        assert_int_equal(k->interval_ms, 1000);
        assert_int_equal(k->timeout_ms, 1000);

        k = hamgr_config_find_check(c, "script");
        assert_int_equal(k->type, HEALTH_CHECK_EXEC);
        assert_string_equal(k->command, "/usr/local/bin/check.sh");
        assert_int_equal(k->interval_ms, 3000);
        assert_int_equal(k->timeout_ms, 2000);

        k = hamgr_config_find_check(c, "uplink");
        assert_int_equal(k->type, HEALTH_CHECK_LINK);
        assert_string_equal(k->interface, "eth1");
        assert_int_equal(k->rise, 100);
        assert_int_equal(k->fall, 100);
        assert_int_equal(k->interval_ms, 3600000);
        assert_int_equal(k->timeout_ms, 10);

        k = hamgr_config_find_check(c, "web");
        assert_int_equal(k->target.family, AF_INET);
        assert_string_equal(ip_address_to_string(&k->target, buf, sizeof(buf)), "192.0.2.80");
        assert_int_equal(k->port, 65535);
        assert_int_equal(k->interval_ms, 10);
        assert_int_equal(k->timeout_ms, 10);
        assert_null(hamgr_config_find_check(c, "nope"));
        assert_null(hamgr_config_find_check(c, NULL));

        v = hamgr_config_find_vrrp(c, "wan");
        assert_int_equal(v->n_track_checks, 2);
        assert_string_equal(v->track_checks[0].check, "wg0");
        assert_int_equal(v->track_checks[0].weight, 0);
        assert_int_equal(v->track_checks[0].line, 13);
        assert_string_equal(v->track_checks[1].check, "upstream");
        assert_int_equal(v->track_checks[1].weight, -20);
        assert_int_equal(v->track_checks[1].line, 14);
        v = hamgr_config_find_vrrp(c, "lan");
        assert_int_equal(v->n_track_checks, 3);
        assert_string_equal(v->track_checks[0].check, "uplink");
        assert_int_equal(v->track_checks[0].weight, 254);
        assert_string_equal(v->track_checks[1].check, "api");
        assert_int_equal(v->track_checks[1].weight, 0);
        assert_int_equal(v->track_checks[2].weight, -254);
        v = hamgr_config_find_vrrp(c, "dmz");
        assert_int_equal(v->n_track_checks, 0);

        assert_int_equal(c->n_wireguard, 4);
        w = &c->wireguard[0];
        assert_string_equal(w->interface, "wg0");
        assert_int_equal(w->backend, WG_BACKEND_AUTO);
        assert_string_equal(w->follow, "gateway");
        assert_int_equal(w->source_address.family, AF_INET);
        assert_string_equal(ip_address_to_string(&w->source_address, buf, sizeof(buf)), "10.77.0.10");
        assert_int_equal(w->line, 22);
        w = &c->wireguard[1];
        assert_string_equal(w->interface, "wg1");
        assert_int_equal(w->backend, WG_BACKEND_UAPI);
        assert_string_equal(w->follow, "dmz");
        assert_int_equal(w->source_address.family, AF_UNSPEC);
        w = &c->wireguard[2];
        assert_int_equal(w->backend, WG_BACKEND_KERNEL);
        assert_int_equal(w->source_address.family, AF_INET6);
        assert_string_equal(ip_address_to_string(&w->source_address, buf, sizeof(buf)), "2001:db8::10");
        /* A virtual IP of another member of the followed group counts. */
        w = &c->wireguard[3];
        assert_int_equal(w->backend, WG_BACKEND_AUTO);
        assert_string_equal(ip_address_to_string(&w->source_address, buf, sizeof(buf)), "192.168.10.1");

        assert_int_equal(c->n_endpoints, 3);
        ep = &c->endpoints[0];
        assert_string_equal(ep->interface, "wg0");
        for (size_t i = 0; i < WG_KEY_LEN; i++)
                assert_int_equal(ep->peer[i], i);
        assert_int_equal(ep->n_candidates, 3);
        assert_string_equal(ep->candidates[0], "gw1.example:51820");
        assert_string_equal(ep->candidates[1], "198.51.100.7:51820");
        assert_string_equal(ep->candidates[2], "[2001:db8::7]:51820");
        assert_int_equal(ep->stale_after_s, 3600);
        assert_true(ep->prefer_first);
        assert_int_equal(ep->line, 28);
        ep = &c->endpoints[1];
        for (size_t i = 0; i < WG_KEY_LEN; i++)
                assert_int_equal(ep->peer[i], 100 + i);
        assert_int_equal(ep->n_candidates, 1);
        assert_string_equal(ep->candidates[0], "gw2.example:1");
        assert_int_equal(ep->stale_after_s, 5);
        assert_false(ep->prefer_first);
        /* The same peer on another interface is another rotation. */
        ep = &c->endpoints[2];
        assert_string_equal(ep->interface, "wg1");
        assert_int_equal(ep->stale_after_s, 10);
        assert_false(ep->prefer_first);
        assert_int_equal(ep->peer[31], 31);
        assert_int_equal(ep->backend, WG_BACKEND_BORINGTUN);
        assert_int_equal(c->endpoints[0].backend, WG_BACKEND_AUTO);
}

/* A file without the new sections has none of them. */
static void test_wireguard_sections_absent(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

        c = load_ok("checks = ( ); wireguard = ( ); endpoints = ( );\n"
                    "vrrp = ( { name = \"w\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ]; } );\n");
        assert_int_equal(c->n_checks, 0);
        assert_null(c->checks);
        assert_int_equal(c->n_wireguard, 0);
        assert_null(c->wireguard);
        assert_int_equal(c->n_endpoints, 0);
        assert_null(c->endpoints);
        assert_int_equal(c->vrrp[0].n_track_checks, 0);
        assert_null(c->vrrp[0].track_checks);
}

/* Each snippet is on line 3 of a one-check list and gives exactly one error there. */
static const struct error_case check_cases[] = {
        { "type = \"icmp\"; address = \"192.0.2.1\"; command = \"/bin/true\";",
          "setting 'command' does not apply to a check of type icmp" },
        { "type = \"link\"; interface = \"eth1\"; max_handshake_age_s = 10;",
          "setting 'max_handshake_age_s' does not apply to a check of type link" },
        { "type = \"exec\"; command = \"/bin/true\"; interface = \"eth1\";",
          "setting 'interface' does not apply to a check of type exec" },
        { "type = \"wireguard\"; interface = \"wg0\"; address = \"192.0.2.1\";",
          "setting 'address' does not apply to a check of type wireguard" },
        { "type = \"tcp\"; address = \"192.0.2.1:80\"; port = 80;", "unknown setting 'port' in check 'c'" },
        { "type = \"ping\";", "check type 'ping' must be one of wireguard, link, icmp, tcp, exec" },
        /* An unknown type makes the type's own settings neither required nor checked. */
        { "type = \"ping\"; command = \"relative\"; address = 5;",
          "check type 'ping' must be one of wireguard, link, icmp, tcp, exec" },
        { "type = 1;", "type must be a string" },
        { "type = \"link\"; interface = \"eth1\"; interval_ms = 9;", "interval_ms 9 out of range 10..3600000" },
        { "type = \"link\"; interface = \"eth1\"; interval_ms = 3600001;", "interval_ms 3600001 out of range 10..3600000" },
        { "type = \"link\"; interface = \"eth1\"; timeout_ms = 9;", "timeout_ms 9 out of range 10..3600000" },
        { "type = \"link\"; interface = \"eth1\"; interval_ms = 1000; timeout_ms = 1001;",
          "timeout_ms 1001 must not exceed interval_ms 1000" },
        /* Against the default interval too, whatever the order. */
        { "type = \"link\"; timeout_ms = 2000; interface = \"eth1\";", "timeout_ms 2000 must not exceed interval_ms 1000" },
        { "timeout_ms = 100; type = \"link\"; interval_ms = 50; interface = \"eth1\";",
          "timeout_ms 100 must not exceed interval_ms 50" },
        { "type = \"link\"; interface = \"eth1\"; rise = 0;", "rise 0 out of range 1..100" },
        { "type = \"link\"; interface = \"eth1\"; rise = 101;", "rise 101 out of range 1..100" },
        { "type = \"link\"; interface = \"eth1\"; fall = 0;", "fall 0 out of range 1..100" },
        { "type = \"link\"; interface = \"eth1\"; fall = 101;", "fall 101 out of range 1..100" },
        { "type = \"link\"; interface = \"eth1\"; fall = \"3\";", "fall must be an integer" },
        { "type = \"link\"; interface = \"a/b\";", "interface 'a/b' is not a valid interface name (1..15 characters" },
        { "type = \"wireguard\"; interface = \"abcdefghijklmnop\";",
          "interface 'abcdefghijklmnop' is not a valid interface name (1..15 characters" },
        { "type = \"wireguard\"; interface = \"wg0\"; max_handshake_age_s = 0;",
          "max_handshake_age_s 0 out of range 1..86400" },
        { "type = \"wireguard\"; interface = \"wg0\"; max_handshake_age_s = 86401;",
          "max_handshake_age_s 86401 out of range 1..86400" },
        { "type = \"icmp\"; address = \"192.0.2.1:80\";", "address '192.0.2.1:80' is not an IP address" },
        { "type = \"icmp\"; address = \"gw.example\";", "address 'gw.example' is not an IP address" },
        { "type = \"icmp\"; address = \"192.0.2.0/24\";", "address '192.0.2.0/24' is not an IP address" },
        { "type = \"tcp\"; address = \"192.0.2.1\";",
          "address '192.0.2.1' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"192.0.2.1:0\";",
          "address '192.0.2.1:0' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"192.0.2.1:65536\";",
          "address '192.0.2.1:65536' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"192.0.2.1:+80\";",
          "address '192.0.2.1:+80' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"192.0.2.1:\";",
          "address '192.0.2.1:' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"2001:db8::1:443\";",
          "address '2001:db8::1:443' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"[192.0.2.1]:443\";",
          "address '[192.0.2.1]:443' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"[2001:db8::1]443\";",
          "address '[2001:db8::1]443' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"[2001:db8::1]\";",
          "address '[2001:db8::1]' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"tcp\"; address = \"api.example:443\";",
          "address 'api.example:443' must be IPv4:port or [IPv6]:port with port 1..65535" },
        { "type = \"exec\"; command = \"check.sh\";", "command 'check.sh' must be an absolute path" },
        { "type = \"exec\"; command = \"\";", "command '' must be an absolute path" },
        { "type = \"exec\"; command = [ \"/bin/true\" ];", "command must be a string" },
};

static void test_check_errors(void **state) {
        char text[512];

        for (size_t i = 0; i < ELEMENTSOF(check_cases); i++) {
                snprintf(text, sizeof(text),
                         "checks = (\n"
                         "  { name = \"c\";\n"
                         "    %s\n"
                         "  }\n"
                         ");\n",
                         check_cases[i].snippet);
                expect_one_error(text, 3, check_cases[i].message);
        }
}

static void test_check_missing_and_names(void **state) {
        static const struct line_error missing[] = {
                { 2, "missing required setting 'name' in check #1" },
                { 2, "missing required setting 'address' in check #1" },
                { 3, "missing required setting 'interface' in check 'w'" },
                { 4, "missing required setting 'interface' in check 'l'" },
                { 5, "missing required setting 'address' in check 't'" },
                { 6, "missing required setting 'command' in check 'e'" },
                { 7, "missing required setting 'type' in check 'n'" },
                { 8, "check #7 must be a group { ... }" },
        };
        static const struct line_error names[] = {
                { 2, "check name 'a b' is invalid: use 1 to 32 characters from A-Z a-z 0-9 _ . -" },
                { 4, "duplicate check name 'x' (first at line 3)" },
                { 5, "check name 'abcdefghijklmnopqrstuvwxyz0123456' is invalid: use 1 to 32 characters from A-Z a-z 0-9 _ . -" },
        };

        expect_errors("checks = (\n"
                      "  { type = \"icmp\"; },\n"
                      "  { name = \"w\"; type = \"wireguard\"; },\n"
                      "  { name = \"l\"; type = \"link\"; },\n"
                      "  { name = \"t\"; type = \"tcp\"; },\n"
                      "  { name = \"e\"; type = \"exec\"; },\n"
                      "  { name = \"n\"; },\n"
                      "  \"x\" );\n",
                      missing, ELEMENTSOF(missing));
        expect_errors("checks = (\n"
                      "  { name = \"a b\"; type = \"link\"; interface = \"eth0\"; },\n"
                      "  { name = \"x\"; type = \"link\"; interface = \"eth0\"; },\n"
                      "  { name = \"x\"; type = \"link\"; interface = \"eth1\"; },\n"
                      "  { name = \"abcdefghijklmnopqrstuvwxyz0123456\"; type = \"link\"; interface = \"eth0\"; }\n"
                      ");\n",
                      names, ELEMENTSOF(names));
        expect_one_error("\nchecks = { name = \"c\"; };\n", 2, "checks must be a list of checks: checks = ( { ... } );");
        expect_one_error("checks = ( { name = \"c\";\n type = \"link\"; interface = \"eth0\"; rise = 1; rise = 2; } );\n",
                         2, "duplicate setting name");
}

/* Each snippet is on line 5, inside the track_checks of instance 'wan'. */
static const struct error_case track_check_cases[] = {
        { "{ check = \"down\"; }", "unknown check 'down'" },
        { "{ check = \"up\"; weight = 255; }", "weight 255 out of range -254..254" },
        { "{ check = \"up\"; weight = -255; }", "weight -255 out of range -254..254" },
        { "{ check = \"up\"; weight = \"-20\"; }", "weight must be an integer" },
        { "{ check = \"up\"; weight = 1; }, { check = \"wg\"; }, { check = \"up\"; weight = -1; }",
          "duplicate track check 'up' (first at line 5)" },
        { "{ check = \"up\"; wieght = 1; }", "unknown setting 'wieght' in track_checks of vrrp instance 'wan'" },
        { "{ weight = 1; }", "missing required setting 'check' in track_checks of vrrp instance 'wan'" },
        { "{ check = 5; }", "check must be a string" },
        /* libconfig dates a scalar element by the token after it, so the comma keeps it on line 5. */
        { "\"up\", { check = \"up\"; }", "track_checks #1 must be a group { check = \"name\"; weight = 0; }" },
        { "{ check = \"\"; }", "unknown check ''" },
};

static void test_track_check_errors(void **state) {
        static const char *const head =
                "checks = ( { name = \"up\"; type = \"icmp\"; address = \"192.0.2.1\"; },\n"
                "           { name = \"wg\"; type = \"wireguard\"; interface = \"wg0\"; } );\n"
                "vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                "  track_checks = (\n";
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        char text[1024];

        for (size_t i = 0; i < ELEMENTSOF(track_check_cases); i++) {
                snprintf(text, sizeof(text), "%s    %s\n  ); } );\n", head, track_check_cases[i].snippet);
                expect_one_error(text, 5, track_check_cases[i].message);
        }

        expect_one_error("vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                         "  track_checks = [ \"up\" ]; } );\n",
                         2, "track_checks must be a list of groups: track_checks = ( { check = \"name\"; weight = 0; } );");
        /* Every instance tracking a missing check is reported, not only the first. */
        {
                static const struct line_error want[] = {
                        { 2, "unknown check 'up'" },
                        { 4, "unknown check 'up'" },
                };

                expect_errors("vrrp = ( { name = \"a\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                              "  track_checks = ( { check = \"up\"; } ); },\n"
                              "  { name = \"b\"; interface = \"eth0\"; vrid = 2; virtual_ips = [ \"10.0.0.2\" ];\n"
                              "  track_checks = ( { check = \"up\"; } ); } );\n",
                              want, ELEMENTSOF(want));
        }

        /* The checks may come after the instances that track them. */
        c = load_ok("vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                    "  track_checks = ( { check = \"up\"; weight = -254; }, { check = \"wg\"; weight = 254; } ); } );\n"
                    "checks = ( { name = \"up\"; type = \"icmp\"; address = \"2001:db8::1\"; },\n"
                    "           { name = \"wg\"; type = \"wireguard\"; interface = \"wg0\"; } );\n");
        assert_int_equal(c->vrrp[0].n_track_checks, 2);
        assert_int_equal(c->vrrp[0].track_checks[0].weight, -254);
        assert_int_equal(c->vrrp[0].track_checks[1].weight, 254);
        assert_int_equal(c->vrrp[0].track_checks[1].line, 2);
        assert_int_equal(c->checks[0].target.family, AF_INET6);
        assert_int_equal(c->checks[1].max_handshake_age_s, 180);
}

/* Each snippet is the second wireguard entry, on line 6. */
static const struct error_case wireguard_cases[] = {
        { "interface = \"wg0\"; follow = \"wan\";", "instance 'wan' is in group 'gateway': follow the group" },
        { "interface = \"wg0\"; follow = \"lan\"; source_address = \"10.0.0.9\";",
          "instance 'lan' is in group 'gateway': follow the group" },
        { "interface = \"wg0\"; follow = \"nope\";", "follow 'nope' is not a vrrp instance or group" },
        { "interface = \"wg0\"; follow = 1;", "follow must be a string" },
        { "interface = \"wg0\"; follow = \"gateway\"; source_address = \"10.0.0.9\";",
          "source_address 10.0.0.9 is not a virtual IP of 'gateway'" },
        /* A virtual IP, but of an instance outside the group. */
        { "interface = \"wg0\"; follow = \"gateway\"; source_address = \"172.16.0.1\";",
          "source_address 172.16.0.1 is not a virtual IP of 'gateway'" },
        { "interface = \"wg0\"; follow = \"dmz\"; source_address = \"10.77.0.10\";",
          "source_address 10.77.0.10 is not a virtual IP of 'dmz'" },
        { "interface = \"wg0\"; follow = \"gateway\"; source_address = \"2001:DB8::0:11\";",
          "source_address 2001:db8::11 is not a virtual IP of 'gateway'" },
        { "interface = \"wg0\"; follow = \"gateway\"; source_address = \"10.77.0.10/24\";",
          "source_address '10.77.0.10/24' is not an IP address" },
        { "interface = \"wg0\"; follow = \"gateway\"; source_address = 10;", "source_address must be a string" },
        { "interface = \"wg9\"; follow = \"gateway\";", "duplicate wireguard interface 'wg9' (first at line 5)" },
        { "interface = \"wg0\"; follow = \"gateway\"; backend = \"wireguard-go\";",
          "backend 'wireguard-go' must be \"auto\", \"kernel\", \"uapi\" or \"boringtun\"" },
        { "interface = \"wg0\"; follow = \"gateway\"; backend = 1;", "backend must be a string" },
        { "interface = \"wg0\"; follow = \"gateway\"; peers = [ ];", "unknown setting 'peers' in wireguard entry 'wg0'" },
        { "interface = \"wg 0\"; follow = \"gateway\";", "interface 'wg 0' is not a valid interface name (1..15 characters" },
        { "follow = \"gateway\";", "missing required setting 'interface' in wireguard entry #2" },
        { "interface = \"wg0\";", "missing required setting 'follow' in wireguard entry 'wg0'" },
};

static void test_wireguard_errors(void **state) {
        static const char *const head =
                "vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.77.0.10/24\", \"2001:db8::10/64\" ]; },\n"
                "         { name = \"lan\"; interface = \"eth1\"; vrid = 2; virtual_ips = [ \"192.168.10.1/24\" ]; },\n"
                "         { name = \"dmz\"; interface = \"eth2\"; vrid = 3; virtual_ips = [ \"172.16.0.1/24\" ]; } );\n"
                "groups = ( { name = \"gateway\"; instances = [ \"wan\", \"lan\" ]; } );\n";
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        char text[1024];

        for (size_t i = 0; i < ELEMENTSOF(wireguard_cases); i++) {
                snprintf(text, sizeof(text), "%swireguard = ( { interface = \"wg9\"; follow = \"dmz\"; },\n  { %s } );\n",
                         head, wireguard_cases[i].snippet);
                expect_one_error(text, 6, wireguard_cases[i].message);
        }

        snprintf(text, sizeof(text), "%s\nwireguard = { interface = \"wg0\"; };\n", head);
        expect_one_error(text, 6, "wireguard must be a list of interfaces: wireguard = ( { ... } );");
        snprintf(text, sizeof(text), "%swireguard = ( { interface = \"wg0\"; follow = \"dmz\"; },\n  \"wg1\" );\n", head);
        expect_one_error(text, 6, "wireguard entry #2 must be a group { ... }");

        /* Instances and groups have separate names; following one that is both is ambiguous. */
        expect_one_error("vrrp = ( { name = \"x\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ]; },\n"
                         "         { name = \"y\"; interface = \"eth0\"; vrid = 2; virtual_ips = [ \"10.0.0.2\" ]; } );\n"
                         "groups = ( { name = \"x\"; instances = [ \"y\" ]; } );\n"
                         "wireguard = ( { interface = \"wg0\";\n"
                         "  follow = \"x\"; } );\n",
                         5, "follow 'x' names both a vrrp instance and a group: rename one");

        /* An instance of no group may be followed alone; wireguard may come before the instances. */
        snprintf(text, sizeof(text), "wireguard = ( { interface = \"wg0\"; follow = \"dmz\"; source_address = \"172.16.0.1\"; } );\n%s",
                 head);
        c = load_ok(text);
        assert_int_equal(c->n_wireguard, 1);
        assert_string_equal(c->wireguard[0].follow, "dmz");
        assert_int_equal(c->wireguard[0].source_address.family, AF_INET);
        assert_int_equal(c->wireguard[0].line, 1);
}

/* Each snippet is the second endpoint, on line 2. */
static const struct error_case endpoint_cases[] = {
        { "interface = \"wg0\"; peer = \"not-a-key\"; candidates = [ \"gw:1\" ];", "peer is not a base64 WireGuard key" },
        /* 43 characters of data whose unused low bits are not zero: not what wg(8) would print. */
        { "interface = \"wg0\"; peer = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\"; candidates = [ \"gw:1\" ];",
          "peer is not a base64 WireGuard key" },
        { "interface = \"wg0\"; peer = \"" KEY_A "A\"; candidates = [ \"gw:1\" ];", "peer is not a base64 WireGuard key" },
        { "interface = \"wg0\"; peer = \"\"; candidates = [ \"gw:1\" ];", "peer is not a base64 WireGuard key" },
        { "interface = \"wg0\"; peer = 1; candidates = [ \"gw:1\" ];", "peer must be a string" },
        { "interface = \"wg0\"; peer = \"" KEY_A "\"; candidates = [ \"gw:1\" ];",
          "duplicate endpoint: this peer on interface 'wg0' is already at line 1" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ ];", "candidates has 0 entries, allowed 1..16" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = \"gw:1\";", "candidates must be a list of strings" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ 51820 ];", "candidates must contain only strings" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\", \"gw:1\" ];", "duplicate candidate 'gw:1'" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ]; stale_after_s = 4;",
          "stale_after_s 4 out of range 5..3600" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ]; stale_after_s = 3601;",
          "stale_after_s 3601 out of range 5..3600" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ]; prefer_first = 1;",
          "prefer_first must be a boolean" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ]; endpoint = \"gw:1\";",
          "unknown setting 'endpoint' in endpoint #2" },
        { "interface = \"wg0/1\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ];",
          "interface 'wg0/1' is not a valid interface name (1..15 characters" },
        { "peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ];", "missing required setting 'interface' in endpoint #2" },
        { "interface = \"wg0\"; candidates = [ \"gw:1\" ];", "missing required setting 'peer' in endpoint #2" },
        { "interface = \"wg0\"; peer = \"" KEY_B "\";", "missing required setting 'candidates' in endpoint #2" },
};

static const char *const bad_candidates[] = {
        "gw1.example", "gw1.example:0", "gw1.example:65536", ":51820", "gw1.example:", "gw1.example:-1",
        "gw1.example:0x10", "gw1.example: 1", "gw 1:51820", "2001:db8::1:51820", "[2001:db8::1]", "[2001:db8::1]51820",
        "[gw1.example]:51820", "[192.0.2.1]:51820", "[]:51820", "-gw:51820", ".gw:51820", "gw/1:51820",
        "gw1.example:518200",
};

/* HEAD, then a second endpoint whose N candidates start on line 3. */
static void candidates_text(char *buf, size_t size, const char *head, int n) {
        int len = snprintf(buf, size, "%s  { interface = \"wg1\"; peer = \"" KEY_B "\";\n candidates = [", head);

        for (int i = 0; i < n; i++)
                len += snprintf(buf + len, size - len, "%s\"gw%d:51820\"", i ? ", " : " ", i);
        snprintf(buf + len, size - len, " ]; } );\n");
}

static void test_endpoint_errors(void **state) {
        static const char *const head =
                "endpoints = ( { interface = \"wg0\"; peer = \"" KEY_A "\"; candidates = [ \"gw1.example:51820\" ]; },\n";
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        char text[1024], msg[128];

        for (size_t i = 0; i < ELEMENTSOF(endpoint_cases); i++) {
                snprintf(text, sizeof(text), "%s  { %s } );\n", head, endpoint_cases[i].snippet);
                expect_one_error(text, 2, endpoint_cases[i].message);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_candidates); i++) {
                snprintf(text, sizeof(text),
                         "%s  { interface = \"wg1\"; peer = \"" KEY_B "\"; candidates = [ \"gw2:1\",\n"
                         "    \"%s\" ]; } );\n",
                         head, bad_candidates[i]);
                snprintf(msg, sizeof(msg), "candidate '%s' must be host:port or [IPv6]:port with port 1..65535",
                         bad_candidates[i]);
                expect_one_error(text, 3, msg);
        }

        /* 17 candidates: one too many; 16 are fine. */
        candidates_text(text, sizeof(text), head, 17);
        expect_one_error(text, 3, "candidates has 17 entries, allowed 1..16");
        candidates_text(text, sizeof(text), head, 16);
        c = load_ok(text);
        assert_int_equal(c->n_endpoints, 2);
        assert_int_equal(c->endpoints[1].n_candidates, 16);
        assert_string_equal(c->endpoints[1].candidates[15], "gw15:51820");

        expect_one_error("\nendpoints = { interface = \"wg0\"; };\n", 2, "endpoints must be a list of peers: endpoints = ( { ... } );");
        expect_one_error("endpoints = ( { interface = \"wg0\"; peer = \"" KEY_A "\"; candidates = [ \"gw:1\" ]; },\n"
                         "  \"wg0\" );\n",
                         2, "endpoint #2 must be a group { ... }");
        /* A peer that failed to load is not compared with later ones. */
        {
                static const struct line_error want[] = {
                        { 1, "peer is not a base64 WireGuard key (44 characters ending in '=')" },
                        { 3, "duplicate endpoint: this peer on interface 'wg0' is already at line 2" },
                };

                expect_errors("endpoints = ( { interface = \"wg0\"; peer = \"x\"; candidates = [ \"gw:1\" ]; },\n"
                              "  { interface = \"wg0\"; peer = \"" KEY_A "\"; candidates = [ \"gw:1\" ]; },\n"
                              "  { interface = \"wg0\"; peer = \"" KEY_A "\"; candidates = [ \"gw:2\" ]; } );\n",
                              want, ELEMENTSOF(want));
        }
}

/* Errors of all the new sections are collected together and sorted by line. */
static void test_wireguard_multiple_errors(void **state) {
        static const struct line_error want[] = {
                { 1, "endpoints must be a list of peers: endpoints = ( { ... } );" },
                { 2, "setting 'command' does not apply to a check of type icmp" },
                { 3, "timeout_ms 2000 must not exceed interval_ms 1000" },
                { 5, "unknown check 'down'" },
                { 6, "weight 300 out of range -254..254" },
                { 8, "instance 'wan' is in group 'g': follow the group" },
                { 9, "source_address 10.0.0.9 is not a virtual IP of 'g'" },
        };

        expect_errors("endpoints = 1;\n"
                      "checks = ( { name = \"up\"; type = \"icmp\"; address = \"192.0.2.1\"; command = \"/x\"; },\n"
                      "           { name = \"e\"; type = \"exec\"; command = \"/x\"; timeout_ms = 2000; } );\n"
                      "vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.0.0.1\" ];\n"
                      "  track_checks = ( { check = \"down\"; },\n"
                      "                   { check = \"up\"; weight = 300; } ); } );\n"
                      "groups = ( { name = \"g\"; instances = [ \"wan\" ]; } );\n"
                      "wireguard = ( { interface = \"wg0\"; follow = \"wan\"; source_address = \"10.0.0.9\"; },\n"
                      "              { interface = \"wg1\"; follow = \"g\"; source_address = \"10.0.0.9\"; } );\n",
                      want, ELEMENTSOF(want));
}

/* ---- sync ---------------------------------------------------------------- */

#define KEY_C "QTcTjKR6TXt4tgr6kj0JkGIkQhd2llqUYNzoOpTvM34="
#define KEY_D "45z+iISBdCEGjfe0dNpTjVFbTSkN26dW60izWDEVzWQ="
#define KEY_ZERO "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Lines 1 and 2: what a sync section needs around it. */
#define SYNC_HEAD \
        "vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.77.0.10/24\" ]; } );\n" \
        "wireguard = ( { interface = \"wg0\"; follow = \"wan\"; } );\n"
#define SYNC_LISTEN "listen = \"10.1.0.11:7789\"; "
#define SYNC_KEYFILE "private_key_file = \"/etc/hamgr/sync.key\"; "
#define SYNC_PEER1 "{ name = \"gw2\"; address = \"10.1.0.12:7789\"; public_key = \"" KEY_A "\"; }"

/* Loads TEXT expecting exactly one error: LINE and the whole MESSAGE. */
static void expect_exact(const char *text, int line, const char *message) {
        const struct line_error want = { line, message };

        expect_errors(text, &want, 1);
}

static void test_sync_full(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        const struct hamgr_sync_config *sc;
        uint8_t key[32];

        c = load_ok(SYNC_HEAD
                    "sync = {\n"
                    "  listen = \"10.1.0.11:7789\";\n"
                    "  private_key_file = \"/etc/hamgr/sync.key\";\n"
                    "  poll_interval_ms = 250;\n"
                    "  peers = ( { name = \"gw2\"; address = \"10.1.0.12:7789\"; public_key = \"" KEY_A "\"; },\n"
                    "            { name = \"gw-3.b_C\"; address = \"[2001:db8::3]:1\"; public_key = \"" KEY_B "\"; },\n"
                    "            { public_key = \"" KEY_C "\"; address = \"[fe80::4%nosuchif0]:65535\";\n"
                    "              name = \"ll\"; },\n"
                    "            { name = \"idx\"; address = \"[fe80::5%2]:7789\"; public_key = \"" KEY_D "\"; } );\n"
                    "};\n");
        sc = &c->sync;
        assert_true(sc->enabled);
        assert_int_equal(sc->line, 3);
        assert_string_equal(sc->listen, "10.1.0.11:7789");
        assert_string_equal(sc->private_key_file, "/etc/hamgr/sync.key");
        assert_int_equal(sc->poll_interval_ms, 250);
        assert_int_equal(sc->n_peers, 4);

        assert_string_equal(sc->peers[0].name, "gw2");
        assert_string_equal(sc->peers[0].address, "10.1.0.12:7789");
        for (size_t i = 0; i < sizeof(key); i++)
                key[i] = (uint8_t) i;
        assert_memory_equal(sc->peers[0].public_key, key, sizeof(key));
        assert_int_equal(sc->peers[0].line, 7);

        assert_string_equal(sc->peers[1].name, "gw-3.b_C");
        assert_string_equal(sc->peers[1].address, "[2001:db8::3]:1");
        for (size_t i = 0; i < sizeof(key); i++)
                key[i] = (uint8_t) (100 + i);
        assert_memory_equal(sc->peers[1].public_key, key, sizeof(key));
        assert_int_equal(sc->peers[1].line, 8);

        /* A link-local scope is kept as written and not looked up here:
         * the file checks the same on a machine without that interface. */
        assert_string_equal(sc->peers[2].name, "ll");
        assert_string_equal(sc->peers[2].address, "[fe80::4%nosuchif0]:65535");
        assert_int_equal(sc->peers[2].line, 9);
        assert_string_equal(sc->peers[3].address, "[fe80::5%2]:7789");
        assert_int_equal(sc->peers[3].line, 11);
}

static void test_sync_defaults(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *none = NULL, *c = NULL, *lim = NULL;

        none = load_ok(SYNC_HEAD);
        assert_false(none->sync.enabled);
        assert_null(none->sync.listen);
        assert_null(none->sync.private_key_file);
        assert_int_equal(none->sync.n_peers, 0);
        assert_null(none->sync.peers);

        /* No peers: valid, the node only keeps and restores its own state. */
        c = load_ok(SYNC_HEAD "sync = { listen = \"[::]:7789\"; private_key_file = \"/k\"; };\n");
        assert_true(c->sync.enabled);
        assert_string_equal(c->sync.listen, "[::]:7789");
        assert_string_equal(c->sync.private_key_file, "/k");
        assert_int_equal(c->sync.poll_interval_ms, 1000);
        assert_int_equal(c->sync.bootstrap_grace_s, 30);
        assert_int_equal(c->sync.rekey_interval_ms, 120000);
        assert_int_equal(c->sync.tombstone_retention_s, 7 * 24 * 3600);
        assert_int_equal(c->sync.n_peers, 0);
        assert_null(c->sync.peers);
        assert_int_equal(c->sync.line, 3);
        hamgr_config_free(TAKE_PTR(c));
        c = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "peers = ( ); };\n");
        assert_int_equal(c->sync.n_peers, 0);
        assert_null(c->sync.peers);

        /* Both ends of the poll interval; an unspecified listen address of either family. */
        lim = load_ok(SYNC_HEAD "sync = { listen = \"0.0.0.0:1\"; " SYNC_KEYFILE "poll_interval_ms = 100; };\n");
        assert_int_equal(lim->sync.poll_interval_ms, 100);
        hamgr_config_free(TAKE_PTR(lim));
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = 3600000; };\n");
        assert_int_equal(lim->sync.poll_interval_ms, 3600000);
        hamgr_config_free(TAKE_PTR(lim));
        /* 0: no waiting after a lost state (versions the devices at once). */
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "bootstrap_grace_s = 0; };\n");
        assert_int_equal(lim->sync.bootstrap_grace_s, 0);
        hamgr_config_free(TAKE_PTR(lim));
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "bootstrap_grace_s = 86400; };\n");
        assert_int_equal(lim->sync.bootstrap_grace_s, 86400);
        hamgr_config_free(TAKE_PTR(lim));
        /* Both ends of the re-handshake interval. */
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "rekey_interval_ms = 1000; };\n");
        assert_int_equal(lim->sync.rekey_interval_ms, 1000);
        hamgr_config_free(TAKE_PTR(lim));
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "rekey_interval_ms = 86400000; };\n");
        assert_int_equal(lim->sync.rekey_interval_ms, 86400000);
        hamgr_config_free(TAKE_PTR(lim));
        /* Tombstone retention: 0 (collect once acknowledged) to ten years. */
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "tombstone_retention_s = 0; };\n");
        assert_int_equal(lim->sync.tombstone_retention_s, 0);
        hamgr_config_free(TAKE_PTR(lim));
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE "tombstone_retention_s = 315360000; };\n");
        assert_int_equal(lim->sync.tombstone_retention_s, 315360000);
        hamgr_config_free(TAKE_PTR(lim));
        /* A peer on the listen address's host but another port is another node. */
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE
                      "peers = ( { name = \"x\"; address = \"10.1.0.11:7790\"; public_key = \"" KEY_A "\"; } ); };\n");
        assert_int_equal(lim->sync.n_peers, 1);
        hamgr_config_free(TAKE_PTR(lim));
        /* Names up to 32 characters. */
        lim = load_ok(SYNC_HEAD "sync = { " SYNC_LISTEN SYNC_KEYFILE
                      "peers = ( { name = \"abcdefghijklmnopqrstuvwxyz012345\"; address = \"10.1.0.12:7789\";"
                      " public_key = \"" KEY_A "\"; } ); };\n");
        assert_string_equal(lim->sync.peers[0].name, "abcdefghijklmnopqrstuvwxyz012345");
}

struct sync_case {
        const char *snippet;
        int line;
        const char *message;
};

/* The settings of the section, on line 4 (the section starts on line 3). */
static const struct sync_case sync_section_cases[] = {
        { SYNC_KEYFILE, 3, "missing required setting 'listen' in sync" },
        { SYNC_LISTEN, 3, "missing required setting 'private_key_file' in sync" },
        { SYNC_LISTEN SYNC_KEYFILE "port = 7789;", 4, "unknown setting 'port' in sync" },
        { SYNC_LISTEN SYNC_KEYFILE "peer = ( );", 4, "unknown setting 'peer' in sync" },
        { "listen = 7789; " SYNC_KEYFILE, 4, "listen must be a string" },
        { SYNC_LISTEN "private_key_file = \"sync.key\";", 4, "private_key_file 'sync.key' must be an absolute path" },
        { SYNC_LISTEN "private_key_file = \"./sync.key\";", 4,
          "private_key_file './sync.key' must be an absolute path" },
        { SYNC_LISTEN "private_key_file = \"\";", 4, "private_key_file '' must be an absolute path" },
        { SYNC_LISTEN "private_key_file = [ \"/k\" ];", 4, "private_key_file must be a string" },
        { SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = 99;", 4, "poll_interval_ms 99 out of range 100..3600000" },
        { SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = 0;", 4, "poll_interval_ms 0 out of range 100..3600000" },
        { SYNC_LISTEN SYNC_KEYFILE "tombstone_retention_s = 315360001;", 4,
          "tombstone_retention_s 315360001 out of range 0..315360000" },
        { SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = -1;", 4, "poll_interval_ms -1 out of range 100..3600000" },
        { SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = 3600001;", 4,
          "poll_interval_ms 3600001 out of range 100..3600000" },
        { SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = \"1000\";", 4, "poll_interval_ms must be an integer" },
        { SYNC_LISTEN SYNC_KEYFILE "poll_interval_ms = 1.5;", 4, "poll_interval_ms must be an integer" },
        { SYNC_LISTEN SYNC_KEYFILE "bootstrap_grace_s = 86401;", 4, "bootstrap_grace_s 86401 out of range 0..86400" },
        { SYNC_LISTEN SYNC_KEYFILE "bootstrap_grace_s = -1;", 4, "bootstrap_grace_s -1 out of range 0..86400" },
        { SYNC_LISTEN SYNC_KEYFILE "rekey_interval_ms = 999;", 4, "rekey_interval_ms 999 out of range 1000..86400000" },
        { SYNC_LISTEN SYNC_KEYFILE "rekey_interval_ms = 86400001;", 4,
          "rekey_interval_ms 86400001 out of range 1000..86400000" },
        { "listen = \"224.0.0.18:7789\"; " SYNC_KEYFILE, 4, "listen '224.0.0.18:7789' is a multicast or broadcast address" },
        { "listen = \"255.255.255.255:7789\"; " SYNC_KEYFILE, 4,
          "listen '255.255.255.255:7789' is a multicast or broadcast address" },
        { "listen = \"[ff02::1]:7789\"; " SYNC_KEYFILE, 4, "listen '[ff02::1]:7789' is a multicast or broadcast address" },
        { "listen = \"[fe80::1]:7789\"; " SYNC_KEYFILE, 4,
          "listen '[fe80::1]:7789' is link-local and needs its interface: [fe80::1%eth0]:port" },
        { SYNC_LISTEN SYNC_KEYFILE "peers = { };", 4,
          "peers must be a list of groups: peers = ( { name = \"gw2\"; address = \"...\"; public_key = \"...\"; } );" },
        { SYNC_LISTEN SYNC_KEYFILE "peers = [ \"gw2\" ];", 4,
          "peers must be a list of groups: peers = ( { name = \"gw2\"; address = \"...\"; public_key = \"...\"; } );" },
        { SYNC_LISTEN SYNC_KEYFILE "peers = \"gw2\";", 4,
          "peers must be a list of groups: peers = ( { name = \"gw2\"; address = \"...\"; public_key = \"...\"; } );" },
        { SYNC_LISTEN SYNC_KEYFILE "peers = ( \"gw2\" );", 4,
          "sync peer #1 must be a group { name = ...; address = ...; public_key = ...; }" },
};

/* Malformed "IP:port" values, refused as listen and as a peer address alike. */
static const char *const bad_sync_addresses[] = {
        "gw2.example:7789", "localhost:7789", "10.1.0.12", "10.1.0.12:0", "10.1.0.12:65536", "10.1.0.12:+7789",
        "10.1.0.12: 7789", "10.1.0.12:", ":7789", "", "10.1.0.12:7789 ", "10.1.0.256:7789", "10.1.12:7789",
        "2001:db8::2:7789", "::1:7789", "[2001:db8::2]", "[2001:db8::2]7789", "[2001:db8::2]:", "[2001:db8::2]:0",
        "[10.1.0.12]:7789", "[gw2.example]:7789", "[]:7789", "[2001:db8::2:7789",
        "[fe80::1%]:7789", "[fe80::1%eth/0]:7789", "[fe80::1%eth:0]:7789", "[fe80::1%..]:7789",
        "[fe80::1%abcdefghijklmnop]:7789", "[fe80::1%eth0%1]:7789", "10.1.0.12%eth0:7789",
        "[2001:db8::2]:7789%eth0", "%eth0[fe80::1]:7789",
};

/* The second peer, on line 6; the first one is SYNC_PEER1 on line 5. */
static const struct sync_case sync_peer_cases[] = {
        { "address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6, "missing required setting 'name' in sync peer #2" },
        { "name = \"gw3\"; public_key = \"" KEY_B "\";", 6, "missing required setting 'address' in sync peer 'gw3'" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\";", 6, "missing required setting 'public_key' in sync peer 'gw3'" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\"; port = 1;", 6,
          "unknown setting 'port' in sync peer 'gw3'" },
        { "name = \"gw 3\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6,
          "sync peer name 'gw 3' must be 1..32 characters of A-Z a-z 0-9 _ . -" },
        { "name = \"\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6,
          "sync peer name '' must be 1..32 characters of A-Z a-z 0-9 _ . -" },
        { "name = \"abcdefghijklmnopqrstuvwxyz0123456\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6,
          "sync peer name 'abcdefghijklmnopqrstuvwxyz0123456' must be 1..32 characters of A-Z a-z 0-9 _ . -" },
        { "name = \"gw/3\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6,
          "sync peer name 'gw/3' must be 1..32 characters of A-Z a-z 0-9 _ . -" },
        { "name = 3; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6, "name must be a string" },
        { "name = \"gw2\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "\";", 6,
          "duplicate sync peer name 'gw2' (first at line 5)" },
        /* Names are case-sensitive, like every other name in the file. */
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_A "\";", 6,
          "duplicate sync peer public_key (first at line 5)" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"not-a-key\";", 6,
          "public_key is not a base64 key (44 characters ending in '='; see hamgr pubkey)" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_B "A\";", 6,
          "public_key is not a base64 key (44 characters ending in '='; see hamgr pubkey)" },
        /* 43 characters whose unused low bits are not zero: no key prints so. */
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\";", 6,
          "public_key is not a base64 key (44 characters ending in '='; see hamgr pubkey)" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"\";", 6,
          "public_key is not a base64 key (44 characters ending in '='; see hamgr pubkey)" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_ZERO "\";", 6,
          "public_key is all zero: use the other node's 'hamgr pubkey'" },
        { "name = \"gw3\"; address = \"10.1.0.13:7789\"; public_key = 1;", 6, "public_key must be a string" },
        { "name = \"gw3\"; address = 7789; public_key = \"" KEY_B "\";", 6, "address must be a string" },
        { "name = \"gw3\"; address = \"10.1.0.12:7789\"; public_key = \"" KEY_B "\";", 6,
          "duplicate sync peer address '10.1.0.12:7789' (first at line 5)" },
        /* This node's own listen address: it would dial itself. */
        { "name = \"gw3\"; address = \"10.1.0.11:7789\"; public_key = \"" KEY_B "\";", 6,
          "address '10.1.0.11:7789' is this node's listen address" },
        { "name = \"gw3\"; address = \"0.0.0.0:7789\"; public_key = \"" KEY_B "\";", 6,
          "address '0.0.0.0:7789' is unspecified: give the other node's address" },
        { "name = \"gw3\"; address = \"[::]:7789\"; public_key = \"" KEY_B "\";", 6,
          "address '[::]:7789' is unspecified: give the other node's address" },
        { "name = \"gw3\"; address = \"239.1.1.1:7789\"; public_key = \"" KEY_B "\";", 6,
          "address '239.1.1.1:7789' is a multicast or broadcast address" },
        { "name = \"gw3\"; address = \"[ff05::2]:7789\"; public_key = \"" KEY_B "\";", 6,
          "address '[ff05::2]:7789' is a multicast or broadcast address" },
        { "name = \"gw3\"; address = \"[fe80::3]:7789\"; public_key = \"" KEY_B "\";", 6,
          "address '[fe80::3]:7789' is link-local and needs its interface: [fe80::1%eth0]:port" },
};

static void test_sync_errors(void **state) {
        char text[2048], msg[256];

        for (size_t i = 0; i < ELEMENTSOF(sync_section_cases); i++) {
                snprintf(text, sizeof(text), SYNC_HEAD "sync = {\n  %s\n};\n", sync_section_cases[i].snippet);
                expect_exact(text, sync_section_cases[i].line, sync_section_cases[i].message);
        }
        for (size_t i = 0; i < ELEMENTSOF(sync_peer_cases); i++) {
                snprintf(text, sizeof(text),
                         SYNC_HEAD "sync = {\n  " SYNC_LISTEN SYNC_KEYFILE "\n  peers = ( " SYNC_PEER1 ",\n  { %s } );\n};\n",
                         sync_peer_cases[i].snippet);
                expect_exact(text, sync_peer_cases[i].line, sync_peer_cases[i].message);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_sync_addresses); i++) {
                snprintf(text, sizeof(text), SYNC_HEAD "sync = {\n  " SYNC_KEYFILE "\n  listen = \"%s\";\n};\n",
                         bad_sync_addresses[i]);
                snprintf(msg, sizeof(msg), "listen '%s' must be numeric IPv4:port or [IPv6]:port with port 1..65535",
                         bad_sync_addresses[i]);
                expect_exact(text, 5, msg);
                snprintf(text, sizeof(text),
                         SYNC_HEAD "sync = {\n  " SYNC_LISTEN SYNC_KEYFILE "\n  peers = ( " SYNC_PEER1 ",\n"
                         "  { name = \"gw3\"; public_key = \"" KEY_B "\";\n    address = \"%s\"; } );\n};\n",
                         bad_sync_addresses[i]);
                snprintf(msg, sizeof(msg), "address '%s' must be numeric IPv4:port or [IPv6]:port with port 1..65535",
                         bad_sync_addresses[i]);
                expect_exact(text, 7, msg);
        }

        /* The same address written differently is still the same. */
        expect_exact(SYNC_HEAD "sync = { listen = \"[2001:db8::1]:7789\"; " SYNC_KEYFILE "\n"
                     "  peers = ( { name = \"a\"; address = \"[2001:db8:0:0::2]:7789\"; public_key = \"" KEY_A "\"; },\n"
                     "            { name = \"b\"; address = \"[2001:DB8::2]:7789\"; public_key = \"" KEY_B "\"; },\n"
                     "            { name = \"c\"; address = \"[2001:db8::3]:7789\"; public_key = \"" KEY_C "\"; } ); };\n",
                     5, "duplicate sync peer address '[2001:DB8::2]:7789' (first at line 4)");
        expect_exact(SYNC_HEAD "sync = { listen = \"[2001:db8::1]:7789\"; " SYNC_KEYFILE "\n"
                     "  peers = ( { name = \"c\"; address = \"[2001:db8::0:1]:7789\"; public_key = \"" KEY_C "\"; } ); };\n",
                     4, "address '[2001:db8::0:1]:7789' is this node's listen address");
        /* Another interface is another link: not a duplicate. */
        {
                _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

                c = load_ok(SYNC_HEAD "sync = { listen = \"[fe80::1%eth1]:7789\"; " SYNC_KEYFILE "\n"
                            "  peers = ( { name = \"a\"; address = \"[fe80::1%eth2]:7789\"; public_key = \"" KEY_A "\"; },\n"
                            "            { name = \"b\"; address = \"[fe80::1%eth3]:7789\"; public_key = \"" KEY_B "\"; } ); };\n");
                assert_int_equal(c->sync.n_peers, 2);
        }
}

/* The section as a whole: its shape, and the wireguard section it replicates. */
static void test_sync_section(void **state) {
        static const char vrrp[] =
                "vrrp = ( { name = \"wan\"; interface = \"eth0\"; vrid = 1; virtual_ips = [ \"10.77.0.10/24\" ]; } );\n";
        char text[1024];

        expect_exact("sync = ( );\n", 1, "sync must be a group: sync = { listen = \"...\"; ... };");
        expect_exact("\nsync = \"10.1.0.11:7789\";\n", 2, "sync must be a group: sync = { listen = \"...\"; ... };");
        expect_exact(SYNC_HEAD "sync = [ 1 ];\n", 3, "sync must be a group: sync = { listen = \"...\"; ... };");

        snprintf(text, sizeof(text), "%s\nsync = { " SYNC_LISTEN SYNC_KEYFILE "peers = ( " SYNC_PEER1 " ); };\n", vrrp);
        expect_exact(text, 3, "sync replicates the interfaces of the wireguard section, which has none");
        snprintf(text, sizeof(text), "%swireguard = ( );\nsync = { " SYNC_LISTEN SYNC_KEYFILE " };\n", vrrp);
        expect_exact(text, 3, "sync replicates the interfaces of the wireguard section, which has none");
        /* A spoke's endpoints are not replicated. */
        expect_exact("endpoints = ( { interface = \"wg0\"; peer = \"" KEY_B "\"; candidates = [ \"gw:1\" ]; } );\n"
                     "sync = { " SYNC_LISTEN SYNC_KEYFILE " };\n",
                     2, "sync replicates the interfaces of the wireguard section, which has none");
        /* A malformed wireguard section is reported once, as itself. */
        snprintf(text, sizeof(text), "%swireguard = 1;\nsync = { " SYNC_LISTEN SYNC_KEYFILE " };\n", vrrp);
        expect_exact(text, 2, "wireguard must be a list of interfaces: wireguard = ( { ... } );");
        snprintf(text, sizeof(text), "%swireguard = ( \"wg0\" );\nsync = { " SYNC_LISTEN SYNC_KEYFILE " };\n", vrrp);
        expect_exact(text, 2, "wireguard entry #1 must be a group { ... }");
        /* The order of the sections does not matter. */
        {
                _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;

                c = load_ok("sync = { " SYNC_LISTEN SYNC_KEYFILE " };\n" SYNC_HEAD);
                assert_true(c->sync.enabled);
                assert_int_equal(c->sync.line, 1);
        }
}

/* Every problem is reported, in file order; a setting that failed is not compared with later ones. */
static void test_sync_multiple_errors(void **state) {
        static const struct line_error want[] = {
                { 3, "missing required setting 'private_key_file' in sync" },
                { 4, "listen '10.1.0.11' must be numeric IPv4:port or [IPv6]:port with port 1..65535" },
                { 5, "poll_interval_ms 50 out of range 100..3600000" },
                { 6, "unknown setting 'key' in sync" },
                { 7, "public_key is not a base64 key (44 characters ending in '='; see hamgr pubkey)" },
                { 8, "public_key is all zero: use the other node's 'hamgr pubkey'" },
                { 9, "public_key is all zero: use the other node's 'hamgr pubkey'" },
                { 11, "duplicate sync peer public_key (first at line 10)" },
                { 12, "sync peer name 'b c' must be 1..32 characters of A-Z a-z 0-9 _ . -" },
                { 12, "address 'b:1' must be numeric IPv4:port or [IPv6]:port with port 1..65535" },
                { 13, "duplicate sync peer name 'b' (first at line 10)" },
                { 13, "duplicate sync peer address '10.1.0.13:7789' (first at line 10)" },
                { 14, "missing required setting 'name' in sync peer #8" },
                { 14, "unknown setting 'nmae' in sync peer #8" },
                { 14, "public_key is not a base64 key (44 characters ending in '='; see hamgr pubkey)" },
        };

        expect_errors(SYNC_HEAD
                      "sync = {\n"
                      "  listen = \"10.1.0.11\";\n"
                      "  poll_interval_ms = 50;\n"
                      "  key = \"/k\";\n"
                      "  peers = ( { name = \"a\"; address = \"10.1.0.12:7789\"; public_key = \"x\"; },\n"
                      "    { name = \"z1\"; address = \"10.1.0.20:7789\"; public_key = \"" KEY_ZERO "\"; },\n"
                      "    { name = \"z2\"; address = \"10.1.0.21:7789\"; public_key = \"" KEY_ZERO "\"; },\n"
                      "    { name = \"b\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_A "\"; },\n"
                      "    { name = \"c\"; address = \"10.1.0.14:7789\"; public_key = \"" KEY_A "\"; },\n"
                      "    { name = \"b c\"; address = \"b:1\"; public_key = \"" KEY_B "\"; },\n"
                      "    { name = \"b\"; address = \"10.1.0.13:7789\"; public_key = \"" KEY_C "\"; },\n"
                      "    { nmae = \"d\"; address = \"10.1.0.15:7789\"; public_key = \"x\"; } );\n"
                      "};\n",
                      want, ELEMENTSOF(want));
}

static void test_free_null(void **state) {
        assert_null(hamgr_config_free(NULL));
        assert_null(hamgr_config_find_vrrp(NULL, "x"));
        assert_null(hamgr_config_find_group(NULL, "x"));
        assert_null(hamgr_config_find_check(NULL, "x"));
}

static void test_auth_pass(void **state) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL, *c8 = NULL, *other = NULL;
        struct hamgr_config_errors w = {};

        c = load_ok("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; version = 2;\n"
                    "  virtual_ips = [ \"10.0.0.1\" ]; auth_pass = \"s3cret\"; } );\n");
        assert_string_equal(c->vrrp[0].auth_pass, "s3cret");
        assert_int_equal(hamgr_config_warnings(c, &w), 0);
        assert_int_equal(w.n, 1);
        assert_int_equal(w.items[0].line, 1);
        assert_non_null(strstr(w.items[0].message, "not security"));
        hamgr_config_errors_clear(&w);

        c8 = load_ok("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; version = 2;\n"
                     "  virtual_ips = [ \"10.0.0.1\" ]; auth_pass = \"12345678\"; } );\n");
        assert_string_equal(c8->vrrp[0].auth_pass, "12345678");
        /* A changed password is a changed instance. */
        assert_false(hamgr_vrrp_config_equal(&c->vrrp[0], &c8->vrrp[0]));
        other = load_ok("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; version = 2;\n"
                        "  virtual_ips = [ \"10.0.0.1\" ]; } );\n");
        assert_null(other->vrrp[0].auth_pass);
        assert_false(hamgr_vrrp_config_equal(&c->vrrp[0], &other->vrrp[0]));

        expect_one_error("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ];\n"
                         "  auth_pass = \"s3cret\"; } );\n",
                         3, "auth_pass needs version 2");
        expect_one_error("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; version = 2;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ];\n"
                         "  auth_pass = \"123456789\"; } );\n",
                         3, "auth_pass must be 1 to 8 characters");
        expect_one_error("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; version = 2;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ];\n"
                         "  auth_pass = \"\"; } );\n",
                         3, "auth_pass must be 1 to 8 characters");
        expect_one_error("vrrp = ( { name = \"v\"; interface = \"eth0\"; vrid = 7; version = 2;\n"
                         "  virtual_ips = [ \"10.0.0.1\" ];\n"
                         "  auth_pass = 12; } );\n",
                         3, "auth_pass");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sample_config),
                cmocka_unit_test(test_sample_wireguard_examples),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_empty_config),
                cmocka_unit_test(test_warning_ipv6_first_not_link_local),
                cmocka_unit_test(test_limits_accepted),
                cmocka_unit_test(test_instance_errors),
                cmocka_unit_test(test_missing_required),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_virtual_ips),
                cmocka_unit_test(test_family),
                cmocka_unit_test(test_unicast_options),
                cmocka_unit_test(test_duplicate_vrid),
                cmocka_unit_test(test_groups),
                cmocka_unit_test(test_notify),
                cmocka_unit_test(test_node),
                cmocka_unit_test(test_unknown_top_level),
                cmocka_unit_test(test_syntax_error),
                cmocka_unit_test(test_integer_overflow),
                cmocka_unit_test(test_multiple_errors),
                cmocka_unit_test(test_errors_print),
                cmocka_unit_test(test_load_file_errors),
                cmocka_unit_test(test_full_config),
                cmocka_unit_test(test_wireguard_sections_absent),
                cmocka_unit_test(test_check_errors),
                cmocka_unit_test(test_check_missing_and_names),
                cmocka_unit_test(test_track_check_errors),
                cmocka_unit_test(test_wireguard_errors),
                cmocka_unit_test(test_endpoint_errors),
                cmocka_unit_test(test_wireguard_multiple_errors),
                cmocka_unit_test(test_sync_full),
                cmocka_unit_test(test_sync_defaults),
                cmocka_unit_test(test_sync_errors),
                cmocka_unit_test(test_sync_section),
                cmocka_unit_test(test_sync_multiple_errors),
                cmocka_unit_test(test_config_equal),
                cmocka_unit_test(test_virtual_routes),
                cmocka_unit_test(test_free_null),
                cmocka_unit_test(test_unusable_addresses),
                cmocka_unit_test(test_settings_that_do_nothing),
                cmocka_unit_test(test_sync_listen_on_vip),
                cmocka_unit_test(test_all_errors_one_pass),
                cmocka_unit_test(test_keepalived_hint),
                cmocka_unit_test(test_load_not_regular),
                cmocka_unit_test(test_auth_pass),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
