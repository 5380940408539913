/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_REBUILD_H
#define RAIDTOOL_REBUILD_H

/*
 * Background walks over a running array's stripes, beside user I/O:
 *   recover  reconstruct a role onto a new unit (rebuild onto a spare),
 *            from a checkpointed offset
 *   resync   make parity/mirrors agree again in given regions (after an
 *            unclean stop: the dirty regions of the write-intent log)
 *   check    read every stripe, count mismatches (raid1 copies, raid5 parity)
 *   repair   as check, and rewrite what does not match: raid5 recomputes
 *            the parity from the data (a damaged data chunk stays damaged);
 *            raid1 gives each block the value most mirrors hold, and settles
 *            a tie with the preferred role's copy, else (two mirrors) the
 *            first working role's, else leaves it and counts it
 * One walk runs at a time per engine. Offsets are bytes of a role's data area.
 */
#include <stdbool.h>
#include <stdint.h>

struct rt_engine;
struct rt_unit;

enum rt_walk_kind {
	RT_WALK_NONE = 0,
	RT_WALK_RECOVER = 1,
	RT_WALK_RESYNC = 2,
	RT_WALK_CHECK = 3,
	RT_WALK_REPAIR = 4,
	RT_WALK_REPLACE = 5,		/* fill a role's replacement (engine_replace_start) */
};

/*
 * Called from the walk's thread: @checkpoint every few MiB of a recover
 * (persist it as the role's recovery_offset) and @done once at the end
 * (result 0, -ECANCELED when cancelled, or -errno).
 */
struct rt_walk_params {
	int kind;			/* enum rt_walk_kind */
	uint32_t role;			/* recover, replace: the role being rebuilt, replaced */
	uint64_t start;			/* recover, replace: resume from here (bytes) */
	/*
	 * resync: the regions to resync, NULL = all. recover: NULL = all, or
	 * only these (a unit re-added from the dirty-region log).
	 */
	const uint8_t *regions;
	uint64_t region_size;		/* bytes of each role's data area per bit */
	/*
	 * At most this many bytes of a role's data area per second (md's
	 * sync_speed_max); 0: as fast as the units go. User I/O is never
	 * throttled.
	 */
	uint64_t max_bytes_per_sec;
	/* raid1 repair: role @prefer's copy settles a tie (it must be working). */
	bool prefer_set;
	uint32_t prefer;
	void (*checkpoint)(uint32_t role, uint64_t offset, void *ctx);
	/*
	 * On the walk's thread once it ended (a new walk may start meanwhile):
	 * @role is the walk's (@role above; 0 for check, repair and resync).
	 */
	void (*done)(int kind, uint32_t role, int result, void *ctx);
	void *ctx;
};

struct rt_walk_progress {
	int kind;			/* RT_WALK_NONE when nothing ran yet */
	bool running;
	/*
	 * Ended (running false, result set; another walk may start), its done
	 * callback still at work: a replace's swap, a rebuild's role table
	 * update. Status counts it as running, so that what `wait` returns to
	 * finds the walk's outcome recorded.
	 */
	bool ending;
	int result;			/* of the last finished walk */
	uint32_t role;
	uint64_t done, total;		/* bytes of role data area */
	uint64_t mismatches;		/* check/repair: stripes found different */
	uint64_t repaired;		/* stripes rewritten */
	uint64_t ties;			/* raid1 repair: stripes with a tie left as found */
	uint64_t kept_roles;		/* raid1 repair: bit r, role r's copy settled a tie */
	uint64_t regions, regions_total;/* resync, partial recover: regions done / to do */
	uint64_t bytes_per_sec;		/* recent speed */
	uint64_t max_bytes_per_sec;	/* its speed limit, 0: none */
};

/*
 * From a walk's done callback: its outcome is recorded (the superblocks
 * say it), so status stops counting the walk as running (ending) although
 * the callback goes on with best-effort work, which may hang on a failed
 * unit. Not from any other thread.
 */
void engine_walk_outcome_recorded(struct rt_engine *e);

/*
 * Put @u into role @role, which must be faulty or missing, as a rebuilding
 * unit: from now on writes also go to it, reads use it only below the
 * recover walk's position. The engine borrows @u.
 */
int engine_attach_unit(struct rt_engine *e, uint32_t role, struct rt_unit *u);

/* Detach a faulty role's unit (raidtool remove); the caller closes it. */
int engine_detach_unit(struct rt_engine *e, uint32_t role, struct rt_unit **u);

/*
 * Hot replace (raidtool replace). From engine_replace_start on, every
 * write and flush of role @role also goes to @u (the engine borrows it),
 * while reads keep using the role's unit; a RT_WALK_REPLACE walk copies
 * the role to @u, like a recover with @u as the target, so that @u is
 * valid below the walk's position. Should the role's unit fail meanwhile,
 * writes go on to @u alone and the walk fills it from the other roles.
 * The role may also be faulty from the start (its unit missing): then @u
 * is filled from the others throughout. -EEXIST when a replace or rebuild
 * of the role is under way, -ENODEV when the role could not be rebuilt.
 */
int engine_replace_start(struct rt_engine *e, uint32_t role, struct rt_unit *u);
/*
 * After the walk completed: @u takes the role (active, not faulty) and
 * the unit it replaces is given back in *@old (NULL when it had none).
 * -EIO when the replacement failed meanwhile (nothing changes).
 * @commit (may be NULL) is called with @arg just before the swap, with no
 * request in flight and none let in until the swap is done: from then on
 * writes reach @u alone, so the superblocks must say that @u holds the
 * role before any of them is acknowledged. It must not call the engine.
 */
int engine_replace_finish(struct rt_engine *e, uint32_t role, struct rt_unit **old,
			  void (*commit)(void *arg), void *arg);
/* Give up the replace: the replacement is given back in *@u; the role stays as it is. */
int engine_replace_abort(struct rt_engine *e, struct rt_unit **u);
/* The role being replaced, or -1. */
int engine_replace_role(struct rt_engine *e);
/* Has a write or flush to the replacement failed (the replace is then abandoned)? */
bool engine_replace_failed(struct rt_engine *e);

int engine_walk_start(struct rt_engine *e, const struct rt_walk_params *p);
/*
 * Change the running walk's speed limit (bytes of a role's data area per
 * second, 0: none) from now on; the pace restarts from where it is.
 */
int engine_walk_set_speed(struct rt_engine *e, uint64_t max_bytes_per_sec);
void engine_walk_progress(struct rt_engine *e, struct rt_walk_progress *p);
/*
 * Stop a running walk at a stripe boundary; returns after @done has run.
 * -ESRCH: no walk ran; -EALREADY: the walk had ended and its @done was
 * recording the outcome (recorded when this returns).
 */
int engine_walk_cancel(struct rt_engine *e);

#endif
