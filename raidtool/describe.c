/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <raidtool/control.h>
#include "cli.h"
#include "describe.h"

const char *describe_role(const struct rt_sb *sb, uint32_t slot, char *buf, size_t len)
{
	if (slot < sb->array.n_devices)
		snprintf(buf, len, "%u", slot);
	else
		snprintf(buf, len, "spare");
	return buf;
}

uint64_t describe_array_bytes(const struct rt_sb *sb)
{
	return sb->array.nblocks * sb->array.blocksize;
}

void describe_array_text(FILE *f, const struct rt_sb *sb)
{
	const struct rt_array_desc *a = &sb->array;
	char uuid[37], size[32], chunk[32], when[64];

	cli_format_uuid(a->uuid, uuid);
	cli_format_size(describe_array_bytes(sb), size, sizeof(size));
	cli_format_size(a->chunk_size, chunk, sizeof(chunk));
	cli_format_time(a->ctime, when, sizeof(when));
	fprintf(f, "        name: %s\n", a->name);
	if (a->desc[0])
		fprintf(f, " description: %s\n", a->desc);
	fprintf(f, "    hashcode: %08x\n", a->hashcode);
	fprintf(f, "        uuid: %s\n", uuid);
	fprintf(f, "       level: %s\n", sb_level_name(a->level));
	if (a->level != RT_LEVEL_1)
		fprintf(f, "  chunk size: %s\n", chunk);
	fprintf(f, "   n.devices: %u\n", a->n_devices);
	fprintf(f, "        size: %s (%" PRIu64 " blocks of %u bytes)\n", size, a->nblocks,
		a->blocksize);
	fprintf(f, "       state: %s%s\n", sb_array_state_name(sb->state),
		sb_unsynced(sb) ? ", not yet synced" : "");
	fprintf(f, "      events: %" PRIu64 "\n", sb->events);
	fprintf(f, "     created: %s\n", when);
	fprintf(f, "       units:");
	for (uint32_t i = 0; i < a->n_devices; i++)
		fprintf(f, " %08x", sb->slots[i].hashcode);
	fputc('\n', f);
}

void describe_array_json(struct json *j, const struct rt_sb *sb)
{
	const struct rt_array_desc *a = &sb->array;

	json_str(j, "name", a->name);
	json_str(j, "description", a->desc);
	json_hash(j, "hashcode", a->hashcode);
	json_uuid(j, "uuid", a->uuid);
	json_str(j, "level", sb_level_name(a->level));
	json_u64(j, "chunk_size", a->chunk_size);
	json_u64(j, "blocksize", a->blocksize);
	json_u64(j, "n_devices", a->n_devices);
	json_u64(j, "nblocks", a->nblocks);
	json_u64(j, "size", describe_array_bytes(sb));
	json_str(j, "state", sb_array_state_name(sb->state));
	json_bool(j, "synced", !sb_unsynced(sb));
	json_u64(j, "events", sb->events);
	json_u64(j, "ctime", a->ctime);
	json_array_begin(j, "unit_hashcodes");
	for (uint32_t i = 0; i < a->n_devices; i++)
		json_hash(j, NULL, sb->slots[i].hashcode);
	json_array_end(j);
}

static const char *unit_state_name(const struct rt_sb *sb)
{
	return sb_slot_state_name(sb->slots[sb->unit.slot].state);
}

void describe_unit_text(FILE *f, const struct rt_sb *sb)
{
	const struct rt_unit_desc *u = &sb->unit;
	char uuid[37], role[16];

	cli_format_uuid(u->uuid, uuid);
	fprintf(f, "   unit hashcode: %08x\n", u->hashcode);
	fprintf(f, "       unit uuid: %s\n", uuid);
	fprintf(f, "           array: %s (%08x)\n", sb->array.name, sb->array.hashcode);
	fprintf(f, "            role: %s\n", describe_role(sb, u->slot, role, sizeof(role)));
	fprintf(f, "      unit state: %s\n", unit_state_name(sb));
	fprintf(f, "           start: %" PRIu64 " (blocks of %u bytes)\n",
		u->start / sb->array.blocksize, sb->array.blocksize);
	fprintf(f, "          length: %" PRIu64 " blocks\n", u->length / sb->array.blocksize);
	fprintf(f, "     data offset: %" PRIu64 " bytes\n", u->data_offset);
	fprintf(f, "       data size: %" PRIu64 " bytes\n", u->data_size);
}

void describe_unit_json(struct json *j, const struct rt_sb *sb)
{
	const struct rt_unit_desc *u = &sb->unit;
	char role[16];

	json_hash(j, "hashcode", u->hashcode);
	json_uuid(j, "uuid", u->uuid);
	json_str(j, "array", sb->array.name);
	json_hash(j, "array_hashcode", sb->array.hashcode);
	json_uuid(j, "array_uuid", sb->array.uuid);
	json_str(j, "role", describe_role(sb, u->slot, role, sizeof(role)));
	json_u64(j, "slot", u->slot);
	json_str(j, "state", unit_state_name(sb));
	json_u64(j, "start", u->start / sb->array.blocksize);
	json_u64(j, "length", u->length / sb->array.blocksize);
	json_u64(j, "blocksize", sb->array.blocksize);
	json_u64(j, "sb_offset_0", u->sb_offset[0]);
	json_u64(j, "sb_offset_1", u->sb_offset[1]);
	json_u64(j, "log_offset", u->log_offset);
	json_u64(j, "log_size", u->log_size);
	json_u64(j, "data_offset", u->data_offset);
	json_u64(j, "data_size", u->data_size);
}

void describe_slots_text(FILE *f, const struct rt_sb *sb)
{
	char uuid[37], role[16];

	fprintf(f, "    %-5s %-8s %-36s %-10s %s\n", "ROLE", "HASHCODE", "UUID", "STATE",
		"DATA BYTES");
	for (uint32_t i = 0; i < sb->array.n_slots && i < RT_MAX_UNITS; i++) {
		const struct rt_slot *s = &sb->slots[i];

		cli_format_uuid(s->uuid, uuid);
		fprintf(f, "    %-5s %08x %-36s %-10s %" PRIu64 "%s\n",
			describe_role(sb, i, role, sizeof(role)), s->hashcode, uuid,
			sb_slot_state_name(s->state), s->data_size,
			i == sb->unit.slot ? "  <- this unit" : "");
	}
}

void describe_slots_json(struct json *j, const char *key, const struct rt_sb *sb)
{
	char role[16];

	json_array_begin(j, key);
	for (uint32_t i = 0; i < sb->array.n_slots && i < RT_MAX_UNITS; i++) {
		const struct rt_slot *s = &sb->slots[i];

		json_object_begin(j, NULL);
		json_str(j, "role", describe_role(sb, i, role, sizeof(role)));
		json_u64(j, "slot", i);
		json_hash(j, "hashcode", s->hashcode);
		json_uuid(j, "uuid", s->uuid);
		json_str(j, "state", sb_slot_state_name(s->state));
		json_u64(j, "data_size", s->data_size);
		json_u64(j, "recovery_offset", s->recovery_offset);
		json_object_end(j);
	}
	json_array_end(j);
}

void describe_repair_text(FILE *f, const struct rt_control_status *st)
{
	const char *sep = " (where the mirrors tied, kept the copy of role";
	const struct rt_control_walk w = control_status_walk(st);

	if (control_status_level(st) == RT_LEVEL_5) {
		fputs(", parity recomputed from the data", f);
		return;
	}
	for (uint32_t r = 0; r < 64; r++) {
		if (!(w.kept_roles & (1ull << r)))
			continue;
		fprintf(f, "%s %u", sep, r);
		sep = ",";
	}
	if (w.kept_roles)
		fputc(')', f);
	if (w.ties)
		fprintf(f, ", %" PRIu64 " left as found: no copy is held by more mirrors than "
			"another (--prefer ROLE chooses one)", w.ties);
}

void describe_repair_json(struct json *j, const struct rt_control_status *st)
{
	const struct rt_control_walk w = control_status_walk(st);

	json_str(j, "repair_method", control_status_level(st) == RT_LEVEL_5 ?
		 "parity-from-data" : "majority");
	json_array_begin(j, "kept_roles");
	for (uint32_t r = 0; r < 64; r++)
		if (w.kept_roles & (1ull << r))
			json_u64(j, NULL, r);
	json_array_end(j);
	json_u64(j, "ties", w.ties);
}

bool describe_walk_has_role(enum rt_walk_kind walk)
{
	return walk == RT_WALK_RECOVER || walk == RT_WALK_REPLACE;
}

void describe_array_id_json(struct json *j, const char *name, const uint8_t uuid[RT_UUID_SIZE],
			    uint32_t hashcode)
{
	json_str(j, "name", name);
	json_uuid(j, "uuid", uuid);
	json_hash(j, "hashcode", hashcode);
}

void describe_unit_change_json(struct json *j, const char *key, uint32_t n_devices,
			       const struct rt_control_unit *u)
{
	uint32_t slot = control_unit_slot(u);
	const char *dev = control_unit_device(u);

	json_object_begin(j, key);
	json_u64(j, "slot", slot);
	/* The role it holds, or null for a spare's slot (as "spare" in text). */
	if (slot < n_devices)
		json_u64(j, "role", slot);
	else
		json_str(j, "role", NULL);
	json_str(j, "device", dev[0] ? dev : NULL);
	json_uuid(j, "uuid", control_unit_uuid(u));
	json_hash(j, "hashcode", control_unit_hashcode(u));
	json_str(j, "state", control_unit_state_name(control_unit_state(u)));
	json_object_end(j);
}
