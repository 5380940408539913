/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for incremental_verdict: when is an array that is arriving unit
 * by unit started, started degraded, or left waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/incremental.h>
#include <raidtool/scan.h>
#include "../../lib/scan-internal.h"	/* a scanned array, built by hand */

struct verdict_case {
	int32_t level;
	uint32_t n_devices;
	unsigned expected, present, active;	/* the scan's role counts */
	bool run;
	int want;
};

static void check(const struct verdict_case *c)
{
	struct rt_scan_array a;

	memset(&a, 0, sizeof(a));
	a.sb.array.level = c->level;
	a.sb.array.n_devices = c->n_devices;
	a.n_expected_roles = c->expected;
	a.n_present_roles = c->present;
	a.n_active_roles = c->active;
	assert_int_equal(incremental_verdict(&a, c->run), c->want);
}

#define CHECK_ALL(cases)                                                    \
	do {                                                                \
		for (size_t i_ = 0; i_ < sizeof(cases) / sizeof((cases)[0]); i_++) \
			check(&(cases)[i_]);                                \
	} while (0)

static void test_complete_arrays_start(void **state)
{
	static const struct verdict_case cases[] = {
		{ RT_LEVEL_LINEAR, 2, 2, 2, 2, false, RT_INC_YES },
		{ RT_LEVEL_0, 4, 4, 4, 4, false, RT_INC_YES },
		{ RT_LEVEL_1, 2, 2, 2, 2, false, RT_INC_YES },
		{ RT_LEVEL_5, 3, 3, 3, 3, false, RT_INC_YES },
	};
	(void)state;
	CHECK_ALL(cases);
}

static void test_degraded_waits_unless_run(void **state)
{
	static const struct verdict_case cases[] = {
		/* raid5 with one of three missing: could run, but it may still come */
		{ RT_LEVEL_5, 3, 3, 2, 2, false, RT_INC_UNSAFE },
		{ RT_LEVEL_5, 3, 3, 2, 2, true, RT_INC_YES },
		/* raid1: one mirror of three is enough to run */
		{ RT_LEVEL_1, 3, 3, 1, 1, false, RT_INC_UNSAFE },
		{ RT_LEVEL_1, 3, 3, 1, 1, true, RT_INC_YES },
	};
	(void)state;
	CHECK_ALL(cases);
}

static void test_too_few_never_start(void **state)
{
	static const struct verdict_case cases[] = {
		{ RT_LEVEL_5, 3, 3, 1, 1, false, RT_INC_NO },
		{ RT_LEVEL_5, 3, 3, 1, 1, true, RT_INC_NO },
		{ RT_LEVEL_0, 2, 2, 1, 1, true, RT_INC_NO },
		{ RT_LEVEL_LINEAR, 3, 3, 2, 2, true, RT_INC_NO },
		{ RT_LEVEL_1, 2, 2, 0, 0, true, RT_INC_NO },
	};
	(void)state;
	CHECK_ALL(cases);
}

/*
 * A role the freshest table already marks faulty will not come back by
 * itself: an array missing only such roles starts at once (degraded), as a
 * full assembly would.
 */
static void test_known_failures_do_not_wait(void **state)
{
	static const struct verdict_case cases[] = {
		{ RT_LEVEL_5, 3, 2, 2, 2, false, RT_INC_YES },
		{ RT_LEVEL_1, 3, 1, 1, 1, false, RT_INC_YES },
		/* ...but not beyond what the level tolerates */
		{ RT_LEVEL_5, 4, 2, 2, 2, false, RT_INC_NO },
	};
	(void)state;
	CHECK_ALL(cases);
}

/* A role being rebuilt holds no complete copy: it counts as missing for tolerance. */
static void test_rebuilding_role_is_not_redundancy(void **state)
{
	static const struct verdict_case cases[] = {
		/* raid5: rebuilding role 2 present, role 0 absent: two short */
		{ RT_LEVEL_5, 3, 3, 2, 1, true, RT_INC_NO },
		/* raid5: all present, one of them rebuilding: starts, rebuild resumes */
		{ RT_LEVEL_5, 3, 3, 3, 2, false, RT_INC_YES },
	};
	(void)state;
	CHECK_ALL(cases);
}

static void test_started_names(void **state)
{
	(void)state;
	assert_string_equal(incremental_started_name(RT_INC_NO), "no");
	assert_string_equal(incremental_started_name(RT_INC_UNSAFE), "unsafe");
	assert_string_equal(incremental_started_name(RT_INC_YES), "yes");
	assert_string_equal(incremental_started_name(RT_INC_ALREADY), "already");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_complete_arrays_start),
		cmocka_unit_test(test_degraded_waits_unless_run),
		cmocka_unit_test(test_too_few_never_start),
		cmocka_unit_test(test_known_failures_do_not_wait),
		cmocka_unit_test(test_rebuilding_role_is_not_redundancy),
		cmocka_unit_test(test_started_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
