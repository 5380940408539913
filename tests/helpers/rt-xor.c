/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt-xor OUT IN... : OUT = byte-wise XOR of the IN files (all the same size).
 * A test oracle for raid5 parity, deliberately independent of lib/parity.c.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	unsigned char in[65536], acc[65536];
	FILE *out, **src;
	size_t n, m;
	int i;

	if (argc < 3) {
		fprintf(stderr, "usage: rt-xor OUT IN...\n");
		return 2;
	}
	src = calloc((size_t)argc, sizeof(*src));
	if (!src)
		return 1;
	for (i = 2; i < argc; i++) {
		src[i] = fopen(argv[i], "rb");
		if (!src[i]) {
			perror(argv[i]);
			return 1;
		}
	}
	out = fopen(argv[1], "wb");
	if (!out) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		n = fread(acc, 1, sizeof(acc), src[2]);
		if (n == 0)
			break;
		for (i = 3; i < argc; i++) {
			m = fread(in, 1, n, src[i]);
			if (m != n) {
				fprintf(stderr, "%s: shorter than %s\n", argv[i], argv[2]);
				return 1;
			}
			for (size_t k = 0; k < n; k++)
				acc[k] ^= in[k];
		}
		if (fwrite(acc, 1, n, out) != n) {
			perror(argv[1]);
			return 1;
		}
	}
	return fclose(out) ? 1 : 0;
}
