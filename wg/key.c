/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "wg/key.h"

_Static_assert(WG_KEY_LEN == crypto_scalarmult_curve25519_BYTES, "WireGuard keys are X25519 scalars/points");
_Static_assert(WG_KEY_B64_LEN == sodium_base64_ENCODED_LEN(WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL),
               "base64 buffer must hold exactly one encoded key plus NUL");

/* sodium_init() is idempotent and thread-safe; 1 means "already done". */
static int ensure_sodium(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

int wg_key_from_base64(uint8_t ret_key[static WG_KEY_LEN], const char *b64) {
        uint8_t tmp[WG_KEY_LEN];
        size_t len = 0;
        int r = -EINVAL;

        if (!b64)
                return -EINVAL;
        /* Exactly 44 characters: libsodium is only told about the first 44
         * and would not notice trailing garbage. */
        if (strnlen(b64, WG_KEY_B64_LEN) != WG_KEY_B64_LEN - 1)
                return -EINVAL;

        /* libsodium 1.0.18 takes any byte from 0x80 up for '/' (a second
         * spelling of the same key), so the alphabet is checked here. */
        for (size_t i = 0; i < WG_KEY_B64_LEN - 1; i++) {
                char c = b64[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '/' || c == '='))
                        return -EINVAL;
        }

        /* Without an end pointer libsodium rejects any other character outside
         * the alphabet rather than stopping there. It insists on correct
         * '=' padding, so 44 characters decode to 32 bytes, or to 31 with
         * "==", which the length check catches; and it rejects non-zero
         * leftover bits in the last data character, so each key has exactly
         * one accepted spelling. */
        if (sodium_base642bin(tmp, sizeof(tmp), b64, WG_KEY_B64_LEN - 1, NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) < 0)
                goto finish;
        if (len != WG_KEY_LEN)
                goto finish;

        memcpy(ret_key, tmp, WG_KEY_LEN);
        r = 0;
finish:
        sodium_memzero(tmp, sizeof(tmp));
        return r;
}

void wg_key_to_base64(char ret_b64[static WG_KEY_B64_LEN], const uint8_t key[static WG_KEY_LEN]) {
        sodium_bin2base64(ret_b64, WG_KEY_B64_LEN, key, WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

int wg_key_generate_private(uint8_t ret_key[static WG_KEY_LEN]) {
        int r;

        r = ensure_sodium();
        if (r < 0)
                return r;

        randombytes_buf(ret_key, WG_KEY_LEN);
        /* RFC 7748 section 5 clamping, stored in the key as wg(8) does so
         * the text form is the canonical scalar. */
        ret_key[0] &= 248;
        ret_key[31] = (ret_key[31] & 127) | 64;
        return 0;
}

int wg_key_public_from_private(uint8_t ret_pub[static WG_KEY_LEN], const uint8_t priv[static WG_KEY_LEN]) {
        uint8_t tmp[WG_KEY_LEN];
        int r;

        if (wg_key_is_zero(priv))
                return -EINVAL;

        r = ensure_sodium();
        if (r < 0)
                return r;

        /* Clamps the scalar itself; fails only for a low-order result,
         * which a clamped scalar times the base point cannot produce. */
        if (crypto_scalarmult_curve25519_base(tmp, priv) < 0) {
                r = -EINVAL;
                goto finish;
        }

        memcpy(ret_pub, tmp, WG_KEY_LEN);
        r = 0;
finish:
        sodium_memzero(tmp, sizeof(tmp));
        return r;
}

bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN]) {
        return sodium_is_zero(key, WG_KEY_LEN) == 1;
}

bool wg_key_equal(const uint8_t a[static WG_KEY_LEN], const uint8_t b[static WG_KEY_LEN]) {
        return sodium_memcmp(a, b, WG_KEY_LEN) == 0;
}
