/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for monitor_compare (lib/monitor.c): the events two looks at
 * one array give, and the order they come in.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/control.h>
#include <raidtool/monitor.h>
#include "../../lib/control-internal.h"	/* the engine's status, member by member */

struct seen {
	char text[1024];	/* "Fail:/dev/loop1:1: DegradedArray::-1:degraded " */
};

static void record(const struct rt_monitor_event_info *ev, void *arg)
{
	struct seen *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "%s:%s:%d:%s ", monitor_event_name(ev->event),
		 ev->unit, (int)ev->role, ev->detail);
}

/* A raid1 of two units, both active, clean, no walk. */
static void healthy(struct rt_monitor_array *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "m");
	a->n_devices = 2;
	a->n_units = 2;
	a->health = RT_HEALTH_OK;
	for (unsigned i = 0; i < 2; i++) {
		a->units[i].uuid[0] = (uint8_t)(i + 1);
		a->units[i].slot = i;
		snprintf(a->units[i].device, sizeof(a->units[i].device), "/dev/loop%u", i);
		a->units[i].state = RT_UNIT_STATE_ACTIVE;
	}
}

static const char *compare(const struct rt_monitor_array *prev, const struct rt_monitor_array *cur,
			   struct seen *s)
{
	s->text[0] = '\0';
	monitor_compare(prev, cur, record, s);
	return s->text;
}

static void test_nothing_changed(void **state)
{
	struct rt_monitor_array a;
	struct seen s;

	(void)state;
	healthy(&a);
	assert_string_equal(compare(&a, &a, &s), "");
	/* A first look at a healthy array reports nothing either. */
	assert_string_equal(compare(NULL, &a, &s), "");
}

static void test_fail_then_degraded(void **state)
{
	struct rt_monitor_array a, b;
	struct seen s;

	(void)state;
	healthy(&a);
	b = a;
	b.units[1].state = RT_UNIT_STATE_FAULTY;
	b.health = RT_HEALTH_DEGRADED;
	assert_string_equal(compare(&a, &b, &s),
			    "Fail:/dev/loop1:1: DegradedArray::-1:degraded ");
	/* Still degraded at the next look: nothing new. */
	assert_string_equal(compare(&b, &b, &s), "");
	/* A monitor started now hears what still holds. */
	assert_string_equal(compare(NULL, &b, &s), "DegradedArray::-1:degraded ");
}

static void test_spare_fails(void **state)
{
	struct rt_monitor_array a, b;
	struct seen s;

	(void)state;
	healthy(&a);
	a.n_units = 3;
	a.units[2] = a.units[1];
	a.units[2].uuid[0] = 9;
	a.units[2].slot = 2;
	a.units[2].state = RT_UNIT_STATE_SPARE;
	snprintf(a.units[2].device, sizeof(a.units[2].device), "/dev/loop2");
	b = a;
	b.units[2].state = RT_UNIT_STATE_FAULTY;
	assert_string_equal(compare(&a, &b, &s), "FailSpare:/dev/loop2:2: ");
}

static void test_rebuild(void **state)
{
	struct rt_monitor_array a, b, c, d;
	struct seen s;

	(void)state;
	healthy(&a);
	a.units[1].state = RT_UNIT_STATE_REBUILDING;
	a.health = RT_HEALTH_DEGRADED;
	b = a;
	b.walk = RT_WALK_RECOVER;
	b.walk_running = true;
	b.walk_role = 1;
	b.walk_total = 100;
	b.walk_done = 10;
	assert_string_equal(compare(&a, &b, &s), "RebuildStarted:/dev/loop1:1: ");
	/* Progress is no event. */
	c = b;
	c.walk_done = 50;
	assert_string_equal(compare(&b, &c, &s), "");
	/* It ends and the unit takes its role: finished, then SpareActive. */
	d = c;
	d.walk_running = false;
	d.walk_done = 100;
	d.units[1].state = RT_UNIT_STATE_ACTIVE;
	d.health = RT_HEALTH_OK;
	assert_string_equal(compare(&c, &d, &s),
			    "RebuildFinished:/dev/loop1:1:finished SpareActive:/dev/loop1:1: ");
	/* Cancelled (a stop): the outcome says so. */
	d = c;
	d.walk_running = false;
	d.walk_result = -ECANCELED;
	assert_string_equal(compare(&c, &d, &s), "RebuildFinished:/dev/loop1:1:cancelled ");
	/* A whole rebuild between two looks still gives both events. */
	d.walk_result = 0;
	d.walk_done = 100;
	assert_string_equal(compare(&a, &d, &s),
			    "RebuildStarted:/dev/loop1:1: RebuildFinished:/dev/loop1:1:finished ");
}

/*
 * The engine's status as a rebuild ends: walk_running stays true while its
 * outcome is recorded, and the rebuilt unit is active by then. The events
 * still come in the order things happened: RebuildFinished, SpareActive.
 */
static void status_rebuilding(struct rt_control_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "m");
	st->n_devices = 2;
	st->n_units = 2;
	st->health = RT_HEALTH_DEGRADED;
	for (unsigned i = 0; i < 2; i++) {
		st->units[i].uuid[0] = (uint8_t)(i + 1);
		st->units[i].slot = i;
		snprintf(st->units[i].device, sizeof(st->units[i].device), "/dev/loop%u", i);
		st->units[i].state = RT_UNIT_STATE_ACTIVE;
	}
	st->units[1].state = RT_UNIT_STATE_REBUILDING;
	st->walk = RT_WALK_RECOVER;
	st->walk_running = st->walk_active = true;
	st->walk_role = 1;
	st->walk_total = 100;
	st->walk_done = 50;
}

static void test_rebuild_end_being_recorded(void **state)
{
	struct rt_control_status *st = calloc(1, sizeof(*st));
	struct rt_monitor_array a, b, c;
	struct seen s;

	(void)state;
	assert_non_null(st);
	status_rebuilding(st);
	monitor_array_from_status(st, &a);
	/* The walk is over, its end being recorded: the unit took its role. */
	st->walk_active = false;
	st->walk_done = 100;
	st->units[1].state = RT_UNIT_STATE_ACTIVE;
	st->health = RT_HEALTH_OK;
	monitor_array_from_status(st, &b);
	assert_string_equal(compare(&a, &b, &s),
			    "RebuildFinished:/dev/loop1:1:finished SpareActive:/dev/loop1:1: ");
	/* Recorded: nothing more to say. */
	st->walk_running = false;
	monitor_array_from_status(st, &c);
	assert_string_equal(compare(&b, &c, &s), "");
	free(st);
}

/* A replace: reported as a rebuild of the role the new unit fills, not of the slot it waits in. */
static void test_replace_names_the_role(void **state)
{
	struct rt_monitor_array a, b, c;
	struct seen s;

	(void)state;
	healthy(&a);
	b = a;
	b.n_units = 3;
	b.units[2].slot = 2;
	snprintf(b.units[2].device, sizeof(b.units[2].device), "/dev/loop2");
	b.units[2].state = RT_UNIT_STATE_REPLACING;
	b.walk = RT_WALK_REPLACE;
	b.walk_running = true;
	b.walk_role = 1;
	b.walk_total = 100;
	assert_string_equal(compare(&a, &b, &s), "RebuildStarted:/dev/loop2:1: ");
	/* The new unit took role 1; the old one left. */
	c = b;
	c.walk_running = false;
	c.walk_done = 100;
	c.n_units = 2;
	c.units[1] = b.units[2];
	c.units[1].slot = 1;
	c.units[1].state = RT_UNIT_STATE_ACTIVE;
	assert_string_equal(compare(&b, &c, &s), "RebuildFinished:/dev/loop2:1:finished ");
}

static void test_check(void **state)
{
	struct rt_monitor_array a, b, c;
	struct seen s;

	(void)state;
	healthy(&a);
	b = a;
	b.walk = RT_WALK_CHECK;
	b.walk_running = true;
	b.walk_total = 100;
	/* A check starting is no event of mdadm's list; it ending is. */
	assert_string_equal(compare(&a, &b, &s), "");
	c = b;
	c.walk_running = false;
	c.walk_done = 100;
	c.mismatches = 7;
	assert_string_equal(compare(&b, &c, &s), "CheckFinished::-1:7 ");
	/* The same record at the next look: reported once. */
	assert_string_equal(compare(&c, &c, &s), "");
}

static void test_failed_after_degraded(void **state)
{
	struct rt_monitor_array a, b;
	struct seen s;

	(void)state;
	healthy(&a);
	a.health = RT_HEALTH_DEGRADED;
	b = a;
	b.health = RT_HEALTH_FAILED;
	assert_string_equal(compare(&a, &b, &s), "DegradedArray::-1:failed ");
	/* Better health is told by SpareActive, not by a DegradedArray. */
	assert_string_equal(compare(&b, &a, &s), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_changed),
		cmocka_unit_test(test_fail_then_degraded),
		cmocka_unit_test(test_spare_fails),
		cmocka_unit_test(test_rebuild),
		cmocka_unit_test(test_rebuild_end_being_recorded),
		cmocka_unit_test(test_replace_names_the_role),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_failed_after_degraded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
