/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Administrative operations on inactive arrays. Each one first checks every
 * argument and every unit, and writes only when all checks passed, so that a
 * refusal leaves every unit as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uuid/uuid.h>
#include <raidtool/array.h>
#include <raidtool/dirtylog.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>
#include "member.h"
#include "scan-internal.h"

#define MAX_OPEN MEMBER_MAX

/* What a path refers to, so that one unit named twice is caught before any open. */
struct unit_identity {
	dev_t dev;
	ino_t ino;
	dev_t rdev;		/* the block device used: the path itself or its loop */
};

static int unit_identify(const char *path, struct unit_identity *id)
{
	struct stat st;
	char loop[64];

	if (stat(path, &st) < 0) {
		int r = -errno;

		unit_log_open_error(path, r);
		return r;
	}
	*id = (struct unit_identity){ .dev = st.st_dev, .ino = st.st_ino };
	if (S_ISBLK(st.st_mode)) {
		id->rdev = st.st_rdev;
	} else if (S_ISREG(st.st_mode)) {
		if (loopdev_find_by_backing(path, loop, sizeof(loop)) == 0 &&
		    stat(loop, &st) == 0)
			id->rdev = st.st_rdev;
	} else {
		unit_log_open_error(path, -ENOTBLK);
		return -ENOTBLK;
	}
	return 0;
}

static bool unit_identity_same(const struct unit_identity *a, const struct unit_identity *b)
{
	return (a->dev == b->dev && a->ino == b->ino) || (a->rdev && a->rdev == b->rdev);
}

static int check_distinct(const char *const *paths, size_t n)
{
	struct unit_identity ids[MAX_OPEN];
	int r;

	for (size_t i = 0; i < n; i++) {
		r = unit_identify(paths[i], &ids[i]);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			if (unit_identity_same(&ids[i], &ids[j])) {
				rt_log(RT_LOG_ERROR, "'%s': named twice (same unit as '%s')",
				       paths[i], paths[j]);
				return -EINVAL;
			}
		}
	}
	return 0;
}

static void close_units(struct rt_unit **units, size_t n, bool keep_loops)
{
	for (size_t i = 0; i < n; i++) {
		if (!units[i])
			continue;
		if (keep_loops)
			unit_keep_loop(units[i]);
		unit_close(units[i]);
		units[i] = NULL;
	}
}

static const struct rt_scan_array *find_array_by_name(const struct rt_scan *s, const char *name)
{
	for (size_t i = 0; i < s->n_arrays; i++)
		if (!strcmp(s->arrays[i].sb.array.name, name))
			return &s->arrays[i];
	return NULL;
}

static const struct rt_scan_array *find_array_by_hash(const struct rt_scan *s, uint32_t hash)
{
	for (size_t i = 0; i < s->n_arrays; i++)
		if (s->arrays[i].sb.array.hashcode == hash)
			return &s->arrays[i];
	return NULL;
}

static int check_name_free(const struct rt_scan *s, const char *name)
{
	const struct rt_scan_array *other = find_array_by_name(s, name);

	if (other) {
		rt_log(RT_LOG_ERROR, "'%s': name already taken by array %08x", name,
		       other->sb.array.hashcode);
		return -EEXIST;
	}
	return 0;
}

int array_check_name(const char *name)
{
	int r = sb_name_check(name);

	if (r == -ENAMETOOLONG)
		rt_log(RT_LOG_ERROR, "'%s': name too long (at most %u bytes)", name, RT_NAME_MAX);
	else if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': not a valid name (use letters, digits, '.', '_' "
		       "and '-'; not empty; not starting with '-' or '.')", name);
	return r;
}

static int check_create_params(const struct rt_create_params *p, size_t n_units)
{
	int min;
	int r;

	r = array_check_name(p->name);
	if (r < 0)
		return r;
	if (p->desc && strlen(p->desc) > RT_DESC_MAX) {
		rt_log(RT_LOG_ERROR, "description too long (%zu bytes, at most %u)",
		       strlen(p->desc), RT_DESC_MAX);
		return -ENAMETOOLONG;
	}
	min = sb_min_units(p->level);
	if (min < 0) {
		rt_log(RT_LOG_ERROR, "unknown level %d", (int)p->level);
		return -EINVAL;
	}
	if (n_units < (size_t)min) {
		rt_log(RT_LOG_ERROR, "%s needs at least %d units, %zu given",
		       sb_level_name(p->level), min, n_units);
		return -EINVAL;
	}
	if (n_units > RT_MAX_UNITS) {
		rt_log(RT_LOG_ERROR, "too many units: %zu given, at most %u", n_units, RT_MAX_UNITS);
		return -E2BIG;
	}
	if (p->chunk_size < RT_MIN_CHUNK || p->chunk_size > RT_MAX_CHUNK ||
	    (p->chunk_size & (p->chunk_size - 1))) {
		rt_log(RT_LOG_ERROR, "chunk size %u: must be a power of two from %u to %u bytes",
		       p->chunk_size, RT_MIN_CHUNK, RT_MAX_CHUNK);
		return -EINVAL;
	}
	if (p->blocksize != 512 && p->blocksize != 4096) {
		rt_log(RT_LOG_ERROR, "block size %u: must be 512 or 4096", p->blocksize);
		return -EINVAL;
	}
	if (p->region_size < p->chunk_size || (p->region_size & (p->region_size - 1))) {
		rt_log(RT_LOG_ERROR, "region size %llu: must be a power of two of at least "
		       "one chunk", (unsigned long long)p->region_size);
		return -EINVAL;
	}
	return 0;
}

/* Size the array from its roles' data areas (@role_bytes: what each role uses); 0 or -errno. */
static int array_size_blocks(struct rt_sb *sb, uint64_t *role_bytes)
{
	uint64_t sizes[RT_MAX_UNITS];
	struct layout l;
	int r;

	for (uint32_t i = 0; i < sb->array.n_devices; i++)
		sizes[i] = sb->slots[i].data_size;
	r = layout_init(&l, sb->array.level, sb->array.n_devices, sb->array.chunk_size, sizes);
	if (r < 0)
		return r;
	sb->array.nblocks = l.size / sb->array.blocksize;
	*role_bytes = l.unit_size;
	return 0;
}

/*
 * raid1/raid5: the dirty-region log every unit starts with, written before
 * the superblocks (which make the array exist). Unsynced: every region
 * dirty, the initial sync's to-do list; else all clean. Either way nothing
 * a former array left in the log area is taken for this one's.
 */
static int create_write_logs(struct rt_unit *const *units, const struct rt_unit_desc *own,
			     size_t n, const struct rt_sb *shared, uint64_t role_bytes)
{
	struct rt_dirtylog *dl = NULL;
	uint64_t R, regions;
	struct rt_sb sb;
	int r;

	if (shared->array.level != RT_LEVEL_1 && shared->array.level != RT_LEVEL_5)
		return 0;
	dirtylog_geometry(role_bytes, shared->array.region_size, own[0].log_size, &R, &regions);
	if (!regions)
		return 0;
	r = dirtylog_create(regions, R, &dl);
	if (r < 0)
		return r;
	if (sb_unsynced(shared))
		dirtylog_mark(dl, 0, regions - 1);
	for (size_t i = 0; i < n && r == 0; i++) {
		sb = *shared;
		sb.unit = own[i];
		r = unit_write_dirtylog(units[i], &sb, dl);
		if (r < 0)
			rt_log(RT_LOG_ERROR, "'%s': cannot write the dirty-region log: %s",
			       unit_path(units[i]), strerror(-r));
	}
	dirtylog_destroy(dl);
	return r;
}

/*
 * Zero the start of every data area (RT_DATA_WIPE_BYTES): a thin pool the
 * units held before keeps its superblocks at array bytes 0 and 4 KiB, which
 * a new array of any level finds in the first bytes of its units' data areas.
 */
static int create_wipe_data_start(struct rt_unit *const *units, const struct rt_unit_desc *own,
				  size_t n)
{
	void *zeros;
	int r = 0;

	if (posix_memalign(&zeros, RT_DATA_WIPE_BYTES, RT_DATA_WIPE_BYTES))
		return -ENOMEM;
	memset(zeros, 0, RT_DATA_WIPE_BYTES);
	for (size_t i = 0; i < n && r == 0; i++) {
		/* Never past the data area (the smallest holds one 4 KiB chunk). */
		size_t len = own[i].data_size < RT_DATA_WIPE_BYTES ? (size_t)own[i].data_size
								    : RT_DATA_WIPE_BYTES;

		r = unit_pwrite(units[i], zeros, len, own[i].start + own[i].data_offset);
		if (r < 0)
			rt_log(RT_LOG_ERROR, "'%s': cannot clear the start of its data area: %s",
			       unit_path(units[i]), strerror(-r));
	}
	free(zeros);
	return r;
}

int array_create(const struct rt_create_params *params, const char *const *paths,
		 size_t n, struct rt_sb *out)
{
	struct rt_create_params p = *params;
	struct rt_unit *units[RT_MAX_UNITS] = { 0 };
	struct rt_unit_desc own[RT_MAX_UNITS];
	struct rt_geometry g;
	struct rt_scan *scan = NULL;
	struct rt_sb sb;
	uint64_t now = (uint64_t)time(NULL), role_bytes = 0;
	size_t opened = 0;
	int r;

	if (!p.chunk_size)
		p.chunk_size = RT_DEFAULT_CHUNK;
	if (!p.blocksize)
		p.blocksize = RT_DEFAULT_BLOCKSIZE;
	if (!p.region_size)
		p.region_size = RT_DEFAULT_REGION;
	r = check_create_params(&p, n);
	if (r < 0)
		return r;
	r = check_distinct(paths, n);
	if (r < 0)
		return r;
	r = scan_devices(&scan);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "cannot scan block devices: %s", strerror(-r));
		return r;
	}
	r = check_name_free(scan, p.name);
	if (r < 0)
		goto out;

	memset(&sb, 0, sizeof(sb));
	sb.version = RT_SB_VERSION;
	sb.events = 1;
	sb.state = RT_ARRAY_CLEAN;
	sb.utime = now;
	snprintf(sb.array.name, sizeof(sb.array.name), "%s", p.name);
	snprintf(sb.array.desc, sizeof(sb.array.desc), "%s", p.desc ? p.desc : "");
	/* A hashcode must select one array; draw again on a clash with a visible one. */
	do {
		uuid_generate(sb.array.uuid);
		sb.array.hashcode = sb_hashcode_from_uuid(sb.array.uuid);
	} while (find_array_by_hash(scan, sb.array.hashcode));
	sb.array.level = p.level;
	sb.array.layout = RT_LAYOUT_LEFT_SYMMETRIC;
	sb.array.chunk_size = p.chunk_size;
	sb.array.blocksize = p.blocksize;
	sb.array.n_devices = (uint32_t)n;
	sb.array.n_slots = (uint32_t)n;
	sb.array.ctime = now;
	sb.array.region_size = p.region_size;

	for (opened = 0; opened < n; opened++) {
		r = member_open(paths[opened], p.chunk_size, 0, p.force, NULL, &units[opened], &g);
		if (r < 0)
			goto out;
		member_desc_init(&own[opened], (uint32_t)opened, unit_size(units[opened]), &g);
		memcpy(sb.slots[opened].uuid, own[opened].uuid, RT_UUID_SIZE);
		sb.slots[opened].hashcode = own[opened].hashcode;
		sb.slots[opened].state = RT_SLOT_ACTIVE;
		sb.slots[opened].data_size = g.data_size;
	}
	r = array_size_blocks(&sb, &role_bytes);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot lay out the array: %s", p.name, strerror(-r));
		goto out;
	}
	/* Parity and copies of used disks disagree until the initial sync made them agree. */
	if ((p.level == RT_LEVEL_1 || p.level == RT_LEVEL_5) && !p.assume_clean)
		sb.feature_compat |= RT_FEATURE_COMPAT_UNSYNCED;
	r = create_write_logs(units, own, n, &sb, role_bytes);
	if (r == 0)
		r = create_wipe_data_start(units, own, n);
	if (r < 0)
		goto out;
	r = member_write_sb_all(units, own, NULL, n, NULL, &sb);
	if (r < 0)
		goto out;
	if (out) {
		*out = sb;
		out->unit = own[0];
	}
out:
	close_units(units, opened, r == 0);
	scan_free(scan);
	return r;
}

/* Open the array's usable units (scan's class) for a superblock update, with their events. */
static int open_fresh_units(const struct rt_scan_array *a, struct rt_unit **units,
			    struct rt_unit_desc *own, uint64_t *events, size_t *n)
{
	int r;

	*n = 0;
	for (size_t i = 0; i < a->n_units; i++) {
		const struct rt_scan_unit *su = a->units[i];

		if (!scan_unit_usable(su))
			continue;	/* stale, conflict, suspect: left as it is */
		r = unit_open_seen(su->dev, RT_UNIT_WRITE | RT_UNIT_EXCL, &su->sb, &units[*n]);
		if (r == -ESTALE)
			return r;	/* logged, naming the device */
		if (r < 0) {
			unit_log_open_error_in(a->sb.array.name, su->dev, r);
			return r;
		}
		own[*n] = su->sb.unit;
		events[*n] = su->sb.events;
		(*n)++;
	}
	return 0;
}

/*
 * An update leaves behind every unit the role table lists in use that it
 * does not write: it records that in the same update (raidtool-format(5),
 * update protocol, step 4), so that the unit, when it comes back one event
 * behind, is not taken for current. A role becomes missing; a spare's
 * entry is emptied.
 */
static void record_absent(const struct rt_scan_array *a, struct rt_sb *sb)
{
	for (uint32_t i = 0; i < sb->array.n_slots && i < RT_MAX_UNITS; i++) {
		struct rt_slot *s = &sb->slots[i];
		bool present = false;

		if (s->state != RT_SLOT_ACTIVE && s->state != RT_SLOT_REBUILDING &&
		    s->state != RT_SLOT_SPARE)
			continue;
		for (size_t k = 0; k < a->n_units && !present; k++)
			present = scan_unit_usable(a->units[k]) && a->units[k]->sb.unit.slot == i &&
				  !memcmp(a->units[k]->sb.unit.uuid, s->uuid, RT_UUID_SIZE);
		if (present)
			continue;
		rt_log(RT_LOG_WARN, "'%s': no current unit for slot %u (%s, unit %08x): recorded "
		       "as %s by this update", sb->array.name, i, sb_slot_state_name(s->state),
		       s->hashcode, i < sb->array.n_devices ? "missing" : "gone");
		if (i < sb->array.n_devices) {
			s->state = RT_SLOT_MISSING;
			s->recovery_offset = 0;
		} else {
			memset(s, 0, sizeof(*s));
		}
	}
}

typedef int (*sb_mutator)(const struct rt_scan *s, const struct rt_scan_array *a,
			  struct rt_sb *sb, const void *arg);

/* Find the array, let @mutate change its shared superblock, write it to every fresh unit. */
static int array_update(const char *id, sb_mutator mutate, const void *arg)
{
	struct rt_unit *units[MAX_OPEN] = { 0 };
	struct rt_unit_desc own[MAX_OPEN];
	uint64_t events[MAX_OPEN];
	const struct rt_scan_array *a;
	struct rt_scan *scan = NULL;
	struct rt_sb sb;
	size_t n = 0;
	int r;

	r = scan_devices_find(id, &scan, &a);
	if (r < 0)
		goto out;
	sb = a->sb;
	r = mutate(scan, a, &sb, arg);
	if (r < 0)
		goto out;
	r = open_fresh_units(a, units, own, events, &n);
	if (r < 0)
		goto out;
	record_absent(a, &sb);
	sb.events++;
	sb.utime = (uint64_t)time(NULL);
	r = member_write_sb_all(units, own, events, n, &a->sb, &sb);
out:
	close_units(units, n, false);
	scan_free(scan);
	return r;
}

static int mutate_name(const struct rt_scan *s, const struct rt_scan_array *a,
		       struct rt_sb *sb, const void *arg)
{
	const char *name = arg;
	int r;

	r = array_check_name(name);
	if (r < 0)
		return r;
	if (strcmp(a->sb.array.name, name)) {
		r = check_name_free(s, name);
		if (r < 0)
			return r;
	}
	snprintf(sb->array.name, sizeof(sb->array.name), "%s", name);
	return 0;
}

int array_rename(const char *id, const char *new_name)
{
	return array_update(id, mutate_name, new_name);
}

struct rehash_arg {
	const uint32_t *want;
	uint32_t *result;
};

static int mutate_hash(const struct rt_scan *s, const struct rt_scan_array *a,
		       struct rt_sb *sb, const void *varg)
{
	const struct rehash_arg *arg = varg;
	uint32_t hash = arg->want ? *arg->want : sb_hashcode_from_uuid(sb->array.uuid);
	const struct rt_scan_array *other = find_array_by_hash(s, hash);

	if (other && other != a) {
		rt_log(RT_LOG_ERROR, "hashcode %08x is already used by array '%s'", hash,
		       other->sb.array.name);
		return -EEXIST;
	}
	sb->array.hashcode = hash;
	if (arg->result)
		*arg->result = hash;
	return 0;
}

int array_rehash(const char *id, const uint32_t *new_hash, uint32_t *result)
{
	struct rehash_arg arg = { .want = new_hash, .result = result };

	return array_update(id, mutate_hash, &arg);
}

/* Roles with no fresh unit present; a new unit can take them. */
static size_t missing_roles(const struct rt_scan_array *a, uint32_t *roles)
{
	size_t n = 0;

	for (uint32_t r = 0; r < a->sb.array.n_devices; r++) {
		bool present = false;

		for (size_t i = 0; i < a->n_units && !present; i++) {
			const struct rt_sb *usb = &a->units[i]->sb;

			present = scan_unit_usable(a->units[i]) && usb->unit.slot == r &&
				  !memcmp(usb->unit.uuid, a->sb.slots[r].uuid, RT_UUID_SIZE) &&
				  a->sb.slots[r].state != RT_SLOT_FAULTY &&
				  a->sb.slots[r].state != RT_SLOT_MISSING;
		}
		if (!present)
			roles[n++] = r;
	}
	return n;
}

/*
 * @su (may be NULL), offered to array_add, already carries a superblock of
 * array @a: a current member is no new unit (not even --force: it would hold
 * two roles), and a stale one is rewritten as a new member (*former) only
 * when the array starts without it: else its data may be what the array
 * needs, and overwriting it would lose that.
 */
static int check_former_member(const struct rt_scan_array *a, const struct rt_scan_unit *su,
			       const char *path, bool *former)
{
	unsigned missing = a->sb.array.n_devices - a->n_active_roles;

	*former = false;
	if (!su || memcmp(su->sb.array.uuid, a->sb.array.uuid, RT_UUID_SIZE))
		return 0;
	if (scan_unit_usable(su)) {
		rt_log(RT_LOG_ERROR, "'%s': already a unit of array '%s' (current, slot "
		       "%u, %s): nothing to add; it is used when the array starts", path,
		       a->sb.array.name, su->sb.unit.slot,
		       sb_slot_state_name(a->sb.slots[su->sb.unit.slot].state));
		return -EEXIST;
	}
	if (su->cls == RT_UNIT_STALE &&
	    missing <= sb_max_missing(a->sb.array.level, a->sb.array.n_devices)) {
		*former = true;
		return 0;
	}
	rt_log(RT_LOG_ERROR, "'%s': a unit of array '%s' (%s: %s) that the array cannot start "
	       "without (%u of %u roles have a current unit); adding it would overwrite data "
	       "the array may need. See 'raidtool activate --force' in raidtool(8)", path,
	       a->sb.array.name, scan_unit_class_name(su->cls), su->why, a->n_active_roles,
	       a->sb.array.n_devices);
	return -EEXIST;
}

int array_add(const char *id, const char *const *paths, size_t n_new, bool force,
	      struct rt_sb *out, struct rt_unit_desc *added)
{
	struct rt_unit *units[MAX_OPEN] = { 0 };
	struct rt_unit_desc own[MAX_OPEN];
	uint64_t events[MAX_OPEN] = { 0 };	/* new units: 0, written first */
	bool former[MAX_OPEN] = { false };
	uint32_t missing[RT_MAX_UNITS];
	const struct rt_scan_array *a;
	struct rt_scan *scan = NULL;
	struct rt_sb sb;
	size_t n_old = 0, n_open = 0, n_missing, n_used = 0;
	int r;

	r = check_distinct(paths, n_new);
	if (r < 0)
		return r;
	r = scan_devices_find(id, &scan, &a);
	if (r < 0)
		goto out;
	sb = a->sb;
	if (sb.array.level == RT_LEVEL_LINEAR || sb.array.level == RT_LEVEL_0) {
		rt_log(RT_LOG_ERROR, "'%s': a %s array has no redundancy: a unit added to it "
		       "could neither be rebuilt nor serve as a spare", sb.array.name,
		       sb_level_name(sb.array.level));
		r = -EOPNOTSUPP;
		goto out;
	}
	for (size_t i = 0; i < n_new; i++) {
		r = check_former_member(a, scan_find_unit(scan, paths[i]), paths[i],
					&former[i]);
		if (r < 0)
			goto out;
	}
	/* Slots removed spares left empty are taken again. */
	for (uint32_t s = 0; s < sb.array.n_slots && s < RT_MAX_UNITS; s++)
		n_used += sb.slots[s].state != RT_SLOT_EMPTY;
	if (n_used + n_new > RT_MAX_UNITS) {
		rt_log(RT_LOG_ERROR, "'%s': would have %zu units, at most %u", sb.array.name,
		       n_used + n_new, RT_MAX_UNITS);
		r = -E2BIG;
		goto out;
	}
	r = open_fresh_units(a, units, own, events, &n_old);
	n_open = n_old;
	if (r < 0)
		goto out;
	record_absent(a, &sb);

	n_missing = missing_roles(a, missing);
	for (size_t i = 0; i < n_new; i++) {
		uint32_t idx;

		idx = i < n_missing ? missing[i] : sb_spare_slot(&sb);
		r = member_prepare(paths[i], &sb, idx, 0, force,
					 former[i] ? sb.array.uuid : NULL, &units[n_open],
					 &own[n_open]);
		if (r < 0)
			goto out;
		n_open++;
	}
	sb.events++;
	sb.utime = (uint64_t)time(NULL);
	r = member_write_sb_all(units, own, events, n_open, &a->sb, &sb);
	if (r == 0 && out)
		*out = sb;
	if (r == 0 && added)
		memcpy(added, own + n_old, n_new * sizeof(*added));
out:
	/* Keep the loop devices of new file-backed units so that scanning finds them. */
	close_units(units, n_old, false);
	close_units(units + n_old, n_open - n_old, r == 0);
	scan_free(scan);
	return r;
}

int array_zero_unit(const char *path, bool force)
{
	struct rt_unit *u;
	struct rt_sb sb;
	int r;

	r = unit_open(path, RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_ATTACH, &u);
	if (r < 0) {
		unit_log_open_error(path, r);
		return r;
	}
	r = unit_read_sb(u, &sb, NULL);
	if (r == -ENODATA && !force) {
		rt_log(RT_LOG_ERROR, "'%s': holds no raidtool superblock", path);
		goto out;
	} else if (r < 0 && r != -ENODATA && !force) {
		rt_log(RT_LOG_ERROR, "'%s': raidtool superblock is unreadable (%s); use --force "
		       "to wipe it anyway", path, strerror(-r));
		goto out;
	}
	r = unit_wipe_sb(u);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot wipe superblocks: %s", path, strerror(-r));
out:
	unit_close(u);
	return r;
}

int array_unit_contents(const char *path, char *what, size_t len)
{
	struct rt_unit *u;
	int r;

	/* Quietly: the command that goes on to write explains it. */
	r = unit_open(path, RT_UNIT_ATTACH, &u);
	if (r < 0)
		return r;
	r = member_contents(u, NULL, what, len);
	unit_close(u);
	switch (r) {
	case MEMBER_RAIDTOOL:
		return RT_CONTENTS_RAIDTOOL;
	case MEMBER_DAMAGED:
		return RT_CONTENTS_DAMAGED;
	case MEMBER_SIGNATURE:
		return RT_CONTENTS_SIGNATURE;
	default:
		return r < 0 ? r : RT_CONTENTS_NONE;
	}
}
