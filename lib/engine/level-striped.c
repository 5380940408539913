/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * linear and raid0: a write is its unit writes and nothing else; a
 * request that needs a faulty role fails before any I/O.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/unit.h>

#include "internal.h"

/* Nothing to spare: every role is needed. */
static bool striped_tolerates(const struct rt_engine *e, uint64_t m)
{
	return m == 0;
}

/*
 * linear and raid0: each chunk piece to its unit. With a faulty role a
 * write that needs it fails before writing anything.
 */
static int striped_write(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			 uint64_t a0, uint64_t a1, uint64_t m, uint64_t rb)
{
	struct layout_extent ext;
	uint64_t pos;
	int ret;

	for (pos = a0; m && pos < a1; pos += ext.len) {
		ret = layout_map(&e->layout, pos, a1 - pos, &ext);
		if (ret)
			return ret;
		if (m & role_bit(ext.role))
			return -EIO;
	}
	for (pos = a0; pos < a1; pos += ext.len) {
		ret = layout_map(&e->layout, pos, a1 - pos, &ext);
		if (ret)
			return ret;
		ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.role, data + (pos - a0),
				 ext.offset, ext.len);
		if (ret)
			return ret;
	}
	return ctx_run_ios(e, c);
}

/* Each extent on its role's unit. */
static int striped_zero(struct rt_engine *e, uint64_t first, uint64_t last)
{
	uint64_t W = e->lock_unit, pos, end = (last + 1) * W;
	struct layout_extent ext;
	int ret = 0;

	for (pos = first * W; pos < end && !ret; pos += ext.len) {
		ret = layout_map(&e->layout, pos, end - pos, &ext);
		if (!ret)
			ret = unit_zero_range(e->unit[ext.role], e->data_offset + ext.offset, ext.len);
	}
	return ret;
}

/* Each extent to its role; a write that needs a faulty role is for engine_write to fail. */
static int striped_map_write(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
			     uint64_t off, uint64_t len, uint64_t m, uint64_t rb)
{
	struct layout_extent ext;
	uint64_t pos;
	int ret;

	if (m)
		return -EAGAIN;
	for (pos = off; pos < off + len; pos += ext.len) {
		ret = layout_map(&e->layout, pos, off + len - pos, &ext);
		if (!ret)
			ret = engine_aio_add(e, ar, true, ext.role, ext.offset, buf + (pos - off),
					     ext.len);
		if (ret)
			return ret;
	}
	return 0;
}

const struct engine_level_ops engine_striped_ops = {
	.name = "striped",
	.tolerates = striped_tolerates,
	.read_role = engine_extent_role,
	.write = striped_write,
	.map_write = striped_map_write,
	.zero = striped_zero,
};
