/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "wg/key.h"

static void hex_to_key(uint8_t key[static WG_KEY_LEN], const char *hex) {
        assert_int_equal(strlen(hex), 2 * WG_KEY_LEN);
        for (size_t i = 0; i < WG_KEY_LEN; i++) {
                unsigned v;

                assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
                key[i] = (uint8_t) v;
        }
}

/* RFC 7748 section 6.1. */
static const char alice_priv_hex[] = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
static const char alice_pub_hex[]  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
static const char bob_priv_hex[]   = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
static const char bob_pub_hex[]    = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
/* Alice's keys in wg(8) text form (independently encoded). */
static const char alice_priv_b64[] = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
static const char alice_pub_b64[]  = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

static void test_rfc7748_vectors(void **state) {
        uint8_t priv[WG_KEY_LEN], want[WG_KEY_LEN], pub[WG_KEY_LEN];

        hex_to_key(priv, alice_priv_hex);
        hex_to_key(want, alice_pub_hex);
        assert_int_equal(wg_key_public_from_private(pub, priv), 0);
        assert_memory_equal(pub, want, WG_KEY_LEN);

        hex_to_key(priv, bob_priv_hex);
        hex_to_key(want, bob_pub_hex);
        assert_int_equal(wg_key_public_from_private(pub, priv), 0);
        assert_memory_equal(pub, want, WG_KEY_LEN);
}

static void test_base64_known(void **state) {
        uint8_t key[WG_KEY_LEN], want[WG_KEY_LEN], pub[WG_KEY_LEN];
        char b64[WG_KEY_B64_LEN];

        hex_to_key(want, alice_priv_hex);
        assert_int_equal(wg_key_from_base64(key, alice_priv_b64), 0);
        assert_memory_equal(key, want, WG_KEY_LEN);

        memset(b64, 'x', sizeof(b64));
        wg_key_to_base64(b64, key);
        assert_string_equal(b64, alice_priv_b64);

        assert_int_equal(wg_key_public_from_private(pub, key), 0);
        wg_key_to_base64(b64, pub);
        assert_string_equal(b64, alice_pub_b64);

        memset(key, 0, sizeof(key));
        wg_key_to_base64(b64, key);
        assert_string_equal(b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        memset(key, 0xff, sizeof(key));
        wg_key_to_base64(b64, key);
        assert_string_equal(b64, "//////////////////////////////////////////8=");
        assert_int_equal(wg_key_from_base64(want, b64), 0);
        assert_memory_equal(want, key, WG_KEY_LEN);
}

static void test_base64_roundtrip(void **state) {
        for (int i = 0; i < 512; i++) {
                uint8_t key[WG_KEY_LEN], back[WG_KEY_LEN];
                char b64[WG_KEY_B64_LEN];

                /* Unclamped random bytes: the text form must carry any 32 bytes. */
                for (size_t j = 0; j < WG_KEY_LEN; j++)
                        key[j] = (uint8_t) random();
                wg_key_to_base64(b64, key);
                assert_int_equal(strlen(b64), WG_KEY_B64_LEN - 1);
                assert_int_equal(b64[WG_KEY_B64_LEN - 2], '=');
                assert_int_equal(wg_key_from_base64(back, b64), 0);
                assert_memory_equal(back, key, WG_KEY_LEN);
        }
}

static void expect_rejected(const char *b64, const char *why) {
        uint8_t key[WG_KEY_LEN], sentinel[WG_KEY_LEN];
        int r;

        memset(sentinel, 0xa5, sizeof(sentinel));
        memcpy(key, sentinel, sizeof(key));
        r = wg_key_from_base64(key, b64);
        if (r != -EINVAL)
                fail_msg("accepted or wrong error (%d) for %s: \"%s\"", r, why, b64 ? b64 : "(null)");
        assert_memory_equal(key, sentinel, WG_KEY_LEN);
}

static void test_base64_rejects(void **state) {
        char buf[64];

        expect_rejected(NULL, "NULL");
        expect_rejected("", "empty");

        /* 43 characters: padding dropped */
        snprintf(buf, sizeof(buf), "%.*s", 43, alice_priv_b64);
        expect_rejected(buf, "43 chars");
        /* 45 characters */
        snprintf(buf, sizeof(buf), "%sA", alice_priv_b64);
        expect_rejected(buf, "45 chars");
        snprintf(buf, sizeof(buf), "%s=", alice_priv_b64);
        expect_rejected(buf, "extra padding");
        snprintf(buf, sizeof(buf), "%s\n", alice_priv_b64);
        expect_rejected(buf, "trailing newline");
        snprintf(buf, sizeof(buf), " %s", alice_priv_b64);
        expect_rejected(buf, "leading space");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=dwdtCnMYpX08FsFyUbJmRd9M", "much too long");

        /* 44 characters, wrong padding */
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCoA", "no padding (33 bytes)");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC==", "double padding, non-canonical");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LA==", "double padding (31 bytes)");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo!", "bad character in place of padding");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25L===", "triple padding");
        expect_rejected("============================================", "all padding");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9M=4frwJkqsXf7pR25LCo=", "padding in the middle");
        expect_rejected("=wdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=", "padding at the start");

        /* 44 characters, bad alphabet */
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC!=", "'!'");
        expect_rejected("dwdtCnMYpX08FsFy bJmRd9ML4frwJkqsXf7pR25LCo=", "embedded space");
        expect_rejected("dwdtCnMYpX08FsFy\nbJmRd9ML4frwJkqsXf7pR25LCo=", "embedded newline");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25L_o=", "URL-safe alphabet '_'");
        expect_rejected("hSDwCYkwp1R0i33ctD73Wg2-Og0mOBr066SpjqqbTmo=", "URL-safe alphabet '-'");
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25L\xc3\xa9=", "non-ASCII");
        /* libsodium 1.0.18 decodes any byte from 0x80 up as '/': found by
         * fuzz_sync_handshake, which checks that an accepted key is spelt
         * the one canonical way. */
        expect_rejected("dwdtCnMYpX08FsFy\xff" "bJmRd9ML4frwJkqsXf7pR25LCo=", "0xff for a letter");
        expect_rejected("dwdtCnMYpX08FsFy\x80" "bJmRd9ML4frwJkqsXf7pR25LCo=", "0x80 for a letter");
        expect_rejected("\xa3wdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=", "0xa3 first");

        /* 44 characters, non-zero leftover bits: 'p' differs from 'o' only in
         * the two bits past the 256th, so it would decode to the same key. */
        expect_rejected("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCp=", "non-canonical trailing bits");
        expect_rejected("//////////////////////////////////////////9=", "non-canonical trailing bits");
}

static bool is_clamped(const uint8_t k[static WG_KEY_LEN]) {
        return (k[0] & 7) == 0 && (k[31] & 128) == 0 && (k[31] & 64) != 0;
}

static void test_generate_clamped(void **state) {
        uint8_t first[WG_KEY_LEN];
        unsigned low_bits_or = 0, top_bits_and = 0xff;
        bool saw_different = false;

        assert_int_equal(wg_key_generate_private(first), 0);
        for (int i = 0; i < 256; i++) {
                uint8_t k[WG_KEY_LEN], pub[WG_KEY_LEN];

                memset(k, 0, sizeof(k));
                assert_int_equal(wg_key_generate_private(k), 0);
                assert_true(is_clamped(k));
                assert_false(wg_key_is_zero(k));
                if (!wg_key_equal(k, first))
                        saw_different = true;
                /* bits clamping does not touch must vary across keys */
                low_bits_or |= k[0] & 0xf8;
                top_bits_and &= k[31] | 0xc0;
                assert_int_equal(wg_key_public_from_private(pub, k), 0);
                assert_false(wg_key_is_zero(pub));
        }
        assert_true(saw_different);
        assert_int_equal(low_bits_or, 0xf8);
        assert_int_not_equal(top_bits_and, 0xff);
}

/* X25519 clamps the scalar itself, so the stored bits clamping fixes do not
 * change the public key: `wg pubkey` accepts unclamped keys the same way. */
static void test_public_ignores_clamp_bits(void **state) {
        uint8_t priv[WG_KEY_LEN], clamped[WG_KEY_LEN], a[WG_KEY_LEN], b[WG_KEY_LEN];

        hex_to_key(priv, alice_priv_hex);
        priv[0] |= 7;
        priv[31] = (priv[31] | 128) & ~64;
        memcpy(clamped, priv, sizeof(priv));
        clamped[0] &= 248;
        clamped[31] = (clamped[31] & 127) | 64;

        assert_int_equal(wg_key_public_from_private(a, priv), 0);
        assert_int_equal(wg_key_public_from_private(b, clamped), 0);
        assert_true(wg_key_equal(a, b));
        hex_to_key(b, alice_pub_hex);
        assert_memory_equal(a, b, WG_KEY_LEN);
}

static void test_public_zero_rejected(void **state) {
        uint8_t zero[WG_KEY_LEN] = { 0 }, pub[WG_KEY_LEN];

        memset(pub, 0x5a, sizeof(pub));
        assert_int_equal(wg_key_public_from_private(pub, zero), -EINVAL);
        for (size_t i = 0; i < WG_KEY_LEN; i++)
                assert_int_equal(pub[i], 0x5a);
}

static void test_is_zero_and_equal(void **state) {
        uint8_t a[WG_KEY_LEN] = { 0 }, b[WG_KEY_LEN] = { 0 };

        assert_true(wg_key_is_zero(a));
        assert_true(wg_key_equal(a, b));
        for (size_t i = 0; i < WG_KEY_LEN; i++) {
                for (unsigned bit = 0; bit < 8; bit++) {
                        a[i] = (uint8_t) (1u << bit);
                        assert_false(wg_key_is_zero(a));
                        assert_false(wg_key_equal(a, b));
                        assert_false(wg_key_equal(b, a));
                        b[i] = a[i];
                        assert_true(wg_key_equal(a, b));
                        a[i] = b[i] = 0;
                }
        }
        hex_to_key(a, alice_priv_hex);
        hex_to_key(b, alice_priv_hex);
        assert_true(wg_key_equal(a, b));
        assert_false(wg_key_is_zero(a));
}

/*
 * Cross-check against the real wg(8). wireguard-tools is a declared test
 * dependency: if the binary is missing this fails instead of skipping, so
 * a broken test environment cannot pass silently.
 */

/* Run COMMAND through sh, writing INPUT (may be NULL) to a file it reads on
 * stdin, and return its single output line without the newline. */
static void run_wg(const char *command, const char *input, char out[static WG_KEY_B64_LEN]) {
        char path[] = "/tmp/hamgr-test-wg-key.XXXXXX", cmd[256], line[128] = "";
        FILE *p;
        int fd, status;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        if (input)
                assert_int_equal(write(fd, input, strlen(input)), (ssize_t) strlen(input));
        close(fd);

        snprintf(cmd, sizeof(cmd), "%s < '%s'", command, path);
        p = popen(cmd, "r");
        assert_non_null(p);
        if (!fgets(line, sizeof(line), p))
                line[0] = '\0';
        status = pclose(p);
        unlink(path);

        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("`%s` failed (exit status %d). The wg binary from wireguard-tools "
                         "is required by this test; is it installed and in PATH?",
                         command, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        line[strcspn(line, "\n")] = '\0';
        if (strlen(line) != WG_KEY_B64_LEN - 1)
                fail_msg("`%s` printed %zu characters, want %d", command, strlen(line), WG_KEY_B64_LEN - 1);
        memcpy(out, line, WG_KEY_B64_LEN);
}

static void test_against_wg_binary(void **state) {
        for (int i = 0; i < 8; i++) {
                uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN], wg_pub[WG_KEY_LEN];
                char priv_b64[WG_KEY_B64_LEN], pub_b64[WG_KEY_B64_LEN], input[WG_KEY_B64_LEN + 1];

                /* wg genkey -> our decoder and derivation -> wg pubkey */
                run_wg("wg genkey", NULL, priv_b64);
                assert_int_equal(wg_key_from_base64(priv, priv_b64), 0);
                assert_true(is_clamped(priv));
                assert_int_equal(wg_key_public_from_private(pub, priv), 0);
                snprintf(input, sizeof(input), "%s\n", priv_b64);
                run_wg("wg pubkey", input, pub_b64);
                assert_int_equal(wg_key_from_base64(wg_pub, pub_b64), 0);
                assert_memory_equal(pub, wg_pub, WG_KEY_LEN);

                /* our generator and encoder -> wg pubkey */
                assert_int_equal(wg_key_generate_private(priv), 0);
                wg_key_to_base64(priv_b64, priv);
                assert_int_equal(wg_key_public_from_private(pub, priv), 0);
                snprintf(input, sizeof(input), "%s\n", priv_b64);
                run_wg("wg pubkey", input, pub_b64);
                wg_key_to_base64(priv_b64, pub);
                assert_string_equal(priv_b64, pub_b64);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc7748_vectors),
                cmocka_unit_test(test_base64_known),
                cmocka_unit_test(test_base64_roundtrip),
                cmocka_unit_test(test_base64_rejects),
                cmocka_unit_test(test_generate_clamped),
                cmocka_unit_test(test_public_ignores_clamp_bits),
                cmocka_unit_test(test_public_zero_rejected),
                cmocka_unit_test(test_is_zero_and_equal),
                cmocka_unit_test(test_against_wg_binary),
        };

        srandom(0x5eed);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
