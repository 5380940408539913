/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ENGINE_H
#define RAIDTOOL_ENGINE_H

/*
 * The request path of a running array: byte-addressed reads and writes of
 * the array, mapped by layout, fanned out to the units with io_uring
 * (O_DIRECT, preallocated aligned buffers), raid5 parity by full-stripe,
 * read-modify-write or reconstruct-write, a stripe lock table keeping
 * writers to one stripe apart, and flushes that reach every unit.
 *
 * Every call is safe from many threads at once (FUSE workers).
 */
#include <stddef.h>
#include <stdint.h>
#include <raidtool/format.h>

struct rt_unit;
struct rt_engine;

struct rt_engine_stats {
	uint64_t reads, writes, flushes;
	uint64_t read_bytes, write_bytes;
	uint64_t errors;
	struct {
		uint64_t reads, writes, read_bytes, write_bytes, errors;
	} unit[RT_MAX_UNITS];
};

/*
 * @sb: the array's freshest superblock. @units[role] for role < n_devices,
 * opened with RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_DIRECT; the engine
 * borrows them (the caller closes them after engine_destroy).
 */
int engine_create(const struct rt_sb *sb, struct rt_unit *const *units,
		  unsigned n_units, struct rt_engine **out);

/* Whole-length transfers: 0 or a negative errno. @off and @len need no alignment. */
int engine_read(struct rt_engine *e, void *buf, size_t len, uint64_t off);
int engine_write(struct rt_engine *e, const void *buf, size_t len, uint64_t off);

/* Returns once every unit has all completed writes on stable storage. */
int engine_flush(struct rt_engine *e);

uint64_t engine_size(const struct rt_engine *e);	/* array bytes */
void engine_get_stats(struct rt_engine *e, struct rt_engine_stats *st);

/* Waits for requests in flight, frees everything; does not close the units. */
void engine_destroy(struct rt_engine *e);

#endif
