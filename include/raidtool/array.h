/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ARRAY_H
#define RAIDTOOL_ARRAY_H

/*
 * Administrative operations on inactive arrays: the driver's create.device,
 * add.unit, change.name and change.hash, and wiping a unit.
 * Each checks everything before it writes anything: a refusal leaves every
 * unit byte for byte as it was.
 */
#include <stdbool.h>
#include <stddef.h>
#include <raidtool/format.h>

struct rt_create_params {
	const char *name;
	const char *desc;		/* may be NULL */
	int32_t level;
	uint32_t chunk_size;		/* 0: RT_DEFAULT_CHUNK */
	uint32_t blocksize;		/* 0: RT_DEFAULT_BLOCKSIZE */
	uint64_t region_size;		/* 0: RT_DEFAULT_REGION */
	bool force;			/* overwrite foreign signatures */
	/*
	 * raid1/raid5: the units are known to hold zeros (so parity and
	 * copies already agree): no initial sync. Otherwise the array is
	 * created unsynced (RT_FEATURE_COMPAT_UNSYNCED, every region dirty in
	 * the log) and syncs in the background at its first activation.
	 */
	bool assume_clean;
};

/* Write a fresh superblock to each of @units; the result's descriptor in @out. */
int array_create(const struct rt_create_params *p, const char *const *units,
		 size_t n_units, struct rt_sb *out);

/*
 * Add units to an inactive array: into missing roles first, then as spares.
 * The array's new superblock in @out, each new unit's descriptor in
 * @added[i] (n_units of them; may be NULL).
 */
int array_add(const char *id, const char *const *units, size_t n_units,
	      bool force, struct rt_sb *out, struct rt_unit_desc *added);

/* 0 when @name may name an array, else -errno with why logged (the one wording). */
int array_check_name(const char *name);

/* Rename (change.name). */
int array_rename(const char *id, const char *new_name);

/* Change the hashcode (change.hash); @new_hash NULL: back to the UUID's. */
int array_rehash(const char *id, const uint32_t *new_hash, uint32_t *result);

/*
 * Wipe raidtool's superblocks from a unit that is not in a running array.
 * Without @force the unit must carry a superblock (-ENODATA otherwise);
 * with it both copies' places are wiped whatever they hold.
 */
int array_zero_unit(const char *path, bool force);

/* What a unit holds that writing raidtool's superblock (or wiping it) destroys. */
enum rt_unit_contents {
	RT_CONTENTS_NONE = 0,		/* nothing known */
	RT_CONTENTS_RAIDTOOL = 1,	/* a valid raidtool superblock: a unit of an array */
	RT_CONTENTS_DAMAGED = 2,	/* a raidtool superblock that does not decode */
	RT_CONTENTS_SIGNATURE = 3,	/* a filesystem or other signature libblkid knows */
};

/*
 * What @path holds (enum rt_unit_contents), described in @what as create
 * and add word a refusal ("is a unit of array 'X' (hashcode H)", "holds a
 * filesystem or other signature (ext4)"); read only. A negative errno
 * when it cannot be opened (not logged) or probed.
 */
int array_unit_contents(const char *path, char *what, size_t len);

struct rt_unit;

#endif
