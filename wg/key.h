/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * WireGuard (Curve25519) keys: base64 text form as wg(8) prints it, key
 * generation as `wg genkey` does, and public key derivation. Backed by
 * libsodium; every entry point that needs sodium_init() calls it itself, so
 * callers need not.
 *
 * Keys are secrets: nothing here logs, and temporaries are wiped. Callers
 * own wiping their copies (sodium_memzero()).
 */

#include <stdbool.h>
#include <stdint.h>

#define WG_KEY_LEN 32
/* 44 base64 characters (43 data + one '=') and the terminating NUL. */
#define WG_KEY_B64_LEN 45

/* Decode the 44-character base64 text of a key (standard alphabet, one '='
 * of padding, unused trailing bits zero, no whitespace). Returns 0, or
 * -EINVAL leaving ret_key untouched. */
int wg_key_from_base64(uint8_t ret_key[static WG_KEY_LEN], const char *b64);

/* Encode KEY as 44 base64 characters plus NUL. Cannot fail. */
void wg_key_to_base64(char ret_b64[static WG_KEY_B64_LEN], const uint8_t key[static WG_KEY_LEN]);

/* Fill ret_key with a fresh random private key, clamped for X25519
 * (low three bits clear, top bit clear, second-highest bit set) exactly as
 * `wg genkey` does. Returns 0, or -EIO if libsodium cannot be initialised
 * (ret_key untouched). */
int wg_key_generate_private(uint8_t ret_key[static WG_KEY_LEN]);

/* Derive the public key X25519(priv, 9), as `wg pubkey` does; the scalar is
 * clamped internally, so an unclamped PRIV gives the same result as its
 * clamped form. Returns 0; -EINVAL for an all-zero PRIV (WireGuard treats it
 * as "no key" and has no public key for it); -EIO if libsodium cannot be
 * initialised. ret_pub is untouched on failure. */
int wg_key_public_from_private(uint8_t ret_pub[static WG_KEY_LEN], const uint8_t priv[static WG_KEY_LEN]);

/* Whether KEY is all zero bytes, in constant time. */
bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN]);

/* Whether A and B are the same key, in constant time. */
bool wg_key_equal(const uint8_t a[static WG_KEY_LEN], const uint8_t b[static WG_KEY_LEN]);
