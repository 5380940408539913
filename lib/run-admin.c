/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The admin operations on a running array, as the control socket receives
 * them: fail, remove, add (re-add, spare), taking a hot spare, the walk
 * commands (check, repair, ...), speed and tune.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <raidtool/assemble.h>
#include <raidtool/control.h>
#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/log.h>
#include <raidtool/rebuild.h>
#include <raidtool/thin.h>
#include <raidtool/unit.h>
#include <raidtool/util.h>
#include "member.h"
#include "run-internal.h"

/* The one wording of a role number the array does not have. */
static int no_such_role(const struct run *run, const char *arg, char *msg, size_t len)
{
	snprintf(msg, len, "'%s': no such role (the array has roles 0 to %u)", arg,
		 run->as->n_roles - 1);
	return -ENODEV;
}

/*
 * The one wording of a request refused because a walk runs (@wp): -EBUSY;
 * @after (may be "") ends the message.
 */
static int walk_busy(const struct run *run, const struct rt_walk_progress *wp, const char *after,
		     char *msg, size_t len)
{
	snprintf(msg, len, "busy: %s is running; wait for it ('raidtool wait %s') or cancel it "
		 "('raidtool check --cancel %s')%s", control_walk_name(wp->kind), run->id,
		 run->id, after);
	return -EBUSY;
}

/* A repair's "prefer=ROLE": the raid1 mirror whose copy settles a tie. */
static int walk_prefer(struct run *run, int kind, const char *arg, struct rt_walk_params *p,
		       char *msg, size_t len)
{
	unsigned long role;
	char *end;

	if (kind != RT_WALK_REPAIR || strncmp(arg, "prefer=", 7) || !isdigit((unsigned char)arg[7])) {
		snprintf(msg, len, "'%s': not an argument of this request", arg);
		return -EINVAL;
	}
	if (run->as->sb.array.level != RT_LEVEL_1) {
		snprintf(msg, len, "--prefer is for raid1 only: a %s repair recomputes the parity "
			 "from the data", sb_level_name(run->as->sb.array.level));
		return -EINVAL;
	}
	errno = 0;
	role = strtoul(arg + 7, &end, 10);
	if (errno || *end || role >= run->as->sb.array.n_devices) {
		no_such_role(run, arg + 7, msg, len);
		return -EINVAL;
	}
	if (engine_role_state(run->e, (uint32_t)role) != RT_ROLE_ACTIVE) {
		snprintf(msg, len, "role %lu is not a working mirror: its copy cannot be preferred",
			 role);
		return -EINVAL;
	}
	p->prefer_set = true;
	p->prefer = (uint32_t)role;
	return 0;
}

static int admin_walk(struct run *run, enum rt_control_verb verb, const char *arg, char *msg,
		      size_t len)
{
	struct rt_walk_params p = { .done = run_on_walk_done, .ctx = run };
	int r;

	const char *cmd = control_verb_name(verb);

	if (verb == RT_VERB_CANCEL) {
		r = engine_walk_cancel(run->e);
		if (r < 0) {
			snprintf(msg, len, "nothing to cancel: %s", r == -ESRCH ?
				 "no walk is running" : r == -EALREADY ? "the walk had ended; "
				 "its outcome is recorded now" : strerror(-r));
			return r == -EALREADY ? -ESRCH : r;	/* the same exit status */
		}
		snprintf(msg, len, "cancelled");
		return 0;
	}
	if (verb != RT_VERB_CHECK && verb != RT_VERB_REPAIR) {
		snprintf(msg, len, "'%s' is not available yet on a running array", cmd);
		return -EOPNOTSUPP;
	}
	p.kind = verb == RT_VERB_CHECK ? RT_WALK_CHECK : RT_WALK_REPAIR;
	if (arg[0]) {
		r = walk_prefer(run, p.kind, arg, &p, msg, len);
		if (r < 0)
			return r;
	}
	/*
	 * Regions owed a resync first: a check would report what it mends (a
	 * repair mends them itself, a raid1 one with the mirror it was told).
	 */
	r = verb == RT_VERB_CHECK && run_resync_owed(run) == 0 ? -EBUSY :
	    run_walk_start(run, &p);
	if (r == -EBUSY) {
		struct rt_walk_progress wp;

		engine_walk_progress(run->e, &wp);
		return walk_busy(run, &wp, "", msg, len);
	}
	if (r == -EOPNOTSUPP) {
		snprintf(msg, len, "%s has no redundancy to check",
			 sb_level_name(run->as->sb.array.level));
		return r;
	}
	if (r < 0) {
		snprintf(msg, len, "cannot start the %s: %s", cmd, strerror(-r));
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': %s started", run->name, control_walk_name(p.kind));
	snprintf(msg, len, "%s started in the background; see 'raidtool status %s' or "
		 "'raidtool wait %s'", cmd, run->id, run->id);
	return 0;
}

/*
 * A unit named by role number, hashcode (8 hex digits) or device path
 * (the block device, or a file it is attached to). Returns its index in
 * run->as, or -ENODEV with a reason in @msg.
 */
static int find_member(struct run *run, const char *arg, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	struct stat st;
	uint32_t hash;
	char *end;

	if (!*arg) {
		snprintf(msg, len, "which unit? give a role number, hashcode or device");
		return -EINVAL;
	}
	if (strlen(arg) <= 2 && arg[0] >= '0' && arg[0] <= '9') {
		unsigned long role = strtoul(arg, &end, 10);

		if (!*end && role < as->n_roles)
			return (int)role;
		return no_such_role(run, arg, msg, len);
	}
	if (sb_hashcode_parse(arg, &hash) == 0) {
		for (unsigned i = 0; i < as->n_units; i++)
			if (as->units[i] && as->own[i].hashcode == hash)
				return (int)i;
		for (unsigned i = 0; i < as->n_roles; i++)
			if (as->sb.slots[i].hashcode == hash)
				return (int)i;
	}
	for (unsigned i = 0; i < as->n_units; i++)
		if (as->units[i] && (!strcmp(as->dev[i], arg) ||
				     !strcmp(unit_path(as->units[i]), arg)))
			return (int)i;
	if (stat(arg, &st) == 0) {
		for (unsigned i = 0; i < as->n_units; i++) {
			if (!as->units[i])
				continue;
			if (S_ISBLK(st.st_mode) && st.st_rdev == unit_devno(as->units[i]))
				return (int)i;
		}
	}
	snprintf(msg, len, "'%s': not a unit of this array (give a role number, hashcode or "
		 "device; see 'raidtool status %s')", arg, run->id);
	return -ENODEV;
}

/* run_unit_describe under sb_lock: the role table it reads changes under a failure's update. */
static void describe_unit(struct run *run, unsigned i, struct rt_control_unit *unit)
{
	pthread_mutex_lock(&run->sb_lock);
	run_unit_describe(run, i, unit);
	pthread_mutex_unlock(&run->sb_lock);
}

/*
 * Without --force a role whose loss the level does not survive is
 * refused: an admin's fail would stop the array's writes, and the way back
 * (activate --force) can lose what was written after the other roles left.
 * A device that is gone (incremental --remove) is failed with it.
 */
static int admin_fail(struct run *run, const char *arg, bool force, char *msg, size_t len,
		      struct rt_control_unit *unit)
{
	int i, r;

	i = find_member(run, arg, msg, len);
	if (i < 0)
		return i;
	if ((unsigned)i >= run->as->n_roles) {
		snprintf(msg, len, "'%s' is a spare: it holds no data, nothing to fail", arg);
		return -EINVAL;
	}
	/* Failed on purpose, not by its media: it may come back from the log. */
	atomic_store(&run->admin_fail, i);
	r = force ? engine_fail_role(run->e, (uint32_t)i) :
		    engine_fail_role_spared(run->e, (uint32_t)i);
	atomic_store(&run->admin_fail, -1);
	if (r == -EALREADY) {
		snprintf(msg, len, "role %d is already faulty", i);
		return r;
	}
	if (r == -EEXIST) {
		snprintf(msg, len, "role %d (%s) is not failed: the %s array is %s and could not "
			 "take writes without it; nothing was changed",
			 i, run->as->dev[i][0] ? run->as->dev[i] : "-",
			 sb_level_name(run->as->sb.array.level),
			 control_health_name(run_health(engine_state(run->e))));
		return r;
	}
	if (r < 0) {
		snprintf(msg, len, "cannot fail role %d: %s", i, strerror(-r));
		return r;
	}
	snprintf(msg, len, "role %d (%s) marked faulty; the array is %s", i,
		 run->as->dev[i][0] ? run->as->dev[i] : "-",
		 control_health_name(run_health(engine_state(run->e))));
	describe_unit(run, (unsigned)i, unit);
	return 0;
}

/*
 * The engine decides first and the superblocks follow: a unit still being
 * rebuilt is refused (fail it first, which stops the rebuild, as md wants a
 * rebuilding device failed before it is removed), a refusal writes
 * nothing, and the role table is only changed once the engine has let the
 * unit go, so the two never disagree.
 */
static int admin_remove(struct run *run, const char *arg, char *msg, size_t len,
			struct rt_control_unit *unit)
{
	struct slot_change c = { .state = RT_SLOT_MISSING, .forget = true };
	struct rt_assembly *as = run->as;
	struct rt_unit *u = NULL;
	bool role;
	char dev[256];
	int i, r;

	i = find_member(run, arg, msg, len);
	if (i < 0)
		return i;
	role = (unsigned)i < as->n_roles;
	if (!role && as->sb.slots[as->own[i].slot].state == RT_SLOT_REPLACING) {
		snprintf(msg, len, "'%s' is being filled to replace role %u and holds every write "
			 "to it; let the replace finish ('raidtool wait %s')", as->dev[i],
			 as->sb.replace_role, run->id);
		return -EBUSY;
	}
	if (role && engine_role_rebuilding(run->e, (uint32_t)i)) {
		snprintf(msg, len, "role %d ('%s') is being rebuilt and already holds every write "
			 "since it was added; let the rebuild finish ('raidtool wait %s'), or to "
			 "take it out fail it first ('raidtool fail %s %d' stops the rebuild) and "
			 "then remove it", i, as->dev[i], run->id, run->id, i);
		return -EBUSY;
	}
	if (role && engine_role_state(run->e, (uint32_t)i) != RT_ROLE_FAULTY) {
		snprintf(msg, len, "role %d (%s) is working; fail it first ('raidtool fail %s %d')",
			 i, as->dev[i], run->id, i);
		return -EBUSY;
	}
	if (!as->units[i]) {
		snprintf(msg, len, "role %d has no unit to remove", i);
		return -ENODEV;
	}
	snprintf(dev, sizeof(dev), "%s", as->dev[i]);
	/* Who it was, before its place is cleared. */
	describe_unit(run, (unsigned)i, unit);
	if (role) {
		r = run_detach_failed_unit(run, (uint32_t)i, &u);
		if (r == -ENODEV) {
			/*
			 * Faulty, and the engine never held it: a start resumes one
			 * rebuild and leaves a second rebuilding role's unit waiting in
			 * the assembly only. Nothing uses it; it can go.
			 */
			u = as->units[i];
			r = 0;
		}
		if (r < 0) {
			snprintf(msg, len, "cannot take '%s' out of role %d: %s; nothing was "
				 "changed", dev, i, r == -EBUSY ? "the engine still uses it" :
				 strerror(-r));
			unit->state = RT_UNIT_STATE_NONE;
			return r;
		}
	} else {
		u = as->units[i];
	}
	pthread_mutex_lock(&run->sb_lock);
	c.slot = as->own[i].slot;
	if (!role)
		c.state = RT_SLOT_EMPTY;	/* a spare leaves the table */
	r = run_sb_update(run, run_change_slot, &c);
	unit_close(u);
	as->units[i] = NULL;
	as->dev[i][0] = '\0';
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0) {
		/* Out of the engine either way; the role table still calls it faulty. */
		snprintf(msg, len, "'%s' is out of the array, but recording that in the "
			 "superblocks failed: %s (they still list it in slot %u, faulty)", dev,
			 strerror(-r), c.slot);
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': unit '%s' removed from slot %u (events %llu)", run->name,
	       dev, c.slot, (unsigned long long)as->sb.events);
	snprintf(msg, len, "'%s' removed from slot %u; its own superblock is left as it was "
		 "(stale)", dev, c.slot);
	unit->state = RT_UNIT_STATE_REMOVED;
	return 0;
}

/*
 * The role a new unit goes to: a faulty one without a unit (@want, or the
 * first when @want is UINT32_MAX), else n_roles (a spare).
 */
static int add_target(struct run *run, uint32_t want, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	struct rt_walk_progress wp;

	for (unsigned i = 0; i < as->n_roles; i++) {
		if ((want != UINT32_MAX && i != want) ||
		    engine_role_state(run->e, i) != RT_ROLE_FAULTY)
			continue;
		if (engine_role_rebuilding(run->e, i)) {
			if (want == UINT32_MAX)
				continue;	/* taken: the new unit becomes a spare */
			snprintf(msg, len, "role %u is being rebuilt onto '%s'; wait for it "
				 "('raidtool wait %s')", i, as->dev[i], run->id);
			return -EBUSY;
		}
		if (as->units[i]) {
			snprintf(msg, len, "role %u is faulty and still holds '%s'; remove it "
				 "first ('raidtool remove %s %u')", i, as->dev[i], run->id, i);
			return -EBUSY;
		}
		engine_walk_progress(run->e, &wp);
		if (wp.running)
			return walk_busy(run, &wp, "", msg, len);
		return (int)i;
	}
	return (int)as->n_roles;
}

/*
 * The superblock update that adds a unit: its slot alone, copied into the
 * table as it is now (a failure may have changed another slot since the
 * new unit's was filled in).
 */
struct slot_put {
	const struct rt_slot *slot;
	uint32_t idx;
};

static int put_slot(struct rt_sb *sb, void *arg)
{
	const struct slot_put *p = arg;

	sb->slots[p->idx] = *p->slot;
	if (p->idx >= sb->array.n_slots)
		sb->array.n_slots = p->idx + 1;
	return 0;
}

/*
 * Where a new unit goes: role or spare index into run->as (@idx) and
 * superblock slot (@slot). Caller holds sb_lock. -errno with @msg.
 */
static int add_place(struct run *run, unsigned *idx, uint32_t *slot, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	int t = add_target(run, UINT32_MAX, msg, len);

	if (t < 0)
		return t;
	if ((unsigned)t < as->n_roles) {
		*idx = (unsigned)t;
		*slot = (uint32_t)t;
	} else {
		/* Where removed spares left room: a table of replaced units does not grow. */
		for (*idx = as->n_roles; *idx < as->n_units && as->units[*idx]; (*idx)++)
			;
		*slot = sb_spare_slot(&as->sb);
	}
	if (*idx >= RT_MAX_UNITS || *slot >= RT_MAX_UNITS) {
		snprintf(msg, len, "no room for another unit (at most %u)", RT_MAX_UNITS);
		return -E2BIG;
	}
	return 0;
}

/*
 * A device offered to add that may be a former unit of this array: open,
 * its superblock read, without sb_lock (a device that hangs must not hold
 * up failure handling). Returns 1 with it open in @out and its superblock
 * in @usb when it names this array; 0 when not (member_prepare will say
 * why it cannot be opened, if it cannot).
 */
static int readd_open(struct run *run, const char *path, struct rt_unit **out,
		      struct rt_sb *usb)
{
	struct rt_unit *u;

	*out = NULL;
	if (unit_open(path, RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_ATTACH | RT_UNIT_DIRECT, &u) < 0)
		return 0;
	if (unit_read_sb_quiet(u, usb, NULL) < 0 ||
	    memcmp(usb->array.uuid, run->uuid, RT_UUID_SIZE)) {
		unit_close(u);
		return 0;
	}
	*out = u;
	return 1;
}

/*
 * A former unit of this array (superblock @usb) judged against the array as
 * it is now; caller holds sb_lock. 1 when it may be rebuilt from the
 * dirty-region log alone; 0 when it gets the full path (the reason in @why);
 * -errno with @msg when it must not be added at all (it ran apart from the
 * array).
 */
/* How both refusals of a unit that ran apart end. */
#define RAN_APART_ADVICE "refused, nothing changed. Only once what it holds is not needed, " \
	"wipe it ('raidtool zero') to add it as a new unit"

static int readd_judge(struct run *run, const char *path, const struct rt_sb *usb,
		       const char **why, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	uint64_t cleared = 0;
	int r;

	*why = NULL;
	if (engine_dirtylog_cleared(run->e, &cleared) < 0)
		cleared = 0;
	r = dirtylog_readd_check(&as->sb, usb, cleared, NULL);
	if (r == RT_READD_NEWER) {
		uint32_t slot = usb->unit.slot < RT_MAX_UNITS ? usb->unit.slot : 0;

		snprintf(msg, len, "'%s' (unit %08x, events %llu, its role table gives slot %u "
			 "to %08x as %s) contradicts the running array (events %llu, whose table "
			 "has slot %u %s%s%08x): it is not older than the array, so it may hold "
			 "writes the array lacks (the two ran apart); " RAN_APART_ADVICE, path,
			 usb->unit.hashcode, (unsigned long long)usb->events, slot,
			 usb->slots[slot].hashcode, sb_slot_state_name(usb->slots[slot].state),
			 (unsigned long long)as->sb.events, slot,
			 sb_slot_state_name(as->sb.slots[slot].state),
			 as->sb.slots[slot].hashcode ? ", unit " : "",
			 as->sb.slots[slot].hashcode);
		return -EEXIST;
	}
	if (r == RT_READD_RAN_APART) {
		snprintf(msg, len, "'%s' (unit %08x, events %llu) ran without a unit that the "
			 "running array (events %llu) has active: the two ran apart (each was "
			 "started without the other), so it may hold writes the array lacks, in "
			 "regions no log of the array names; " RAN_APART_ADVICE, path,
			 usb->unit.hashcode, (unsigned long long)usb->events,
			 (unsigned long long)as->sb.events);
		return -EEXIST;
	}
	if (r != RT_READD_OK) {
		*why = dirtylog_readd_reason(r);
		return 0;
	}
	return 1;
}

/* readd_partial's second half, without sb_lock: the unit attached, its rebuild started. */
static int readd_start(struct run *run, struct rt_unit *u, uint32_t role, const char *arg,
		       char *msg, size_t len)
{
	struct rt_assembly *as = run->as;
	uint64_t region_size = 0, n_regions = 0, n_dirty = 0;
	uint8_t *bitmap = NULL;
	int r;

	r = engine_attach_unit(run->e, role, u);
	if (r < 0) {
		snprintf(msg, len, "cannot attach '%s' to role %u: %s", arg, role, strerror(-r));
		return r;	/* REBUILDING at 0 in the superblocks: a restart rebuilds it all */
	}
	/*
	 * Only now: every write before the attach is in the log (nothing is
	 * cleared while degraded), every write after it reaches the unit.
	 */
	r = engine_dirtylog_info(run->e, &region_size, &n_regions);
	if (r == 0) {
		bitmap = calloc((n_regions + 7) / 8, 1);
		r = bitmap ? engine_dirtylog_dirty(run->e, bitmap, (n_regions + 7) / 8, &n_dirty) :
			-ENOMEM;
	}
	if (r == 0)
		r = run_start_rebuild_regions(run, role, 0, bitmap, region_size);
	free(bitmap);
	if (r < 0) {
		snprintf(msg, len, "'%s' attached to role %u, but the rebuild did not start: %s",
			 arg, role, strerror(-r));
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': unit '%s' re-added to role %u: %llu of %llu regions to "
	       "rebuild (events %llu)", run->name, as->dev[role], role,
	       (unsigned long long)n_dirty, (unsigned long long)n_regions,
	       (unsigned long long)as->sb.events);
	snprintf(msg, len, "'%s' re-added to role %u: %llu of %llu regions to rebuild (the "
		 "dirty-region log holds every write since it left); see 'raidtool status %s' "
		 "or 'raidtool wait %s'", arg, role, (unsigned long long)n_dirty,
		 (unsigned long long)n_regions, run->id, run->id);
	return 0;
}

/*
 * Back into its role with its identity, rebuilt only where the log says
 * the array was written since it left. Called with sb_lock held; drops it.
 */
static int readd_partial(struct run *run, struct rt_unit *u, const struct rt_sb *usb,
			 const char *arg, char *msg, size_t len)
{
	struct rt_assembly *as = run->as;
	uint32_t role = usb->unit.slot;
	struct rt_slot slot;
	int t, r;

	t = add_target(run, role, msg, len);
	if (t < 0 || (uint32_t)t != role) {
		if (t >= 0)
			snprintf(msg, len, "role %u is not faulty", role);
		unit_close(u);
		pthread_mutex_unlock(&run->sb_lock);
		return t < 0 ? t : -EBUSY;
	}
	slot = as->sb.slots[role];
	memcpy(slot.uuid, usb->unit.uuid, RT_UUID_SIZE);
	slot.hashcode = usb->unit.hashcode;
	slot.state = RT_SLOT_REBUILDING;
	slot.data_size = usb->unit.data_size;
	slot.recovery_offset = 0;
	as->units[role] = u;
	as->own[role] = usb->unit;
	as->disk_events[role] = 0;	/* rewritten as a new member: first, no catching up */
	snprintf(as->dev[role], sizeof(as->dev[role]), "%s", unit_devname(u));
	r = run_sb_update(run, put_slot, &(struct slot_put){ .slot = &slot, .idx = role });
	if (r < 0) {
		as->units[role] = NULL;
		as->dev[role][0] = '\0';
		unit_close(u);
		pthread_mutex_unlock(&run->sb_lock);
		snprintf(msg, len, "cannot write the superblocks: %s", strerror(-r));
		return r;
	}
	unit_keep_loop(u);
	atomic_store(&run->walk_starting, true);
	pthread_mutex_unlock(&run->sb_lock);
	r = readd_start(run, u, role, arg, msg, len);
	atomic_store(&run->walk_starting, false);
	return r;
}

/*
 * A new unit: into a faulty, removed role and rebuilt onto, or a spare.
 * A former unit of this array that left recently is rebuilt only where the
 * array was written since (readd_partial); any other is rewritten as a new
 * member and rebuilt in full. "--force PATH" overwrites what it holds.
 */
static int admin_add(struct run *run, const char *arg, bool force, char *msg, size_t len,
		     struct rt_control_unit *unit)
{
	struct rt_assembly *as = run->as;
	struct rt_unit_desc own;
	struct rt_unit *u = NULL;
	struct rt_sb sb;
	const char *why = NULL;
	bool locked = true;
	unsigned idx, idx_now;
	uint32_t slot, slot_now;
	int r;

	if (!*arg) {
		snprintf(msg, len, "which unit? give a device or image file");
		return -EINVAL;
	}
	if (as->sb.array.level != RT_LEVEL_1 && as->sb.array.level != RT_LEVEL_5) {
		snprintf(msg, len, "a %s array has no redundancy: a unit added to it could "
			 "neither be rebuilt nor serve as a spare",
			 sb_level_name(as->sb.array.level));
		return -EOPNOTSUPP;
	}
	/*
	 * The device is opened and probed without sb_lock: a device that hangs
	 * its I/O would otherwise hold up every unit failure meanwhile. What
	 * it found is judged against the array under the lock, as it is then.
	 */
	r = readd_open(run, arg, &u, &sb);
	pthread_mutex_lock(&run->sb_lock);
	if (r > 0) {
		r = readd_judge(run, arg, &sb, &why, msg, len);
		if (r > 0) {
			r = readd_partial(run, u, &sb, arg, msg, len);
			if (r == 0)
				describe_unit(run, sb.unit.slot, unit);
			return r;
		}
		unit_close(u);
		u = NULL;
		if (r < 0)
			goto out;
	}
	r = add_place(run, &idx, &slot, msg, len);
	if (r < 0)
		goto out;
	sb = as->sb;
	pthread_mutex_unlock(&run->sb_lock);
	rt_log_clear_error();
	r = member_prepare(arg, &sb, slot, RT_UNIT_DIRECT, force, run->uuid, &u, &own);
	pthread_mutex_lock(&run->sb_lock);
	if (r < 0) {
		snprintf(msg, len, "%s", rt_log_last_error()[0] ? rt_log_last_error() :
			 strerror(-r));
		goto out;
	}
	/* A unit failed meanwhile: a faulty role may now want it, or hold its unit still. */
	r = add_place(run, &idx_now, &slot_now, msg, len);
	if (r == 0 && (idx_now != idx || slot_now != slot)) {
		snprintf(msg, len, "busy: the array's roles changed while '%s' was being "
			 "opened; nothing was changed: add it again", arg);
		r = -EBUSY;
	}
	if (r < 0)
		goto undo;
	as->units[idx] = u;
	as->own[idx] = own;
	as->disk_events[idx] = 0;	/* a new member: written first */
	snprintf(as->dev[idx], sizeof(as->dev[idx]), "%s", unit_devname(u));
	if (idx == as->n_units)
		as->n_units++;
	r = run_sb_update(run, put_slot, &(struct slot_put){ .slot = &sb.slots[slot], .idx = slot });
	if (r < 0) {
		snprintf(msg, len, "cannot write the superblocks: %s", strerror(-r));
		goto undo;
	}
	/* A file-backed unit keeps its loop device after the engine closes it: scanning finds it. */
	unit_keep_loop(u);
	if (idx >= as->n_roles) {
		rt_log(RT_LOG_INFO, "'%s': unit '%s' added as a spare (slot %u, events %llu)",
		       run->name, as->dev[idx], slot, (unsigned long long)as->sb.events);
		snprintf(msg, len, "'%s' added as a spare (slot %u): nothing is degraded; it "
			 "takes the place of a unit that fails", arg, slot);
		goto out;
	}
	/* The engine may wait for requests whose failure handler wants sb_lock. */
	atomic_store(&run->walk_starting, true);
	pthread_mutex_unlock(&run->sb_lock);
	locked = false;
	r = engine_attach_unit(run->e, slot, u);
	if (r < 0) {
		atomic_store(&run->walk_starting, false);
		snprintf(msg, len, "cannot attach '%s' to role %u: %s", arg, slot, strerror(-r));
		goto out;	/* REBUILDING at 0 in the superblocks: a restart retries */
	}
	r = run_start_rebuild(run, slot, 0);
	atomic_store(&run->walk_starting, false);
	if (r < 0) {
		snprintf(msg, len, "'%s' attached to role %u, but the rebuild did not start: %s",
			 arg, slot, strerror(-r));
		goto out;
	}
	rt_log(RT_LOG_INFO, "'%s': unit '%s' added to role %u (events %llu)%s%s", run->name,
	       as->dev[idx], slot, (unsigned long long)as->sb.events,
	       why ? "; rebuilt in full: " : "", why ? why : "");
	snprintf(msg, len, "'%s' added to role %u; rebuilding in the background%s%s%s; see "
		 "'raidtool status %s' or 'raidtool wait %s'", arg, slot,
		 why ? " (in full: " : "", why ? why : "", why ? ")" : "", run->id, run->id);
	goto out;
undo:
	if (as->units[idx] == u) {
		as->units[idx] = NULL;
		as->dev[idx][0] = '\0';
		if (idx == as->n_units - 1 && idx >= as->n_roles)
			as->n_units--;
	}
	unit_close(u);
out:
	if (r == 0 && locked)
		run_unit_describe(run, idx, unit);
	else if (r == 0)
		describe_unit(run, idx, unit);
	if (locked)
		pthread_mutex_unlock(&run->sb_lock);
	return r;
}

/* The start's superblock update: the new unit in its slot, replacing @role. */
struct replace_begin {
	const struct rt_sb *sb;		/* with the new unit's slot filled in */
	uint32_t slot, role;
};

static int begin_replace(struct rt_sb *sb, void *arg)
{
	const struct replace_begin *b = arg;

	sb->slots[b->slot] = b->sb->slots[b->slot];
	sb->slots[b->slot].state = RT_SLOT_REPLACING;
	sb->slots[b->slot].recovery_offset = 0;
	if (b->slot >= sb->array.n_slots)
		sb->array.n_slots = b->slot + 1;
	sb->replace_role = b->role;
	return 0;
}

/* What replace refuses before anything is opened: -errno with the reason in @msg. */
static int replace_check(struct run *run, const char *unit, int i, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	struct rt_walk_progress wp;
	int busy = engine_replace_role(run->e);

	if (as->sb.array.level != RT_LEVEL_1 && as->sb.array.level != RT_LEVEL_5) {
		snprintf(msg, len, "a %s array has no redundancy to keep it whole while a unit is "
			 "copied (replace is for raid1 and raid5); nothing was changed",
			 sb_level_name(as->sb.array.level));
		return -EOPNOTSUPP;
	}
	if ((unsigned)i >= as->n_roles) {
		snprintf(msg, len, "'%s' is a spare: it holds no data to replace; nothing was "
			 "changed", unit);
		return -EINVAL;
	}
	if (busy >= 0 || sb_replacing_slot(&as->sb) >= 0) {
		snprintf(msg, len, "role %d is being replaced already; wait for it ('raidtool wait "
			 "%s'); nothing was changed", busy, run->id);
		return -EBUSY;
	}
	if (!as->units[i] || engine_role_state(run->e, (uint32_t)i) != RT_ROLE_ACTIVE ||
	    engine_role_rebuilding(run->e, (uint32_t)i)) {
		snprintf(msg, len, "role %d (%s) is %s: there is nothing to copy from it; to put a "
			 "new unit in its place use 'raidtool remove' and 'raidtool add'; nothing "
			 "was changed", i, as->units[i] ? as->dev[i] : "no unit",
			 engine_role_rebuilding(run->e, (uint32_t)i) ? "being rebuilt" :
			 as->units[i] ? "faulty" : "missing");
		return -EINVAL;
	}
	engine_walk_progress(run->e, &wp);
	if (wp.running)
		return walk_busy(run, &wp, "; nothing was changed", msg, len);
	return 0;
}

/*
 * "UNIT PATH": hot replace. PATH is prepared as a new member and filled
 * with role UNIT's data while UNIT stays in service (lib/engine/replace.c);
 * at the end it takes the role (run.c, replace_finished). Every refusal
 * comes before the first superblock write.
 */
static int admin_replace(struct run *run, const char *arg, bool force, char *msg, size_t len)
{
	struct rt_assembly *as = run->as;
	struct replace_begin b = { 0 };
	struct rt_unit_desc own;
	struct rt_unit *u = NULL;
	char unit[256], olddev[256];
	const char *path = strchr(arg, ' ');
	struct rt_sb sb;
	unsigned idx;
	int i, r;

	if (!path || path == arg || !path[1] || (size_t)(path - arg) >= sizeof(unit)) {
		snprintf(msg, len, "give the unit to replace and the new unit");
		return -EINVAL;
	}
	snprintf(unit, sizeof(unit), "%.*s", (int)(path - arg), arg);
	path++;
	i = find_member(run, unit, msg, len);
	if (i < 0)
		return i;
	pthread_mutex_lock(&run->sb_lock);
	r = replace_check(run, unit, i, msg, len);
	if (r < 0)
		goto unlock;
	b.role = (uint32_t)i;
	b.slot = sb_spare_slot(&as->sb);
	for (idx = as->n_roles; idx < as->n_units && as->units[idx]; idx++)
		;
	if (idx >= RT_MAX_UNITS || b.slot >= RT_MAX_UNITS) {
		snprintf(msg, len, "no room for another unit (at most %u); nothing was changed",
			 RT_MAX_UNITS);
		r = -E2BIG;
		goto unlock;
	}
	sb = as->sb;
	snprintf(olddev, sizeof(olddev), "%s", as->dev[i]);
	/*
	 * Opened and probed without sb_lock (a device that hangs must not hold
	 * up failure handling); the slot and index stay free meanwhile, only
	 * admin commands take them, and a role failing meanwhile is the
	 * engine's to judge as the replace starts.
	 */
	pthread_mutex_unlock(&run->sb_lock);
	rt_log_clear_error();
	r = member_prepare(path, &sb, b.slot, RT_UNIT_DIRECT, force, run->uuid, &u, &own);
	if (r < 0) {
		snprintf(msg, len, "%s; nothing was changed", rt_log_last_error()[0] ?
			 rt_log_last_error() : strerror(-r));
		return r;
	}
	/* The engine first (it may wait for requests whose failure handler wants sb_lock). */
	r = engine_replace_start(run->e, b.role, u);
	if (r < 0) {
		unit_close(u);
		snprintf(msg, len, "cannot replace role %u with '%s': %s; nothing was changed",
			 b.role, path, r == -ENOSPC ? "too small" : r == -EINVAL ?
			 "its logical block size differs from the other units'" : strerror(-r));
		return r;
	}
	pthread_mutex_lock(&run->sb_lock);
	b.sb = &sb;
	as->units[idx] = u;
	as->own[idx] = own;
	as->disk_events[idx] = 0;	/* a new member: written first */
	snprintf(as->dev[idx], sizeof(as->dev[idx]), "%s", unit_devname(u));
	if (idx == as->n_units)
		as->n_units++;
	r = run_sb_update(run, begin_replace, &b);
	if (r < 0) {
		struct rt_unit *back = NULL;

		as->units[idx] = NULL;
		as->dev[idx][0] = '\0';
		if (idx == as->n_units - 1)
			as->n_units--;
		pthread_mutex_unlock(&run->sb_lock);
		(void)engine_replace_abort(run->e, &back);
		unit_close(u);
		snprintf(msg, len, "cannot write the superblocks: %s", strerror(-r));
		return r;
	}
	unit_keep_loop(u);
	atomic_store(&run->walk_starting, true);
	pthread_mutex_unlock(&run->sb_lock);
	r = run_start_replace(run, b.role, 0, NULL, 0);
	atomic_store(&run->walk_starting, false);
	if (r < 0) {
		snprintf(msg, len, "'%s' takes every write of role %u, but copying to it did not "
			 "start: %s; it starts at the next activate", path, b.role, strerror(-r));
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': replacing '%s' (role %u) with '%s' (slot %u, events %llu)",
	       run->name, olddev, b.role, as->dev[idx], b.slot,
	       (unsigned long long)as->sb.events);
	snprintf(msg, len, "replacing '%s' (role %u) with '%s' in the background; the array "
		 "stays whole; see 'raidtool status %s' or 'raidtool wait %s'", olddev, b.role,
		 path, run->id, run->id);
	return 0;
unlock:
	pthread_mutex_unlock(&run->sb_lock);
	return r;
}

struct spare_swap {
	uint32_t role, spare_slot;
	bool had_unit;			/* the failed unit stays listed, faulty, in the spare's slot */
};

static int swap_spare(struct rt_sb *sb, void *arg)
{
	const struct spare_swap *w = arg;
	struct rt_slot failed = sb->slots[w->role];

	sb->slots[w->role] = sb->slots[w->spare_slot];
	sb->slots[w->role].state = RT_SLOT_REBUILDING;
	sb->slots[w->role].recovery_offset = 0;
	if (w->had_unit) {
		sb->slots[w->spare_slot] = failed;
		sb->slots[w->spare_slot].state = RT_SLOT_FAULTY;
		sb->slots[w->spare_slot].recovery_offset = 0;
	} else {
		memset(&sb->slots[w->spare_slot], 0, sizeof(sb->slots[0]));
	}
	return 0;
}

/*
 * md's hot spare (main thread, woken by run_on_failure or by the end of a
 * walk): a spare present when a role fails takes the role at once and is
 * rebuilt onto, or when the rebuild or replace running ends. The failed
 * unit moves to the spare's slot, faulty, until it is removed.
 */
void run_take_spare(struct run *run)
{
	struct rt_assembly *as = run->as;
	struct spare_swap w = { 0 };
	struct rt_walk_progress wp;
	struct rt_unit *old = NULL, *u;
	struct rt_unit_desc own;
	uint64_t events;
	char dev[256], olddev[256];
	int i = -1, r = -ENODEV;

	pthread_mutex_lock(&run->admin_lock);
	pthread_mutex_lock(&run->sb_lock);
	for (uint32_t role = 0; role < as->n_roles && r == -ENODEV; role++) {
		if (as->sb.slots[role].state != RT_SLOT_FAULTY &&
		    as->sb.slots[role].state != RT_SLOT_MISSING)
			continue;
		w.role = role;
		r = 0;
	}
	i = run_find_spare(as);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0 || i < 0)
		goto out;
	/* The handler that woke us runs before the engine publishes the failure. */
	for (int k = 0; k < 500 && engine_role_state(run->e, w.role) != RT_ROLE_FAULTY; k++)
		rt_sleep_ms(10);
	engine_walk_progress(run->e, &wp);
	if (wp.running && (wp.kind == RT_WALK_RECOVER || wp.kind == RT_WALK_REPLACE)) {
		rt_log(RT_LOG_WARN, "'%s': role %u failed; the spare waits for the %s of "
		       "role %u and takes it when that ends", run->name, w.role,
		       wp.kind == RT_WALK_REPLACE ? "replace" : "rebuild", wp.role);
		goto out;
	}
	if (wp.running) {
		rt_log(RT_LOG_WARN, "'%s': %s cancelled to rebuild role %u onto the spare",
		       run->name, control_walk_name(wp.kind), w.role);
		engine_walk_cancel(run->e);
	}
	if (as->units[w.role]) {
		r = run_detach_failed_unit(run, w.role, &old);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': cannot take the failed unit of role %u out for "
			       "the spare: %s", run->name, w.role, strerror(-r));
			goto out;
		}
	}
	pthread_mutex_lock(&run->sb_lock);
	w.spare_slot = as->own[i].slot;
	w.had_unit = old != NULL;
	snprintf(olddev, sizeof(olddev), "%s", as->dev[w.role]);
	snprintf(dev, sizeof(dev), "%s", as->dev[i]);
	u = as->units[i];
	own = as->own[i];
	own.slot = w.role;
	/*
	 * The failed unit's own superblock is never written again: it keeps its
	 * identity, in the spare's slot here (status, remove by its hashcode).
	 */
	if (old)
		as->own[i] = as->own[w.role];
	as->own[i].slot = w.spare_slot;
	as->units[i] = old;
	snprintf(as->dev[i], sizeof(as->dev[i]), "%s", old ? olddev : "");
	as->units[w.role] = u;
	as->own[w.role] = own;
	events = as->disk_events[i];
	as->disk_events[i] = as->disk_events[w.role];
	as->disk_events[w.role] = events;
	snprintf(as->dev[w.role], sizeof(as->dev[w.role]), "%s", dev);
	r = run_sb_update(run, swap_spare, &w);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot give role %u to the spare '%s': %s",
		       run->name, w.role, dev, strerror(-r));
		goto out;
	}
	r = engine_attach_unit(run->e, w.role, u);
	if (r == 0)
		r = run_start_rebuild(run, w.role, 0);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': the spare '%s' took role %u, but its rebuild did not "
		       "start: %s", run->name, dev, w.role, strerror(-r));
	else
		rt_log(RT_LOG_WARN, "'%s': spare '%s' takes the place of failed role %u; "
		       "rebuilding onto it (events %llu)", run->name, dev, w.role,
		       (unsigned long long)as->sb.events);
out:
	pthread_mutex_unlock(&run->admin_lock);
}

/*
 * "BYTES_PER_SEC": the speed limit of background walks (0: none), for the
 * running walk from now on and for every later walk of this run.
 */
static int admin_speed(struct run *run, const char *arg, char *msg, size_t len)
{
	unsigned long long v;
	char extra, what[32];
	int r;

	if (sscanf(arg, "%llu %c", &v, &extra) != 1) {
		snprintf(msg, len, "'%s': give the speed limit in bytes per second", arg);
		return -EINVAL;
	}
	__atomic_store_n(&run->walk_speed_max, (uint64_t)v, __ATOMIC_RELAXED);
	r = engine_walk_set_speed(run->e, v);
	if (r < 0) {
		snprintf(msg, len, "cannot change the speed limit: %s", strerror(-r));
		return r;
	}
	if (v)
		snprintf(what, sizeof(what), "%llu MiB/s", v >> 20);
	else
		snprintf(what, sizeof(what), "none");
	rt_log(RT_LOG_INFO, "'%s': background walks' speed limit: %s", run->name, what);
	snprintf(msg, len, "speed limit of background walks: %s", what);
	return 0;
}

/* "COUNT WINDOW_MS": how often a unit I/O error is tried again before the unit fails. */
static int admin_tune(struct run *run, const char *arg, char *msg, size_t len)
{
	unsigned count, window;
	char extra;
	int r;

	if (sscanf(arg, "%u %u %c", &count, &window, &extra) != 2) {
		snprintf(msg, len, "'%s': give the number of tries and the window in ms", arg);
		return -EINVAL;
	}
	r = engine_set_retries(run->e, count, window);
	if (r < 0) {
		snprintf(msg, len, "%u tries within %u ms: out of range (at most 100 tries and "
			 "600000 ms)", count, window);
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': a unit I/O error is now tried again up to %u times within "
	       "%u ms before the unit is failed", run->name, count, window);
	snprintf(msg, len, "a unit I/O error is tried again up to %u times within %u ms before "
		 "the unit is failed", count, window);
	return 0;
}

int run_admin_command(void *ctx, const struct rt_control_req *rq, char *msg, size_t len,
		      struct rt_control_unit *unit)
{
	struct run *run = ctx;
	int r;

	switch (rq->verb) {
	case RT_VERB_TUNE:
		return admin_tune(run, rq->arg, msg, len);
	case RT_VERB_SPEED:
		return admin_speed(run, rq->arg, msg, len);
	case RT_VERB_CANCEL:
		break;
	case RT_VERB_POOL:
		/* The pool's own refusal says why when it would write. */
		return thin_run_pool_command(run->thin, run->readonly, rq->arg, msg, len);
	default:
		if (run->readonly) {
			snprintf(msg, len, "'%s' runs read-only (activate --readonly): %s would "
				 "write to its units; stop it and activate it without --readonly",
				 run->name, control_verb_name(rq->verb));
			return -EROFS;
		}
	}
	switch (rq->verb) {
	case RT_VERB_VOL:
		return thin_run_command(run->thin, rq->arg, msg, len);
	case RT_VERB_ADD:
	case RT_VERB_FAIL:
	case RT_VERB_REMOVE:
	case RT_VERB_REPLACE:
		break;
	default:
		return admin_walk(run, rq->verb, rq->arg, msg, len);
	}
	/* One at a time, and not while a spare is being taken. */
	pthread_mutex_lock(&run->admin_lock);
	if (rq->verb == RT_VERB_ADD)
		r = admin_add(run, rq->arg, rq->force, msg, len, unit);
	else if (rq->verb == RT_VERB_FAIL)
		r = admin_fail(run, rq->arg, rq->force, msg, len, unit);
	else if (rq->verb == RT_VERB_REPLACE)
		r = admin_replace(run, rq->arg, rq->force, msg, len);
	else
		r = admin_remove(run, rq->arg, msg, len, unit);
	pthread_mutex_unlock(&run->admin_lock);
	return r;
}
