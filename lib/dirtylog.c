/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dirty-region log bookkeeping (see include/raidtool/dirtylog.h). The live
 * and touched words are atomics because writers test and note them
 * without a lock; everything else belongs to the caller's mutex.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <raidtool/dirtylog.h>
#include <raidtool/format.h>

struct rt_dirtylog {
	uint64_t n, region_size, words;
	_Atomic uint64_t *live;
	_Atomic uint64_t *touched;	/* written since the last sweep */
	uint64_t *disk, *pinned, *pending;
	uint8_t *idle;			/* sweeps without a write, saturating */
};

#define W(i) ((i) / 64)
#define B(i) (1ull << ((i) % 64))

int dirtylog_create(uint64_t n_regions, uint64_t region_size, struct rt_dirtylog **out)
{
	struct rt_dirtylog *dl;

	if (!out || n_regions == 0 || region_size == 0)
		return -EINVAL;
	dl = calloc(1, sizeof(*dl));
	if (!dl)
		return -ENOMEM;
	dl->n = n_regions;
	dl->region_size = region_size;
	dl->words = (n_regions + 63) / 64;
	dl->live = calloc(dl->words, sizeof(*dl->live));
	dl->touched = calloc(dl->words, sizeof(*dl->touched));
	dl->disk = calloc(dl->words, sizeof(*dl->disk));
	dl->pinned = calloc(dl->words, sizeof(*dl->pinned));
	dl->pending = calloc(dl->words, sizeof(*dl->pending));
	dl->idle = calloc(n_regions, 1);
	if (!dl->live || !dl->touched || !dl->disk || !dl->pinned || !dl->pending || !dl->idle) {
		dirtylog_destroy(dl);
		return -ENOMEM;
	}
	*out = dl;
	return 0;
}

void dirtylog_destroy(struct rt_dirtylog *dl)
{
	if (!dl)
		return;
	free(dl->live);
	free(dl->touched);
	free(dl->disk);
	free(dl->pinned);
	free(dl->pending);
	free(dl->idle);
	free(dl);
}

uint64_t dirtylog_regions(const struct rt_dirtylog *dl)
{
	return dl->n;
}

uint64_t dirtylog_region_size(const struct rt_dirtylog *dl)
{
	return dl->region_size;
}

bool dirtylog_covered(struct rt_dirtylog *dl, uint64_t first, uint64_t last)
{
	uint64_t i;

	if (last >= dl->n)
		last = dl->n - 1;
	for (i = first; i <= last; i++) {
		if (!(atomic_load_explicit(&dl->live[W(i)], memory_order_acquire) & B(i)))
			return false;
		/* Test first: the common case costs no shared-line write. */
		if (!(atomic_load_explicit(&dl->touched[W(i)], memory_order_relaxed) & B(i)))
			atomic_fetch_or_explicit(&dl->touched[W(i)], B(i), memory_order_relaxed);
	}
	return true;
}

bool dirtylog_mark(struct rt_dirtylog *dl, uint64_t first, uint64_t last)
{
	bool changed = false;
	uint64_t i;

	if (last >= dl->n)
		last = dl->n - 1;
	for (i = first; i <= last; i++) {
		if (!(dl->disk[W(i)] & B(i))) {
			dl->disk[W(i)] |= B(i);
			changed = true;
		}
		dl->idle[i] = 0;
		atomic_fetch_or(&dl->touched[W(i)], B(i));
	}
	return changed;
}

void dirtylog_publish(struct rt_dirtylog *dl, uint64_t first, uint64_t last)
{
	uint64_t i;

	if (last >= dl->n)
		last = dl->n - 1;
	for (i = first; i <= last; i++)
		atomic_fetch_or_explicit(&dl->live[W(i)], B(i), memory_order_release);
}

uint64_t dirtylog_sweep_begin(struct rt_dirtylog *dl, unsigned idle_sweeps)
{
	uint64_t i, k = 0;

	memset(dl->pending, 0, dl->words * sizeof(*dl->pending));
	for (i = 0; i < dl->n; i++) {
		if (!(dl->disk[W(i)] & B(i)) || (dl->pinned[W(i)] & B(i)))
			continue;
		if (atomic_fetch_and(&dl->touched[W(i)], ~B(i)) & B(i)) {
			dl->idle[i] = 0;
			continue;
		}
		if (dl->idle[i] < 255)
			dl->idle[i]++;
		if (dl->idle[i] < idle_sweeps)
			continue;
		atomic_fetch_and(&dl->live[W(i)], ~B(i));
		dl->pending[W(i)] |= B(i);
		k++;
	}
	return k;
}

bool dirtylog_pending(const struct rt_dirtylog *dl, uint64_t region)
{
	return region < dl->n && (dl->pending[W(region)] & B(region));
}

bool dirtylog_sweep_commit(struct rt_dirtylog *dl)
{
	bool changed = false;
	uint64_t i;

	for (i = 0; i < dl->n; i++) {
		if (!(dl->pending[W(i)] & B(i)))
			continue;
		/* A writer made it live again meanwhile: it stays dirty. */
		if (!(atomic_load(&dl->live[W(i)]) & B(i))) {
			dl->disk[W(i)] &= ~B(i);
			dl->idle[i] = 0;
			changed = true;
		}
	}
	memset(dl->pending, 0, dl->words * sizeof(*dl->pending));
	return changed;
}

void dirtylog_sweep_abort(struct rt_dirtylog *dl)
{
	uint64_t w;

	/* Live again, so that writers keep skipping the log for them. */
	for (w = 0; w < dl->words; w++)
		atomic_fetch_or(&dl->live[w], dl->pending[w]);
	memset(dl->pending, 0, dl->words * sizeof(*dl->pending));
}

bool dirtylog_clear_all(struct rt_dirtylog *dl)
{
	bool changed = false;
	uint64_t w;

	for (w = 0; w < dl->words; w++) {
		uint64_t keep = dl->pinned[w];

		if (dl->disk[w] & ~keep)
			changed = true;
		dl->disk[w] &= keep;
		atomic_fetch_and(&dl->live[w], keep);
		atomic_store(&dl->touched[w], 0);
	}
	return changed;
}

void dirtylog_load(struct rt_dirtylog *dl, const uint8_t *bits)
{
	uint64_t i;

	for (i = 0; i < dl->n; i++) {
		if (bits[i / 8] & (1u << (i % 8)))
			dirtylog_pin(dl, i, i);
	}
}

/*
 * pinned is written under the caller's mutex but read lock-free by writers
 * choosing how to compute parity: the words are accessed atomically. A
 * region only ever goes from pinned to unpinned while writers run, and a
 * writer that still sees it pinned merely takes the safe path.
 */
void dirtylog_unpin(struct rt_dirtylog *dl, uint64_t region)
{
	if (region < dl->n)
		__atomic_fetch_and(&dl->pinned[W(region)], ~B(region), __ATOMIC_RELEASE);
}

void dirtylog_pin(struct rt_dirtylog *dl, uint64_t first, uint64_t last)
{
	uint64_t i;

	for (i = first; i <= last && i < dl->n; i++) {
		dl->disk[W(i)] |= B(i);
		__atomic_fetch_or(&dl->pinned[W(i)], B(i), __ATOMIC_RELEASE);
		atomic_fetch_or(&dl->live[W(i)], B(i));
	}
}

uint64_t dirtylog_pinned(const struct rt_dirtylog *dl, uint8_t *out)
{
	uint64_t i, k = 0;

	if (out)
		memset(out, 0, (dl->n + 7) / 8);
	for (i = 0; i < dl->n; i++) {
		if (!(__atomic_load_n(&dl->pinned[W(i)], __ATOMIC_ACQUIRE) & B(i)))
			continue;
		k++;
		if (out)
			out[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	return k;
}

void dirtylog_unpin_all(struct rt_dirtylog *dl)
{
	for (uint64_t w = 0; w < dl->words; w++)
		__atomic_store_n(&dl->pinned[w], 0, __ATOMIC_RELEASE);
}

bool dirtylog_pinned_any(const struct rt_dirtylog *dl, uint64_t first, uint64_t last)
{
	uint64_t i;

	if (last >= dl->n)
		last = dl->n - 1;
	for (i = first; i <= last; i++)
		if (__atomic_load_n(&dl->pinned[W(i)], __ATOMIC_ACQUIRE) & B(i))
			return true;
	return false;
}

void dirtylog_geometry(uint64_t role_bytes, uint64_t region_size, uint64_t log_size,
		       uint64_t *region_out, uint64_t *n_regions_out)
{
	uint64_t R = region_size ? region_size : RT_DEFAULT_REGION, n;

	for (;;) {
		n = (role_bytes + R - 1) / R;
		if (n == 0 || dirtylog_encoded_size(n) <= log_size)
			break;
		R *= 2;
	}
	*region_out = R;
	*n_regions_out = n;
}

bool dirtylog_test(const struct rt_dirtylog *dl, uint64_t region)
{
	return region < dl->n && (dl->disk[W(region)] & B(region));
}

uint64_t dirtylog_count(const struct rt_dirtylog *dl)
{
	uint64_t w, k = 0;

	for (w = 0; w < dl->words; w++)
		k += (uint64_t)__builtin_popcountll(dl->disk[w]);
	return k;
}

void dirtylog_bitmap(const struct rt_dirtylog *dl, uint8_t *out)
{
	uint64_t i;

	for (i = 0; i < (dl->n + 7) / 8; i++)
		out[i] = (uint8_t)(dl->disk[i / 8] >> (8 * (i % 8)));
}

size_t dirtylog_encoded_size(uint64_t n_regions)
{
	/* n / 8 rounded up without n + 7, which wraps for the largest n. */
	uint64_t bytes = n_regions / 8 + (n_regions % 8 != 0);

	return (RT_DLOG_HEADER + bytes + RT_DLOG_BLOCK - 1) / RT_DLOG_BLOCK * RT_DLOG_BLOCK;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* CRC32C of the whole encoded length, its own field (bytes 52-55) as zeros. */
static int dlog_crc(const uint8_t *buf, size_t len, uint32_t *crc)
{
	uint8_t *copy = malloc(len);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	put32(copy + 52, 0);
	*crc = sb_crc32c(copy, len);
	free(copy);
	return 0;
}

int dirtylog_encode(const struct rt_dirtylog *dl, uint64_t events, uint64_t seq,
		    uint64_t events_cleared, uint8_t *buf, size_t len)
{
	size_t need = dirtylog_encoded_size(dl->n);

	if (len < need)
		return -ENOSPC;
	memset(buf, 0, need);
	memcpy(buf, RT_DLOG_MAGIC, 8);
	put32(buf + 8, RT_DLOG_VERSION);
	put32(buf + 12, RT_DLOG_HEADER);
	put64(buf + 16, events);
	put64(buf + 24, seq);
	put64(buf + 32, dl->region_size);
	put64(buf + 40, dl->n);
	put32(buf + 48, (uint32_t)need);
	put64(buf + 56, events_cleared);
	dirtylog_bitmap(dl, buf + RT_DLOG_HEADER);
	put32(buf + 52, sb_crc32c(buf, need));	/* the field is still zero */
	return 0;
}

int dirtylog_decode(const uint8_t *buf, size_t len, struct rt_dlog_header *h,
		    uint8_t *bits, size_t bits_len)
{
	uint32_t total, crc;
	int ret;

	if (len < RT_DLOG_HEADER)
		return -EINVAL;
	if (memcmp(buf, RT_DLOG_MAGIC, 8))
		return -ENODATA;
	total = get32(buf + 48);
	if (total < RT_DLOG_BLOCK || total % RT_DLOG_BLOCK || total > len)
		return total > len ? -EINVAL : -EUCLEAN;
	ret = dlog_crc(buf, total, &crc);
	if (ret)
		return ret;
	if (crc != get32(buf + 52))
		return -EBADMSG;
	h->version = get32(buf + 8);
	if (h->version != RT_DLOG_VERSION)
		return -EPROTONOSUPPORT;
	h->events = get64(buf + 16);
	h->seq = get64(buf + 24);
	h->region_size = get64(buf + 32);
	h->n_regions = get64(buf + 40);
	h->events_cleared = get64(buf + 56);
	/*
	 * The bitmap must lie inside the encoded length: a count beyond it
	 * would have callers walk bits past the buffer.
	 */
	if (get32(buf + 12) != RT_DLOG_HEADER || h->region_size == 0 || h->n_regions == 0 ||
	    h->n_regions > (uint64_t)(total - RT_DLOG_HEADER) * 8 ||
	    dirtylog_encoded_size(h->n_regions) != total)
		return -EUCLEAN;
	if (bits) {
		if (bits_len < (h->n_regions + 7) / 8)
			return -ENOSPC;
		memcpy(bits, buf + RT_DLOG_HEADER, (h->n_regions + 7) / 8);
	}
	return 0;
}

static bool uuid_is_zero(const uint8_t *u)
{
	for (unsigned i = 0; i < RT_UUID_SIZE; i++)
		if (u[i])
			return false;
	return true;
}

/*
 * md's rules (super_1_validate with a bitmap): the unit's own superblock
 * names its role, and its events must not be older than the bitmap's
 * events_cleared. md re-adds a unit that failed an I/O that way too;
 * raidtool keeps no bad-block list, so it does not: see io_failed.
 */
int dirtylog_readd_check(const struct rt_sb *array, const struct rt_sb *unit,
			 uint64_t events_cleared, uint32_t *role)
{
	const struct rt_slot *mine, *now;
	uint32_t r;

	if (!array || !unit || memcmp(array->array.uuid, unit->array.uuid, RT_UUID_SIZE))
		return RT_READD_FOREIGN;
	/*
	 * Every update of a running array bumps its events, so a unit outside
	 * it with as many or more was updated by another run: split brain.
	 */
	if (unit->events >= array->events)
		return RT_READD_NEWER;
	/*
	 * Fewer events prove nothing when both halves ran alone (a degraded
	 * start of each, on different boots): the one that ran longer has more.
	 * A unit that ran without a role which the array holds active, with
	 * the same unit in it, ran apart: what it wrote meanwhile is in no log
	 * the array has. (A unit that merely failed keeps the table it had.)
	 */
	for (uint32_t q = 0; q < array->array.n_devices && q < RT_MAX_UNITS; q++) {
		const struct rt_slot *theirs = &unit->slots[q], *ours = &array->slots[q];

		if (q != unit->unit.slot && ours->state == RT_SLOT_ACTIVE &&
		    (theirs->state == RT_SLOT_FAULTY || theirs->state == RT_SLOT_MISSING) &&
		    !uuid_is_zero(ours->uuid) && !memcmp(theirs->uuid, ours->uuid, RT_UUID_SIZE))
			return RT_READD_RAN_APART;
	}
	r = unit->unit.slot;
	if (r >= array->array.n_devices || r >= RT_MAX_UNITS)
		return RT_READD_NO_ROLE;
	mine = &unit->slots[r];
	if (mine->state != RT_SLOT_ACTIVE || memcmp(mine->uuid, unit->unit.uuid, RT_UUID_SIZE))
		return RT_READD_NO_ROLE;
	now = &array->slots[r];
	if ((now->state != RT_SLOT_FAULTY && now->state != RT_SLOT_MISSING) ||
	    (!uuid_is_zero(now->uuid) && memcmp(now->uuid, unit->unit.uuid, RT_UUID_SIZE)))
		return RT_READD_ROLE_TAKEN;
	if (array->io_failed & (1ull << r))
		return RT_READD_IO_FAILED;
	if (!events_cleared)
		return RT_READD_NO_LOG;
	if (unit->events < events_cleared)
		return RT_READD_TOO_OLD;
	if (role)
		*role = r;
	return RT_READD_OK;
}

const char *dirtylog_readd_reason(int why)
{
	switch (why) {
	case RT_READD_OK:
		return "it left recently: the dirty-region log covers every write since";
	case RT_READD_FOREIGN:
		return "it is not a unit of this array";
	case RT_READD_NO_ROLE:
		return "it held no role with all of its data";
	case RT_READD_ROLE_TAKEN:
		return "its role was given to another unit since";
	case RT_READD_IO_FAILED:
		return "it failed an I/O (its media is suspect)";
	case RT_READD_NO_LOG:
		return "the array keeps no dirty-region log";
	case RT_READD_TOO_OLD:
		return "it left before the dirty-region log was last cleared";
	case RT_READD_NEWER:
		return "it is ahead of the array (events newer): the two ran apart";
	case RT_READD_RAN_APART:
		return "it ran without a unit the array has active: the two ran apart";
	default:
		return "unknown";
	}
}
