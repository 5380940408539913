/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hot replace (include/raidtool/rebuild.h): a role's unit is copied to a
 * new one while it stays in service. The write path sends every write and
 * flush of the role to both (ring.c, replica_mode), so what the copy walk
 * has passed stays equal on the new unit; the walk (lib/rebuild.c, kind
 * RT_WALK_REPLACE) copies pieces under their stripe locks, in the pipeline
 * a recover runs in (walk.c). When the role's unit fails meanwhile
 * (engine_mark_faulty) the role gets its rebuild bit too: the level then plans its writes as
 * for a unit being rebuilt, they reach the replacement alone, and the walk
 * reconstructs from the other roles instead of reading the role.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/rebuild.h>
#include <raidtool/unit.h>

#include "internal.h"

bool engine_replace_intact(struct rt_engine *e, uint32_t role)
{
	return atomic_load(&e->replace_role) == role && !atomic_load(&e->replace_failed) &&
	       (!(engine_faulty(e) & role_bit(role)) || (engine_rebuilding(e) & role_bit(role)));
}

int engine_replace_role(struct rt_engine *e)
{
	uint32_t r = e ? atomic_load(&e->replace_role) : LAYOUT_NO_ROLE;

	return r == LAYOUT_NO_ROLE ? -1 : (int)r;
}

bool engine_replace_failed(struct rt_engine *e)
{
	return e && atomic_load(&e->replace_failed);
}

int engine_replace_start(struct rt_engine *e, uint32_t role, struct rt_unit *u)
{
	uint64_t bit;
	int ret = engine_unit_fits_role(e, role, u);

	if (ret)
		return ret;
	bit = role_bit(role);
	pthread_mutex_lock(&e->admin_mu);
	if (atomic_load(&e->replace_role) != LAYOUT_NO_ROLE || (engine_rebuilding(e) & bit)) {
		ret = -EEXIST;
		goto out;
	}
	if ((engine_faulty(e) & bit) && !e->ops->can_recover(e, role, engine_faulty(e))) {
		ret = -ENODEV;
		goto out;
	}
	engine_drain(e);
	pthread_mutex_lock(&e->fail_mu);
	e->replace_fd = unit_fd(u);
	e->replace_unit = u;
	atomic_store(&e->replace_failed, false);
	/* A faulty role: its writes are planned (rebuild bit) and go to @u alone. */
	if (engine_faulty(e) & bit)
		atomic_fetch_or(&e->rebuild, bit);
	atomic_store(&e->replace_role, role);
	pthread_mutex_unlock(&e->fail_mu);
	engine_dl_rewrite(e, &e->ctx[0]);
	engine_undrain(e);
	ret = 0;
out:
	pthread_mutex_unlock(&e->admin_mu);
	return ret;
}

/* Ends the replace under the drain; with @swap the replacement takes the role. */
static int replace_end(struct rt_engine *e, bool swap, uint32_t role, struct rt_unit **out,
		       void (*commit)(void *arg), void *arg)
{
	uint32_t r;
	int ret = 0;

	*out = NULL;
	pthread_mutex_lock(&e->admin_mu);
	engine_drain(e);
	pthread_mutex_lock(&e->fail_mu);
	r = atomic_load(&e->replace_role);
	if (r == LAYOUT_NO_ROLE || (swap && (r != role || !engine_replace_intact(e, r)))) {
		ret = r == LAYOUT_NO_ROLE ? -ENOENT : -EIO;
		goto out;
	}
	/*
	 * Under the drain: a write acknowledged once the role's unit no
	 * longer gets writes must find the swap in the superblocks, else a
	 * crash brings back the old unit (its replace resumed, the regions
	 * the crash left dirty copied again from it onto the new one).
	 */
	if (swap && commit)
		commit(arg);
	atomic_store(&e->replace_role, LAYOUT_NO_ROLE);
	if (swap) {
		*out = e->unit[r];
		e->unit[r] = e->replace_unit;
		e->fd[r] = e->replace_fd;
		atomic_fetch_add(&e->unit_gen[r], 1);
		/* As a completed recover: the faulty bit first (see the write path). */
		atomic_fetch_and(&e->faulty, ~role_bit(r));
	} else {
		*out = e->replace_unit;
	}
	atomic_fetch_and(&e->rebuild, ~role_bit(r));
	e->replace_unit = NULL;
	e->replace_fd = -1;
out:
	pthread_mutex_unlock(&e->fail_mu);
	engine_undrain(e);
	pthread_mutex_unlock(&e->admin_mu);
	return ret;
}

int engine_replace_finish(struct rt_engine *e, uint32_t role, struct rt_unit **old,
			  void (*commit)(void *arg), void *arg)
{
	if (!e || !old)
		return -EINVAL;
	return replace_end(e, true, role, old, commit, arg);
}

int engine_replace_abort(struct rt_engine *e, struct rt_unit **u)
{
	if (!e || !u)
		return -EINVAL;
	return replace_end(e, false, LAYOUT_NO_ROLE, u, NULL, NULL);
}
