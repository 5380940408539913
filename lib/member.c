/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* New members and superblock writes (see member.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>
#include <raidtool/log.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>
#include "incmap.h"
#include "member.h"

int member_contents(struct rt_unit *u, const uint8_t *own_array, char *what, size_t len)
{
	struct rt_sb old;
	char type[64];
	int r;

	r = unit_read_sb(u, &old, NULL);
	if (r == 0 && own_array && !memcmp(old.array.uuid, own_array, RT_UUID_SIZE)) {
		snprintf(what, len, "a former unit of array '%s' (events %llu)", old.array.name,
			 (unsigned long long)old.events);
		return MEMBER_FORMER;
	}
	if (r == 0) {
		snprintf(what, len, "is a unit of array '%s' (hashcode %08x)", old.array.name,
			 old.array.hashcode);
		return MEMBER_RAIDTOOL;
	}
	if (r != -ENODATA && !unit_sb_damaged(r)) {
		/*
		 * Not damage but a read error (both copies): the unit may hold
		 * an array's intact data, and --force is no cure for it.
		 */
		rt_log(RT_LOG_ERROR, "'%s': cannot read its superblocks: %s; nothing written",
		       unit_path(u), strerror(-r));
		return r;
	}
	if (r != -ENODATA) {
		snprintf(what, len, "holds a damaged raidtool superblock");
		return MEMBER_DAMAGED;
	}
	r = unit_probe_signature(u, type, sizeof(type));
	if (r == 1) {
		snprintf(what, len, "holds a filesystem or other signature (%s)", type);
		return MEMBER_SIGNATURE;
	}
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot probe for signatures: %s", unit_path(u),
		       strerror(-r));
	return r;
}

int member_open(const char *path, uint32_t chunk, unsigned flags, bool force,
		const uint8_t *own_array, struct rt_unit **out, struct rt_geometry *g)
{
	struct rt_unit *u;
	char what[RT_NAME_MAX + 128];
	int r;

	if (scan_is_array_device(path)) {
		rt_log(RT_LOG_ERROR, "'%s': the block device of a raidtool array: raidtool builds "
		       "no array on its own arrays (scans skip their devices, so it could not "
		       "be found again)", path);
		return -EINVAL;
	}
	r = unit_open(path, flags | RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_ATTACH, &u);
	if (r < 0) {
		unit_log_open_error(path, r);
		return r;
	}
	r = sb_geometry(unit_size(u), chunk, g);
	if (r == -ENOSPC) {
		rt_log(RT_LOG_ERROR, "'%s': too small (%llu bytes): a unit needs %u bytes "
		       "of metadata plus one %u-byte chunk", path,
		       (unsigned long long)unit_size(u), RT_DATA_ALIGN + RT_SB_SIZE, chunk);
		goto fail;
	} else if (r < 0) {
		goto fail;
	}
	if (force) {
		/* What --force overrides must not linger: blkid would still report it. */
		r = unit_wipe_signatures(u);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': cannot wipe old signatures: %s", path,
			       strerror(-r));
			goto fail;
		}
	} else {
		r = member_contents(u, own_array, what, sizeof(what));
		if (r == MEMBER_FORMER) {
			rt_log(RT_LOG_INFO, "'%s': %s: rewritten as a new member, not trusted", path,
			       what);
		} else if (r > 0) {
			rt_log(RT_LOG_ERROR, "'%s': %s; use --force to overwrite it", path, what);
			r = -EEXIST;
			goto fail;
		} else if (r < 0) {
			goto fail;
		}
	}
	*out = u;
	return 0;
fail:
	unit_close(u);
	return r;
}

void member_desc_init(struct rt_unit_desc *d, uint32_t slot, uint64_t length,
		      const struct rt_geometry *g)
{
	memset(d, 0, sizeof(*d));
	uuid_generate(d->uuid);
	d->hashcode = sb_hashcode_from_uuid(d->uuid);
	d->slot = slot;
	d->start = 0;
	d->length = length;
	d->sb_offset[0] = g->sb_offset[0];
	d->sb_offset[1] = g->sb_offset[1];
	d->log_offset = g->log_offset;
	d->log_size = g->log_size;
	d->data_offset = g->data_offset;
	d->data_size = g->data_size;
}

/* Does unit @i still need the update @prev before the next one? (0: a new unit) */
static bool lags(const uint64_t *events, size_t i, const struct rt_sb *prev)
{
	return prev && events && events[i] && events[i] < prev->events;
}

/* Write @shared with the unit's own descriptor @own to @u. */
static int write_one(struct rt_unit *u, const struct rt_unit_desc *own, const struct rt_sb *shared)
{
	struct rt_sb sb = *shared;
	int r, q;

	sb.unit = *own;
	/*
	 * Announce the unit to incremental assembly first: udev's event for
	 * this write (or for the loop device just attached) is then not taken
	 * for the unit appearing, and an array being created or edited is not
	 * started behind the admin's back.
	 */
	q = incmap_note(unit_devname(u), &sb);
	if (q < 0)
		rt_log(RT_LOG_DEBUG, "'%s': not recorded for incremental assembly: %s",
		       unit_devname(u), strerror(-q));
	r = unit_write_sb(u, &sb);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot write superblock: %s", unit_path(u),
		       strerror(-r));
	return r;
}

/* Would @shared, with each unit's own descriptor, make sense on each unit? */
static int check_all(struct rt_unit *const *units, const struct rt_unit_desc *own, size_t n,
		     const struct rt_sb *shared)
{
	struct rt_sb sb;
	char why[192];
	int r;

	for (size_t i = 0; i < n; i++) {
		sb = *shared;
		sb.unit = own[i];
		r = unit_check_sb(units[i], &sb, why, sizeof(why));
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': refusing to write an inconsistent superblock "
			       "(%s); nothing was written", unit_path(units[i]), why);
			return r;
		}
	}
	return 0;
}

int member_write_sb_all(struct rt_unit *const *units, const struct rt_unit_desc *own,
			uint64_t *events, size_t n, const struct rt_sb *prev,
			const struct rt_sb *shared)
{
	size_t order[MEMBER_MAX];
	int r, q;

	if (n > MEMBER_MAX)
		return -E2BIG;
	/* Decide before writing: every unit's superblock is checked first. */
	r = check_all(units, own, n, shared);
	for (size_t i = 0; i < n && r == 0; i++)
		if (lags(events, i, prev))
			r = check_all(&units[i], &own[i], 1, prev);
	if (r < 0)
		return r;
	/* Lowest on-disk events first (insertion sort: stable, n is small). */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;

		while (events && j > 0 && events[order[j - 1]] > events[i]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	/*
	 * A unit left behind by an interrupted update first gets that update
	 * (@prev): written straight to the new one it would be two events
	 * ahead of the units not yet written, which the margin of one does
	 * not cover.
	 */
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];

		if (!lags(events, i, prev))
			continue;
		r = write_one(units[i], &own[i], prev);
		if (r < 0)
			return r;
		events[i] = prev->events;
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];

		r = write_one(units[i], &own[i], shared);
		if (r < 0)
			return r;
		if (events)
			events[i] = shared->events;
	}
	for (size_t i = 0; i < n; i++) {
		q = unit_notify_udev(units[i]);
		if (q < 0)
			rt_log(RT_LOG_DEBUG, "'%s': no uevent: %s", unit_devname(units[i]),
			       strerror(-q));
	}
	return 0;
}

int member_prepare(const char *path, struct rt_sb *sb, uint32_t idx, unsigned flags,
			 bool force, const uint8_t *own_array, struct rt_unit **out,
			 struct rt_unit_desc *own)
{
	struct rt_geometry g;
	struct rt_slot *slot;
	struct rt_unit *u;
	uint64_t need = UINT64_MAX, sizes[RT_MAX_UNITS];
	bool role = idx < sb->array.n_devices;
	int r;

	if (idx >= RT_MAX_UNITS) {
		rt_log(RT_LOG_ERROR, "'%s': array '%s' has no room for another unit (at most %u)",
		       path, sb->array.name, RT_MAX_UNITS);
		return -E2BIG;
	}
	r = member_open(path, sb->array.chunk_size, flags, force, own_array, &u, &g);
	if (r < 0)
		return r;
	/* What the array keeps on a role: a unit it ran on is never too small. */
	sb_role_sizes(sb, sizes);
	for (uint32_t i = 0; i < sb->array.n_devices; i++)
		if (sizes[i] < need)
			need = sizes[i];
	if (g.data_size < need) {
		rt_log(RT_LOG_ERROR, "'%s': too small for array '%s': its data area "
		       "would hold %llu bytes, each unit needs %llu", path,
		       sb->array.name, (unsigned long long)g.data_size,
		       (unsigned long long)need);
		unit_close(u);
		return -ENOSPC;
	}
	member_desc_init(own, idx, unit_size(u), &g);
	slot = &sb->slots[idx];
	memcpy(slot->uuid, own->uuid, RT_UUID_SIZE);
	slot->hashcode = own->hashcode;
	slot->state = role ? RT_SLOT_REBUILDING : RT_SLOT_SPARE;
	slot->data_size = g.data_size;
	slot->recovery_offset = 0;
	if (!role && idx >= sb->array.n_slots)
		sb->array.n_slots = idx + 1;
	*out = u;
	return 0;
}
