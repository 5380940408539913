/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/lock.c: one admin command per array; a second take by the holder fails at once. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <raidtool/lock.h>

static char rundir[] = "/tmp/raidtool-test-lock.XXXXXX";

static int setup(void **state)
{
	if (!mkdtemp(rundir))
		return -1;
	return setenv("RAIDTOOL_RUNDIR", rundir, 1);
}

static int teardown(void **state)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rundir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_take_release_take(void **state)
{
	int fd, fd2;

	assert_int_equal(lock_take_within("k1", 1000, &fd), 0);
	assert_true(fd >= 0);
	lock_release(fd);
	assert_int_equal(lock_take_within("k1", 1000, &fd2), 0);
	lock_release(fd2);
}

/* The holder asking again: -EDEADLK at once, not after the limit. */
static void test_second_take_by_holder(void **state)
{
	struct timespec a, b;
	int fd, fd2;

	assert_int_equal(lock_take_within("k2", 1000, &fd), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(lock_take_within("k2", 5000, &fd2), -EDEADLK);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(fd2, -1);
	assert_true(b.tv_sec - a.tv_sec < 2);
	lock_release(fd);
	/* Another key is another lock. */
	assert_int_equal(lock_take_within("k3", 1000, &fd2), 0);
	lock_release(fd2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_release_take),
		cmocka_unit_test(test_second_take_by_holder),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
