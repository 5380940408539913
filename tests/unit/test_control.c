/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for the control protocol (lib/control.c): a server with fake
 * operations on a private run directory, and the typed client. The status
 * round trip compares every byte of struct rt_control_status, so a member
 * missing from the wire's field table fails here.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <cmocka.h>

#include <raidtool/control.h>
#include "../../lib/control-internal.h"	/* a status filled member by member */

#define NAME "ctltest"

/* What the fake engine last received, and what it answers. */
static struct {
	struct rt_control_status status;
	int commands;
	enum rt_control_verb verb;
	bool force;
	char arg[256];
} engine;

static uint8_t array_uuid[RT_UUID_SIZE];
static char rundir[] = "/tmp/raidtool-test-control.XXXXXX";
static struct control_server *server;

static int fake_status(void *ctx, struct rt_control_status *st)
{
	(void)ctx;
	*st = engine.status;
	return 0;
}

static int fake_stop(void *ctx, char *why, size_t len)
{
	(void)ctx;
	snprintf(why, len, "cannot stop: in use");
	return -EBUSY;
}

static int fake_command(void *ctx, const struct rt_control_req *rq, char *msg, size_t len,
			struct rt_control_unit *unit)
{
	(void)ctx;
	engine.commands++;
	engine.verb = rq->verb;
	engine.force = rq->force;
	snprintf(engine.arg, sizeof(engine.arg), "%s", rq->arg);
	if (!strcmp(rq->arg, "refuse")) {
		snprintf(msg, len, "refused: %s", control_verb_name(rq->verb));
		return -EPERM;
	}
	snprintf(msg, len, "did %s", control_verb_name(rq->verb));
	if (rq->verb == RT_VERB_FAIL) {
		/* The unit it changed travels in the reply. */
		unit->slot = 1;
		unit->hashcode = 0x1234abcd;
		snprintf(unit->device, sizeof(unit->device), "/dev/loop9");
		unit->state = RT_UNIT_STATE_FAULTY;
	}
	return 0;
}

/* Every member set, each to a value of its own. */
static void fill_status(struct rt_control_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->state, sizeof(st->state), "active");
	snprintf(st->name, sizeof(st->name), NAME);
	memcpy(st->uuid, array_uuid, RT_UUID_SIZE);
	st->hashcode = 0x89abcdefu;
	st->level = RT_LEVEL_5;
	st->size = 1ull << 40;
	st->nblocks = 268435456;
	st->blocksize = 4096;
	st->chunk_size = 65536;
	st->n_devices = 3;
	st->events = 12345678901ull;
	st->array_state = RT_ARRAY_DIRTY;
	snprintf(st->device, sizeof(st->device), "/dev/loop7");
	snprintf(st->link, sizeof(st->link), "/dev/raidtool/" NAME);
	st->pid = 4242;
	st->started = 1700000000;
	st->n_units = 3;
	for (unsigned i = 0; i < st->n_units; i++) {
		struct rt_control_unit *u = &st->units[i];

		u->slot = i == 2 ? 5 : i;
		snprintf(u->device, sizeof(u->device), "/dev/loop%u", 10 + i);
		uuid_generate(u->uuid);
		u->hashcode = 0x1000u + i;
		u->state = i == 2 ? RT_UNIT_STATE_SPARE : RT_UNIT_STATE_ACTIVE;
		u->reads = 100 + i;
		u->writes = 200 + i;
		u->read_bytes = 300 + i;
		u->write_bytes = 400 + i;
		u->errors = 500 + i;
		u->retries = 600 + i;
		u->no_space = i == 1;
	}
	st->stats = (struct rt_control_stats){ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
	st->health = RT_HEALTH_DEGRADED;
	st->walk = RT_WALK_REPAIR;
	st->walk_running = true;
	st->walk_result = -5;
	st->walk_role = 2;
	st->walk_done = 1ull << 33;
	st->walk_total = 1ull << 34;
	st->walk_speed = 123456789;
	st->mismatches = 17;
	st->repaired = 16;
	st->regions = 9;
	st->regions_total = 64;
	st->unsynced = true;
	st->unsynced_left = 3;
	st->unsynced_total = 64;
	st->ties = 2;
	st->kept_roles = 0x5;
	st->nospace_mask = 0x2;
	st->retry_count = 3;
	st->retry_window_ms = 1500;
	st->walk_speed_max = 1ull << 26;
	snprintf(st->transport, sizeof(st->transport), "io_uring");
	st->fuse_ring_requests = UINT64_MAX;	/* beyond int64: carried as unsigned */
	st->fuse_dev_requests = 77;
	st->fuse_queues = 2;
	st->fuse_queue_depth = 64;
	st->fuse_worker_requests = 12345;
	st->fuse_poll_us = 50;
	st->fuse_polled = 6789;
	st->walk_active = true;
}

static int setup(void **state)
{
	static const struct control_ops ops = {
		.status = fake_status, .stop = fake_stop, .command = fake_command,
	};
	char dir[4096];

	(void)state;
	if (geteuid() != 0)
		return 0;	/* the server answers root only: the tests skip */
	if (!mkdtemp(rundir))
		return -1;
	setenv("RAIDTOOL_RUNDIR", rundir, 1);
	uuid_generate(array_uuid);
	if (control_path(array_uuid, NULL, dir, sizeof(dir)) < 0 || mkdir(dir, 0700) < 0)
		return -1;
	fill_status(&engine.status);
	return control_server_start(array_uuid, NAME, &ops, &server) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	char dir[4096];

	(void)state;
	if (geteuid() != 0)
		return 0;
	control_server_finish(server, 0, NULL);
	if (control_path(array_uuid, NULL, dir, sizeof(dir)) == 0)
		rmdir(dir);
	rmdir(rundir);
	return 0;
}

#define NEED_ROOT()                                                          \
	do {                                                                 \
		if (geteuid() != 0)                                          \
			skip();                                              \
	} while (0)

static void test_status_round_trip(void **state)
{
	struct rt_control_status *got = calloc(1, sizeof(*got));

	(void)state;
	NEED_ROOT();
	assert_non_null(got);
	memset(got, 0xa5, sizeof(*got));
	assert_int_equal(control_status(array_uuid, NAME, got), 0);
	/* Every byte: each member went over the wire and came back the same. */
	for (size_t i = 0; i < sizeof(*got); i++)
		if (((const uint8_t *)got)[i] != ((const uint8_t *)&engine.status)[i])
			fail_msg("status differs at byte %zu of %zu", i, sizeof(*got));
	free(got);
}

/* The wire keeps the names (raidtool-control(7)); the struct carries the enums. */
static void test_status_names_on_wire(void **state)
{
	char *reply = malloc(1 << 20);

	(void)state;
	NEED_ROOT();
	assert_non_null(reply);
	assert_int_equal(control_request(array_uuid, "status", reply, 1 << 20, 5000), 0);
	assert_non_null(strstr(reply, "\"health\":\"degraded\""));
	assert_non_null(strstr(reply, "\"walk\":\"repairing\""));
	free(reply);
}

/* One table each way: every value has its name and comes back from it. */
static void test_state_names(void **state)
{
	static const char *const health[] = { "", "clean", "degraded", "failed" };
	static const char *const walk[] = { "", "rebuilding", "resyncing", "checking",
					    "repairing" };

	(void)state;
	for (int h = RT_HEALTH_NONE; h < RT_HEALTH_COUNT; h++) {
		assert_string_equal(control_health_name((enum rt_health)h), health[h]);
		assert_int_equal(control_health_parse(health[h]), h);
	}
	for (int w = RT_WALK_NONE; w <= RT_WALK_REPAIR; w++) {
		assert_string_equal(control_walk_name((enum rt_walk_kind)w), walk[w]);
		assert_int_equal(control_walk_parse(walk[w]), w);
	}
	assert_int_equal(control_health_parse("bogus"), RT_HEALTH_NONE);
	assert_int_equal(control_health_parse(NULL), RT_HEALTH_NONE);
	assert_int_equal(control_walk_parse("rebuild"), RT_WALK_NONE);
	assert_string_equal(control_walk_name((enum rt_walk_kind)99), "");
	assert_string_equal(control_health_name((enum rt_health)99), "");
	/* Unit states: every value named, and back; an unknown name is "unknown". */
	for (int u = RT_UNIT_STATE_NONE; u < RT_UNIT_STATE_COUNT; u++) {
		const char *name = control_unit_state_name((enum rt_unit_state)u);

		assert_true(u == RT_UNIT_STATE_NONE || name[0]);
		assert_int_equal(control_unit_state_parse(name), u);
	}
	assert_string_equal(control_unit_state_name(RT_UNIT_STATE_REMOVED), "removed");
	assert_int_equal(control_unit_state_parse(NULL), RT_UNIT_STATE_NONE);
	assert_int_equal(control_unit_state_parse("bogus"), RT_UNIT_STATE_UNKNOWN);
	for (uint32_t s = RT_SLOT_EMPTY; s <= RT_SLOT_REPLACED; s++)
		assert_string_equal(control_unit_state_name(control_unit_state_of_slot(s)),
				    sb_slot_state_name(s));
	assert_int_equal(control_unit_state_of_slot(99), RT_UNIT_STATE_UNKNOWN);
}

static void test_ping(void **state)
{
	pid_t pid = 0;

	(void)state;
	NEED_ROOT();
	assert_int_equal(control_ping(array_uuid, NAME, &pid), 0);
	assert_int_equal(pid, getpid());
}

static void test_typed_requests(void **state)
{
	const struct rt_control_req tune = { .verb = RT_VERB_TUNE, .arg = "3 1500" };
	const struct rt_control_req vol = { .verb = RT_VERB_VOL, .arg = "snapshot vol0 snap1" };
	const struct rt_control_req fail = { .verb = RT_VERB_FAIL, .arg = "1" };
	struct rt_control_unit unit;
	char msg[256];

	(void)state;
	NEED_ROOT();
	assert_int_equal(control_add(array_uuid, NAME, "/srv/a b.img", true, msg, sizeof(msg)), 0);
	assert_int_equal(engine.verb, RT_VERB_ADD);
	assert_true(engine.force);
	assert_string_equal(engine.arg, "/srv/a b.img");
	assert_string_equal(msg, "did add");

	assert_int_equal(control_fail(array_uuid, NAME, "1", false, msg, sizeof(msg)), 0);
	assert_int_equal(engine.verb, RT_VERB_FAIL);
	assert_false(engine.force);
	assert_string_equal(engine.arg, "1");

	assert_int_equal(control_call_unit(array_uuid, NAME, &fail, msg, sizeof(msg), &unit), 0);
	assert_string_equal(msg, "did fail");
	assert_int_equal(unit.slot, 1);
	assert_int_equal(unit.hashcode, 0x1234abcd);
	assert_string_equal(unit.device, "/dev/loop9");
	assert_string_equal(control_unit_state_name(unit.state), "faulty");

	/* A request that changed no unit: none in the reply. */
	assert_int_equal(control_call_unit(array_uuid, NAME, &tune, msg, sizeof(msg), &unit), 0);
	assert_string_equal(control_unit_state_name(unit.state), "");

	assert_int_equal(control_remove(array_uuid, NAME, "0000abcd", msg, sizeof(msg)), 0);
	assert_int_equal(engine.verb, RT_VERB_REMOVE);
	assert_string_equal(engine.arg, "0000abcd");

	assert_int_equal(control_call(array_uuid, NAME, &tune, msg, sizeof(msg)), 0);
	assert_int_equal(engine.verb, RT_VERB_TUNE);
	assert_string_equal(engine.arg, "3 1500");

	/* The thin pool's request (lib/thin-run.c parses its words). */
	assert_int_equal(control_call(array_uuid, NAME, &vol, msg, sizeof(msg)), 0);
	assert_int_equal(engine.verb, RT_VERB_VOL);
	assert_false(engine.force);
	assert_string_equal(engine.arg, "snapshot vol0 snap1");
	assert_string_equal(control_verb_name(RT_VERB_VOL), "vol");

	/* The engine's refusal comes back as its errno. */
	assert_int_equal(control_fail(array_uuid, NAME, "refuse", true, msg, sizeof(msg)),
			 -EPERM);
}

static void test_refusals(void **state)
{
	char reply[4096], req[128], other[37];
	uint8_t u[RT_UUID_SIZE];
	int before = engine.commands;

	(void)state;
	NEED_ROOT();
	assert_int_equal(control_stop(array_uuid, NAME, NULL, 0), -EBUSY);
	assert_int_equal(control_request(array_uuid, "frobnicate now", reply, sizeof(reply),
					 5000), 0);
	assert_non_null(strstr(reply, "\"errno\":22"));
	assert_non_null(strstr(reply, "unknown request 'frobnicate'"));
	/* Another array's UUID: refused before any operation runs. */
	uuid_generate(u);
	uuid_unparse_lower(u, other);
	snprintf(req, sizeof(req), "uuid=%s fail 1", other);
	assert_int_equal(control_request(array_uuid, req, reply, sizeof(reply), 5000), 0);
	assert_non_null(strstr(reply, "\"errno\":116"));
	assert_int_equal(engine.commands, before);
	/* The driver's names for status. */
	assert_int_equal(control_request(array_uuid, "lookup.device", reply, sizeof(reply),
					 5000), 0);
	assert_non_null(strstr(reply, "\"name\":\"" NAME "\""));
	assert_non_null(strstr(reply, "\"link\":\"/dev/raidtool/" NAME "\""));
}

/*
 * A loop device's backing file names the array (its own file) or one of its
 * thin volumes (vol:VOL in the same mount), never both (udev's examine
 * --export and the scans tell them apart by these alone).
 */
static void test_files_of_mount(void **state)
{
	const char *key = "0b0e6a2c-6f1d-4e8a-9c3b-5d7e1f2a3b4c";
	uint8_t u[RT_UUID_SIZE], want[RT_UUID_SIZE];
	char path[PATH_MAX], name[64];

	(void)state;
	assert_int_equal(uuid_parse(key, want), 0);
	snprintf(path, sizeof(path), "/run/raidtool/%s/" RT_CONTROL_MNT "/data", key);
	assert_int_equal(control_array_of_file(path, name, sizeof(name), u), 0);
	assert_string_equal(name, "data");
	assert_memory_equal(u, want, RT_UUID_SIZE);
	assert_int_equal(control_volume_of_file(path, u, name, sizeof(name)), -ENODEV);

	snprintf(path, sizeof(path), "/run/raidtool/%s/" RT_CONTROL_MNT "/" RT_CONTROL_VOL_PREFIX
		 "vol0", key);
	memset(u, 0, sizeof(u));
	assert_int_equal(control_volume_of_file(path, u, name, sizeof(name)), 0);
	assert_string_equal(name, "vol0");
	assert_memory_equal(u, want, RT_UUID_SIZE);
	assert_int_equal(control_array_of_file(path, name, sizeof(name), u), -ENODEV);
	assert_int_equal(control_volume_of_file(path, u, name, 4), -ENAMETOOLONG);

	/* Not a mount: the old per-volume layout, no name, another directory. */
	snprintf(path, sizeof(path), "/run/raidtool/%s/vol/vol0/vol0", key);
	assert_int_equal(control_volume_of_file(path, u, name, sizeof(name)), -ENODEV);
	snprintf(path, sizeof(path), "/run/raidtool/%s/" RT_CONTROL_MNT "/" RT_CONTROL_VOL_PREFIX,
		 key);
	assert_int_equal(control_volume_of_file(path, u, name, sizeof(name)), -ENODEV);
	snprintf(path, sizeof(path), "/run/raidtool/%s/other/" RT_CONTROL_VOL_PREFIX "vol0", key);
	assert_int_equal(control_volume_of_file(path, u, name, sizeof(name)), -ENODEV);
	assert_int_equal(control_volume_of_file("vol:vol0", u, name, sizeof(name)), -ENODEV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_round_trip),
		cmocka_unit_test(test_status_names_on_wire),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_typed_requests),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_files_of_mount),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
