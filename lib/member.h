/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_MEMBER_H
#define RAIDTOOL_MEMBER_H

/*
 * New members and superblock writes, for the offline commands (array.c),
 * assembly (assemble.c) and the running array (run-admin.c) alike.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <raidtool/format.h>
#include <raidtool/unit.h>

/* The most units one update writes: every role and as many spares. */
#define MEMBER_MAX (RT_MAX_UNITS * 2)

/*
 * Open @path (with @flags besides RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_ATTACH)
 * to become a new member and check it: big enough for @chunk (its geometry
 * in @g), and holding nothing that writing a superblock would destroy
 * unless @force. A superblock of the array @own_array (a stale former
 * member; NULL: none) is no reason to refuse.
 */
int member_open(const char *path, uint32_t chunk, unsigned flags, bool force,
		const uint8_t *own_array, struct rt_unit **out, struct rt_geometry *g);

/* What a unit holds that writing a superblock would destroy (member_contents). */
enum member_contents {
	MEMBER_EMPTY = 0,	/* nothing known */
	MEMBER_FORMER,		/* a stale superblock of @own_array: no reason to refuse */
	MEMBER_RAIDTOOL,	/* a unit of another array */
	MEMBER_DAMAGED,		/* a raidtool superblock that does not decode */
	MEMBER_SIGNATURE,	/* a filesystem or other signature libblkid knows */
};

/*
 * What @u holds (enum member_contents), described in @what ("is a unit of
 * array 'X' (hashcode H)", "holds a filesystem or other signature (ext4)",
 * ...), or a negative errno (logged).
 */
int member_contents(struct rt_unit *u, const uint8_t *own_array, char *what, size_t len);

/* A fresh unit descriptor (new UUID and hashcode) for slot @slot with geometry @g. */
void member_desc_init(struct rt_unit_desc *d, uint32_t slot, uint64_t length,
		      const struct rt_geometry *g);

/*
 * The one way a superblock update reaches an array's units: every unit gets
 * @shared (array descriptor, role table, events, state) with its own unit
 * descriptor @own[i]. Callers bump shared->events first.
 *
 * Crash-atomic across units (raidtool-format(5), "Update protocol"): every
 * superblock is checked before the first is written; units are written in
 * ascending order of @events (each one's events on disk; 0 for a new unit;
 * NULL: all equal), and a unit lagging behind @prev (the freshest
 * superblock, which an interrupted update left on some units only) gets
 * @prev first. @events is updated as units are written. Stops at the first
 * failing unit.
 */
int member_write_sb_all(struct rt_unit *const *units, const struct rt_unit_desc *own,
			uint64_t *events, size_t n, const struct rt_sb *prev,
			const struct rt_sb *shared);

/*
 * Open @path (RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_ATTACH, and @flags) as a
 * new member of the array @sb describes and check it as member_open does (big
 * enough; holding no filesystem, signature or superblock unless @force; a
 * superblock of the array @own_array is a stale former member's and
 * accepted). It takes slot @idx of @sb: a role (REBUILDING, recovery offset
 * 0) when @idx < n_devices, else a spare at the end of the table. Fills
 * @own with its fresh unit descriptor; writes nothing.
 */
int member_prepare(const char *path, struct rt_sb *sb, uint32_t idx, unsigned flags, bool force,
		   const uint8_t *own_array, struct rt_unit **out, struct rt_unit_desc *own);

#endif
