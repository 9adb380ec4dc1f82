/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "hamgr/config.h"
#include "hamgr/import-keepalived.h"
#include "hamgr/keepalived-parse.h"

#define SAMPLES HAMGR_SOURCE_DIR "/tests/integration/keepalived-samples/"

static char *convert_text(const char *text) {
        const char *reason = NULL;
        char *out = NULL;
        int line = 0;

        assert_int_equal(keepalived_import(text, strlen(text), "test", NULL, NULL, &out, &line, &reason), 0);
        assert_non_null(out);
        return out;
}

/* The output must load: it is what hamgr check reads. */
static struct hamgr_config *load(const char *out) {
        struct hamgr_config_errors e = {};
        struct hamgr_config *c = NULL;
        int r;

        r = hamgr_config_load_string(out, "out", &c, &e);
        if (r < 0) {
                fputs(out, stderr);
                hamgr_config_errors_print(&e, "out", stderr);
        }
        assert_int_equal(r, 0);
        hamgr_config_errors_clear(&e);
        return c;
}

static char *convert_file(const char *name) {
        char path[512], *buf;
        size_t len;
        FILE *f;

        snprintf(path, sizeof(path), SAMPLES "%s", name);
        f = fopen(path, "re");
        assert_non_null(f);
        buf = calloc(1, 1 << 16);
        assert_non_null(buf);
        len = fread(buf, 1, (1 << 16) - 1, f);
        fclose(f);
        buf[len] = '\0';
        {
                char *out = convert_text(buf);

                free(buf);
                return out;
        }
}

static const struct hamgr_vrrp_config *instance(const struct hamgr_config *c, const char *name) {
        for (size_t i = 0; i < c->n_vrrp; i++)
                if (streq(c->vrrp[i].name, name))
                        return &c->vrrp[i];
        fail_msg("no instance %s", name);
        return NULL;
}

static const struct hamgr_check_config *check(const struct hamgr_config *c, const char *name) {
        for (size_t i = 0; i < c->n_checks; i++)
                if (streq(c->checks[i].name, name))
                        return &c->checks[i];
        fail_msg("no check %s", name);
        return NULL;
}

static void assert_vip(const struct hamgr_vrrp_config *v, size_t i, const char *addr, unsigned prefixlen) {
        char buf[64];

        assert_true(i < v->n_virtual_ips);
        assert_string_equal(ip_address_to_string(&v->virtual_ips[i].address, buf, sizeof(buf)), addr);
        assert_int_equal(v->virtual_ips[i].prefixlen, prefixlen);
}

static void test_parse_syntax(void **state) {
        static const char text[] =
                "! comment\n"
                "a b \"c d\" # trailing comment\n"
                "blk x\n"
                "{\n"
                "  inner 1 ; } after\n"
                "one{two}\n"
                "q \"x#y\" w#z\n";
        struct kconf_stmt *t = NULL;

        assert_int_equal(kconf_parse(text, strlen(text), &t, NULL, NULL), 0);
        assert_int_equal(t->n_children, 5);
        assert_int_equal(t->children[0].n_words, 3);
        assert_string_equal(t->children[0].words[2], "c d");
        assert_int_equal(t->children[0].line, 2);
        /* A brace on the next line opens the block of the line before. */
        assert_true(t->children[1].has_block);
        assert_int_equal(t->children[1].n_children, 1);
        assert_int_equal(t->children[1].children[0].n_words, 3);
        assert_string_equal(t->children[1].children[0].words[2], ";");
        assert_string_equal(t->children[2].words[0], "after");
        assert_string_equal(t->children[3].words[0], "one");
        assert_string_equal(t->children[3].children[0].words[0], "two");
        assert_string_equal(t->children[4].words[1], "x#y");
        assert_string_equal(t->children[4].words[2], "w#z");
        kconf_free(t);
        kconf_free(NULL);
}

static void assert_syntax_error(const char *text, size_t len, int want_line, const char *want) {
        struct kconf_stmt *t = (struct kconf_stmt *) 0x1;
        const char *reason = NULL;
        char *out = (char *) 0x1;
        int line = -1;

        assert_int_equal(kconf_parse(text, len, &t, &line, &reason), -EBADMSG);
        assert_ptr_equal(t, (struct kconf_stmt *) 0x1);
        assert_int_equal(line, want_line);
        assert_non_null(strstr(reason, want));
        line = -1;
        assert_int_equal(keepalived_import(text, len, "t", NULL, NULL, &out, &line, &reason), -EBADMSG);
        assert_ptr_equal(out, (char *) 0x1);
        assert_int_equal(line, want_line);
}

static void test_parse_errors(void **state) {
        assert_syntax_error("a {\n b\n", 7, 1, "missing '}'");
        assert_syntax_error("a\n}\n", 4, 2, "without a block");
        assert_syntax_error("\n{ x }\n", 7, 2, "without a name");
        assert_syntax_error("a \"open\nb\n", 10, 1, "unterminated");
        assert_syntax_error("a\0b", 3, 1, "NUL");
        {
                char deep[200] = "";

                for (int i = 0; i < KCONF_MAX_DEPTH + 1; i++)
                        strcat(deep, "a {\n");
                for (int i = 0; i < KCONF_MAX_DEPTH + 1; i++)
                        strcat(deep, "}\n");
                assert_syntax_error(deep, strlen(deep), KCONF_MAX_DEPTH + 1, "too deep");
        }
}

static void test_master_backup(void **state) {
        _cleanup_(freep) char *out = convert_file("master-backup.conf");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *v;

        assert_string_equal(c->node_name, "gw1");
        assert_int_equal(c->n_vrrp, 1);
        v = instance(c, "VI_1");
        assert_string_equal(v->interface, "eth0");
        assert_int_equal(v->vrid, 51);
        assert_int_equal(v->priority, 150);
        assert_int_equal(v->version, 3);        /* global_defs vrrp_version */
        assert_int_equal(v->advert_interval_ms, 1000);
        assert_true(v->preempt);
        assert_int_equal(v->n_virtual_ips, 2);
        assert_vip(v, 0, "192.0.2.10", 24);
        assert_vip(v, 1, "192.0.2.11", 32);
        assert_non_null(strstr(out, "# import-keepalived: line 11: 'state MASTER'"));
        assert_non_null(strstr(out, "label eth0:vip': address labels are not set"));
        /* Unknown global_defs blocks are named. */
        assert_non_null(strstr(out, "'notification_email { ... }'"));
}

static void test_unicast(void **state) {
        _cleanup_(freep) char *out = convert_file("unicast.conf");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *v = instance(c, "cloud");
        char buf[64];

        assert_int_equal(v->version, 2);        /* keepalived's default */
        assert_int_equal(v->advert_interval_ms, 2000);
        assert_false(v->preempt);
        assert_int_equal(v->n_unicast_peers, 2);
        assert_string_equal(ip_address_to_string(&v->unicast_peers[0], buf, sizeof(buf)), "10.0.2.10");
        assert_string_equal(ip_address_to_string(&v->unicast_peers[1], buf, sizeof(buf)), "10.0.3.10");
        assert_string_equal(ip_address_to_string(&v->unicast_source, buf, sizeof(buf)), "10.0.1.10");
        assert_int_equal(v->unicast_ttl, 64);
        /* keepalived sends the first 8 characters only. */
        assert_string_equal(v->auth_pass, "verysecr");
        assert_non_null(strstr(out, "only the first 8 characters"));
        assert_non_null(strstr(out, "min_ttl 250': per-peer options are not supported"));
}

static void test_ipv6(void **state) {
        _cleanup_(freep) char *out = convert_file("ipv6.conf");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *v = instance(c, "V6");
        char buf[64];

        assert_int_equal(v->family, AF_INET6);
        assert_int_equal(v->version, 3);
        assert_int_equal(v->advert_interval_ms, 500);
        assert_int_equal(v->preempt_delay_ms, 30000);
        assert_vip(v, 0, "fe80::60", 64);
        assert_vip(v, 1, "2001:db8:60::1", 64);
        assert_int_equal(v->n_virtual_routes, 2);
        assert_string_equal(ip_address_to_string(&v->virtual_routes[0].via, buf, sizeof(buf)), "2001:db8:60::fe");
        assert_string_equal(v->virtual_routes[0].dev, "eth1");
        assert_int_equal(v->virtual_routes[1].metric, 2048);
        assert_int_equal(v->virtual_routes[1].to.prefixlen, 0);
        assert_non_null(strstr(out, "version 3: VRRPv2 has no IPv6"));
}

static void test_sync_scripts_notify(void **state) {
        _cleanup_(freep) char *out = convert_file("sync-scripts.conf");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *wan = instance(c, "WAN"), *lan = instance(c, "LAN");
        const struct hamgr_check_config *k;

        assert_int_equal(c->n_groups, 1);
        assert_string_equal(c->groups[0].name, "GW");
        assert_int_equal(c->groups[0].n_instances, 2);
        assert_string_equal(c->groups[0].instances[0], "WAN");
        assert_string_equal(c->groups[0].instances[1], "LAN");

        k = check(c, "chk_wg");
        assert_int_equal(k->type, HEALTH_CHECK_EXEC);
        assert_string_equal(k->command, "/usr/local/sbin/check-wg");
        assert_int_equal(k->interval_ms, 2000);
        assert_int_equal(k->timeout_ms, 1000);
        assert_int_equal(k->rise, 2);
        assert_int_equal(k->fall, 3);
        k = check(c, "link-eth3");
        assert_int_equal(k->type, HEALTH_CHECK_LINK);
        assert_string_equal(k->interface, "eth3");
        /* The script with arguments cannot be a check. */
        assert_int_equal(c->n_checks, 2);
        assert_non_null(strstr(out, "vrrp_script chk_proxy (line 17) left out"));
        assert_non_null(strstr(out, "exec COMMAND"));

        assert_int_equal(wan->n_track_interfaces, 1);
        assert_string_equal(wan->track_interfaces[0], "eth2");
        assert_int_equal(wan->n_track_checks, 2);
        assert_string_equal(wan->track_checks[0].check, "link-eth3");
        assert_int_equal(wan->track_checks[0].weight, -20);
        assert_string_equal(wan->track_checks[1].check, "chk_wg");
        assert_int_equal(wan->track_checks[1].weight, -30);
        assert_int_equal(lan->n_track_checks, 0);

        assert_int_equal(wan->n_virtual_routes, 3);
        assert_int_equal(wan->virtual_routes[1].type, HAMGR_ROUTE_BLACKHOLE);
        assert_int_equal(wan->virtual_routes[2].table, 100);
        assert_int_equal(wan->garp.delay_s, 10);        /* global vrrp_garp_master_delay */
        assert_int_equal(lan->garp.delay_s, 10);

        assert_string_equal(c->notify.master, "/etc/keepalived/master.sh");
        assert_string_equal(c->notify.backup, "/etc/keepalived/backup.sh");
        assert_string_equal(c->notify.script, "/etc/keepalived/all-states.sh");
        assert_null(c->notify.fault);
        assert_non_null(strstr(out, "'notify_fault /etc/keepalived/notify.sh FAULT': hamgr runs a path "
                                    "without arguments of its own"));
}

static void test_garp(void **state) {
        _cleanup_(freep) char *out = convert_file("garp.conf");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *v = instance(c, "VI_GARP");

        assert_int_equal(v->garp.repeat, 4);
        assert_int_equal(v->garp.delay_repeat, 4);
        assert_int_equal(v->garp.delay_s, 3);
        assert_int_equal(v->garp.refresh_s, 60);
        assert_int_equal(v->garp.interval_ms, 50);
        assert_non_null(strstr(out, "'garp_lower_prio_repeat 2': no separate setting"));
        assert_non_null(strstr(out, "'garp_master_refresh_repeat 2': no separate setting"));
}

static void test_unsupported(void **state) {
        _cleanup_(freep) char *out = convert_file("unsupported.conf");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *v;

        assert_int_equal(c->n_vrrp, 1);
        v = instance(c, "AH");
        assert_null(v->auth_pass);
        assert_int_equal(v->n_virtual_ips, 1);
        assert_int_equal(v->n_virtual_routes, 0);
        assert_int_equal(v->n_track_checks, 0);
        assert_non_null(strstr(out, "auth_type AH (IPsec AH, RFC 2338) is not supported"));
        assert_non_null(strstr(out, "'vrrp_strict'"));
        assert_non_null(strstr(out, "'$IFACE=eth0': keepalived parameters"));
        assert_non_null(strstr(out, "'static_ipaddress { ... }': no hamgr equivalent"));
        assert_non_null(strstr(out, "IPVS load balancing"));
        assert_non_null(strstr(out, "vrrp_instance NoVip (line 30) left out: no virtual IP"));
        assert_non_null(strstr(out, "vrrp_instance Dup (line 34) left out: virtual_router_id 40 is already used"));
        assert_non_null(strstr(out, "dev eth9': hamgr adds virtual IPs to the instance's interface only"));
        assert_non_null(strstr(out, "multipath routes are not supported"));
        assert_non_null(strstr(out, "use_vmac"));
        assert_non_null(strstr(out, "no_such_script left out: there is no vrrp_script"));
        assert_non_null(strstr(out, "include /nonexistent/keepalived-extra.conf': not followed (reading from "
                                    "standard input)"));
}

static void test_values(void **state) {
        _cleanup_(freep) char *out = convert_text(
                "vrrp_instance \"odd name!\" {\n"
                "  interface eth0\n  virtual_router_id 7\n  version 3\n  advert_int 0.123\n"
                "  authentication {\n    auth_type PASS\n    auth_pass x\n  }\n"
                "  virtual_ipaddress {\n    10.1.0.1/24\n  }\n"
                "}\n"
                "vrrp_instance b {\n"
                "  interface eth0\n  virtual_router_id 8\n  advert_int 0.5\n  unicast_ttl 10\n"
                "  virtual_ipaddress {\n    10.1.0.1/24\n    10.1.0.2/24\n    2001:db8::2\n  }\n"
                "  virtual_routes {\n    10.2.0.1/16 via 10.1.0.254\n    10.3.0.0/16 table mytable\n  }\n"
                "  track_script {\n    rev weight 10 reverse\n  }\n"
                "}\n"
                "vrrp_script rev {\n  script /bin/true\n}\n");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *a = instance(c, "odd_name_"), *b = instance(c, "b");

        /* v3 carries centiseconds; authentication is v2 only. */
        assert_int_equal(a->advert_interval_ms, 120);
        assert_null(a->auth_pass);
        assert_non_null(strstr(out, "advert_int 123 ms becomes 120 ms"));
        assert_non_null(strstr(out, "authentication left out: VRRPv3 has none"));
        assert_non_null(strstr(out, "named 'odd_name_'"));
        /* v2 whole seconds; an address once; no IPv6 in v2. */
        assert_int_equal(b->version, 2);
        assert_int_equal(b->advert_interval_ms, 1000);
        assert_int_equal(b->n_virtual_ips, 1);
        assert_vip(b, 0, "10.1.0.2", 24);
        assert_non_null(strstr(out, "virtual IP 10.1.0.1/24 left out: an earlier instance has it"));
        assert_non_null(strstr(out, "virtual IP 2001:db8::2 left out: IPv6 needs version 3"));
        assert_int_equal(b->unicast_ttl, 255);
        assert_non_null(strstr(out, "unicast_ttl left out"));
        assert_int_equal(b->n_virtual_routes, 0);
        assert_non_null(strstr(out, "host bits set"));
        assert_non_null(strstr(out, "does not read rt_tables"));
        assert_int_equal(b->n_track_checks, 0);
        assert_non_null(strstr(out, "'reverse' has no equivalent"));
}

/* A check with a weight in two members of a group is one hamgr refuses. */
static void test_group_weights(void **state) {
        _cleanup_(freep) char *out = convert_text(
                "vrrp_script s {\n  script /bin/true\n  weight 20\n}\n"
                "vrrp_sync_group g {\n  group {\n    a b\n  }\n  track_script {\n    s\n  }\n}\n"
                "vrrp_instance a {\n  interface eth0\n  virtual_router_id 1\n"
                "  track_script {\n    s\n  }\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n"
                "vrrp_instance b {\n  interface eth1\n  virtual_router_id 1\n"
                "  track_script {\n    s\n  }\n  virtual_ipaddress {\n    10.0.1.1\n  }\n}\n"
                "vrrp_sync_group h {\n  group {\n    b missing\n  }\n}\n");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);

        assert_int_equal(c->n_groups, 1);
        assert_int_equal(instance(c, "a")->n_track_checks, 1);
        assert_int_equal(instance(c, "a")->track_checks[0].weight, 20);
        assert_int_equal(instance(c, "b")->n_track_checks, 0);
        assert_non_null(strstr(out, "carries a weight in another member of the group"));
        assert_non_null(strstr(out, "tracked twice"));
        assert_non_null(strstr(out, "vrrp_sync_group h (line 33) left out: no member left"));
        assert_non_null(strstr(out, "member b left out: it is in group g already"));
}

/* IPv6 peers are link-local unless the source is a global address. */
static void test_ipv6_unicast(void **state) {
        _cleanup_(freep) char *out = convert_text(
                "vrrp_instance a {\n interface eth0\n virtual_router_id 9\n"
                " unicast_peer {\n  2001:db8::2\n  fe80::2\n  FE80::2\n }\n"
                " virtual_ipaddress {\n  2001:db8::10/64\n }\n}\n"
                "vrrp_instance c {\n interface eth2\n virtual_router_id 9\n unicast_src_ip 2001:db8:1::1\n"
                " unicast_peer {\n  2001:db8::3\n }\n virtual_ipaddress {\n  2001:db8::12/64\n }\n}\n");
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = load(out);
        const struct hamgr_vrrp_config *a = instance(c, "a"), *g = instance(c, "c");
        char buf[64];

        assert_int_equal(a->n_unicast_peers, 1);
        assert_string_equal(ip_address_to_string(&a->unicast_peers[0], buf, sizeof(buf)), "fe80::2");
        assert_non_null(strstr(out, "unicast peer 2001:db8::2 left out"));
        assert_int_equal(g->n_unicast_peers, 1);
        assert_string_equal(ip_address_to_string(&g->unicast_source, buf, sizeof(buf)), "2001:db8:1::1");
}

struct fake_files {
        const char *path, *text;
        int calls;
};

static int fake_include(const char *path, char **ret_buf, size_t *ret_len, void *userdata) {
        struct fake_files *f = userdata;

        f->calls++;
        if (!streq(path, f->path))
                return -ENOENT;
        *ret_buf = strdup(f->text);
        *ret_len = strlen(f->text);
        return *ret_buf ? 0 : -ENOMEM;
}

static void test_include(void **state) {
        static const char text[] =
                "include inst.conf\n"
                "include missing.conf\n"
                "include /etc/keepalived/conf.d/*.conf\n";
        struct fake_files files = {
                .path = "inst.conf",
                .text = "vrrp_instance inc {\n  interface eth0\n  virtual_router_id 3\n"
                        "  include inst.conf\n"
                        "  virtual_ipaddress {\n    10.0.0.3\n  }\n}\n",
        };
        _cleanup_(hamgr_config_freep) struct hamgr_config *c = NULL;
        _cleanup_(freep) char *out = NULL;
        const char *reason = NULL;
        int line = 0;

        assert_int_equal(keepalived_import(text, strlen(text), "t", fake_include, &files, &out, &line, &reason), 0);
        c = load(out);
        assert_int_equal(c->n_vrrp, 1);
        assert_int_equal(instance(c, "inc")->vrid, 3);
        assert_non_null(strstr(out, "following include inst.conf"));
        assert_non_null(strstr(out, "'include missing.conf': not followed: cannot read it"));
        assert_non_null(strstr(out, "does not expand globs"));
        /* The file including itself stops at the depth limit. */
        assert_true(files.calls >= 2 && files.calls <= 12);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_syntax),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_master_backup),
                cmocka_unit_test(test_unicast),
                cmocka_unit_test(test_ipv6),
                cmocka_unit_test(test_sync_scripts_notify),
                cmocka_unit_test(test_garp),
                cmocka_unit_test(test_unsupported),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_group_weights),
                cmocka_unit_test(test_include),
                cmocka_unit_test(test_ipv6_unicast),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
