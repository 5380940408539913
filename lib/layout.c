/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Array layouts: logical array offset <-> (role, offset in the role's data
 * area). Pure arithmetic; no I/O, no logging.
 *
 * linear  roles concatenated in role order, each rounded down to whole chunks
 * raid0   chunks round-robin over the roles
 * raid1   every role holds the whole array
 * raid5   md's left-symmetric layout (ALGORITHM_LEFT_SYMMETRIC): in stripe s
 *         the parity sits on role (n - 1) - (s % n) and data chunk k of the
 *         stripe on role (parity + 1 + k) % n
 *
 * The layouts are described with worked examples in man/raidtool-format.5.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <raidtool/layout.h>

static bool is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

int layout_init(struct layout *l, int32_t level, uint32_t n, uint32_t chunk,
		const uint64_t *role_data_size)
{
	uint64_t min_size, usable, size = 0;
	int min_units;
	uint32_t r;

	if (!l || !role_data_size)
		return -EINVAL;
	min_units = sb_min_units(level);
	if (min_units < 0)
		return -EINVAL;
	if (n < (uint32_t)min_units || n > RT_MAX_UNITS)
		return -EINVAL;
	if (!is_pow2(chunk) || chunk < RT_MIN_CHUNK || chunk > RT_MAX_CHUNK)
		return -EINVAL;

	memset(l, 0, sizeof(*l));
	l->level = level;
	l->n = n;
	l->chunk = chunk;

	if (level == RT_LEVEL_LINEAR) {
		for (r = 0; r < n; r++) {
			usable = role_data_size[r] & ~((uint64_t)chunk - 1);
			l->role_size[r] = usable;
			if (__builtin_add_overflow(size, usable, &size))
				return -EINVAL;
		}
		l->unit_size = 0;
		l->size = size;
		return size ? 0 : -EINVAL;
	}

	min_size = role_data_size[0];
	for (r = 1; r < n; r++)
		if (role_data_size[r] < min_size)
			min_size = role_data_size[r];
	usable = min_size & ~((uint64_t)chunk - 1);
	if (usable == 0)
		return -EINVAL;
	for (r = 0; r < n; r++)
		l->role_size[r] = usable;
	l->unit_size = usable;

	switch (level) {
	case RT_LEVEL_0:
		if (__builtin_mul_overflow(usable, (uint64_t)n, &size))
			return -EINVAL;
		break;
	case RT_LEVEL_1:
		size = usable;
		break;
	case RT_LEVEL_5:
		if (__builtin_mul_overflow(usable, (uint64_t)(n - 1), &size))
			return -EINVAL;
		break;
	}
	l->size = size;
	return 0;
}

uint32_t layout_data_roles(const struct layout *l)
{
	switch (l->level) {
	case RT_LEVEL_0:
		return l->n;
	case RT_LEVEL_5:
		return l->n - 1;
	default:
		return 1;
	}
}

uint32_t layout_raid5_parity_role(const struct layout *l, uint64_t stripe)
{
	if (l->level != RT_LEVEL_5 || l->n < 2)
		return LAYOUT_NO_ROLE;
	return (l->n - 1) - (uint32_t)(stripe % l->n);
}

uint32_t layout_raid5_data_role(const struct layout *l, uint64_t stripe, uint32_t k)
{
	uint32_t p;

	if (l->level != RT_LEVEL_5 || l->n < 2 || k >= l->n - 1)
		return LAYOUT_NO_ROLE;
	p = layout_raid5_parity_role(l, stripe);
	return (p + 1 + k) % l->n;
}

int layout_map(const struct layout *l, uint64_t logical, uint64_t len,
	       struct layout_extent *ext)
{
	uint64_t chunk, cidx, within, room, start;
	uint32_t r, dr;

	if (!l || !ext || l->chunk == 0 || l->n == 0)
		return -EINVAL;
	if (len == 0 || logical >= l->size)
		return -ERANGE;

	chunk = l->chunk;
	cidx = logical / chunk;
	within = logical % chunk;
	room = chunk - within;	/* sizes are whole chunks: also <= size - logical */

	ext->len = len < room ? len : room;
	ext->parity_role = LAYOUT_NO_ROLE;
	ext->data_index = 0;

	switch (l->level) {
	case RT_LEVEL_LINEAR:
		start = 0;
		for (r = 0; r < l->n; r++) {
			if (logical - start < l->role_size[r])
				break;
			start += l->role_size[r];
		}
		if (r == l->n)
			return -ERANGE;	/* inconsistent struct */
		ext->role = r;
		ext->offset = logical - start;
		ext->stripe = cidx;
		return 0;
	case RT_LEVEL_0:
		ext->role = (uint32_t)(cidx % l->n);
		ext->stripe = cidx / l->n;
		ext->offset = ext->stripe * chunk + within;
		ext->data_index = ext->role;
		return 0;
	case RT_LEVEL_1:
		ext->role = 0;
		ext->offset = logical;
		ext->stripe = cidx;
		return 0;
	case RT_LEVEL_5:
		dr = l->n - 1;
		ext->stripe = cidx / dr;
		ext->data_index = (uint32_t)(cidx % dr);
		ext->parity_role = layout_raid5_parity_role(l, ext->stripe);
		ext->role = (ext->parity_role + 1 + ext->data_index) % l->n;
		ext->offset = ext->stripe * chunk + within;
		return 0;
	default:
		return -EINVAL;
	}
}

int layout_unmap(const struct layout *l, uint32_t role, uint64_t offset,
		 uint64_t *logical)
{
	uint64_t chunk, stripe, within, start;
	uint32_t r, p, k;

	if (!l || !logical || l->chunk == 0)
		return -EINVAL;
	if (role >= l->n)
		return -EINVAL;
	if (offset >= l->role_size[role])
		return -ERANGE;

	chunk = l->chunk;
	stripe = offset / chunk;
	within = offset % chunk;

	switch (l->level) {
	case RT_LEVEL_LINEAR:
		start = 0;
		for (r = 0; r < role; r++)
			start += l->role_size[r];
		*logical = start + offset;
		return 0;
	case RT_LEVEL_0:
		*logical = (stripe * l->n + role) * chunk + within;
		return 0;
	case RT_LEVEL_1:
		*logical = offset;
		return 0;
	case RT_LEVEL_5:
		p = layout_raid5_parity_role(l, stripe);
		if (role == p)
			return -ENOENT;
		k = (role + l->n - p - 1) % l->n;
		*logical = (stripe * (l->n - 1) + k) * chunk + within;
		return 0;
	default:
		return -EINVAL;
	}
}
