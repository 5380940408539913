/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ENGINE_INTERNAL_H
#define RAIDTOOL_ENGINE_INTERNAL_H

/*
 * What lib/rebuild.c (the background walks) needs from lib/engine.c: the
 * context pool and stripe-batch operations that take the stripe locks
 * themselves. Not installed.
 */
#include <stdbool.h>
#include <stdint.h>

struct rt_engine;
struct engine_ctx;
struct rt_walk;

struct engine_geom {
	int32_t level;
	uint32_t n;
	uint64_t chunk;			/* bytes of a role per stripe */
	uint64_t role_bytes;		/* bytes of every role's data area in use */
};

void engine_geom(const struct rt_engine *e, struct engine_geom *g);

/* A request context; taken before any stripe lock, as requests do. */
struct engine_ctx *engine_ctx_get(struct rt_engine *e);
void engine_ctx_put(struct rt_engine *e, struct engine_ctx *c);

/* Stripes one batch call handles with one context (>= 1). */
uint64_t engine_walk_batch(struct rt_engine *e, int kind);

/*
 * Rebuild role @role on stripes [s0, s0 + cnt) from the others, under
 * their stripe locks. -EIO when the sources or the unit are gone.
 */
int engine_recover_stripes(struct rt_engine *e, struct engine_ctx *c, uint32_t role,
			   uint64_t s0, uint64_t cnt);

/*
 * A scrub of stripes: what it does with copies that differ, and what it
 * found (added to by every call).
 *
 * raid5 compares parity with the XOR of the data and, repairing, rewrites
 * the parity: single parity cannot tell which chunk is wrong, so a damaged
 * data chunk stays damaged (and the parity then agrees with it).
 *
 * raid1 compares the working mirrors block by block. Repairing, a block
 * takes the value most copies hold. When no value is held by more copies
 * than any other (a tie: always so with two working mirrors), the copy of
 * @prefer wins when that role is working and one of the tied; otherwise two
 * working mirrors (or @settle_ties, as a resync wants) keep the first
 * working role's copy, and three or more leave the block as found and count
 * it in @ties.
 */
struct engine_scrub {
	bool repair;
	bool settle_ties;
	bool prefer_set;
	uint32_t prefer;
	uint64_t mismatches;		/* stripes found different */
	uint64_t repaired;		/* stripes rewritten */
	uint64_t ties;			/* raid1: stripes with a tie left as found */
	uint64_t kept_roles;		/* raid1: bit r, role r's copy settled a tie */
};

/* Scrub stripes [s0, s0 + cnt) under their locks (see struct engine_scrub). */
int engine_scrub_stripes(struct rt_engine *e, struct engine_ctx *c, uint64_t s0, uint64_t cnt,
			 struct engine_scrub *sc);

/* The walk has ended: free what recover borrowed for it (one walk at a time). */
void engine_walk_release_mem(struct rt_engine *e);

/* The rebuilt role becomes a normal active one. */
int engine_recover_complete(struct rt_engine *e, uint32_t role);

/* Where the engine keeps the walk state of lib/rebuild.c. */
struct rt_walk **engine_walk_slot(struct rt_engine *e);

/* Region @region of the dirty log has been resynced: it may be cleared when idle. */
void engine_dirtylog_resynced(struct rt_engine *e, uint64_t region);

/*
 * Fault injection for tests/unit/test_engine.c (nothing else sets it): what
 * no real unit produces on demand. @io_result sees every unit I/O
 * completion (@op 0 read, 1 write, 2 flush; @len the bytes asked for) and
 * returns the result the engine acts on: a short count, 0, -EAGAIN. @submit
 * runs before each ring submission: 0 submits, a negative errno fails the
 * submission with it (nothing submitted). Set before the first request.
 */
struct engine_fault_hooks {
	int (*io_result)(void *arg, int op, uint32_t role, uint32_t len, int res);
	int (*submit)(void *arg);
	void *arg;
};
void engine_set_fault_hooks(struct rt_engine *e, const struct engine_fault_hooks *h);

/* lib/rebuild.c: is a walk running? */
bool rebuild_walk_busy(struct rt_engine *e);

/* lib/rebuild.c: cancel a running walk and free the state (engine_destroy). */
void rebuild_release(struct rt_engine *e);

#endif
