/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of loopdev, unit and scan against real loop devices on sparse temp
 * files. Needs root and /dev/loop-control: skipped without them, failed
 * without them when RAIDTOOL_TEST_REQUIRE_ROOT=1. Every loop device a test
 * attaches is detached in the teardown, whatever happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <uuid/uuid.h>

#include <raidtool/format.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>
#include <raidtool/util.h>
#include "../../lib/scan-internal.h"	/* the scan's grouping, read directly */

#define MiB (1024ull * 1024ull)
#define UNIT_SIZE (64 * MiB)
#define MAX_UNITS 8
#define MAX_FILES 8
#define MAX_LOOPS 4

static const char *skip_reason;

/* One 4 KiB block fit for O_DIRECT, owned by the group so that a failed assertion leaks nothing. */
static uint8_t *scratch;

struct fixture {
	char dir[64];
	struct rt_unit *units[MAX_UNITS];
	char files[MAX_FILES][PATH_MAX];
	size_t n_files;
	char loops[MAX_LOOPS][64];	/* attached with loopdev_attach directly */
	size_t n_loops;
};

/* The library's messages, kept so that tests can check what was reported. */
static char log_text[8192];

static void capture_log(int level, const char *msg, void *usrptr)
{
	size_t len = strlen(log_text);

	(void)usrptr;
	snprintf(log_text + len, sizeof(log_text) - len, "%d:%s\n", level, msg);
}

static void log_reset(void)
{
	log_text[0] = '\0';
}

/*
 * cmocka's skip() has no reason; print one as a TAP comment. Under
 * RAIDTOOL_TEST_REQUIRE_ROOT=1 a missing environment is a failure.
 */
#define SKIP_BECAUSE(reason)                                                       \
	do {                                                                       \
		const char *req = getenv("RAIDTOOL_TEST_REQUIRE_ROOT");            \
		if (req && !strcmp(req, "1"))                                      \
			fail_msg("cannot run: %s (and RAIDTOOL_TEST_REQUIRE_ROOT=1)", \
				 (reason));                                        \
		print_message("# skip: %s\n", (reason));                           \
		skip();                                                            \
	} while (0)

#define REQUIRE_ENV()                                                              \
	do {                                                                       \
		if (skip_reason)                                                   \
			SKIP_BECAUSE(skip_reason);                                 \
	} while (0)

static int group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip_reason = "needs root (loop devices)";
	else if (access("/dev/loop-control", F_OK) != 0)
		skip_reason = "no /dev/loop-control";
	rt_set_log(capture_log, NULL);
	if (posix_memalign((void **)&scratch, 4096, RT_SB_SIZE))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(scratch);
	scratch = NULL;
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/raidtool-test-unit.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	log_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < MAX_UNITS; i++)
		unit_close(f->units[i]);
	for (size_t i = 0; i < f->n_loops; i++)
		loopdev_detach(f->loops[i]);
	for (size_t i = 0; i < f->n_files; i++)
		unlink(f->files[i]);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A sparse file of @size bytes in the test's directory, removed in teardown. */
static const char *make_file(struct fixture *f, const char *name, uint64_t size)
{
	char *path;
	int fd;

	assert_true(f->n_files < MAX_FILES);
	assert_true(strlen(f->dir) + 1 + strlen(name) < PATH_MAX);
	path = f->files[f->n_files];
	strcpy(path, f->dir);
	strcat(path, "/");
	strcat(path, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	f->n_files++;
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	return path;
}

/* Open into slot @i of the fixture so that teardown closes it. */
static struct rt_unit *open_unit(struct fixture *f, size_t i, const char *path, unsigned flags)
{
	assert_true(i < MAX_UNITS);
	assert_null(f->units[i]);
	assert_int_equal(unit_open(path, flags, &f->units[i]), 0);
	assert_non_null(f->units[i]);
	return f->units[i];
}

static void close_unit(struct fixture *f, size_t i)
{
	unit_close(f->units[i]);
	f->units[i] = NULL;
}

#define RW (RT_UNIT_ATTACH | RT_UNIT_WRITE | RT_UNIT_EXCL)

/* The shared part of an array's superblock: descriptor and role table. */
static void array_init(struct rt_sb *sb, const char *name, int32_t level, uint32_t n_devices)
{
	memset(sb, 0, sizeof(*sb));
	sb->version = RT_SB_VERSION;
	sb->events = 1;
	sb->state = RT_ARRAY_CLEAN;
	sb->utime = (uint64_t)time(NULL);
	snprintf(sb->array.name, sizeof(sb->array.name), "%s", name);
	uuid_generate(sb->array.uuid);
	sb->array.hashcode = sb_hashcode_from_uuid(sb->array.uuid);
	sb->array.level = level;
	sb->array.layout = RT_LAYOUT_LEFT_SYMMETRIC;
	sb->array.chunk_size = RT_DEFAULT_CHUNK;
	sb->array.blocksize = RT_DEFAULT_BLOCKSIZE;
	sb->array.n_devices = n_devices;
	sb->array.n_slots = n_devices;
	sb->array.ctime = sb->utime;
	sb->array.region_size = RT_DEFAULT_REGION;
}

/* Give role @slot to a new unit of @length bytes; @sb->unit becomes its descriptor. */
static void role_init(struct rt_sb *sb, uint32_t slot, uint64_t length)
{
	struct rt_unit_desc *u = &sb->unit;
	struct rt_geometry g;

	assert_int_equal(sb_geometry(length, sb->array.chunk_size, &g), 0);
	memset(u, 0, sizeof(*u));
	uuid_generate(u->uuid);
	u->hashcode = sb_hashcode_from_uuid(u->uuid);
	u->slot = slot;
	u->length = length;
	u->sb_offset[0] = g.sb_offset[0];
	u->sb_offset[1] = g.sb_offset[1];
	u->log_offset = g.log_offset;
	u->log_size = g.log_size;
	u->data_offset = g.data_offset;
	u->data_size = g.data_size;
	memcpy(sb->slots[slot].uuid, u->uuid, RT_UUID_SIZE);
	sb->slots[slot].hashcode = u->hashcode;
	sb->slots[slot].state = RT_SLOT_ACTIVE;
	sb->slots[slot].data_size = g.data_size;
	/* Every role of these tests has the same size: the array is sized on it. */
	if (sb->array.level == RT_LEVEL_1)
		sb->array.nblocks = g.data_size / sb->array.blocksize;
	else
		sb->array.nblocks = g.data_size / sb->array.blocksize * sb->array.n_devices;
}

/* A one-unit linear array's superblock for a unit of @length bytes. */
static void single_sb(struct rt_sb *sb, const char *name, uint64_t length)
{
	array_init(sb, name, RT_LEVEL_LINEAR, 1);
	role_init(sb, 0, length);
	assert_int_equal(sb_validate(sb), 0);
}

static uint8_t *block(void)
{
	return scratch;
}

/* Flip one byte inside a superblock copy: its checksum no longer matches. */
static void damage_copy(struct rt_unit *u, uint64_t off)
{
	uint8_t *buf = block();

	assert_int_equal(unit_pread(u, buf, RT_SB_SIZE, off), 0);
	buf[130] ^= 0x5a;	/* inside the array name */
	assert_int_equal(unit_pwrite(u, buf, RT_SB_SIZE, off), 0);
	assert_int_equal(unit_flush(u), 0);
}

static void fill_garbage(struct rt_unit *u, uint64_t off)
{
	uint8_t *buf = block();

	for (size_t i = 0; i < RT_SB_SIZE; i++)
		buf[i] = (uint8_t)(i * 7 + 13);
	assert_int_equal(unit_pwrite(u, buf, RT_SB_SIZE, off), 0);
}

static void write_copy(struct rt_unit *u, const struct rt_sb *sb, unsigned copy)
{
	uint8_t *buf = block();

	assert_int_equal(sb_encode(sb, copy, buf), 0);
	assert_int_equal(unit_pwrite(u, buf, RT_SB_SIZE, sb->unit.sb_offset[copy]), 0);
	assert_int_equal(unit_flush(u), 0);
}

static bool same_sb(const struct rt_sb *a, const struct rt_sb *b)
{
	return a->events == b->events && !strcmp(a->array.name, b->array.name) &&
	       !memcmp(a->array.uuid, b->array.uuid, RT_UUID_SIZE) &&
	       a->array.hashcode == b->array.hashcode &&
	       !memcmp(a->unit.uuid, b->unit.uuid, RT_UUID_SIZE) &&
	       a->unit.slot == b->unit.slot && a->unit.length == b->unit.length &&
	       a->unit.sb_offset[1] == b->unit.sb_offset[1] &&
	       a->unit.data_offset == b->unit.data_offset &&
	       a->unit.data_size == b->unit.data_size;
}

static void unique_name(char *buf, size_t len, const char *tag)
{
	uint8_t u[RT_UUID_SIZE];

	uuid_generate(u);
	snprintf(buf, len, "rtut-%d-%02x%02x%02x-%s", (int)getpid(), u[0], u[1], u[2], tag);
}

/* --- loopdev ------------------------------------------------------------- */

static void test_loopdev_attach_find_detach(void **state)
{
	struct fixture *f = *state;
	char dev[64], found[64], backing[PATH_MAX], real[PATH_MAX];
	const char *file;
	struct stat st;

	REQUIRE_ENV();
	file = make_file(f, "loop.img", 16 * MiB);
	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), -ENOENT);
	assert_int_equal(loopdev_attach(file, 0, 0, dev, sizeof(dev)), 0);
	snprintf(f->loops[f->n_loops++], sizeof(f->loops[0]), "%s", dev);
	assert_int_equal(stat(dev, &st), 0);
	assert_true(S_ISBLK(st.st_mode));

	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), 0);
	assert_string_equal(found, dev);
	assert_int_equal(loopdev_backing_file(dev, backing, sizeof(backing)), 0);
	assert_non_null(realpath(file, real));
	assert_string_equal(backing, real);
	/* Not a loop device at all. */
	assert_int_equal(loopdev_backing_file("/dev/null", backing, sizeof(backing)), -ENOENT);

	assert_int_equal(loopdev_detach(dev), 0);
	f->n_loops--;
	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), -ENOENT);
}

/* "1" or "0" from /sys/block/loopN/loop/autoclear; -1 when unbound. */
static int loop_autoclear(const char *dev)
{
	char path[128], v[4] = "";
	FILE *fp;

	snprintf(path, sizeof(path), "/sys/block/%s/loop/autoclear", strrchr(dev, '/') + 1);
	fp = fopen(path, "re");
	if (!fp)
		return -1;
	if (!fgets(v, sizeof(v), fp))
		v[0] = '\0';
	fclose(fp);
	return v[0] == '1';
}

/*
 * loopdev_clear_sole with a second opener takes its request back (still
 * bound, no autoclear left behind, the other opener's close detaches
 * nothing); alone, no later open succeeds and the last close detaches.
 */
static void test_loopdev_clear_sole(void **state)
{
	struct fixture *f = *state;
	char dev[64], backing[PATH_MAX];
	const char *file;
	int fd, other, r;

	REQUIRE_ENV();
	file = make_file(f, "sole.img", 16 * MiB);
	assert_int_equal(loopdev_attach(file, 0, 0, dev, sizeof(dev)), 0);
	snprintf(f->loops[f->n_loops++], sizeof(f->loops[0]), "%s", dev);
	fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);
	assert_true(fd >= 0);
	other = open(dev, O_RDONLY | O_CLOEXEC);
	assert_true(other >= 0);

	assert_int_equal(loopdev_clear_sole(fd), -EBUSY);
	assert_int_equal(loop_autoclear(dev), 0);
	close(other);
	assert_int_equal(loopdev_backing_file(dev, backing, sizeof(backing)), 0);

	/* udev may still be probing the new device: its open passes. */
	for (int tries = 0; (r = loopdev_clear_sole(fd)) == -EBUSY && tries < 100; tries++)
		rt_sleep_ms(20);
	assert_int_equal(r, 0);
	/* Before Linux 6.11 the device is detached at once, not in rundown. */
	if (loopdev_backing_file(dev, backing, sizeof(backing)) == 0) {
		other = open(dev, O_RDONLY | O_CLOEXEC);
		if (other >= 0)
			close(other);
		assert_int_equal(other < 0 ? errno : 0, ENXIO);
	}
	close(fd);
	assert_int_equal(loopdev_backing_file(dev, backing, sizeof(backing)), -ENOENT);
	f->n_loops--;
}

static void test_loopdev_read_only(void **state)
{
	struct fixture *f = *state;
	char dev[64];
	const char *file;
	int fd, ro = 0;
	int bsz = 0;

	REQUIRE_ENV();
	file = make_file(f, "ro.img", 16 * MiB);
	assert_int_equal(loopdev_attach(file, RT_LOOP_READ_ONLY, 4096, dev, sizeof(dev)), 0);
	snprintf(f->loops[f->n_loops++], sizeof(f->loops[0]), "%s", dev);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, BLKROGET, &ro), 0);
	assert_int_equal(ro, 1);
	assert_int_equal(ioctl(fd, BLKSSZGET, &bsz), 0);
	assert_int_equal(bsz, 4096);
	close(fd);
}

/* --- unit_open ----------------------------------------------------------- */

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct rt_unit *u = NULL;
	char missing[PATH_MAX];
	const char *file;

	REQUIRE_ENV();
	snprintf(missing, sizeof(missing), "%s/no-such-file", f->dir);
	assert_int_equal(unit_open(missing, RW, &u), -ENOENT);
	assert_null(u);
	file = make_file(f, "plain.img", 16 * MiB);
	assert_int_equal(unit_open(file, RT_UNIT_WRITE, &u), -ENOTBLK);
	assert_int_equal(unit_open(f->dir, RW, &u), -ENOTBLK);
	assert_int_equal(unit_open("/dev/null", 0, &u), -ENOTBLK);
	assert_null(u);
}

static void test_open_attach_reuse(void **state)
{
	struct fixture *f = *state;
	struct rt_unit *a, *b;
	char found[64];
	const char *file;

	REQUIRE_ENV();
	file = make_file(f, "reuse.img", UNIT_SIZE);
	a = open_unit(f, 0, file, RT_UNIT_ATTACH | RT_UNIT_WRITE);
	assert_int_equal(unit_size(a), UNIT_SIZE);
	assert_string_equal(unit_path(a), file);
	assert_int_equal(unit_fd(a) >= 0, 1);
	b = open_unit(f, 1, file, RT_UNIT_ATTACH);
	assert_string_equal(unit_devname(a), unit_devname(b));
	assert_true(unit_devno(a) == unit_devno(b));

	/* b only reused a's loop device: closing it leaves the device attached. */
	close_unit(f, 1);
	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), 0);
	close_unit(f, 0);
	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), -ENOENT);

	/* unit_keep_loop: the loop device outlives the unit. */
	a = open_unit(f, 0, file, RW);
	snprintf(f->loops[f->n_loops++], sizeof(f->loops[0]), "%s", unit_devname(a));
	unit_keep_loop(a);
	close_unit(f, 0);
	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), 0);
	assert_string_equal(found, f->loops[0]);
}

static void test_open_excl(void **state)
{
	struct fixture *f = *state;
	struct rt_unit *a, *u = NULL;
	char found[64];
	const char *file;

	REQUIRE_ENV();
	file = make_file(f, "excl.img", UNIT_SIZE);
	a = open_unit(f, 0, file, RW);
	assert_int_equal(unit_open(file, RW, &u), -EBUSY);
	assert_int_equal(unit_open(unit_devname(a), RT_UNIT_EXCL, &u), -EBUSY);
	assert_null(u);
	/* The failed opens did not attach anything, so they detached nothing. */
	assert_int_equal(loopdev_find_by_backing(file, found, sizeof(found)), 0);
	assert_string_equal(found, unit_devname(a));
	/* Sharing without O_EXCL is what scanning does. */
	open_unit(f, 1, unit_devname(a), 0);
}

/* --- superblocks ---------------------------------------------------------- */

static void test_sb_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct rt_sb_status st;
	struct rt_sb sb, got;
	struct rt_unit *u;

	REQUIRE_ENV();
	u = open_unit(f, 0, make_file(f, "rt.img", UNIT_SIZE), RW);
	assert_int_equal(unit_read_sb(u, &got, &st), -ENODATA);
	assert_int_equal(st.chosen, -1);
	assert_int_equal(st.copy_err[0], -ENODATA);
	assert_int_equal(st.copy_err[1], -ENODATA);

	single_sb(&sb, "roundtrip", unit_size(u));
	assert_int_equal(sb.unit.sb_offset[1], UNIT_SIZE - RT_SB_SIZE);
	assert_int_equal(unit_write_sb(u, &sb), 0);
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_true(same_sb(&sb, &got));
	assert_int_equal(st.chosen, 0);
	assert_int_equal(st.copy_err[0], 0);
	assert_int_equal(st.copy_err[1], 0);
	assert_int_equal(st.copy_events[0], 1);
	assert_int_equal(st.copy_events[1], 1);
	assert_null(strstr(log_text, "copy"));	/* nothing to warn about */

	/* A fresh open (as scanning does) sees the same. */
	close_unit(f, 0);
	u = open_unit(f, 0, f->files[0], RT_UNIT_ATTACH);
	assert_int_equal(unit_read_sb(u, &got, NULL), 0);
	assert_true(same_sb(&sb, &got));
}

static void test_sb_one_copy_bad(void **state)
{
	struct fixture *f = *state;
	struct rt_sb_status st;
	struct rt_sb sb, got;
	struct rt_unit *u;

	REQUIRE_ENV();
	u = open_unit(f, 0, make_file(f, "bad0.img", UNIT_SIZE), RW);
	single_sb(&sb, "onebad", unit_size(u));
	assert_int_equal(unit_write_sb(u, &sb), 0);

	damage_copy(u, RT_SB0_OFFSET);
	log_reset();
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_true(same_sb(&sb, &got));
	assert_int_equal(st.chosen, 1);
	assert_int_equal(st.copy_err[0], -EBADMSG);
	assert_int_equal(st.copy_err[1], 0);
	assert_non_null(strstr(log_text, "copy 0"));
	assert_non_null(strstr(log_text, "checksum"));

	/* Rewriting repairs it. */
	assert_int_equal(unit_write_sb(u, &sb), 0);
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_int_equal(st.copy_err[0], 0);

	/* And the other way round. */
	damage_copy(u, sb.unit.sb_offset[1]);
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_int_equal(st.chosen, 0);
	assert_int_equal(st.copy_err[1], -EBADMSG);
}

static void test_sb_both_bad(void **state)
{
	struct fixture *f = *state;
	struct rt_sb_status st;
	struct rt_sb sb, got;
	struct rt_unit *u;

	REQUIRE_ENV();
	u = open_unit(f, 0, make_file(f, "bad2.img", UNIT_SIZE), RW);
	single_sb(&sb, "bothbad", unit_size(u));
	assert_int_equal(unit_write_sb(u, &sb), 0);
	damage_copy(u, RT_SB0_OFFSET);
	damage_copy(u, sb.unit.sb_offset[1]);
	assert_int_equal(unit_read_sb(u, &got, &st), -EBADMSG);
	assert_int_equal(st.chosen, -1);
	assert_int_equal(st.copy_err[0], -EBADMSG);
	assert_int_equal(st.copy_err[1], -EBADMSG);

	/* Copy 0 gone entirely, copy 1 damaged: the damaged one is the news. */
	fill_garbage(u, RT_SB0_OFFSET);
	assert_int_equal(unit_read_sb(u, &got, &st), -EBADMSG);
	assert_int_equal(st.copy_err[0], -ENODATA);

	/* No magic anywhere: not a unit. */
	fill_garbage(u, sb.unit.sb_offset[1]);
	assert_int_equal(unit_read_sb(u, &got, &st), -ENODATA);
}

static void test_sb_higher_events_wins(void **state)
{
	struct fixture *f = *state;
	struct rt_sb_status st;
	struct rt_sb sb, got;
	struct rt_unit *u;

	REQUIRE_ENV();
	u = open_unit(f, 0, make_file(f, "ev.img", UNIT_SIZE), RW);
	single_sb(&sb, "events", unit_size(u));
	sb.events = 5;
	assert_int_equal(unit_write_sb(u, &sb), 0);

	sb.events = 6;
	write_copy(u, &sb, 1);
	log_reset();
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_int_equal(got.events, 6);
	assert_int_equal(st.chosen, 1);
	assert_int_equal(st.copy_events[0], 5);
	assert_int_equal(st.copy_events[1], 6);
	assert_non_null(strstr(log_text, "stale"));

	/* An update torn after copy 0: copy 0 is newer. */
	sb.events = 7;
	write_copy(u, &sb, 0);
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_int_equal(got.events, 7);
	assert_int_equal(st.chosen, 0);
}

static void test_sb_truncated_unit(void **state)
{
	struct fixture *f = *state;
	struct rt_sb_status st;
	struct rt_sb sb, got;
	struct rt_unit *u;
	const char *file;

	REQUIRE_ENV();
	file = make_file(f, "trunc.img", UNIT_SIZE);
	u = open_unit(f, 0, file, RW);
	single_sb(&sb, "truncated", unit_size(u));
	assert_int_equal(unit_write_sb(u, &sb), 0);
	close_unit(f, 0);

	assert_int_equal(truncate(file, (off_t)(48 * MiB)), 0);
	u = open_unit(f, 0, file, RW);
	assert_int_equal(unit_size(u), 48 * MiB);
	log_reset();
	assert_int_equal(unit_read_sb(u, &got, &st), 0);
	assert_true(same_sb(&sb, &got));
	assert_int_equal(st.chosen, 0);
	assert_int_equal(st.copy_err[1], -ENODATA);
	assert_non_null(strstr(log_text, "truncated"));

	/* Its offsets no longer fit this unit: refuse to write them. */
	assert_int_equal(unit_write_sb(u, &sb), -EINVAL);

	/* Too small for any copy. */
	close_unit(f, 0);
	assert_int_equal(truncate(file, 6 * 1024), 0);
	u = open_unit(f, 0, file, RW);
	assert_int_equal(unit_read_sb(u, &got, &st), -ENODATA);
	assert_int_equal(st.copy_err[0], -EINVAL);
	assert_int_equal(st.copy_err[1], -EINVAL);
}

static void test_sb_wipe(void **state)
{
	struct fixture *f = *state;
	struct rt_sb sb, got;
	struct rt_unit *u;
	uint8_t *buf = block();
	bool zero;

	REQUIRE_ENV();
	u = open_unit(f, 0, make_file(f, "wipe.img", UNIT_SIZE), RW);
	single_sb(&sb, "wiped", unit_size(u));
	assert_int_equal(unit_write_sb(u, &sb), 0);
	fill_garbage(u, RT_LOG_OFFSET + 4096);		/* log area */
	fill_garbage(u, sb.unit.data_offset);		/* data area */
	assert_int_equal(unit_wipe_sb(u), 0);
	assert_int_equal(unit_read_sb(u, &got, NULL), -ENODATA);

	assert_int_equal(unit_pread(u, buf, RT_SB_SIZE, RT_LOG_OFFSET + 4096), 0);
	zero = true;
	for (size_t i = 0; i < RT_SB_SIZE; i++)
		zero = zero && !buf[i];
	assert_true(zero);
	/* The data area is not raidtool's metadata: left alone. */
	assert_int_equal(unit_pread(u, buf, RT_SB_SIZE, sb.unit.data_offset), 0);
	assert_int_equal(buf[1], 20);
}

/* --- foreign signatures -------------------------------------------------- */

static int run_mkfs_ext4(const char *file)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", file, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void test_probe_signature(void **state)
{
	struct fixture *f = *state;
	char type[64] = "";
	const char *clean, *fs;
	struct rt_unit *u;
	int rc;

	REQUIRE_ENV();
	clean = make_file(f, "clean.img", UNIT_SIZE);
	u = open_unit(f, 0, clean, RW);
	assert_int_equal(unit_probe_signature(u, type, sizeof(type)), 0);

	fs = make_file(f, "ext4.img", UNIT_SIZE);
	rc = run_mkfs_ext4(fs);
	if (rc == 127)
		SKIP_BECAUSE("mkfs.ext4 not installed");
	assert_int_equal(rc, 0);
	u = open_unit(f, 1, fs, RW);
	assert_int_equal(unit_probe_signature(u, type, sizeof(type)), 1);
	assert_string_equal(type, "ext4");
	close_unit(f, 1);

	/* Through an O_DIRECT unit too (the probe must not read through it). */
	u = open_unit(f, 1, fs, RW | RT_UNIT_DIRECT);
	memset(type, 0, sizeof(type));
	assert_int_equal(unit_probe_signature(u, type, sizeof(type)), 1);
	assert_string_equal(type, "ext4");
}

static void test_direct_io(void **state)
{
	struct fixture *f = *state;
	struct rt_sb sb, got;
	struct rt_unit *u;

	REQUIRE_ENV();
	u = open_unit(f, 0, make_file(f, "direct.img", UNIT_SIZE), RW | RT_UNIT_DIRECT);
	single_sb(&sb, "direct", unit_size(u));
	assert_int_equal(unit_write_sb(u, &sb), 0);
	assert_int_equal(unit_read_sb(u, &got, NULL), 0);
	assert_true(same_sb(&sb, &got));
	assert_int_equal(unit_wipe_sb(u), 0);
	assert_int_equal(unit_read_sb(u, &got, NULL), -ENODATA);
}

/* --- scan ---------------------------------------------------------------- */

static const struct rt_scan_array *lookup_ok(const struct rt_scan *s, const char *id)
{
	const struct rt_scan_array *a = NULL;

	assert_int_equal(scan_lookup(s, id, &a), 0);
	assert_non_null(a);
	return a;
}

static void test_scan_groups(void **state)
{
	struct fixture *f = *state;
	struct rt_sb shared, sbs[2];
	const struct rt_scan_array *a, *b;
	const struct rt_scan_unit *su;
	struct rt_scan *s = NULL;
	struct rt_unit *u[2];
	char name[64], hash[16], real[PATH_MAX];

	REQUIRE_ENV();
	unique_name(name, sizeof(name), "m");
	u[0] = open_unit(f, 0, make_file(f, "m0.img", UNIT_SIZE), RW);
	u[1] = open_unit(f, 1, make_file(f, "m1.img", UNIT_SIZE), RW);
	array_init(&shared, name, RT_LEVEL_1, 2);
	for (uint32_t i = 0; i < 2; i++) {
		role_init(&shared, i, UNIT_SIZE);
		sbs[i] = shared;
	}
	for (int i = 0; i < 2; i++) {
		struct rt_unit_desc own = sbs[i].unit;

		sbs[i] = shared;
		sbs[i].unit = own;
		assert_int_equal(sb_validate(&sbs[i]), 0);
		assert_int_equal(unit_write_sb(u[i], &sbs[i]), 0);
	}

	assert_int_equal(scan_devices(&s), 0);
	a = lookup_ok(s, name);
	assert_int_equal(a->n_units, 2);
	assert_int_equal(a->n_present_roles, 2);
	assert_int_equal(a->n_stale, 0);
	assert_int_equal(a->n_conflicts, 0);
	assert_false(a->duplicate_name);
	assert_int_equal(a->units[0]->sb.unit.slot, 0);
	assert_int_equal(a->units[1]->sb.unit.slot, 1);
	assert_string_equal(a->units[0]->dev, unit_devname(u[0]));
	assert_non_null(realpath(f->files[0], real));
	assert_string_equal(a->units[0]->backing, real);
	assert_int_equal(a->units[0]->status.chosen, 0);
	snprintf(hash, sizeof(hash), "%08x", shared.array.hashcode);
	assert_ptr_equal(lookup_ok(s, hash), a);

	su = scan_find_unit(s, f->files[1]);
	assert_non_null(su);
	assert_ptr_equal(su, a->units[1]);
	assert_ptr_equal(scan_find_unit(s, unit_devname(u[0])), a->units[0]);
	assert_null(scan_find_unit(s, f->dir));
	scan_free(s);
	s = NULL;

	/*
	 * Unit 0 one event ahead, its table listing unit 1 active: an update
	 * interrupted before unit 1, which stays current for its role.
	 */
	sbs[0].events++;
	assert_int_equal(unit_write_sb(u[0], &sbs[0]), 0);
	assert_int_equal(scan_devices(&s), 0);
	a = lookup_ok(s, name);
	assert_int_equal(a->n_units, 2);
	assert_int_equal(a->sb.events, sbs[0].events);
	assert_int_equal(a->n_stale, 0);
	assert_int_equal(a->n_behind, 1);
	assert_int_equal(a->units[1]->cls, RT_UNIT_CURRENT_BEHIND);
	assert_int_equal(a->n_present_roles, 2);
	assert_int_equal(a->n_conflicts, 0);
	scan_free(s);
	s = NULL;

	/* Two events ahead: unit 1 is stale, its role not present. */
	sbs[0].events++;
	assert_int_equal(unit_write_sb(u[0], &sbs[0]), 0);
	assert_int_equal(scan_devices(&s), 0);
	a = lookup_ok(s, name);
	assert_int_equal(a->n_stale, 1);
	assert_int_equal(a->units[1]->cls, RT_UNIT_STALE);
	assert_int_equal(a->n_present_roles, 1);
	assert_int_equal(a->n_conflicts, 0);
	scan_free(s);
	s = NULL;

	/* Rehashed on unit 0 only: still one array, under the fresh hashcode. */
	sbs[0].events++;
	sbs[0].array.hashcode ^= 0x01010101;
	assert_int_equal(unit_write_sb(u[0], &sbs[0]), 0);
	assert_int_equal(scan_devices(&s), 0);
	a = lookup_ok(s, name);
	assert_int_equal(a->n_units, 2);
	assert_int_equal(a->sb.array.hashcode, sbs[0].array.hashcode);
	snprintf(hash, sizeof(hash), "%08x", sbs[0].array.hashcode);
	assert_ptr_equal(lookup_ok(s, hash), a);
	scan_free(s);
	s = NULL;

	/* A unit the fresh role table does not know: a conflict. */
	sbs[1] = sbs[0];
	role_init(&sbs[1], 1, UNIT_SIZE);	/* a new UUID in role 1 of its own table */
	/* At the freshest events: behind, it would merely be stale. */
	sbs[1].events = sbs[0].events;
	assert_int_equal(unit_write_sb(u[1], &sbs[1]), 0);
	assert_int_equal(scan_devices(&s), 0);
	a = lookup_ok(s, name);
	assert_int_equal(a->n_conflicts, 1);
	assert_int_equal(a->n_present_roles, 1);
	scan_free(s);
	s = NULL;

	/* Another array by the same name: the name no longer selects one. */
	{
		struct rt_sb other;

		u[1] = open_unit(f, 2, make_file(f, "dup.img", UNIT_SIZE), RW);
		single_sb(&other, name, UNIT_SIZE);
		assert_int_equal(unit_write_sb(u[1], &other), 0);
		assert_int_equal(scan_devices(&s), 0);
		assert_int_equal(scan_lookup(s, name, &b), -ENOTUNIQ);
		a = lookup_ok(s, hash);
		snprintf(hash, sizeof(hash), "%08x", other.array.hashcode);
		b = lookup_ok(s, hash);
		assert_ptr_not_equal(a, b);
		assert_true(a->duplicate_name);
		assert_true(b->duplicate_name);
		assert_int_equal(b->n_units, 1);
		assert_string_equal(b->sb.array.name, name);
	}
	unique_name(name, sizeof(name), "none");
	assert_int_equal(scan_lookup(s, name, &b), -ENOENT);
	scan_free(s);
}

static void test_scan_hex_name(void **state)
{
	struct fixture *f = *state;
	const struct rt_scan_array *a;
	struct rt_scan *s = NULL;
	struct rt_sb x, y;
	struct rt_unit *u;
	char name[64];

	REQUIRE_ENV();
	/* Array y is named like array x's hashcode: the hashcode wins. */
	u = open_unit(f, 0, make_file(f, "x.img", UNIT_SIZE), RW);
	unique_name(name, sizeof(name), "x");
	single_sb(&x, name, UNIT_SIZE);
	assert_int_equal(unit_write_sb(u, &x), 0);
	u = open_unit(f, 1, make_file(f, "y.img", UNIT_SIZE), RW);
	snprintf(name, sizeof(name), "%08x", x.array.hashcode);
	single_sb(&y, name, UNIT_SIZE);
	assert_int_equal(unit_write_sb(u, &y), 0);

	assert_int_equal(scan_devices(&s), 0);
	a = lookup_ok(s, name);
	assert_memory_equal(a->sb.array.uuid, x.array.uuid, RT_UUID_SIZE);
	scan_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loopdev_attach_find_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopdev_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopdev_clear_sole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_attach_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_excl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_one_copy_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_both_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_higher_events_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_truncated_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_wipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_signature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_hex_name, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
