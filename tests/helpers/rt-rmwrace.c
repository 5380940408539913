// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rt-rmwrace DEVICE BLOCKS ITERATIONS
 *
 * Detects a whole-block write undone by a concurrent read-modify-write of
 * one of its sectors. The first BLOCKS 4 KiB blocks of DEVICE (opened
 * O_DIRECT) are shared by two kinds of threads:
 *   - block writers: each owns every other block; per iteration it reads
 *     its block, checks that sectors 0..6 still hold the sequence number it
 *     wrote last, then writes the whole block with the next number;
 *   - sector writers: write sector 7 (512 bytes) of random blocks.
 * Nobody but a block's owner writes its sectors 0..6, so a block found
 * holding anything but its owner's last acknowledged number lost that
 * write. A lost write that is never followed by another check is caught by
 * the final pass over every block. Prints "checks N lost M"; exits 1 when
 * M > 0, 2 on a usage or I/O error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 4096u
#define SECTOR 512u
#define OWNED_SECTORS 7u	/* sector 7 belongs to the sector writers */
#define BLOCK_WRITERS 2u
#define SECTOR_WRITERS 2u

static int fd;
static unsigned n_blocks;
static unsigned long iterations;
static uint64_t *last_seq;		/* per block: the owner's last acknowledged number */
static atomic_ulong checks, lost;
static atomic_int io_failed, stop;

static void fill(uint8_t *b, unsigned block, uint64_t seq)
{
	for (unsigned s = 0; s < OWNED_SECTORS; s++)
		for (unsigned i = 0; i < SECTOR; i += 16) {
			memcpy(b + s * SECTOR + i, &seq, 8);
			uint64_t tag = block;

			memcpy(b + s * SECTOR + i + 8, &tag, 8);
		}
	memset(b + OWNED_SECTORS * SECTOR, 0xee, SECTOR);
}

/* Does @b hold @seq of @block in every owned sector? */
static int holds(const uint8_t *b, unsigned block, uint64_t seq)
{
	uint8_t want[BLOCK];

	fill(want, block, seq);
	return !memcmp(b, want, OWNED_SECTORS * SECTOR);
}

static int check_block(uint8_t *buf, unsigned block)
{
	if (pread(fd, buf, BLOCK, (off_t)block * BLOCK) != BLOCK) {
		atomic_store(&io_failed, errno ? errno : EIO);
		return -1;
	}
	atomic_fetch_add(&checks, 1);
	if (last_seq[block] && !holds(buf, block, last_seq[block]))
		atomic_fetch_add(&lost, 1);
	return 0;
}

static void *block_writer(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	uint8_t *buf;
	unsigned long it;

	if (posix_memalign((void **)&buf, BLOCK, BLOCK))
		return NULL;
	for (it = 0; it < iterations && !atomic_load(&io_failed); it++) {
		for (unsigned b = me; b < n_blocks; b += BLOCK_WRITERS) {
			if (check_block(buf, b))
				break;
			fill(buf, b, last_seq[b] + 1);
			if (pwrite(fd, buf, BLOCK, (off_t)b * BLOCK) != BLOCK) {
				atomic_store(&io_failed, errno ? errno : EIO);
				break;
			}
			last_seq[b]++;
		}
	}
	free(buf);
	return NULL;
}

static void *sector_writer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1u;
	uint8_t *buf;

	if (posix_memalign((void **)&buf, BLOCK, SECTOR))
		return NULL;
	memset(buf, 0x5a, SECTOR);
	while (!atomic_load(&stop) && !atomic_load(&io_failed)) {
		unsigned b = (unsigned)rand_r(&seed) % n_blocks;

		if (pwrite(fd, buf, SECTOR, (off_t)b * BLOCK + OWNED_SECTORS * SECTOR) != SECTOR)
			atomic_store(&io_failed, errno ? errno : EIO);
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t bw[BLOCK_WRITERS], sw[SECTOR_WRITERS];
	uint8_t *buf;
	unsigned i;

	if (argc != 4) {
		fprintf(stderr, "usage: rt-rmwrace DEVICE BLOCKS ITERATIONS\n");
		return 2;
	}
	n_blocks = (unsigned)strtoul(argv[2], NULL, 0);
	iterations = strtoul(argv[3], NULL, 0);
	if (n_blocks < BLOCK_WRITERS || !iterations) {
		fprintf(stderr, "rt-rmwrace: BLOCKS must be at least %u, ITERATIONS at least 1\n",
			BLOCK_WRITERS);
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "rt-rmwrace: '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	last_seq = calloc(n_blocks, sizeof(*last_seq));
	if (!last_seq || posix_memalign((void **)&buf, BLOCK, BLOCK))
		return 2;
	for (i = 0; i < SECTOR_WRITERS; i++)
		pthread_create(&sw[i], NULL, sector_writer, (void *)(uintptr_t)i);
	for (i = 0; i < BLOCK_WRITERS; i++)
		pthread_create(&bw[i], NULL, block_writer, (void *)(uintptr_t)i);
	for (i = 0; i < BLOCK_WRITERS; i++)
		pthread_join(bw[i], NULL);
	atomic_store(&stop, 1);
	for (i = 0; i < SECTOR_WRITERS; i++)
		pthread_join(sw[i], NULL);
	/* Every sector write is acknowledged now: the last numbers must all be there. */
	for (i = 0; i < n_blocks && !atomic_load(&io_failed); i++)
		check_block(buf, i);
	if (atomic_load(&io_failed)) {
		fprintf(stderr, "rt-rmwrace: I/O on '%s' failed: %s\n", argv[1],
			strerror(atomic_load(&io_failed)));
		return 2;
	}
	printf("checks %lu lost %lu\n", atomic_load(&checks), atomic_load(&lost));
	free(buf);
	free(last_seq);
	close(fd);
	return atomic_load(&lost) ? 1 : 0;
}
