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
 * Compare stripes [s0, s0 + cnt) under their locks (raid1: every working
 * mirror with the first working one; raid5: parity with the XOR of the
 * data); @repair rewrites what differs. Counts stripes into the totals.
 */
int engine_scrub_stripes(struct rt_engine *e, struct engine_ctx *c, uint64_t s0, uint64_t cnt,
			 bool repair, uint64_t *mismatches, uint64_t *repaired);

/* The rebuilt role becomes a normal active one. */
int engine_recover_complete(struct rt_engine *e, uint32_t role);

/* Where the engine keeps the walk state of lib/rebuild.c. */
struct rt_walk **engine_walk_slot(struct rt_engine *e);

/* Region @region of the dirty log has been resynced: it may be cleared when idle. */
void engine_dirtylog_resynced(struct rt_engine *e, uint64_t region);

/* lib/rebuild.c: is a walk running? */
bool rebuild_walk_busy(struct rt_engine *e);

/* lib/rebuild.c: cancel a running walk and free the state (engine_destroy). */
void rebuild_release(struct rt_engine *e);

#endif
