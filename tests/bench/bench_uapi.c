/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What one read of a large wireguard-go device costs hamgr, without the
 * socket: the parsers of wg/uapi.c over a reply laid out as wireguard-go
 * prints it (N peers, one allowed IP each, half with an endpoint). Prints
 * milliseconds per read (best of REPS); asserts nothing.
 *   build/bench/tests/bench/bench_uapi [peers] [reps]
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wg/uapi.h"
#include "wg/wg.h"

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

struct text {
        char *buf;
        size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...) {
        va_list ap;
        int n;

        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
                va_end(ap);
                if (n >= 0 && (size_t) n < t->cap - t->len)
                        break;
                t->cap = t->cap * 2 + 4096;
                t->buf = realloc(t->buf, t->cap);
                if (!t->buf)
                        abort();
        }
        t->len += (size_t) n;
}

static void hex_key(char out[65], unsigned seed, unsigned salt) {
        uint64_t x = (uint64_t) seed * 0x9E3779B97F4A7C15ull + salt;

        for (int i = 0; i < 64; i++) {
                x ^= x >> 29;
                x *= 0xBF58476D1CE4E5B9ull;
                x ^= x >> 32;
                out[i] = "0123456789abcdef"[x & 15];
        }
        out[64] = '\0';
}

/* A get reply of N peers. TRAFFIC varies the lines that change by
 * themselves (handshake times, byte counters); EDITED, if below N, gets
 * another allowed IP. */
static struct text reply(size_t n, unsigned traffic, size_t edited) {
        struct text t = {};
        char key[65];

        hex_key(key, 0, 1);
        put(&t, "private_key=%s\nlisten_port=51820\n", key);
        for (size_t i = 0; i < n; i++) {
                hex_key(key, (unsigned) i + 1, 2);
                put(&t, "public_key=%s\npreshared_key=%064d\nprotocol_version=1\n", key, 0);
                if (i % 2 == 0)
                        put(&t, "endpoint=198.51.%zu.%zu:%zu\n", (i >> 8) & 255, i & 255, 1024 + i % 50000);
                put(&t,
                    "last_handshake_time_sec=%u\nlast_handshake_time_nsec=%u\ntx_bytes=%zu\nrx_bytes=%zu\n"
                    "persistent_keepalive_interval=%d\n",
                    i % 2 == 0 ? 1700000000u + traffic : 0u, (traffic * 7919u) % 1000000000u,
                    i * 1000 + traffic * 148, i * 2000 + traffic * 92, i % 3 == 0 ? 25 : 0);
                put(&t, "allowed_ip=10.%zu.%zu.%zu/32\n", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                if (i == edited)
                        put(&t, "allowed_ip=10.255.%zu.%zu/32\n", (i >> 8) & 255, i & 255);
        }
        put(&t, "errno=0\n\n");
        return t;
}

typedef int (*run_fn)(const struct text *t, const struct wg_index *prev);

static int run_get(const struct text *t, const struct wg_index *prev) {
        struct wg_device *dev = NULL;
        int r = wg_uapi_parse_get((const uint8_t *) t->buf, t->len, 1700000100, &dev, NULL);

        (void) prev;
        wg_device_free(dev);
        return r;
}

static int run_endpoints(const struct text *t, const struct wg_index *prev) {
        struct wg_device *dev = NULL;
        int r = wg_uapi_parse_get_endpoints((const uint8_t *) t->buf, t->len, 1700000100, &dev, NULL);

        (void) prev;
        wg_device_free(dev);
        return r;
}

static int run_digest(const struct text *t, const struct wg_index *prev) {
        uint8_t d[WG_DIGEST_LEN];

        (void) prev;
        return wg_uapi_parse_digest((const uint8_t *) t->buf, t->len, d, NULL);
}

static int run_indexed(const struct text *t, const struct wg_index *prev) {
        struct wg_index *next = NULL;
        struct wg_device *dev = NULL;
        bool partial;
        int r = wg_uapi_parse_indexed((const uint8_t *) t->buf, t->len, 1700000100, prev, &next, &dev, &partial,
                                      NULL);

        wg_index_free(next);
        wg_device_free(dev);
        return r;
}

static void bench(const char *what, run_fn fn, const struct text *t, const struct wg_index *prev, int reps) {
        double best = 1e30;

        for (int i = 0; i < reps; i++) {
                double t0 = now_ms();
                int r = fn(t, prev);
                double t1 = now_ms();

                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", what, strerror(-r));
                        exit(EXIT_FAILURE);
                }
                if (t1 - t0 < best)
                        best = t1 - t0;
        }
        printf("| %s | %.1f ms |\n", what, best);
}

int main(int argc, char **argv) {
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 50000;
        int reps = argc > 2 ? atoi(argv[2]) : 10;
        struct text base = reply(n, 0, SIZE_MAX), traffic = reply(n, 1, SIZE_MAX), edited = reply(n, 1, n / 2);
        struct wg_index *index = NULL;
        struct wg_device *dev = NULL;
        bool partial;
        int r;

        r = wg_uapi_parse_indexed((const uint8_t *) base.buf, base.len, 1700000100, NULL, &index, &dev, &partial,
                                  NULL);
        wg_device_free(dev);
        if (r < 0 || !index) {
                fprintf(stderr, "cannot index the reply: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        printf("One read of %zu peers (%.1f MB of reply), best of %d:\n\n", n, (double) base.len / 1e6, reps);
        printf("| parse | time |\n|---|---:|\n");
        bench("whole (wg_uapi_parse_get)", run_get, &base, NULL, reps);
        bench("endpoints only (the endpoint snapshot's)", run_endpoints, &base, NULL, reps);
        bench("digest only", run_digest, &base, NULL, reps);
        bench("indexed, no index yet (a whole poll)", run_indexed, &base, NULL, reps);
        bench("indexed, unchanged but for traffic (an idle poll)", run_indexed, &traffic, index, reps);
        bench("indexed, one peer edited (a partial poll)", run_indexed, &edited, index, reps);
        wg_index_free(index);
        free(base.buf);
        free(traffic.buf);
        free(edited.buf);
        return EXIT_SUCCESS;
}
