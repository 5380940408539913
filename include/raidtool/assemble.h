/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ASSEMBLE_H
#define RAIDTOOL_ASSEMBLE_H

/*
 * Assembly: from a scanned array choose, for every role, the unit the
 * freshest role table names and whose events counter is the freshest; open
 * those units for the engine; write superblock updates (clean/dirty, events)
 * to all of them.
 *
 * Rules (mdadm's, on scan's classification of each unit): a unit current or
 * one event behind (an interrupted update) is used for its slot; a stale,
 * conflicting or suspect unit is not;
 * roles without a fresh active unit are missing, which raid1 (all but one)
 * and raid5 (one) survive: the array is then assembled degraded;
 * a unit the freshest role table does not place where it claims to be is a
 * conflict and is not used; two fresh units claiming one role make the
 * array refuse to start. Both are reported through rt_log as warnings.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <raidtool/format.h>
#include <raidtool/scan.h>

/* The assembled units (lib/assemble-internal.h: the run path reads them). */
struct rt_assembly;

/*
 * Choose and open (RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_DIRECT) the units
 * of @a. With @force, when more roles lack a current unit than the level
 * can spare, the stale units the freshest table still names for those
 * roles stand in, freshest first, until it can run (forced[] says which;
 * the start's update makes them active). Without it, what --force would
 * take is logged. Returns 0, or:
 *   -ENODEV    more roles lack a fresh unit than the level can spare:
 *              "role(s) 1, 3 missing" is logged. Fewer: 0, n_missing and
 *              missing say which (a REBUILDING role counts as missing; its
 *              unit, when found, is opened in units[role] all the same)
 *   -ENOTUNIQ  two fresh units claim one role
 *   -EUCLEAN   two units at the freshest events disagree on the role table
 *              (they ran apart): both are named, nothing is opened
 *   -EBUSY     a unit is held by someone else (the array is running?)
 *   other negative errno from opening a unit
 */
int assemble_open(const struct rt_scan_array *a, bool force, struct rt_assembly **out);

/*
 * Would activate start @a, from scan's classification alone (no unit is
 * opened)? 0 yes; 1 only with --force (a degraded raid5 not stopped
 * cleanly); -ENODEV (too many roles without a current unit) or -EUCLEAN
 * (suspects only, units that ran apart) no. The reason goes to @why.
 */
int assemble_verdict(const struct rt_scan_array *a, char *why, size_t len);

/* Close the units and free. NULL is fine. */
void assemble_close(struct rt_assembly *as);

/*
 * Change the shared superblock with @mutate (may be NULL), bump events, set
 * utime, and write it to every assembled unit (each with its own unit
 * descriptor), except units whose slot is faulty, missing or no longer
 * theirs, lagging units first (raidtool-format(5), UPDATE PROTOCOL). On a
 * failure before any unit took it, the in-memory copy keeps its content
 * (its events value is not reused); once some unit took it, the in-memory
 * copy is the update, as on those units, and the next update completes it.
 */
typedef int (*assemble_mutate_fn)(struct rt_sb *sb, void *arg);
int assemble_sb_update(struct rt_assembly *as, assemble_mutate_fn mutate, void *arg);

/* The common case: set the array state (RT_ARRAY_CLEAN / RT_ARRAY_DIRTY). */
int assemble_set_state(struct rt_assembly *as, uint32_t state);

#endif
