/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_LAYOUT_H
#define RAIDTOOL_LAYOUT_H

/*
 * Logical array offset <-> (role, offset in that unit's data area, parity
 * role). Pure math, no I/O. Offsets and lengths are bytes. The layouts
 * (linear, raid0, raid1, raid5 left-symmetric) are documented with worked
 * examples in man/raidtool-format.5.
 */
#include <stdint.h>
#include <raidtool/format.h>

#define LAYOUT_NO_ROLE UINT32_MAX

struct layout {
	int32_t level;
	uint32_t n;			/* roles */
	uint32_t chunk;			/* bytes, power of two */
	uint64_t unit_size;		/* data bytes used on every role (0, 1, 5) */
	uint64_t role_size[RT_MAX_UNITS];	/* linear: each role's data bytes */
	uint64_t size;			/* array bytes */
};

/*
 * @role_data_size: the data area of each role, in bytes. Every level uses
 * whole chunks; raid0/1/5 use the smallest role's size on every role.
 * -EINVAL for a bad level, role count or chunk.
 */
int layout_init(struct layout *l, int32_t level, uint32_t n, uint32_t chunk,
		const uint64_t *role_data_size);

/* One piece of a request; never crosses a chunk boundary. */
struct layout_extent {
	uint32_t role;			/* unit holding the data (raid1: role 0) */
	uint64_t offset;		/* byte offset in that role's data area */
	uint64_t len;			/* bytes mapped */
	uint64_t stripe;		/* chunk row (raid0/5); chunk index (linear) */
	uint32_t data_index;		/* the chunk's position among the stripe's data */
	uint32_t parity_role;		/* raid5: the stripe's parity unit, else LAYOUT_NO_ROLE */
};

/*
 * Map [logical, logical + len) from its start to the end of the chunk it
 * starts in (or the end of the request). -ERANGE past the array's end.
 */
int layout_map(const struct layout *l, uint64_t logical, uint64_t len,
	       struct layout_extent *ext);

/*
 * The reverse: the logical offset stored at @offset on @role.
 * -ENOENT when that place holds raid5 parity, -ERANGE outside the data.
 */
int layout_unmap(const struct layout *l, uint32_t role, uint64_t offset,
		 uint64_t *logical);

/* Roles holding data in a stripe (raid0: n, raid5: n - 1, raid1/linear: 1). */
uint32_t layout_data_roles(const struct layout *l);

/* raid5 left-symmetric: the parity role of @stripe, the role of data chunk @k. */
uint32_t layout_raid5_parity_role(const struct layout *l, uint64_t stripe);
uint32_t layout_raid5_data_role(const struct layout *l, uint64_t stripe, uint32_t k);

#endif
