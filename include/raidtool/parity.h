/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_PARITY_H
#define RAIDTOOL_PARITY_H

/*
 * Parity arithmetic over buffers (ISA-L's xor_gen/xor_check underneath).
 * Pure: buffers in, buffers out. Lengths must be multiples of 32 bytes and
 * buffers 32-byte aligned (the engine's buffers are 4 KiB aligned); a bad
 * length, a misaligned or NULL buffer, or n_src == 0 is -EINVAL and nothing
 * is written. A length of 0 does nothing. @dst must not overlap a source,
 * except exactly: parity_xor(dst, {dst}, 1, len) is a no-op and
 * parity_xor_into(dst, dst, len) zeroes dst.
 */
#include <stddef.h>

/* @dst = XOR of @n_src buffers (n_src >= 1). -EINVAL for a bad length. */
int parity_xor(void *dst, void *const *src, unsigned n_src, size_t len);

/* @dst ^= @src. */
int parity_xor_into(void *dst, const void *src, size_t len);

/* 0 when XOR of @src equals @parity, 1 when not, -EINVAL for a bad length. */
int parity_check(const void *parity, void *const *src, unsigned n_src, size_t len);

#endif
