/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rt-sbedit: change fields of a unit's superblock behind raidtool's back,
 * for tests that need a unit raidtool would never write (a role table that
 * contradicts the others, events from the future). Both copies get the
 * edit, re-encoded by the library so that the CRC stays right.
 *
 *   rt-sbedit DEV FIELD=VALUE...
 *
 * FIELD: events, state (clean|dirty|N), io_failed, unit.slot,
 *        unit.length, unit.data_offset, unit.data_size, unit.log_offset,
 *        unit.log_size, array.level, array.chunk_size, array.n_devices,
 *        array.region_size,
 *        array.n_slots, array.nblocks, array.blocksize,
 *        slot.N.state (empty|active|spare|faulty|missing|rebuilding|N),
 *        slot.N.hashcode (8 hex digits), slot.N.recovery_offset
 *
 * The result is written even when raidtool would refuse it (that is the
 * point: a crafted-superblock corpus), with a correct CRC.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <raidtool/format.h>

static int parse_state(const char *v, uint32_t *out)
{
	static const char *const names[] = { "empty", "active", "spare", "faulty", "missing",
					     "rebuilding" };
	char *end;

	for (uint32_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(v, names[i])) {
			*out = i;
			return 0;
		}
	if (!strcmp(v, "clean") || !strcmp(v, "dirty")) {
		*out = !strcmp(v, "dirty");
		return 0;
	}
	*out = (uint32_t)strtoul(v, &end, 0);
	return *v && !*end ? 0 : -EINVAL;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;

	*out = strtoull(v, &end, 0);
	return *v && !*end ? 0 : -EINVAL;
}

static int edit(struct rt_sb *sb, const char *field, const char *v)
{
	const struct {
		const char *name;
		uint64_t *p;
	} u64s[] = {
		{ "unit.length", &sb->unit.length }, { "unit.data_offset", &sb->unit.data_offset },
		{ "unit.data_size", &sb->unit.data_size }, { "unit.log_offset", &sb->unit.log_offset },
		{ "unit.log_size", &sb->unit.log_size }, { "array.nblocks", &sb->array.nblocks },
		{ "array.region_size", &sb->array.region_size },
	};
	const struct {
		const char *name;
		uint32_t *p;
	} u32s[] = {
		{ "array.chunk_size", &sb->array.chunk_size },
		{ "array.n_devices", &sb->array.n_devices },
		{ "array.n_slots", &sb->array.n_slots },
		{ "array.blocksize", &sb->array.blocksize },
	};
	unsigned n;
	int off = 0;
	uint64_t x;
	uint32_t st;

	if (!strcmp(field, "events"))
		return parse_u64(v, &sb->events);
	if (!strcmp(field, "io_failed"))
		return parse_u64(v, &sb->io_failed);
	if (!strcmp(field, "state"))
		return parse_state(v, &sb->state);
	for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++)
		if (!strcmp(field, u64s[i].name))
			return parse_u64(v, u64s[i].p);
	for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
		if (!strcmp(field, u32s[i].name)) {
			if (parse_u64(v, &x) < 0 || x > UINT32_MAX)
				return -EINVAL;
			*u32s[i].p = (uint32_t)x;
			return 0;
		}
	}
	if (!strcmp(field, "array.level")) {
		if (parse_u64(v, &x) < 0)
			return -EINVAL;
		sb->array.level = (int32_t)x;
		return 0;
	}
	if (!strcmp(field, "unit.slot")) {
		if (parse_u64(v, &x) < 0)
			return -EINVAL;
		sb->unit.slot = (uint32_t)x;
		return 0;
	}
	if (sscanf(field, "slot.%u.%n", &n, &off) != 1 || !off || n >= RT_MAX_UNITS)
		return -EINVAL;
	field += off;
	if (!strcmp(field, "state")) {
		if (parse_state(v, &st) < 0)
			return -EINVAL;
		sb->slots[n].state = st;
		return 0;
	}
	if (!strcmp(field, "hashcode"))
		return sb_hashcode_parse(v, &sb->slots[n].hashcode);
	if (!strcmp(field, "recovery_offset"))
		return parse_u64(v, &sb->slots[n].recovery_offset);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct rt_sb sb, other;
	uint8_t *buf;
	int fd, r, copy;

	if (argc < 3) {
		fprintf(stderr, "usage: rt-sbedit DEV FIELD=VALUE...\n");
		return 2;
	}
	if (posix_memalign((void **)&buf, 4096, RT_SB_SIZE))
		return 1;
	fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0)
		fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	/* Copy 0 tells where copy 1 is; the fresher valid copy is the one edited. */
	if (pread(fd, buf, RT_SB_SIZE, RT_SB0_OFFSET) != RT_SB_SIZE ||
	    sb_decode(buf, RT_SB_SIZE, &sb) < 0) {
		fprintf(stderr, "rt-sbedit: %s: no valid superblock copy 0\n", argv[1]);
		return 1;
	}
	if (pread(fd, buf, RT_SB_SIZE, (off_t)sb.unit.sb_offset[1]) == RT_SB_SIZE &&
	    sb_decode(buf, RT_SB_SIZE, &other) == 0 && other.events > sb.events)
		sb = other;
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq) {
			fprintf(stderr, "rt-sbedit: '%s': not FIELD=VALUE\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		if (edit(&sb, argv[i], eq + 1) < 0) {
			fprintf(stderr, "rt-sbedit: '%s=%s': unknown field or bad value\n", argv[i],
				eq + 1);
			return 2;
		}
	}
	for (copy = 0; copy < 2; copy++) {
		r = sb_encode_unchecked(&sb, (unsigned)copy, buf);
		if (r < 0) {
			fprintf(stderr, "rt-sbedit: the edited superblock does not encode: %s\n",
				strerror(-r));
			return 1;
		}
		if (pwrite(fd, buf, RT_SB_SIZE, (off_t)sb.unit.sb_offset[copy]) != RT_SB_SIZE ||
		    fsync(fd) < 0) {
			perror("rt-sbedit: write");
			return 1;
		}
	}
	close(fd);
	free(buf);
	return 0;
}
