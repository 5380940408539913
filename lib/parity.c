/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * XOR parity over buffers, through ISA-L's xor_gen/xor_check. Pure: no I/O,
 * no logging.
 *
 * ISA-L's constraints: xor_gen wants at least two sources plus the
 * destination (vects >= 3) and 32-byte aligned pointers (its AVX code uses
 * aligned loads); xor_check wants 16-byte alignment; both take an int
 * length. We require 32-byte aligned buffers and lengths that are
 * multiples of 32, and split very long buffers into int-sized pieces.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <isa-l/raid.h>

#include <raidtool/parity.h>

#define PARITY_ALIGN 32u
/* Sources handed to one xor_gen call; more are folded in afterwards. */
#define PARITY_BATCH 64u
/* Largest piece handed to ISA-L in one call: an int, multiple of 32. */
#define PARITY_PIECE ((size_t)1 << 30)

static int check_buf(const void *p)
{
	return p && ((uintptr_t)p % PARITY_ALIGN) == 0;
}

static int check_len(size_t len)
{
	return len % PARITY_ALIGN == 0;
}

/* Casts away const for ISA-L's void ** interfaces, which only read sources. */
static void *unconst(const void *p)
{
	return (void *)(uintptr_t)p;
}

int parity_xor_into(void *dst, const void *src, size_t len)
{
	uint64_t *d = dst;
	const uint64_t *s = src;
	size_t i;

	if (!check_buf(dst) || !check_buf(src) || !check_len(len))
		return -EINVAL;
	for (i = 0; i < len / sizeof(uint64_t); i++)
		d[i] ^= s[i];
	return 0;
}

int parity_xor(void *dst, void *const *src, unsigned n_src, size_t len)
{
	void *vec[PARITY_BATCH + 1];
	unsigned i, batch;
	size_t off, piece;

	if (!check_buf(dst) || !src || n_src == 0 || !check_len(len))
		return -EINVAL;
	for (i = 0; i < n_src; i++)
		if (!check_buf(src[i]))
			return -EINVAL;

	if (n_src == 1) {
		if (dst != src[0])
			memmove(dst, src[0], len);
		return 0;
	}

	batch = n_src < PARITY_BATCH ? n_src : PARITY_BATCH;
	for (off = 0; off < len; off += piece) {
		piece = len - off < PARITY_PIECE ? len - off : PARITY_PIECE;
		for (i = 0; i < batch; i++)
			vec[i] = (uint8_t *)src[i] + off;
		vec[batch] = (uint8_t *)dst + off;
		if (xor_gen((int)batch + 1, (int)piece, vec) != 0)
			return -EINVAL;
	}
	for (i = batch; i < n_src; i++)
		parity_xor_into(dst, src[i], len);
	return 0;
}

int parity_check(const void *parity, void *const *src, unsigned n_src, size_t len)
{
	void *vec[PARITY_BATCH + 1];
	uint8_t tmp[4096] __attribute__((aligned(PARITY_ALIGN)));
	unsigned i;
	size_t off, piece;

	if (!check_buf(parity) || !src || n_src == 0 || !check_len(len))
		return -EINVAL;
	for (i = 0; i < n_src; i++)
		if (!check_buf(src[i]))
			return -EINVAL;

	if (n_src <= PARITY_BATCH) {
		for (off = 0; off < len; off += piece) {
			piece = len - off < PARITY_PIECE ? len - off : PARITY_PIECE;
			for (i = 0; i < n_src; i++)
				vec[i] = (uint8_t *)src[i] + off;
			vec[n_src] = (uint8_t *)unconst(parity) + off;
			if (xor_check((int)n_src + 1, (int)piece, vec) != 0)
				return 1;
		}
		return 0;
	}

	/* Many sources: accumulate a small window at a time, then compare. */
	for (off = 0; off < len; off += piece) {
		piece = len - off < sizeof(tmp) ? len - off : sizeof(tmp);
		memcpy(tmp, (const uint8_t *)parity + off, piece);
		for (i = 0; i < n_src; i++)
			parity_xor_into(tmp, (const uint8_t *)src[i] + off, piece);
		for (i = 0; i < piece; i++)
			if (tmp[i])
				return 1;
	}
	return 0;
}
