/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Find units: enumerate block devices, read raidtool's superblock from each,
 * group the units into arrays.
 *
 * The names come from /sys/class/block, which lists every block device the
 * kernel has, including bound loop devices and partitions (deduplicated by
 * devno). libblkid's cache iterator is not used: it keeps only devices on
 * which one of blkid's own probers recognised something (no prober knows
 * raidtool's magic), and filling it (blkid_probe_all) opens every device,
 * the block devices of running arrays included.
 *
 * Those are skipped before anything opens them: a loop device whose backing
 * file (from sysfs) is an engine's FUSE file, <rundir>/<UUID>/mnt/<NAME>
 * under any run directory. An open of one would make a concurrent
 * `deactivate` find it in use, and raidtool builds no array on its own
 * arrays (create and add refuse them).
 */
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <uuid/uuid.h>
#include <raidtool/control.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/scan.h>
#include "scan-internal.h"

/* The public result plus what lookups need and callers do not. */
struct scan_impl {
	struct rt_scan pub;
	dev_t *devno;			/* parallel to pub.units */
	size_t cap;
	size_t n_denied;		/* devices we may not open (not root) */
	char denied[64];		/* the first of them */
};

/* Device numbers already looked at, so that no device is read twice. */
struct devno_set {
	dev_t *v;
	size_t n, cap;
};

static bool devno_seen(struct devno_set *set, dev_t d)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == d)
			return true;
	return false;
}

static int devno_add(struct devno_set *set, dev_t d)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		dev_t *v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = d;
	return 0;
}

static struct scan_impl *impl_of(const struct rt_scan *s)
{
	return (struct scan_impl *)s;	/* pub is the first member */
}

static int add_unit(struct scan_impl *si, const char *devname, dev_t devno,
		    const struct rt_sb *sb, const struct rt_sb_status *st, const char *suspect)
{
	struct rt_scan_unit *su;
	int r;

	if (si->pub.n_units == si->cap) {
		size_t cap = si->cap ? si->cap * 2 : 16;
		struct rt_scan_unit *units = realloc(si->pub.units, cap * sizeof(*units));
		dev_t *devnos;

		if (!units)
			return -ENOMEM;
		si->pub.units = units;
		devnos = realloc(si->devno, cap * sizeof(*devnos));
		if (!devnos)
			return -ENOMEM;
		si->devno = devnos;
		si->cap = cap;
	}
	su = &si->pub.units[si->pub.n_units];
	memset(su, 0, sizeof(*su));
	snprintf(su->dev, sizeof(su->dev), "%s", devname);
	r = loopdev_backing_file(devname, su->backing, sizeof(su->backing));
	if (r < 0)
		su->backing[0] = '\0';
	su->sb = *sb;
	su->status = *st;
	if (suspect) {
		su->cls = RT_UNIT_SUSPECT;
		snprintf(su->why, sizeof(su->why), "%s", suspect);
	}
	si->devno[si->pub.n_units] = devno;
	si->pub.n_units++;
	return 0;
}

/* Size in bytes from sysfs, without opening the device (an open can close a CD tray). */
static int sysfs_size(dev_t d, uint64_t *bytes)
{
	char path[96], buf[32];
	unsigned long long sectors;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/size", major(d), minor(d));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "%llu", &sectors) != 1)
		return -EIO;
	*bytes = (uint64_t)sectors * 512;
	return 0;
}

/* A thin volume's FUSE file (control_volume_of_file): like the array's own file, never a unit. */
static bool is_volume_file(const char *file)
{
	uint8_t uuid[RT_UUID_SIZE];
	char vol[PATH_MAX];

	return control_volume_of_file(file, uuid, vol, sizeof(vol)) == 0;
}

int scan_volume_of_device(const char *devname, uint8_t uuid[RT_UUID_SIZE], char *vol,
			  size_t vollen)
{
	char file[PATH_MAX];

	if (loopdev_backing_file(devname, file, sizeof(file)) < 0 ||
	    control_volume_of_file(file, uuid, vol, vollen) < 0)
		return -ENOENT;
	return 0;
}

bool scan_is_array_device(const char *devname)
{
	char file[PATH_MAX], name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];

	/* sysfs only (loopdev_backing_file stats the node and reads loop/backing_file). */
	return loopdev_backing_file(devname, file, sizeof(file)) == 0 &&
	       (control_array_of_file(file, name, sizeof(name), uuid) == 0 ||
		is_volume_file(file));
}

/* Look at one device: record it when it carries a raidtool superblock. */
static int consider(struct scan_impl *si, struct devno_set *seen, const char *devname)
{
	struct rt_sb_status st;
	struct rt_unit *u = NULL;
	struct rt_sb *sb = NULL;
	struct stat stt;
	char why[256];
	uint64_t bytes = UINT64_MAX;
	int r;

	if (stat(devname, &stt) < 0 || !S_ISBLK(stt.st_mode))
		return 0;
	if (devno_seen(seen, stt.st_rdev))
		return 0;
	r = devno_add(seen, stt.st_rdev);
	if (r < 0)
		return r;
	if (sysfs_size(stt.st_rdev, &bytes) == 0 && bytes == 0)
		return 0;	/* unbound loop, empty drive */
	if (scan_is_array_device(devname))
		return 0;

	r = unit_open(devname, 0, &u);
	if (r < 0) {
		rt_log(RT_LOG_DEBUG, "scan: '%s': cannot open: %s", devname, strerror(-r));
		/* As root, a refusal is a policy's (a device cgroup): not ours to report. */
		if ((r == -EACCES || r == -EPERM) && geteuid() != 0 && !si->n_denied++)
			snprintf(si->denied, sizeof(si->denied), "%s", devname);
		return 0;
	}
	if (unit_size(u) == 0)
		goto out;
	sb = malloc(sizeof(*sb));
	if (!sb) {
		r = -ENOMEM;
		goto out;
	}
	r = unit_read_sb_quiet(u, sb, &st);
	if (r == -EUCLEAN && st.why[0]) {
		/* A superblock of ours with a field that makes no sense: name it. */
		r = add_unit(si, devname, unit_devno(u), sb, &st, st.why);
		goto out;
	}
	if (r < 0) {
		if (r != -ENODATA)
			rt_log(RT_LOG_DEBUG, "scan: '%s': no valid superblock: %s", devname,
			       strerror(-r));
		r = 0;
		goto out;
	}
	/* The checks that need the device: here, where it is open. */
	r = unit_check_sb(u, sb, why, sizeof(why));
	r = add_unit(si, devname, unit_devno(u), sb, &st, r < 0 ? why : NULL);
out:
	free(sb);
	unit_close(u);
	return r;
}

static int scan_sysfs(struct scan_impl *si, struct devno_set *seen)
{
	char devname[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir("/sys/class/block");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		/* The kernel writes '/' in a device name as '!' (cciss!c0d0). */
		snprintf(devname, sizeof(devname), "/dev/%s", de->d_name);
		for (char *p = devname + 5; *p; p++)
			if (*p == '!')
				*p = '/';
		r = consider(si, seen, devname);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

/* Units of one array: by slot, then freshest first, then by name. */
static int cmp_unit(const void *a, const void *b)
{
	const struct rt_scan_unit *x = *(const struct rt_scan_unit *const *)a;
	const struct rt_scan_unit *y = *(const struct rt_scan_unit *const *)b;

	if (x->sb.unit.slot != y->sb.unit.slot)
		return x->sb.unit.slot < y->sb.unit.slot ? -1 : 1;
	if (x->sb.events != y->sb.events)
		return x->sb.events > y->sb.events ? -1 : 1;
	return strcmp(x->dev, y->dev);
}

static int cmp_array(const void *a, const void *b)
{
	const struct rt_scan_array *x = a, *y = b;
	int c = strcmp(x->sb.array.name, y->sb.array.name);

	if (c)
		return c;
	if (x->sb.array.hashcode != y->sb.array.hashcode)
		return x->sb.array.hashcode < y->sb.array.hashcode ? -1 : 1;
	return memcmp(x->sb.array.uuid, y->sb.array.uuid, RT_UUID_SIZE);
}

const char *scan_unit_class_name(enum rt_unit_class cls)
{
	switch (cls) {
	case RT_UNIT_CURRENT:
		return "current";
	case RT_UNIT_CURRENT_BEHIND:
		return "current, one event behind";
	case RT_UNIT_STALE:
		return "stale";
	case RT_UNIT_CONFLICT:
		return "conflict";
	case RT_UNIT_SUSPECT:
		return "suspect";
	}
	return "?";
}

bool scan_unit_usable(const struct rt_scan_unit *u)
{
	return u->cls == RT_UNIT_CURRENT || u->cls == RT_UNIT_CURRENT_BEHIND;
}

size_t scan_array_count(const struct rt_scan *s)
{
	return s->n_arrays;
}

const struct rt_scan_array *scan_array_at(const struct rt_scan *s, size_t i)
{
	return i < s->n_arrays ? &s->arrays[i] : NULL;
}

const struct rt_sb *scan_array_sb(const struct rt_scan_array *a)
{
	return &a->sb;
}

unsigned scan_array_roles_present(const struct rt_scan_array *a)
{
	return a->n_present_roles;
}

unsigned scan_array_stale_count(const struct rt_scan_array *a)
{
	return a->n_stale;
}

bool scan_array_name_shared(const struct rt_scan_array *a)
{
	return a->duplicate_name;
}

size_t scan_array_unit_count(const struct rt_scan_array *a)
{
	return a->n_units;
}

const struct rt_scan_unit *scan_array_unit_at(const struct rt_scan_array *a, size_t i)
{
	return i < a->n_units ? a->units[i] : NULL;
}

const char *scan_unit_device(const struct rt_scan_unit *u)
{
	return u->dev;
}

const char *scan_unit_backing(const struct rt_scan_unit *u)
{
	return u->backing;
}

const struct rt_sb *scan_unit_sb(const struct rt_scan_unit *u)
{
	return &u->sb;
}

enum rt_unit_class scan_unit_class(const struct rt_scan_unit *u)
{
	return u->cls;
}

const char *scan_unit_why(const struct rt_scan_unit *u)
{
	return u->why;
}

/* A slot whose unit every update writes: the margin of one event applies to it. */
static bool slot_in_use(uint32_t state)
{
	return state == RT_SLOT_ACTIVE || state == RT_SLOT_REBUILDING || state == RT_SLOT_SPARE ||
	       state == RT_SLOT_REPLACING;
}

/* Does @sb's role table list the unit @uuid in use (in any slot)? */
static bool lists_in_use(const struct rt_sb *sb, const uint8_t *uuid)
{
	for (uint32_t i = 0; i < RT_MAX_UNITS; i++)
		if (slot_in_use(sb->slots[i].state) &&
		    !memcmp(sb->slots[i].uuid, uuid, RT_UUID_SIZE))
			return true;
	return false;
}

/*
 * Every update writes the units it lists in use lagging ones first (see
 * array_write_sb_all), so none of them is ever more than one event behind
 * the freshest. A unit that is more than one ahead of every other present
 * unit its own table lists in use (two at least, so that a lone old copy of
 * a disk cannot outvote the fresh one) did not get there through raidtool:
 * its events field is not to be believed.
 */
static void find_events_suspects(struct rt_scan_array *a)
{
	for (size_t i = 0; i < a->n_units; i++) {
		struct rt_scan_unit *u = a->units[i];
		unsigned n_listed = 0, n_far = 0;
		uint64_t highest = 0;

		if (u->cls == RT_UNIT_SUSPECT)
			continue;
		for (size_t j = 0; j < a->n_units; j++) {
			const struct rt_scan_unit *v = a->units[j];

			if (j == i || v->cls == RT_UNIT_SUSPECT ||
			    !lists_in_use(&u->sb, v->sb.unit.uuid))
				continue;
			n_listed++;
			if (v->sb.events + 1 < u->sb.events)
				n_far++;
			if (v->sb.events > highest)
				highest = v->sb.events;
		}
		if (n_listed >= 2 && n_far == n_listed) {
			u->cls = RT_UNIT_SUSPECT;
			snprintf(u->why, sizeof(u->why), "events: %llu is more than one ahead "
				 "of every unit its role table lists in use (the freshest of them "
				 "is at %llu), which no update by raidtool leaves behind",
				 (unsigned long long)u->sb.events, (unsigned long long)highest);
		}
	}
}

/*
 * Do @x and @y disagree on what every member of the array shares (array
 * descriptor, role table)? Then the first difference goes to @what as
 * "<field>: <x's> here, <y's> in the other".
 */
static bool shared_differs(const struct rt_sb *x, const struct rt_sb *y, char *what, size_t len)
{
	const struct rt_array_desc *p = &x->array, *q = &y->array;
	static const char here_there[] = "%s: %llu here, %llu in the freshest superblock";
	const struct {
		const char *name;
		uint64_t mine, theirs;
	} nums[] = {
		{ "level", (uint64_t)(int64_t)p->level, (uint64_t)(int64_t)q->level },
		{ "layout", p->layout, q->layout },
		{ "chunk size", p->chunk_size, q->chunk_size },
		{ "block size", p->blocksize, q->blocksize },
		{ "n_devices", p->n_devices, q->n_devices },
		{ "n_slots", p->n_slots, q->n_slots },
		{ "nblocks", p->nblocks, q->nblocks },
		{ "region size", p->region_size, q->region_size },
		{ "hashcode", p->hashcode, q->hashcode },
		{ "ctime", p->ctime, q->ctime },
	};

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (nums[i].mine != nums[i].theirs) {
			snprintf(what, len, here_there, nums[i].name,
				 (unsigned long long)nums[i].mine, (unsigned long long)nums[i].theirs);
			return true;
		}
	}
	if (strcmp(p->name, q->name) || strcmp(p->desc, q->desc)) {
		snprintf(what, len, "name/description: '%s' here, '%s' in the freshest "
			 "superblock", p->name, q->name);
		return true;
	}
	for (uint32_t i = 0; i < RT_MAX_UNITS; i++) {
		const struct rt_slot *m = &x->slots[i], *t = &y->slots[i];

		if (memcmp(m->uuid, t->uuid, RT_UUID_SIZE) || m->state != t->state ||
		    m->hashcode != t->hashcode) {
			snprintf(what, len, "slot %u: %s (unit %08x) here, %s (unit %08x) in the "
				 "freshest superblock", i, sb_slot_state_name(m->state), m->hashcode,
				 sb_slot_state_name(t->state), t->hashcode);
			return true;
		}
	}
	return false;
}

/* One class per unit against the freshest role table @fresh. */
static void classify(const struct rt_sb *fresh, struct rt_scan_unit *u)
{
	uint32_t slot = u->sb.unit.slot;
	const struct rt_slot *s = slot < RT_MAX_UNITS ? &fresh->slots[slot] : NULL;
	bool mine = s && !memcmp(s->uuid, u->sb.unit.uuid, RT_UUID_SIZE);

	if (u->cls == RT_UNIT_SUSPECT)
		return;
	if (u->sb.events == fresh->events) {
		/*
		 * Every update reaches all members with one events value: two
		 * superblocks at the same events that differ ran apart (each
		 * started without the other) or were changed behind raidtool's back.
		 */
		if (shared_differs(&u->sb, fresh, u->why, sizeof(u->why))) {
			u->cls = RT_UNIT_CONFLICT;
			u->table_differs = true;
			return;
		}
		if (mine && s->state != RT_SLOT_EMPTY) {
			u->cls = RT_UNIT_CURRENT;
			return;
		}
		u->cls = RT_UNIT_CONFLICT;
		if (!s || s->state == RT_SLOT_EMPTY)
			snprintf(u->why, sizeof(u->why), "it claims slot %u, which the freshest "
				 "role table leaves empty", slot);
		else
			snprintf(u->why, sizeof(u->why), "it claims slot %u, which the freshest "
				 "role table gives to unit %08x (%s)", slot, s->hashcode,
				 sb_slot_state_name(s->state));
		return;
	}
	if (u->sb.events + 1 == fresh->events && mine && slot_in_use(s->state)) {
		u->cls = RT_UNIT_CURRENT_BEHIND;
		return;
	}
	u->cls = RT_UNIT_STALE;
	if (mine && u->sb.events < fresh->events)
		snprintf(u->why, sizeof(u->why), "events %llu, the array is at %llu and its "
			 "role table has slot %u %s", (unsigned long long)u->sb.events,
			 (unsigned long long)fresh->events, slot, sb_slot_state_name(s->state));
	else if (u->sb.events < fresh->events)
		snprintf(u->why, sizeof(u->why), "events %llu, the array is at %llu and its "
			 "role table no longer names this unit", (unsigned long long)u->sb.events,
			 (unsigned long long)fresh->events);
}

/*
 * The unit whose superblock is authoritative: the highest events among the
 * units not suspect and, when units at those events disagree (they ran
 * apart, or one was edited), the one most of them agree with, so that the
 * odd one out is the one named. a->n_units when every unit is suspect.
 */
static size_t pick_freshest(const struct rt_scan_array *a)
{
	size_t best = a->n_units;
	unsigned best_votes = 0;
	char scratch[8];

	for (size_t i = 0; i < a->n_units; i++)
		if (a->units[i]->cls != RT_UNIT_SUSPECT &&
		    (best == a->n_units || a->units[i]->sb.events > a->units[best]->sb.events))
			best = i;
	if (best == a->n_units)
		return best;
	for (size_t i = 0; i < a->n_units; i++) {
		const struct rt_scan_unit *u = a->units[i];
		unsigned votes = 0;

		if (u->cls == RT_UNIT_SUSPECT || u->sb.events != a->units[best]->sb.events)
			continue;
		for (size_t j = 0; j < a->n_units; j++)
			if (a->units[j]->cls != RT_UNIT_SUSPECT &&
			    a->units[j]->sb.events == u->sb.events &&
			    !shared_differs(&a->units[j]->sb, &u->sb, scratch, sizeof(scratch)))
				votes++;
		if (votes > best_votes) {
			best_votes = votes;
			best = i;
		}
	}
	return best;
}

static void summarize(struct rt_scan_array *a)
{
	const struct rt_sb *fresh;
	size_t best;

	find_events_suspects(a);
	best = pick_freshest(a);
	if (best == a->n_units) {
		/* Nothing but suspects: list them, never assemble from them. */
		a->all_suspect = true;
		best = 0;
	}
	a->sb = a->units[best]->sb;
	fresh = &a->sb;
	qsort(a->units, a->n_units, sizeof(a->units[0]), cmp_unit);
	for (size_t i = 0; i < a->n_units; i++)
		classify(fresh, a->units[i]);

	for (uint32_t r = 0; r < fresh->array.n_devices && r < RT_MAX_UNITS; r++) {
		if (fresh->slots[r].state != RT_SLOT_ACTIVE &&
		    fresh->slots[r].state != RT_SLOT_REBUILDING)
			continue;
		a->n_expected_roles++;
		for (size_t i = 0; i < a->n_units; i++) {
			const struct rt_scan_unit *u = a->units[i];

			if (scan_unit_usable(u) && u->sb.unit.slot == r) {
				a->n_present_roles++;
				if (fresh->slots[r].state == RT_SLOT_ACTIVE)
					a->n_active_roles++;
				break;
			}
		}
	}
	for (size_t i = 0; i < a->n_units; i++) {
		switch (a->units[i]->cls) {
		case RT_UNIT_STALE:
			a->n_stale++;
			break;
		case RT_UNIT_CURRENT_BEHIND:
			a->n_behind++;
			break;
		case RT_UNIT_CONFLICT:
			a->n_conflicts++;
			break;
		case RT_UNIT_SUSPECT:
			a->n_suspect++;
			break;
		case RT_UNIT_CURRENT:
			break;
		}
	}
}

/*
 * Group by array UUID: a hashcode can change (rehash) and a stale unit may
 * still carry the old one, but the UUID never does.
 */
static int group(struct scan_impl *si)
{
	struct rt_scan *s = &si->pub;

	if (!s->n_units)
		return 0;
	s->arrays = calloc(s->n_units, sizeof(*s->arrays));
	if (!s->arrays)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_units; i++) {
		struct rt_scan_unit *u = &s->units[i];
		struct rt_scan_array *a = NULL;

		for (size_t j = 0; j < s->n_arrays && !a; j++)
			if (!memcmp(s->arrays[j].units[0]->sb.array.uuid, u->sb.array.uuid,
				    RT_UUID_SIZE))
				a = &s->arrays[j];
		if (!a)
			a = &s->arrays[s->n_arrays++];
		if (a->n_units == sizeof(a->units) / sizeof(a->units[0])) {
			rt_log(RT_LOG_WARN, "'%s': more than %zu units claim array '%s'; "
			       "ignoring this one", u->dev, a->n_units, u->sb.array.name);
			continue;
		}
		a->units[a->n_units++] = u;
	}
	for (size_t j = 0; j < s->n_arrays; j++)
		summarize(&s->arrays[j]);
	qsort(s->arrays, s->n_arrays, sizeof(s->arrays[0]), cmp_array);
	for (size_t j = 0; j < s->n_arrays; j++)
		for (size_t k = 0; k < s->n_arrays; k++)
			if (j != k && !strcmp(s->arrays[j].sb.array.name, s->arrays[k].sb.array.name))
				s->arrays[j].duplicate_name = true;
	return 0;
}

/* Look at the devices @add finds (all of them, or a list), then group. */
static int scan_with(int (*add)(struct scan_impl *, struct devno_set *, const void *),
		     const void *arg, struct rt_scan **out)
{
	struct devno_set seen = { 0 };
	struct scan_impl *si;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	si = calloc(1, sizeof(*si));
	if (!si)
		return -ENOMEM;
	r = add(si, &seen, arg);
	if (r < 0)
		goto fail;
	r = group(si);
	if (r < 0)
		goto fail;
	/* What was not found may be on them: say so, in unit_log_open_error's words. */
	if (si->n_denied) {
		char more[64] = "";

		if (si->n_denied > 1)
			snprintf(more, sizeof(more), " and %zu other block devices",
				 si->n_denied - 1);
		rt_log(RT_LOG_WARN, "'%s'%s: cannot open: %s", si->denied, more,
		       unit_open_error(-EACCES));
	}
	free(seen.v);
	*out = &si->pub;
	return 0;
fail:
	free(seen.v);
	scan_free(&si->pub);
	return r;
}

static int add_all(struct scan_impl *si, struct devno_set *seen, const void *arg)
{
	int r;

	(void)arg;
	r = scan_sysfs(si, seen);
	if (r < 0 && r != -ENOMEM)
		rt_log(RT_LOG_ERROR, "cannot list the block devices in /sys/class/block: %s",
		       strerror(-r));
	return r;
}

struct dev_list {
	const char *const *devs;
	size_t n;
};

static int add_listed(struct scan_impl *si, struct devno_set *seen, const void *arg)
{
	const struct dev_list *l = arg;

	for (size_t i = 0; i < l->n; i++) {
		int r = consider(si, seen, l->devs[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

int scan_devices(struct rt_scan **out)
{
	return scan_with(add_all, NULL, out);
}

int scan_devices_list(const char *const *devs, size_t n, struct rt_scan **out)
{
	struct dev_list l = { devs, n };

	return scan_with(add_listed, &l, out);
}

void scan_free(struct rt_scan *s)
{
	struct scan_impl *si;

	if (!s)
		return;
	si = impl_of(s);
	free(s->arrays);
	free(s->units);
	free(si->devno);
	free(si);
}

int scan_lookup(const struct rt_scan *s, const char *id, const struct rt_scan_array **out)
{
	const struct rt_scan_array *found = NULL;
	size_t n = 0;
	uint32_t hash;

	if (!s || !id || !out)
		return -EINVAL;
	*out = NULL;
	/* A hashcode names exactly one array; a name that merely looks hex comes second. */
	if (sb_hashcode_parse(id, &hash) == 0) {
		for (size_t i = 0; i < s->n_arrays; i++) {
			if (s->arrays[i].sb.array.hashcode == hash) {
				found = &s->arrays[i];
				n++;
			}
		}
		if (n > 1)
			return -ENOTUNIQ;
		if (n == 1) {
			*out = found;
			return 0;
		}
	}
	for (size_t i = 0; i < s->n_arrays; i++) {
		if (!strcmp(s->arrays[i].sb.array.name, id)) {
			found = &s->arrays[i];
			n++;
		}
	}
	if (n == 0)
		return -ENOENT;
	if (n > 1)
		return -ENOTUNIQ;
	*out = found;
	return 0;
}

void scan_log_no_such_array(const char *id)
{
	rt_log(RT_LOG_ERROR, "'%s': no such array (no unit with that name or hashcode found)",
	       id);
}

int scan_find(const struct rt_scan *s, const char *id, const struct rt_scan_array **out)
{
	char list[RT_MAX_UNITS * 10] = "";
	size_t used = 0;
	uint32_t hash;
	bool by_hash;
	int r = scan_lookup(s, id, out);

	if (r == -ENOENT)
		scan_log_no_such_array(id);
	if (r != -ENOTUNIQ) {
		if (r < 0 && r != -ENOENT)
			rt_log(RT_LOG_ERROR, "'%s': lookup failed: %s", id, strerror(-r));
		return r;
	}
	by_hash = sb_hashcode_parse(id, &hash) == 0;
	for (size_t i = 0; i < s->n_arrays && used + 11 < sizeof(list); i++) {
		const struct rt_array_desc *a = &s->arrays[i].sb.array;

		if (by_hash ? a->hashcode == hash : !strcmp(a->name, id))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s %08x '%s'",
						 used ? "," : "", a->hashcode, a->name);
	}
	if (by_hash)
		rt_log(RT_LOG_ERROR, "'%s': several arrays have this hashcode (%s); give one "
		       "another with 'raidtool rehash' on its units", id, list + 1);
	else
		rt_log(RT_LOG_ERROR, "'%s': several arrays have this name (hashcodes%s); name "
		       "one by its hashcode", id, list);
	return r;
}

int scan_devices_find(const char *id, struct rt_scan **scan, const struct rt_scan_array **out)
{
	int r = scan_devices(scan);

	if (r < 0) {
		rt_log(RT_LOG_ERROR, "cannot scan block devices: %s", strerror(-r));
		*scan = NULL;
		return r;
	}
	return scan_find(*scan, id, out);
}

const struct rt_scan_array *scan_find_uuid(const struct rt_scan *s,
					   const uint8_t uuid[RT_UUID_SIZE])
{
	for (size_t i = 0; s && i < s->n_arrays; i++)
		if (!memcmp(s->arrays[i].sb.array.uuid, uuid, RT_UUID_SIZE))
			return &s->arrays[i];
	return NULL;
}

const struct rt_scan_unit *scan_find_unit(const struct rt_scan *s, const char *path)
{
	struct scan_impl *si;
	char loop[PATH_MAX], real[PATH_MAX];
	struct stat st;
	dev_t want = 0;

	if (!s || !path || stat(path, &st) < 0)
		return NULL;
	si = impl_of(s);
	if (S_ISBLK(st.st_mode)) {
		want = st.st_rdev;
	} else if (S_ISREG(st.st_mode)) {
		struct stat lst;

		if (loopdev_find_by_backing(path, loop, sizeof(loop)) == 0 &&
		    stat(loop, &lst) == 0 && S_ISBLK(lst.st_mode))
			want = lst.st_rdev;
	} else {
		return NULL;
	}
	if (want) {
		for (size_t i = 0; i < s->n_units; i++)
			if (si->devno[i] == want)
				return &s->units[i];
	}
	/* A file whose loop device could not be asked: compare backing paths. */
	if (S_ISREG(st.st_mode) && realpath(path, real)) {
		for (size_t i = 0; i < s->n_units; i++)
			if (!strcmp(s->units[i].backing, real))
				return &s->units[i];
	}
	return NULL;
}

bool scan_unit_replaced(const struct rt_scan_array *a, const struct rt_scan_unit *u)
{
	for (unsigned i = 0; i < RT_MAX_UNITS; i++)
		if (a->sb.slots[i].state == RT_SLOT_REPLACED &&
		    !memcmp(a->sb.slots[i].uuid, u->sb.unit.uuid, RT_UUID_SIZE))
			return true;
	return false;
}

enum rt_unit_state scan_unit_state(const struct rt_scan_array *a, const struct rt_scan_unit *u)
{
	switch (u->cls) {
	case RT_UNIT_CURRENT:
	case RT_UNIT_CURRENT_BEHIND:
		break;
	case RT_UNIT_STALE:
		return scan_unit_replaced(a, u) ? RT_UNIT_STATE_REPLACED : RT_UNIT_STATE_STALE;
	case RT_UNIT_CONFLICT:
		return RT_UNIT_STATE_CONFLICT;
	case RT_UNIT_SUSPECT:
		return RT_UNIT_STATE_SUSPECT;
	}
	return control_unit_state_of_slot(a->sb.slots[u->sb.unit.slot].state);
}
