/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_DESCRIBE_H
#define RAIDTOOL_DESCRIBE_H

/* Text and JSON renderings of descriptors, shared by the listing commands. */
#include <stdio.h>
#include <raidtool/format.h>
#include <raidtool/rebuild.h>
#include "json-out.h"

/* "0".."63" for a role, "spare" for a spare's slot. */
const char *describe_role(const struct rt_sb *sb, uint32_t slot, char *buf, size_t len);
uint64_t describe_array_bytes(const struct rt_sb *sb);

void describe_array_text(FILE *f, const struct rt_sb *sb);
void describe_array_json(struct json *j, const struct rt_sb *sb);	/* members only */
void describe_unit_text(FILE *f, const struct rt_sb *sb);
void describe_unit_json(struct json *j, const struct rt_sb *sb);	/* members only */
void describe_slots_text(FILE *f, const struct rt_sb *sb);
void describe_slots_json(struct json *j, const char *key, const struct rt_sb *sb);

struct rt_control_status;
struct rt_control_unit;

/*
 * The --json of the commands that change an array (add, fail, remove,
 * activate, deactivate), raidtool(8) OUTPUT: the array they acted on
 * ("name", "uuid", "hashcode") and the unit they changed, an object under
 * @key ("slot", "role", "device", "uuid", "hashcode", "state").
 */
void describe_array_id_json(struct json *j, const char *name, const uint8_t uuid[RT_UUID_SIZE],
			    uint32_t hashcode);
void describe_unit_change_json(struct json *j, const char *key, uint32_t n_devices,
			       const struct rt_control_unit *u);

/*
 * How a repair settled what differed: raid5 recomputed the parity; raid1
 * kept the majority's copy, and where mirrors tied the copy of the roles in
 * @st->kept_roles, or left the stripe (@st->ties). Text starts with ", ".
 */
void describe_repair_text(FILE *f, const struct rt_control_status *st);
void describe_repair_json(struct json *j, const struct rt_control_status *st);	/* members */

/* Does a walk named @walk (status's "walk") work on one role: rebuilding, replacing? */
bool describe_walk_has_role(enum rt_walk_kind walk);

#endif
