// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The thin pool's metadata: node cache, space maps, copy-on-write B-trees,
 * volume table, commit and check. See include/raidtool/thin.h for the
 * model and raidtool-format(5) for the layout.
 *
 * Reference counts (dm's persistent-data rules): a node's count is the
 * number of volume roots and internal nodes that point at it; a data
 * block's count is the number of leaves that map it (plus one per
 * reference a caller holds from thin_alloc_data_block). Shadowing a shared
 * node copies it and adds one to each of its children, then drops one from
 * the old node; dropping a node to zero drops its children.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <raidtool/log.h>
#include "thin-internal.h"

#define CACHE_BUCKETS 1024u
/* Clean nodes kept in memory before the cache is trimmed (between calls). */
#define CACHE_CLEAN_MAX 8192u
/* Node blocks held back from data allocation: one transaction's worth of shadowing. */
#define META_RESERVE 64u

/*
 * A reference count in memory: 2 bytes. A block's count is at most one per
 * volume (each volume's tree maps a data block at one place, and reaches a
 * node through one parent) plus a caller's few, far below 65535 with
 * THIN_MAX_VOLUMES volumes; the space maps on disk keep 4 bytes, and a
 * larger count read from them is damage (-EUCLEAN).
 */
typedef uint16_t thin_rc_t;
#define THIN_RC_MAX UINT16_MAX

struct cache_ent {
	uint64_t blk;
	bool dirty;
	struct cache_ent *next;
	struct thin_node node;
};

struct thin_pool {
	struct thin_io io;
	bool read_only;			/* opened so, or thin_set_read_only */
	bool ro_flag;			/* THIN_SB_READ_ONLY: thin_set_mode */
	bool snap_view;			/* opened on the metadata snapshot: no space maps */
	bool snap_counted;		/* and meta_rc/data_rc recounted from its trees */
	bool failed;			/* a commit or metadata read failed: abort first */
	bool broken;			/* and going back to the last commit failed too */
	bool dirty;
	bool needs_check;
	bool lost;			/* a transaction with changes was dropped: thin_lost */
	struct thin_sb sb;		/* the last commit */
	uint64_t txn_id;		/* running values of the superblock's fields */
	uint64_t data_blocks;
	uint32_t next_id;

	struct thin_vol_rec vols[THIN_MAX_VOLUMES];
	/* Per volume slot, its id and root in the last commit (id 0: none). */
	uint32_t committed_id[THIN_MAX_VOLUMES];
	uint64_t committed_root[THIN_MAX_VOLUMES];

	/*
	 * The metadata snapshot: its header block (0: none), what the header
	 * says, and the node blocks it holds (one bit each): never handed out
	 * while it is held, whatever their counts.
	 */
	uint64_t msnap;
	struct thin_msnap ms;
	uint8_t *held;

	thin_rc_t *meta_rc, *meta_rc_committed;		/* [node_blocks] */
	thin_rc_t *data_rc, *data_rc_committed;		/* [data_blocks_max] */
	/* Data blocks handed out by thin_data_reserve, count 0 until mapped. */
	uint8_t *data_reserved;			/* bitmap [data_blocks_max] */
	uint64_t n_data_reserved;		/* its bits set (not in data_free) */
	uint64_t meta_free, data_free;			/* count 0 now */
	uint64_t meta_cursor, data_cursor;
	/*
	 * Per area block: bit a set when area a lacks the running contents;
	 * AREA_WRITTEN when the commit being made wrote it.
	 */
	uint8_t *area_stale;

	struct cache_ent *bucket[CACHE_BUCKETS];
	uint64_t cached;
	uint8_t iobuf[THIN_META_BLOCK];
};

/* ---- node cache ---- */

static struct cache_ent **cache_slot(struct thin_pool *p, uint64_t blk)
{
	struct cache_ent **pp = &p->bucket[(blk * 0x9e3779b97f4a7c15ull) >> 54];

	while (*pp && (*pp)->blk != blk)
		pp = &(*pp)->next;
	return pp;
}

static void cache_drop(struct thin_pool *p, bool clean_only)
{
	for (unsigned b = 0; b < CACHE_BUCKETS; b++) {
		struct cache_ent **pp = &p->bucket[b];

		while (*pp) {
			struct cache_ent *e = *pp;

			if (clean_only && e->dirty) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e);
			p->cached--;
		}
	}
}

/* Called only between operations: node pointers stay valid during one. */
static void cache_trim(struct thin_pool *p)
{
	if (p->cached > CACHE_CLEAN_MAX)
		cache_drop(p, true);
}

static bool is_node_block(const struct thin_pool *p, uint64_t blk)
{
	return blk >= p->sb.node_start && blk - p->sb.node_start < p->sb.node_blocks;
}

static int metadata_error(struct thin_pool *p, int r, uint64_t blk, const char *what)
{
	/*
	 * No commit until aborted: the transaction may be half done. Once the
	 * last commit carries needs_check the pool changes nothing, so there is
	 * neither a transaction to drop nor a flag to record (and reads of
	 * what is still sound go on).
	 */
	p->needs_check = true;
	if (!(p->sb.flags & THIN_SB_NEEDS_CHECK))
		p->failed = true;
	rt_log(RT_LOG_ERROR, "thin pool: metadata block %llu: %s: %s", (unsigned long long)blk,
	       what, strerror(-r));
	return r;
}

/* @cached_only: -EWOULDBLOCK rather than read a node that is not in memory. */
static int node_find(struct thin_pool *p, uint64_t blk, bool cached_only, struct thin_node **out)
{
	struct cache_ent **pp, *e;
	int r;

	if (!is_node_block(p, blk))
		return metadata_error(p, -EUCLEAN, blk, "not a node block");
	pp = cache_slot(p, blk);
	if (*pp) {
		*out = &(*pp)->node;
		return 0;
	}
	if (cached_only)
		return -EWOULDBLOCK;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = p->io.read(p->io.ctx, p->iobuf, THIN_META_BLOCK, blk * THIN_META_BLOCK);
	if (r < 0) {
		free(e);
		return metadata_error(p, r, blk, "cannot read");
	}
	r = thin_node_decode(p->iobuf, THIN_META_BLOCK, blk, &e->node);
	if (r < 0) {
		free(e);
		return metadata_error(p, r == -ENODATA ? -EUCLEAN : r, blk, "bad node");
	}
	e->blk = blk;
	*pp = e;
	p->cached++;
	*out = &e->node;
	return 0;
}

static int node_get(struct thin_pool *p, uint64_t blk, struct thin_node **out)
{
	return node_find(p, blk, false, out);
}

static void node_mark_dirty(struct thin_pool *p, uint64_t blk)
{
	struct cache_ent *e = *cache_slot(p, blk);

	if (e)
		e->dirty = true;
	p->dirty = true;
}

/* ---- space maps ---- */

static void area_touch(struct thin_pool *p, uint64_t area_index)
{
	p->area_stale[area_index] = 3;
	p->dirty = true;
}

static uint64_t area_meta_rc_first(void)
{
	return THIN_VOLTAB_BLOCKS;
}

static uint64_t area_data_rc_first(const struct thin_pool *p)
{
	return THIN_VOLTAB_BLOCKS + (p->sb.node_blocks + THIN_RC_PER_BLOCK - 1) / THIN_RC_PER_BLOCK;
}

static bool bit_test(const uint8_t *bits, uint64_t i)
{
	return bits && (bits[i / 8] >> (i % 8)) & 1;
}

static void bit_put(uint8_t *bits, uint64_t i, bool v)
{
	if (v)
		bits[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		bits[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* A node block held by the metadata snapshot is not free, whatever its count. */
static void meta_set(struct thin_pool *p, uint64_t blk, thin_rc_t v)
{
	uint64_t i = blk - p->sb.node_start;
	bool held = bit_test(p->held, i);

	if (p->meta_rc[i] == 0 && v && !held)
		p->meta_free--;
	else if (p->meta_rc[i] && v == 0 && !held)
		p->meta_free++;
	p->meta_rc[i] = v;
	area_touch(p, area_meta_rc_first() + i / THIN_RC_PER_BLOCK);
}

static void data_set(struct thin_pool *p, uint64_t b, thin_rc_t v)
{
	if (p->data_rc[b] == 0 && v)
		p->data_free--;
	else if (p->data_rc[b] && v == 0)
		p->data_free++;
	p->data_rc[b] = v;
	area_touch(p, area_data_rc_first(p) + b / THIN_RC_PER_BLOCK);
}

static int meta_inc(struct thin_pool *p, uint64_t blk)
{
	if (!is_node_block(p, blk))
		return metadata_error(p, -EUCLEAN, blk, "reference outside the node area");
	if (p->meta_rc[blk - p->sb.node_start] == THIN_RC_MAX)
		return metadata_error(p, -EUCLEAN, blk, "node count overflow");
	meta_set(p, blk, p->meta_rc[blk - p->sb.node_start] + 1);
	return 0;
}

static int data_inc(struct thin_pool *p, uint64_t b)
{
	if (b >= p->data_blocks)
		return metadata_error(p, -EUCLEAN, b, "data block out of range");
	if (p->data_rc[b] == THIN_RC_MAX)
		return metadata_error(p, -EUCLEAN, b, "data block count overflow");
	data_set(p, b, p->data_rc[b] + 1);
	return 0;
}

static int data_dec(struct thin_pool *p, uint64_t b)
{
	if (b >= p->data_blocks || p->data_rc[b] == 0)
		return metadata_error(p, -EUCLEAN, b, "data block count underflow");
	data_set(p, b, p->data_rc[b] - 1);
	return 0;
}

/* Drop one reference to node @blk; at zero its children lose theirs. */
static int meta_dec(struct thin_pool *p, uint64_t blk)
{
	struct thin_node *n;
	uint64_t i;
	int r;

	if (!is_node_block(p, blk))
		return metadata_error(p, -EUCLEAN, blk, "reference outside the node area");
	i = blk - p->sb.node_start;
	if (p->meta_rc[i] == 0)
		return metadata_error(p, -EUCLEAN, blk, "node count underflow");
	if (p->meta_rc[i] > 1) {
		meta_set(p, blk, p->meta_rc[i] - 1);
		return 0;
	}
	r = node_get(p, blk, &n);
	if (r < 0)
		return r;
	for (uint32_t k = 0; k < n->n; k++) {
		r = n->leaf ? data_dec(p, n->val[k]) : meta_dec(p, n->val[k]);
		if (r < 0)
			return r;
	}
	meta_set(p, blk, 0);
	/* A node made in this transaction and freed again need not be written. */
	if (p->meta_rc_committed[i] == 0) {
		struct cache_ent **pp = cache_slot(p, blk), *e = *pp;

		if (e) {
			*pp = e->next;
			free(e);
			p->cached--;
		}
	}
	return 0;
}

/*
 * Free: count 0 now and in the last commit, which may still point at it
 * until the next commit is complete.
 */
/*
 * ... and not set in @skip (NULL: none): the node blocks the metadata
 * snapshot holds, or the data blocks thin_data_reserve handed out.
 */
static int alloc_from(const thin_rc_t *rc, const thin_rc_t *rc_committed, const uint8_t *skip,
		      uint64_t n, uint64_t *cursor, uint64_t *out)
{
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = (*cursor + k) % n;

		if (rc[i] == 0 && rc_committed[i] == 0 && !bit_test(skip, i)) {
			*cursor = (i + 1) % n;
			*out = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static int node_new(struct thin_pool *p, bool leaf, uint64_t *blk, struct thin_node **out)
{
	struct cache_ent **pp, *e;
	uint64_t i;
	int r;

	r = alloc_from(p->meta_rc, p->meta_rc_committed, p->held, p->sb.node_blocks,
		       &p->meta_cursor, &i);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "thin pool: out of metadata blocks");
		return r;
	}
	/* A block freed earlier may still be cached with its old contents: reuse the entry. */
	pp = cache_slot(p, p->sb.node_start + i);
	e = *pp;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->blk = p->sb.node_start + i;
		*pp = e;
		p->cached++;
	}
	e->dirty = true;
	memset(&e->node, 0, sizeof(e->node));
	e->node.leaf = leaf;
	meta_set(p, e->blk, 1);
	*blk = e->blk;
	*out = &e->node;
	return 0;
}

/*
 * Make node @blk writable for the one parent that points at it: in place
 * when this transaction made it and nothing shares it, else a copy (the
 * caller stores *@nblk where @blk was).
 */
static int shadow(struct thin_pool *p, uint64_t blk, uint64_t *nblk, struct thin_node **out)
{
	struct thin_node *old, *n;
	uint64_t i = blk - p->sb.node_start;
	int r;

	r = node_get(p, blk, &old);
	if (r < 0)
		return r;
	if (p->meta_rc[i] == 1 && p->meta_rc_committed[i] == 0) {
		node_mark_dirty(p, blk);
		*nblk = blk;
		*out = old;
		return 0;
	}
	r = node_new(p, old->leaf, nblk, &n);
	if (r < 0)
		return r;
	/* node_new may have grown the cache's chain: look the old node up again. */
	r = node_get(p, blk, &old);
	if (r < 0)
		return r;
	*n = *old;
	for (uint32_t k = 0; k < n->n; k++) {
		r = n->leaf ? data_inc(p, n->val[k]) : meta_inc(p, n->val[k]);
		if (r < 0)
			return r;
	}
	r = meta_dec(p, blk);
	if (r < 0)
		return r;
	*out = n;
	return 0;
}

/* ---- B-tree ---- */

/* Internal node: the child whose range holds @key. */
static uint32_t child_index(const struct thin_node *n, uint64_t key)
{
	uint32_t lo = 0, hi = n->n;

	/* Largest i with key[i] <= key; 0 when key is below them all. */
	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;

		if (n->key[mid] <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Leaf: the first entry with a key >= @key. */
static uint32_t leaf_pos(const struct thin_node *n, uint64_t key)
{
	uint32_t lo = 0, hi = n->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (n->key[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void node_insert_at(struct thin_node *n, uint32_t pos, uint64_t key, uint64_t val)
{
	memmove(&n->key[pos + 1], &n->key[pos], (n->n - pos) * sizeof(n->key[0]));
	memmove(&n->val[pos + 1], &n->val[pos], (n->n - pos) * sizeof(n->val[0]));
	n->key[pos] = key;
	n->val[pos] = val;
	n->n++;
}

static void node_remove_at(struct thin_node *n, uint32_t pos)
{
	memmove(&n->key[pos], &n->key[pos + 1], (n->n - pos - 1) * sizeof(n->key[0]));
	memmove(&n->val[pos], &n->val[pos + 1], (n->n - pos - 1) * sizeof(n->val[0]));
	n->n--;
}

/*
 * Find @key below @root: its value, and whether a node on the path is
 * shared now (*@shared) and every node on it had one reference in the last
 * commit (*@alone_committed). -ENODATA: not mapped.
 */
static int btree_find(struct thin_pool *p, uint64_t root, uint64_t key, bool cached_only,
		      uint64_t *val, bool *shared, bool *alone_committed)
{
	struct thin_node *n;
	uint64_t blk = root;
	uint32_t pos;
	int r;

	*shared = false;
	*alone_committed = true;
	for (;;) {
		uint64_t i = blk - p->sb.node_start;

		r = node_find(p, blk, cached_only, &n);
		if (r < 0)
			return r;
		*shared = *shared || p->meta_rc[i] > 1;
		*alone_committed = *alone_committed && p->meta_rc_committed[i] == 1;
		if (n->leaf)
			break;
		blk = n->val[child_index(n, key)];
	}
	pos = leaf_pos(n, key);
	if (pos >= n->n || n->key[pos] != key)
		return -ENODATA;
	*val = n->val[pos];
	return 0;
}

/*
 * Lookup in the tree at @root, the volume of slot @slot (only for
 * *@must_copy); *@must_copy (when not NULL): a write to the block must go
 * to a copy. That is when it is shared now (a node on the path or the
 * block has more than one reference), and also when the last commit may
 * map it from elsewhere (another volume, or another block of this one): a
 * crash would bring that mapping back with this write's bytes. In place is
 * safe when the block is new in this transaction, or when the last commit
 * counted it once and mapped it from this very block of this volume (its
 * committed tree maps @key to it through nodes the commit counted once;
 * those nodes are never changed before the next commit, only copied).
 */
static int btree_lookup_x(struct thin_pool *p, uint64_t root, uint64_t key, bool cached_only,
			  uint64_t *val, bool *must_copy, int slot)
{
	bool sh, alone, csh, calone;
	uint64_t cval;
	uint32_t before;
	int r;

	r = btree_find(p, root, key, cached_only, val, &sh, &alone);
	if (r < 0 || !must_copy)
		return r;
	if (*val >= p->data_blocks) {
		*must_copy = true;
		return 0;
	}
	before = p->data_rc_committed[*val];
	*must_copy = sh || p->data_rc[*val] > 1 || before > 1;
	if (*must_copy || before == 0)
		return 0;
	/* Mapped once in the last commit: from here? */
	if (slot < 0 || !p->committed_id[slot] || p->committed_id[slot] != p->vols[slot].id) {
		*must_copy = true;
		return 0;
	}
	if (alone && p->committed_root[slot] == root)
		return 0;	/* the very tree the last commit held */
	r = btree_find(p, p->committed_root[slot], key, cached_only, &cval, &csh, &calone);
	if (r == -EWOULDBLOCK)
		return r;
	*must_copy = r < 0 || cval != *val || !calone;
	return 0;
}

static int btree_lookup(struct thin_pool *p, uint64_t root, uint64_t key, uint64_t *val,
			bool *must_copy, int slot)
{
	return btree_lookup_x(p, root, key, false, val, must_copy, slot);
}

/* Split full node @n (at @blk, writable) into itself and a new right sibling. */
static int split(struct thin_pool *p, struct thin_node *n, uint64_t *rblk,
		 struct thin_node **right)
{
	struct thin_node *r;
	uint32_t half = n->n / 2;
	int err;

	err = node_new(p, n->leaf, rblk, &r);
	if (err < 0)
		return err;
	r->n = n->n - half;
	memcpy(r->key, &n->key[half], r->n * sizeof(r->key[0]));
	memcpy(r->val, &n->val[half], r->n * sizeof(r->val[0]));
	n->n = half;
	*right = r;
	return 0;
}

/*
 * Insert or replace @key -> @val in the tree at *@root (updated when the
 * root is shadowed or split). The caller's reference to @val passes to the
 * tree; a replaced value loses one. *@added: the key was new.
 */
static int btree_insert(struct thin_pool *p, uint64_t *root, uint64_t key, uint64_t val,
			bool *added)
{
	struct thin_node *n, *c, *right;
	uint64_t blk, cblk, rblk;

	uint32_t i, pos;
	int r;

	r = shadow(p, *root, &blk, &n);
	if (r < 0)
		return r;
	*root = blk;
	if (n->n == THIN_NODE_MAX) {
		/* Grow a level: a new root above the old one, then split that. */
		struct thin_node *nr;
		uint64_t nrblk;

		r = node_new(p, false, &nrblk, &nr);
		if (r < 0)
			return r;
		r = node_get(p, blk, &n);
		if (r < 0)
			return r;
		r = split(p, n, &rblk, &right);
		if (r < 0)
			return r;
		r = node_get(p, nrblk, &nr);
		if (r < 0)
			return r;
		nr->n = 2;
		nr->key[0] = n->key[0];
		nr->val[0] = blk;
		nr->key[1] = right->key[0];
		nr->val[1] = rblk;
		*root = nrblk;
		blk = nrblk;
		n = nr;
	}
	for (;;) {
		if (n->leaf) {
			pos = leaf_pos(n, key);
			if (pos < n->n && n->key[pos] == key) {
				uint64_t old = n->val[pos];

				n->val[pos] = val;
				*added = false;
				return data_dec(p, old);
			}
			node_insert_at(n, pos, key, val);
			*added = true;
			return 0;
		}
		i = child_index(n, key);
		if (key < n->key[0])
			n->key[0] = key;
		r = shadow(p, n->val[i], &cblk, &c);
		if (r < 0)
			return r;
		/* Allocation may move cache chains, never nodes: @n is still valid. */
		n->val[i] = cblk;
		if (c->n == THIN_NODE_MAX) {
			r = split(p, c, &rblk, &right);
			if (r < 0)
				return r;
			node_insert_at(n, i + 1, right->key[0], rblk);
			if (key >= right->key[0]) {
				c = right;
				cblk = rblk;
			}
		}
		n = c;
	}
}

/* Remove @key (known to be present) below writable node @n. */
static int btree_remove_rec(struct thin_pool *p, struct thin_node *n, uint64_t key)
{
	struct thin_node *c;
	uint64_t cblk;
	uint32_t i;
	int r;

	if (n->leaf) {
		i = leaf_pos(n, key);
		if (i >= n->n || n->key[i] != key)
			return -ENODATA;
		r = data_dec(p, n->val[i]);
		node_remove_at(n, i);
		return r;
	}
	i = child_index(n, key);
	r = shadow(p, n->val[i], &cblk, &c);
	if (r < 0)
		return r;
	n->val[i] = cblk;
	r = btree_remove_rec(p, c, key);
	if (r < 0)
		return r;
	if (c->n == 0) {
		/* No empty node below the root: drop it from its parent. */
		node_remove_at(n, i);
		r = meta_dec(p, cblk);
	}
	return r;
}

static int btree_remove(struct thin_pool *p, uint64_t *root, uint64_t key)
{
	struct thin_node *n;
	uint64_t blk, v;
	int r;

	r = btree_lookup(p, *root, key, &v, NULL, -1);
	if (r < 0)
		return r;
	r = shadow(p, *root, &blk, &n);
	if (r < 0)
		return r;
	*root = blk;
	r = btree_remove_rec(p, n, key);
	if (r == 0 && !n->leaf && n->n == 0)
		n->leaf = true;		/* an emptied internal root is an empty leaf */
	return r;
}

/* The first mapping with a key >= @key below @blk: 1 found, 0 none, <0 error. */
static int btree_next(struct thin_pool *p, uint64_t blk, uint64_t key, uint64_t *k,
		      uint64_t *v)
{
	struct thin_node *n;
	uint32_t i;
	int r;

	r = node_get(p, blk, &n);
	if (r < 0)
		return r;
	if (n->leaf) {
		i = leaf_pos(n, key);
		if (i >= n->n)
			return 0;
		*k = n->key[i];
		*v = n->val[i];
		return 1;
	}
	for (i = child_index(n, key); i < n->n; i++) {
		/* @n stays valid: lookups add cache entries, never free them. */
		r = btree_next(p, n->val[i], key, k, v);
		if (r != 0)
			return r;
	}
	return 0;
}

static int btree_walk(struct thin_pool *p, uint64_t blk,
		      int (*fn)(uint64_t k, uint64_t v, void *arg), void *arg)
{
	struct thin_node *n;
	int r;

	r = node_get(p, blk, &n);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < n->n; i++) {
		r = n->leaf ? fn(n->key[i], n->val[i], arg) : btree_walk(p, n->val[i], fn, arg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- volumes ---- */

static struct thin_vol_rec *vol_by_id(struct thin_pool *p, uint32_t id)
{
	for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++)
		if (id && p->vols[s].id == id)
			return &p->vols[s];
	return NULL;
}

static struct thin_vol_rec *vol_by_name(struct thin_pool *p, const char *name)
{
	for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++)
		if (p->vols[s].id && !strcmp(p->vols[s].name, name))
			return &p->vols[s];
	return NULL;
}

static void vol_touch(struct thin_pool *p, const struct thin_vol_rec *v)
{
	area_touch(p, (uint64_t)(v - p->vols) / THIN_VOLS_PER_BLOCK);
}

/* Read-only: opened so, set so, or the metadata needs a check. */
static int writable(struct thin_pool *p)
{
	if (p->failed)
		return -EIO;
	if (p->read_only || p->ro_flag || p->needs_check || p->snap_view)
		return -EROFS;
	return 0;
}

/* writable, saying why not: for the admin operations (the data path stays quiet). */
static int admin_writable(struct thin_pool *p)
{
	int r = writable(p);

	if (r == -EIO)
		rt_log(RT_LOG_ERROR, "thin pool: a metadata error stopped the running transaction");
	else if (r < 0 && p->needs_check)
		rt_log(RT_LOG_ERROR, "thin pool: read-only until 'raidtool pool check' finds it "
		       "clean (a metadata error set needs_check)");
	else if (r < 0 && p->ro_flag)
		rt_log(RT_LOG_ERROR, "thin pool: read-only ('raidtool pool set --read-write' "
		       "makes it writable)");
	else if (r < 0)
		rt_log(RT_LOG_ERROR, "thin pool: opened read-only");
	return r;
}

static void vol_info(const struct thin_vol_rec *r, struct thin_vol_info *v)
{
	v->id = r->id;
	snprintf(v->name, sizeof(v->name), "%s", r->name);
	v->size = r->size;
	v->mapped = r->mapped;
	v->origin = r->origin;
	v->created_txn = r->created_txn;
	v->root = r->root;
}

int thin_vol_find(const struct thin_pool *p, const char *name, uint32_t *id)
{
	const struct thin_vol_rec *v = vol_by_name((struct thin_pool *)p, name);

	if (!v)
		return -ENOENT;
	*id = v->id;
	return 0;
}

int thin_vol_get(const struct thin_pool *p, uint32_t id, struct thin_vol_info *v)
{
	const struct thin_vol_rec *r = vol_by_id((struct thin_pool *)p, id);

	if (!r)
		return -ENOENT;
	vol_info(r, v);
	return 0;
}

int thin_vol_at(const struct thin_pool *p, uint32_t index, struct thin_vol_info *v)
{
	uint32_t last = 0;

	/* The @index-th smallest id: few volumes, no index kept. */
	for (uint32_t k = 0; k <= index; k++) {
		uint32_t best = 0;

		for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++) {
			uint32_t id = p->vols[s].id;

			if (id > last && (!best || id < best))
				best = id;
		}
		if (!best)
			return -ENOENT;
		last = best;
	}
	return thin_vol_get(p, last, v);
}

static int vol_new(struct thin_pool *p, const char *name, struct thin_vol_rec **out)
{
	int r = admin_writable(p);

	if (r < 0)
		return r;
	if (thin_name_check(name) < 0) {
		rt_log(RT_LOG_ERROR, "'%s': not a volume name (1 to %d bytes of letters, digits, "
		       "'.', '_', '-'; not starting with '.' or '-')", name, THIN_NAME_MAX);
		return -EINVAL;
	}
	if (vol_by_name(p, name)) {
		rt_log(RT_LOG_ERROR, "'%s': a volume of that name exists", name);
		return -EEXIST;
	}
	for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++) {
		if (!p->vols[s].id) {
			*out = &p->vols[s];
			return 0;
		}
	}
	rt_log(RT_LOG_ERROR, "'%s': the pool holds %u volumes, its most", name, THIN_MAX_VOLUMES);
	return -ENOSPC;
}

static void vol_fill(struct thin_pool *p, struct thin_vol_rec *v, const char *name)
{
	v->id = p->next_id++;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->created_txn = p->sb.seq + 1;
	vol_touch(p, v);
}

/* A volume size: whole blocks, at least one (else said, -EINVAL). */
static int size_ok(const struct thin_pool *p, const char *name, uint64_t size)
{
	/* The exported file's size is an off_t: at most INT64_MAX. */
	if (size && size % p->sb.block_size == 0 && size <= (uint64_t)INT64_MAX)
		return 0;
	rt_log(RT_LOG_ERROR, "'%s': size %llu is not a positive multiple of the pool's "
	       "block size (%u) of at most %lld bytes", name, (unsigned long long)size,
	       p->sb.block_size, (long long)INT64_MAX);
	return -EINVAL;
}

/* Volume @name, to be changed: the pool writable and the volume there (else said). */
static int vol_to_change(struct thin_pool *p, const char *name, struct thin_vol_rec **out)
{
	int r;

	cache_trim(p);
	r = admin_writable(p);
	if (r < 0)
		return r;
	*out = vol_by_name(p, name);
	if (*out)
		return 0;
	rt_log(RT_LOG_ERROR, "'%s': no such volume", name);
	return -ENOENT;
}

int thin_vol_create(struct thin_pool *p, const char *name, uint64_t size, uint32_t *id)
{
	struct thin_vol_rec *v;
	struct thin_node *n;
	uint64_t root;
	int r;

	cache_trim(p);
	r = vol_new(p, name, &v);
	if (r == 0)
		r = size_ok(p, name, size);
	if (r < 0)
		return r;
	r = node_new(p, true, &root, &n);
	if (r < 0)
		return r;
	memset(v, 0, sizeof(*v));
	v->size = size;
	v->root = root;
	vol_fill(p, v, name);
	if (id)
		*id = v->id;
	return 0;
}

int thin_vol_snapshot(struct thin_pool *p, const char *origin, const char *name, uint32_t *id)
{
	struct thin_vol_rec *o, *v;
	int r;

	cache_trim(p);
	o = vol_by_name(p, origin);
	if (!o) {
		rt_log(RT_LOG_ERROR, "'%s': no such volume to snapshot", origin);
		return -ENOENT;
	}
	r = vol_new(p, name, &v);
	if (r < 0)
		return r;
	r = meta_inc(p, o->root);
	if (r < 0)
		return r;
	*v = *o;
	v->origin = o->id;
	vol_fill(p, v, name);
	if (id)
		*id = v->id;
	return 0;
}

int thin_vol_delete(struct thin_pool *p, const char *name)
{
	struct thin_vol_rec *v;
	int r = vol_to_change(p, name, &v);

	if (r < 0)
		return r;
	r = meta_dec(p, v->root);
	if (r < 0)
		return r;
	memset(v, 0, sizeof(*v));
	vol_touch(p, v);
	return 0;
}

int thin_vol_resize(struct thin_pool *p, const char *name, uint64_t size, bool force)
{
	struct thin_vol_rec *v;
	uint32_t bs = p->sb.block_size;
	int r = vol_to_change(p, name, &v);

	if (r == 0)
		r = size_ok(p, name, size);
	if (r < 0)
		return r;
	if (size < v->size && !force) {
		rt_log(RT_LOG_ERROR, "'%s': %llu bytes is smaller than its %llu; a shrink unmaps "
		       "what lies beyond (--force)", name, (unsigned long long)size,
		       (unsigned long long)v->size);
		return -ENOTEMPTY;
	}
	if (size < v->size) {
		r = thin_remove_range(p, v->id, size / bs, v->size / bs);
		if (r < 0)
			return r;
	}
	v->size = size;
	vol_touch(p, v);
	return 0;
}

static int vol_for_io(struct thin_pool *p, uint32_t id, bool write, struct thin_vol_rec **out)
{
	int r = write ? writable(p) : (p->failed ? -EIO : 0);

	if (r < 0)
		return r;
	*out = vol_by_id(p, id);
	return *out ? 0 : -ENOENT;
}

int thin_lookup(struct thin_pool *p, uint32_t id, uint64_t vblock, uint64_t *pblock)
{
	struct thin_vol_rec *v;
	int r;

	cache_trim(p);
	r = vol_for_io(p, id, false, &v);
	return r < 0 ? r : btree_lookup(p, v->root, vblock, pblock, NULL, -1);
}

static int insert_mapping(struct thin_pool *p, struct thin_vol_rec *v, uint64_t vb, uint64_t pb)
{
	bool added;
	int r;

	r = btree_insert(p, &v->root, vb, pb, &added);
	if (r < 0)
		return r;
	if (added)
		v->mapped++;
	vol_touch(p, v);
	return 0;
}

int thin_insert(struct thin_pool *p, uint32_t id, uint64_t vblock, uint64_t pblock)
{
	struct thin_vol_rec *v;
	int r;

	cache_trim(p);
	r = vol_for_io(p, id, true, &v);
	if (r < 0)
		return r;
	if (pblock >= p->data_blocks || vblock >= v->size / p->sb.block_size)
		return -EINVAL;
	return insert_mapping(p, v, vblock, pblock);
}

int thin_remove_range(struct thin_pool *p, uint32_t id, uint64_t begin, uint64_t end)
{
	struct thin_vol_rec *v;
	uint64_t k, val;
	int r;

	cache_trim(p);
	r = vol_for_io(p, id, true, &v);
	if (r < 0)
		return r;
	while (begin < end) {
		r = btree_next(p, v->root, begin, &k, &val);
		if (r <= 0 || k >= end)
			return r < 0 ? r : 0;
		r = btree_remove(p, &v->root, k);
		if (r < 0)
			return r;
		v->mapped--;
		vol_touch(p, v);
		begin = k + 1;
	}
	return 0;
}

int thin_highest_mapped(struct thin_pool *p, uint32_t id, uint64_t *vblock)
{
	struct thin_vol_rec *v;
	struct thin_node *n;
	uint64_t blk;
	int r;

	r = vol_for_io(p, id, false, &v);
	if (r < 0)
		return r;
	for (blk = v->root;; blk = n->val[n->n - 1]) {
		r = node_get(p, blk, &n);
		if (r < 0)
			return r;
		if (n->n == 0)
			return -ENODATA;
		if (n->leaf)
			break;
	}
	*vblock = n->key[n->n - 1];
	return 0;
}

struct walk_run {
	thin_range_fn fn;
	void *arg;
	uint64_t vb, pb, len;
};

static int walk_one(uint64_t k, uint64_t v, void *arg)
{
	struct walk_run *w = arg;
	int r = 0;

	if (w->len && k == w->vb + w->len && v == w->pb + w->len) {
		w->len++;
		return 0;
	}
	if (w->len)
		r = w->fn(w->vb, w->pb, w->len, w->arg);
	w->vb = k;
	w->pb = v;
	w->len = 1;
	return r;
}

int thin_vol_walk(struct thin_pool *p, uint32_t id, thin_range_fn fn, void *arg)
{
	struct walk_run w = { .fn = fn, .arg = arg };
	struct thin_vol_rec *v;
	int r;

	cache_trim(p);
	r = vol_for_io(p, id, false, &v);
	if (r == 0)
		r = btree_walk(p, v->root, walk_one, &w);
	if (r == 0 && w.len)
		r = fn(w.vb, w.pb, w.len, arg);
	return r;
}

static int shared_rec(struct thin_pool *p, uint64_t blk, bool inherited, uint64_t *count)
{
	struct thin_node *n;
	bool sh;
	int r;

	r = node_get(p, blk, &n);
	if (r < 0)
		return r;
	sh = inherited || p->meta_rc[blk - p->sb.node_start] > 1;
	for (uint32_t i = 0; i < n->n; i++) {
		if (n->leaf)
			*count += sh || (n->val[i] < p->data_blocks && p->data_rc[n->val[i]] > 1);
		else if ((r = shared_rec(p, n->val[i], sh, count)) < 0)
			return r;
	}
	return 0;
}

static int snap_recount(struct thin_pool *p);

int thin_vol_shared(struct thin_pool *p, uint32_t id, uint64_t *shared)
{
	struct thin_vol_rec *v;
	int r;

	cache_trim(p);
	*shared = 0;
	if (p->snap_view && !p->snap_counted) {
		r = snap_recount(p);
		if (r < 0)
			return r;
	}
	r = vol_for_io(p, id, false, &v);
	return r < 0 ? r : shared_rec(p, v->root, false, shared);
}

/* ---- data blocks ---- */

static bool below_reserve(const struct thin_pool *p)
{
	uint64_t reserve = p->sb.node_blocks < 4 * META_RESERVE ? p->sb.node_blocks / 4
								 : META_RESERVE;

	return p->meta_free <= reserve;
}

/*
 * A free data block for a write: on a writable pool whose metadata is not
 * down to its reserve (so a transaction never aborts for want of it).
 */
static int data_block_free(struct thin_pool *p, uint64_t *block)
{
	int r = writable(p);

	if (r < 0)
		return r;
	if (below_reserve(p))
		return -ENOSPC;
	return alloc_from(p->data_rc, p->data_rc_committed, p->data_reserved, p->data_blocks,
			  &p->data_cursor, block);
}

int thin_alloc_data_block(struct thin_pool *p, uint64_t *block)
{
	int r = data_block_free(p, block);

	if (r < 0)
		return r;
	data_set(p, *block, 1);
	return 0;
}

int thin_release_data_block(struct thin_pool *p, uint64_t block)
{
	int r = writable(p);

	return r < 0 ? r : data_dec(p, block);
}

int thin_data_refcount(const struct thin_pool *p, uint64_t block, uint32_t *count)
{
	if (block >= p->data_blocks)
		return -EINVAL;
	*count = p->data_rc[block];
	return 0;
}

/*
 * The event-driven data path's primitives (lib/thin-run.c): the caller
 * writes a block's data itself, between its lookup or reservation and the
 * insertion of its mapping, without holding the pool meanwhile.
 */
int thin_map_lookup(struct thin_pool *p, uint32_t id, uint64_t vblock, bool cached_only,
		    uint64_t *pblock, bool *must_copy)
{
	struct thin_vol_rec *v;
	int r;

	if (!cached_only)
		cache_trim(p);
	r = vol_for_io(p, id, must_copy != NULL, &v);
	if (r < 0)
		return r;
	if (vblock >= v->size / p->sb.block_size)
		return -EINVAL;
	return btree_lookup_x(p, v->root, vblock, cached_only, pblock, must_copy,
			      (int)(v - p->vols));
}

int thin_data_reserve(struct thin_pool *p, uint64_t *block)
{
	int r = data_block_free(p, block);

	if (r < 0)
		return r;
	bit_put(p->data_reserved, *block, true);
	p->n_data_reserved++;
	p->data_free--;
	return 0;
}

void thin_data_unreserve(struct thin_pool *p, uint64_t block)
{
	if (block < p->sb.data_blocks_max && bit_test(p->data_reserved, block)) {
		bit_put(p->data_reserved, block, false);
		p->n_data_reserved--;
		p->data_free++;
	}
}

int thin_insert_reserved(struct thin_pool *p, uint32_t id, uint64_t vblock, uint64_t block)
{
	struct thin_vol_rec *v;
	int r;

	if (block >= p->data_blocks || !bit_test(p->data_reserved, block))
		return -EINVAL;
	thin_data_unreserve(p, block);
	r = vol_for_io(p, id, true, &v);
	if (r < 0)
		return r;
	if (vblock >= v->size / p->sb.block_size)
		return -EINVAL;
	data_set(p, block, 1);
	r = insert_mapping(p, v, vblock, block);
	if (r < 0)
		data_dec(p, block);
	return r;
}

static uint64_t data_off(const struct thin_pool *p, uint64_t pb)
{
	return p->sb.data_offset + pb * p->sb.block_size;
}

static int io_range_ok(const struct thin_pool *p, const struct thin_vol_rec *v, size_t len,
		       uint64_t off)
{
	if (off % 512 || len % 512 || off > v->size || len > v->size - off)
		return -EINVAL;
	return 0;
}

/* One pool block's part of a volume's I/O: @n bytes at @within of virtual block @vb. */
typedef int (*vol_part_fn)(struct thin_pool *p, struct thin_vol_rec *v, uint64_t vb,
			   uint64_t within, uint8_t *buf, size_t n);

/* @fn for each pool block's part of volume @id's [@off, @off + @len), in order. */
static int vol_io(struct thin_pool *p, uint32_t id, bool write, uint8_t *buf, size_t len,
		  uint64_t off, vol_part_fn fn)
{
	struct thin_vol_rec *v;
	uint32_t bs = p->sb.block_size;
	int r;

	cache_trim(p);
	r = vol_for_io(p, id, write, &v);
	if (r == 0)
		r = io_range_ok(p, v, len, off);
	while (r == 0 && len) {
		uint64_t within = off % bs;
		size_t n = bs - within < len ? bs - within : len;

		r = fn(p, v, off / bs, within, buf, n);
		buf += n;
		off += n;
		len -= n;
	}
	return r;
}

static int read_part(struct thin_pool *p, struct thin_vol_rec *v, uint64_t vb, uint64_t within,
		     uint8_t *buf, size_t n)
{
	uint64_t pb;
	int r = btree_lookup(p, v->root, vb, &pb, NULL, -1);

	if (r == -ENODATA) {
		memset(buf, 0, n);	/* unmapped: the sparse device reads zeros */
		return 0;
	}
	return r < 0 ? r : p->io.read(p->io.ctx, buf, n, data_off(p, pb) + within);
}

int thin_vol_read(struct thin_pool *p, uint32_t id, void *buf, size_t len, uint64_t off)
{
	return vol_io(p, id, false, buf, len, off, read_part);
}

/* A new block for @vb holding the old block's bytes (or zeros) with @n bytes at @within replaced. */
static int write_new_block(struct thin_pool *p, struct thin_vol_rec *v, uint64_t vb,
			   const void *src, size_t n, uint64_t within, int64_t old)
{
	uint32_t bs = p->sb.block_size;
	uint8_t *blk = NULL;
	uint64_t nb;
	int r;

	r = thin_alloc_data_block(p, &nb);
	if (r < 0)
		return r;
	if (n < bs) {
		blk = malloc(bs);
		if (!blk) {
			r = -ENOMEM;
			goto fail;
		}
		if (old >= 0)
			r = p->io.read(p->io.ctx, blk, bs, data_off(p, (uint64_t)old));
		else
			memset(blk, 0, bs);
		if (r < 0)
			goto fail;
		memcpy(blk + within, src, n);
		src = blk;
	}
	/* The data first: the mapping that points at it commits after a flush. */
	r = p->io.write(p->io.ctx, src, bs, data_off(p, nb));
	if (r < 0)
		goto fail;
	free(blk);
	return insert_mapping(p, v, vb, nb);
fail:
	free(blk);
	data_dec(p, nb);
	return r;
}

/* @buf is only read. */
static int write_part(struct thin_pool *p, struct thin_vol_rec *v, uint64_t vb, uint64_t within,
		      uint8_t *buf, size_t n)
{
	uint64_t pb;
	bool must_copy;
	int r = btree_lookup(p, v->root, vb, &pb, &must_copy, (int)(v - p->vols));

	if (r == -ENODATA)
		return write_new_block(p, v, vb, buf, n, within, -1);
	if (r == 0 && must_copy)
		return write_new_block(p, v, vb, buf, n, within, (int64_t)pb);
	return r < 0 ? r : p->io.write(p->io.ctx, buf, n, data_off(p, pb) + within);
}

int thin_vol_write(struct thin_pool *p, uint32_t id, const void *buf, size_t len, uint64_t off)
{
	return vol_io(p, id, true, (uint8_t *)buf, len, off, write_part);
}

int thin_vol_discard(struct thin_pool *p, uint32_t id, uint64_t off, uint64_t len)
{
	struct thin_vol_rec *v;
	uint32_t bs = p->sb.block_size;
	uint64_t first, end;
	int r;

	r = vol_for_io(p, id, true, &v);
	if (r < 0)
		return r;
	if (off > v->size || len > v->size - off)
		return -EINVAL;
	first = (off + bs - 1) / bs;
	end = (off + len) / bs;
	return first < end ? thin_remove_range(p, id, first, end) : 0;
}

/* ---- areas, open, commit ---- */

static uint64_t area_block(const struct thin_pool *p, unsigned area, uint64_t index)
{
	return THIN_AREA_START + area * p->sb.area_blocks + index;
}

/*
 * The counts area block @index (one past the volume table) holds: those
 * of @rc from *@base, up to THIN_RC_PER_BLOCK of them and below *@count.
 */
static thin_rc_t *area_counts(const struct thin_pool *p, uint64_t index, uint64_t *base,
			      uint64_t *count)
{
	uint64_t mfirst = area_meta_rc_first(), dfirst = area_data_rc_first(p);

	if (index < dfirst) {
		*base = (index - mfirst) * THIN_RC_PER_BLOCK;
		*count = p->sb.node_blocks;
		return p->meta_rc;
	}
	*base = (index - dfirst) * THIN_RC_PER_BLOCK;
	*count = p->sb.data_blocks_max;
	return p->data_rc;
}

static void area_encode(const struct thin_pool *p, uint64_t index, uint8_t *buf)
{
	const thin_rc_t *rc;
	uint64_t base, count;

	memset(buf, 0, THIN_META_BLOCK);
	if (index < area_meta_rc_first()) {
		for (unsigned k = 0; k < THIN_VOLS_PER_BLOCK; k++)
			thin_vol_rec_encode(&p->vols[index * THIN_VOLS_PER_BLOCK + k],
					    buf + k * THIN_VOL_RECORD);
		return;
	}
	rc = area_counts(p, index, &base, &count);
	for (uint64_t k = 0; k < THIN_RC_PER_BLOCK && base + k < count; k++)
		thin_put_le32(buf + 4 * k, rc[base + k]);
}

/* Volume table block @index (of an area or of the metadata snapshot's copy). */
static int area_decode_voltab(struct thin_pool *p, uint64_t index, const uint8_t *buf)
{
	for (unsigned k = 0; k < THIN_VOLS_PER_BLOCK; k++) {
		struct thin_vol_rec *v = &p->vols[index * THIN_VOLS_PER_BLOCK + k];
		int r = thin_vol_rec_decode(buf + k * THIN_VOL_RECORD, v);

		if (r < 0)
			return r;
		if (v->id && (v->id >= p->sb.next_volume_id || !is_node_block(p, v->root)))
			return -EUCLEAN;
	}
	return 0;
}

static int area_decode(struct thin_pool *p, uint64_t index, const uint8_t *buf)
{
	thin_rc_t *rc;
	uint64_t base, count;

	if (index < area_meta_rc_first())
		return area_decode_voltab(p, index, buf);
	rc = area_counts(p, index, &base, &count);
	for (uint64_t k = 0; k < THIN_RC_PER_BLOCK && base + k < count; k++) {
		uint32_t v = thin_get_le32(buf + 4 * k);

		if (v > THIN_RC_MAX)
			return -EUCLEAN;
		rc[base + k] = (thin_rc_t)v;
	}
	return 0;
}

static void pool_free_state(struct thin_pool *p)
{
	cache_drop(p, false);
	free(p->meta_rc);
	free(p->meta_rc_committed);
	free(p->data_rc);
	free(p->data_rc_committed);
	free(p->area_stale);
	free(p->held);
	p->meta_rc = p->meta_rc_committed = p->data_rc = p->data_rc_committed = NULL;
	p->area_stale = NULL;
	p->held = NULL;
	p->msnap = 0;
}

static int pool_alloc_state(struct thin_pool *p)
{
	p->meta_rc = calloc(p->sb.node_blocks, sizeof(thin_rc_t));
	p->meta_rc_committed = calloc(p->sb.node_blocks, sizeof(thin_rc_t));
	p->data_rc = calloc(p->sb.data_blocks_max ? p->sb.data_blocks_max : 1, sizeof(thin_rc_t));
	p->data_rc_committed = calloc(p->sb.data_blocks_max ? p->sb.data_blocks_max : 1,
				      sizeof(thin_rc_t));
	p->area_stale = calloc(p->sb.area_blocks, 1);
	/*
	 * Kept from before a reload (thin_abort, a failure recorded): the
	 * blocks a worker is writing stay its own until it maps them.
	 */
	if (!p->data_reserved)
		p->data_reserved = calloc(p->sb.data_blocks_max / 8 + 1, 1);
	if (!p->meta_rc || !p->meta_rc_committed || !p->data_rc || !p->data_rc_committed ||
	    !p->area_stale || !p->data_reserved)
		return -ENOMEM;
	return 0;
}

static void count_free(struct thin_pool *p)
{
	p->meta_free = p->data_free = 0;
	for (uint64_t i = 0; i < p->sb.node_blocks; i++)
		p->meta_free += p->meta_rc[i] == 0 && !bit_test(p->held, i);
	for (uint64_t i = 0; i < p->data_blocks; i++)
		p->data_free += p->data_rc[i] == 0 && !bit_test(p->data_reserved, i);
}

#define AREA_WRITTEN 4u

/*
 * The running state becomes the last commit's. Counts: all of them (@all),
 * or those of the area blocks the commit wrote, the only ones that can
 * differ (every count changed since the last commit touched its block):
 * a commit copies what it changed, not the whole space maps under the
 * pool's mutex (34 MiB for a 1 TiB pool of 64 KiB blocks).
 */
static void mark_committed(struct thin_pool *p, bool all)
{
	for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++) {
		p->committed_id[s] = p->vols[s].id;
		p->committed_root[s] = p->vols[s].root;
	}
	for (uint64_t i = area_meta_rc_first(); i < p->sb.area_blocks; i++) {
		uint64_t base, count;
		thin_rc_t *rc, *committed;

		if (!all && !(p->area_stale[i] & AREA_WRITTEN))
			continue;
		p->area_stale[i] &= (uint8_t)~AREA_WRITTEN;
		rc = area_counts(p, i, &base, &count);
		committed = rc == p->meta_rc ? p->meta_rc_committed : p->data_rc_committed;
		if (base < count)
			memcpy(committed + base, rc + base,
			       (count - base < THIN_RC_PER_BLOCK ? count - base : THIN_RC_PER_BLOCK) *
			       sizeof(thin_rc_t));
	}
}

/* Read both superblock slots; the valid one with the highest sequence number wins. */
static int read_sb(const struct thin_io *io, struct thin_sb *out)
{
	uint8_t buf[THIN_META_BLOCK];
	bool magic = false, found = false;
	int r, bad = -EBADMSG;

	for (unsigned slot = 0; slot < THIN_SB_SLOTS; slot++) {
		struct thin_sb sb;

		r = io->read(io->ctx, buf, sizeof(buf), (uint64_t)slot * THIN_META_BLOCK);
		if (r < 0)
			return r;
		r = thin_sb_decode(buf, sizeof(buf), &sb);
		if (r == -ENODATA)
			continue;
		magic = true;
		if (r < 0) {
			bad = r;
			continue;
		}
		/* Slot seq % 2: one in the other slot is a copy out of place. */
		if (sb.seq % THIN_SB_SLOTS != slot)
			continue;
		if (!found || sb.seq > out->seq)
			*out = sb;
		found = true;
	}
	if (found)
		return 0;
	return magic ? bad : -ENODATA;
}

/* Read a metadata block into p->iobuf. */
static int meta_read(struct thin_pool *p, uint64_t blk)
{
	return p->io.read(p->io.ctx, p->iobuf, THIN_META_BLOCK, blk * THIN_META_BLOCK);
}

static int msnap_header(struct thin_pool *p, uint64_t blk)
{
	uint64_t n_bitmap = (p->sb.node_blocks + THIN_HELD_PER_BLOCK - 1) / THIN_HELD_PER_BLOCK;
	int r = meta_read(p, blk);

	if (r == 0)
		r = thin_msnap_decode(p->iobuf, THIN_META_BLOCK, blk, &p->ms);
	if (r == 0 && p->ms.n_bitmap != n_bitmap)
		r = -EUCLEAN;
	for (unsigned i = 0; r == 0 && i < THIN_VOLTAB_BLOCKS; i++)
		if (!is_node_block(p, p->ms.table[i]))
			r = -EUCLEAN;
	for (uint32_t i = 0; r == 0 && i < p->ms.n_bitmap; i++)
		if (!is_node_block(p, p->ms.bitmap[i]))
			r = -EUCLEAN;
	if (r < 0)
		rt_log(RT_LOG_ERROR, "thin pool: metadata snapshot at block %llu: %s",
		       (unsigned long long)blk, strerror(-r == ENODATA ? EUCLEAN : -r));
	return r == -ENODATA ? -EUCLEAN : r;
}

/* The metadata snapshot the last commit holds: its header and the nodes it holds. */
static int msnap_load(struct thin_pool *p)
{
	uint64_t bytes = (p->sb.node_blocks + 7) / 8;
	int r;

	if (!p->sb.metadata_snap)
		return 0;
	r = msnap_header(p, p->sb.metadata_snap);
	if (r < 0)
		return r;
	p->held = calloc(1, bytes);
	if (!p->held)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->ms.n_bitmap; i++) {
		uint64_t blk = p->ms.bitmap[i], off = (uint64_t)i * THIN_AREA_PAYLOAD;

		r = meta_read(p, blk);
		if (r == 0)
			r = thin_area_verify(p->iobuf, blk);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "thin pool: metadata snapshot's bitmap block %llu: %s",
			       (unsigned long long)blk, strerror(-r));
			return r;
		}
		memcpy(p->held + off, p->iobuf, bytes - off < THIN_AREA_PAYLOAD ? bytes - off
									: THIN_AREA_PAYLOAD);
	}
	p->msnap = p->sb.metadata_snap;
	return 0;
}

static int load_commit(struct thin_pool *p)
{
	unsigned area;
	int r;

	pool_free_state(p);
	r = read_sb(&p->io, &p->sb);
	if (r < 0)
		return r;
	p->txn_id = p->sb.transaction_id;
	p->data_blocks = p->sb.data_blocks;
	p->next_id = p->sb.next_volume_id;
	p->needs_check = p->sb.flags & THIN_SB_NEEDS_CHECK;
	p->ro_flag = p->sb.flags & THIN_SB_READ_ONLY;
	p->failed = p->broken = false;
	p->dirty = false;
	memset(p->vols, 0, sizeof(p->vols));
	r = pool_alloc_state(p);
	if (r < 0)
		return r;
	area = p->sb.seq % 2;
	for (uint64_t i = 0; i < p->sb.area_blocks; i++) {
		uint64_t blk = area_block(p, area, i);

		r = p->io.read(p->io.ctx, p->iobuf, THIN_META_BLOCK, blk * THIN_META_BLOCK);
		if (r < 0)
			return r;
		r = thin_area_verify(p->iobuf, blk);
		if (r == 0)
			r = area_decode(p, i, p->iobuf);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "thin pool: space-map area block %llu: %s",
			       (unsigned long long)blk, strerror(-r));
			return r;
		}
		/* The other area holds the commit before: rewritten whole next time. */
		p->area_stale[i] = (uint8_t)(1u << (1 - area));
	}
	for (uint64_t i = p->data_blocks; i < p->sb.data_blocks_max; i++)
		if (p->data_rc[i])
			return -EUCLEAN;
	mark_committed(p, true);
	r = msnap_load(p);
	count_free(p);
	return r;
}

/*
 * The last commit, loaded anew. Half loaded (a read or checksum error past
 * the superblock), the space maps would give out blocks still mapped: the
 * pool then neither writes nor commits (-EIO), whoever called.
 */
static int load(struct thin_pool *p)
{
	int r = load_commit(p);

	if (r < 0)
		p->failed = p->broken = true;
	return r;
}

int thin_probe(const struct thin_io *io)
{
	struct thin_sb sb;
	int r = read_sb(io, &sb);

	if (r == -ENODATA)
		return 0;
	return r < 0 ? r : 1;
}

int thin_open(const struct thin_io *io, bool read_only, struct thin_pool **out)
{
	struct thin_pool *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->io = *io;
	p->read_only = read_only;
	r = load(p);
	if (r < 0) {
		thin_close(p);
		return r;
	}
	*out = p;
	return 0;
}

void thin_close(struct thin_pool *p)
{
	if (!p)
		return;
	pool_free_state(p);
	free(p->data_reserved);
	free(p);
}

int thin_abort(struct thin_pool *p)
{
	return load(p);
}

bool thin_lost(const struct thin_pool *p)
{
	return p->lost;
}

bool thin_dirty(const struct thin_pool *p)
{
	/* A metadata error is there to record too (thin_commit). */
	return p->dirty || (p->failed && !p->broken && !p->read_only);
}

static int write_sb(struct thin_pool *p, const struct thin_sb *sb)
{
	thin_sb_encode(sb, p->iobuf);
	return p->io.write(p->io.ctx, p->iobuf, THIN_META_BLOCK,
			   (sb->seq % THIN_SB_SLOTS) * THIN_META_BLOCK);
}

static int record_failure(struct thin_pool *p);

int thin_commit(struct thin_pool *p)
{
	struct thin_sb sb = p->sb;
	unsigned area;
	int r = 0;

	if (p->failed)
		return record_failure(p);
	if (p->snap_view)
		return -EROFS;
	if (!p->dirty)
		return 0;
	sb.seq++;
	sb.transaction_id = p->txn_id;
	sb.data_blocks = p->data_blocks;
	sb.next_volume_id = p->next_id;
	sb.metadata_snap = p->msnap;
	sb.flags = (p->needs_check ? THIN_SB_NEEDS_CHECK : 0) | (p->ro_flag ? THIN_SB_READ_ONLY : 0);
	area = sb.seq % 2;

	/* 1. Every node and area block of the transaction, anywhere the last commit is not. */
	for (unsigned b = 0; b < CACHE_BUCKETS && r == 0; b++) {
		for (struct cache_ent *e = p->bucket[b]; e && r == 0; e = e->next) {
			if (!e->dirty)
				continue;
			thin_node_encode(&e->node, e->blk, p->iobuf);
			r = p->io.write(p->io.ctx, p->iobuf, THIN_META_BLOCK,
					e->blk * THIN_META_BLOCK);
			e->dirty = r < 0;
		}
	}
	for (uint64_t i = 0; i < p->sb.area_blocks && r == 0; i++) {
		uint64_t blk = area_block(p, area, i);

		if (!(p->area_stale[i] & (1u << area)))
			continue;
		area_encode(p, i, p->iobuf);
		thin_area_seal(p->iobuf, blk);
		r = p->io.write(p->io.ctx, p->iobuf, THIN_META_BLOCK, blk * THIN_META_BLOCK);
		if (r == 0)
			p->area_stale[i] = (uint8_t)((p->area_stale[i] & ~(1u << area)) |
						     AREA_WRITTEN);
	}
	/* 2. On stable storage, with the data the new mappings point at. */
	if (r == 0)
		r = p->io.flush(p->io.ctx);
	/* 3. Then the root: the superblock of this sequence number, and flush. */
	if (r == 0)
		r = write_sb(p, &sb);
	if (r == 0)
		r = p->io.flush(p->io.ctx);
	if (r < 0) {
		p->failed = true;
		p->needs_check = true;
		rt_log(RT_LOG_ERROR, "thin pool: commit %llu failed: %s",
		       (unsigned long long)sb.seq, strerror(-r));
		return r;
	}
	p->sb = sb;
	mark_committed(p, false);
	p->dirty = false;
	return 0;
}

/*
 * After a metadata error the running transaction may be half done: go back
 * to the last commit and commit needs_check there (dm's abort_transaction
 * with set_needs_check), so the flag outlives a restart. The pool is
 * read-only from then on; the transaction's changes are lost (-EIO).
 */
static int record_failure(struct thin_pool *p)
{
	int r;

	if (p->broken || p->read_only)
		return -EIO;
	/* Its mappings are gone with it: writes acknowledged since the last commit. */
	if (p->dirty)
		p->lost = true;
	r = load(p);
	if (r == 0) {
		p->needs_check = true;
		p->dirty = true;
		r = thin_commit(p);
	}
	if (r < 0) {
		p->failed = p->broken = p->needs_check = true;
		rt_log(RT_LOG_ERROR, "thin pool: cannot record needs_check: %s", strerror(-r));
		return -EIO;
	}
	rt_log(RT_LOG_ERROR, "thin pool: metadata error: back at commit %llu, needs_check set, "
	       "read-only until 'raidtool pool check' finds it clean",
	       (unsigned long long)p->sb.seq);
	return -EIO;
}

uint64_t thin_transaction_id(const struct thin_pool *p)
{
	return p->txn_id;
}

int thin_set_transaction_id(struct thin_pool *p, uint64_t old, uint64_t id)
{
	int r = admin_writable(p);

	if (r < 0)
		return r;
	if (old != p->txn_id) {
		rt_log(RT_LOG_ERROR, "thin pool: transaction id is %llu, not %llu",
		       (unsigned long long)p->txn_id, (unsigned long long)old);
		return -EINVAL;
	}
	p->txn_id = id;
	p->dirty = true;
	return 0;
}

void thin_set_read_only(struct thin_pool *p, bool ro)
{
	p->read_only = ro;
}

int thin_set_mode(struct thin_pool *p, bool read_only)
{
	if (p->failed || p->read_only || p->snap_view)
		return admin_writable(p);
	if (!read_only && p->needs_check) {
		rt_log(RT_LOG_ERROR, "thin pool: needs_check is set: 'raidtool pool check' must "
		       "find it clean before it is writable again");
		return -EUCLEAN;
	}
	if (p->ro_flag == read_only)
		return 0;
	/* What the running transaction changed goes into the commit that records the mode. */
	p->ro_flag = read_only;
	p->dirty = true;
	return thin_commit(p);
}

/* ---- the metadata snapshot ---- */

static int meta_write_sealed(struct thin_pool *p, uint64_t blk)
{
	thin_area_seal(p->iobuf, blk);
	return p->io.write(p->io.ctx, p->iobuf, THIN_META_BLOCK, blk * THIN_META_BLOCK);
}

/* The snapshot's own blocks: header, volume table copy, bitmap. */
static unsigned msnap_blocks(const struct thin_pool *p, uint64_t *blk)
{
	unsigned n = 0;

	blk[n++] = p->msnap;
	for (unsigned i = 0; i < THIN_VOLTAB_BLOCKS; i++)
		blk[n++] = p->ms.table[i];
	for (uint32_t i = 0; i < p->ms.n_bitmap; i++)
		blk[n++] = p->ms.bitmap[i];
	return n;
}

#define MSNAP_BLOCKS_MAX (1 + THIN_VOLTAB_BLOCKS + THIN_MSNAP_BITMAP_MAX)

int thin_reserve_metadata_snap(struct thin_pool *p)
{
	uint64_t blk[MSNAP_BLOCKS_MAX], n_bitmap, i;
	uint8_t *held;
	unsigned n;
	int r = admin_writable(p);

	if (r < 0)
		return r;
	if (p->msnap) {
		rt_log(RT_LOG_ERROR, "thin pool: a metadata snapshot is held already (block %llu); "
		       "release it first", (unsigned long long)p->msnap);
		return -EBUSY;
	}
	n_bitmap = (p->sb.node_blocks + THIN_HELD_PER_BLOCK - 1) / THIN_HELD_PER_BLOCK;
	if (n_bitmap > THIN_MSNAP_BITMAP_MAX)
		return -EFBIG;
	/* A copy of a commit: every node it reaches is on disk and counted in the last commit. */
	r = thin_commit(p);
	if (r < 0)
		return r;
	held = calloc(1, (p->sb.node_blocks + 7) / 8);
	if (!held)
		return -ENOMEM;
	/*
	 * It holds every node in use: those its volumes reach, without a walk.
	 * Holding them by a bit, not a count, leaves the data blocks' counts
	 * (and so what a write copies) as they are: it copies metadata only.
	 */
	for (i = 0; i < p->sb.node_blocks; i++)
		if (p->meta_rc[i])
			held[i / 8] |= (uint8_t)(1u << (i % 8));
	memset(&p->ms, 0, sizeof(p->ms));
	p->ms.seq = p->sb.seq;
	p->ms.transaction_id = p->txn_id;
	p->ms.data_blocks = p->data_blocks;
	/* The last commit's count: a block a worker holds reserved is free in it. */
	p->ms.free_data_blocks = p->data_free + p->n_data_reserved;
	p->ms.free_metadata_blocks = p->meta_free;
	p->ms.n_bitmap = (uint32_t)n_bitmap;
	n = 1 + THIN_VOLTAB_BLOCKS + (unsigned)n_bitmap;
	for (unsigned k = 0; k < n; k++) {
		r = alloc_from(p->meta_rc, p->meta_rc_committed, held, p->sb.node_blocks,
			       &p->meta_cursor, &i);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "thin pool: no %u free metadata blocks for a metadata "
			       "snapshot", n);
			while (k--)
				meta_set(p, blk[k], 0);
			free(held);
			return r;
		}
		blk[k] = p->sb.node_start + i;
		meta_set(p, blk[k], 1);
	}
	p->msnap = blk[0];
	for (unsigned k = 0; k < THIN_VOLTAB_BLOCKS; k++)
		p->ms.table[k] = blk[1 + k];
	for (uint32_t k = 0; k < p->ms.n_bitmap; k++)
		p->ms.bitmap[k] = blk[1 + THIN_VOLTAB_BLOCKS + k];
	/* Written now; the commit below flushes them before its superblock names the header. */
	for (unsigned k = 0; r == 0 && k < THIN_VOLTAB_BLOCKS; k++) {
		area_encode(p, k, p->iobuf);
		r = meta_write_sealed(p, p->ms.table[k]);
	}
	for (uint32_t k = 0; r == 0 && k < p->ms.n_bitmap; k++) {
		uint64_t bytes = (p->sb.node_blocks + 7) / 8, off = (uint64_t)k * THIN_AREA_PAYLOAD;

		memset(p->iobuf, 0, THIN_META_BLOCK);
		memcpy(p->iobuf, held + off,
		       bytes - off < THIN_AREA_PAYLOAD ? bytes - off : THIN_AREA_PAYLOAD);
		r = meta_write_sealed(p, p->ms.bitmap[k]);
	}
	if (r == 0) {
		thin_msnap_encode(&p->ms, p->msnap, p->iobuf);
		r = p->io.write(p->io.ctx, p->iobuf, THIN_META_BLOCK, p->msnap * THIN_META_BLOCK);
	}
	p->held = held;
	count_free(p);
	if (r < 0)
		return metadata_error(p, r, p->msnap, "cannot write the metadata snapshot");
	return thin_commit(p);
}

int thin_release_metadata_snap(struct thin_pool *p)
{
	uint64_t blk[MSNAP_BLOCKS_MAX];
	unsigned n;
	int r = admin_writable(p);

	if (r < 0)
		return r;
	if (!p->msnap) {
		rt_log(RT_LOG_ERROR, "thin pool: no metadata snapshot is held");
		return -ENODATA;
	}
	n = msnap_blocks(p, blk);
	for (unsigned k = 0; k < n; k++)
		meta_set(p, blk[k], 0);
	p->msnap = 0;
	r = thin_commit(p);
	if (r < 0)
		return r;
	/* Only now: the last commit no longer names the snapshot. */
	free(p->held);
	p->held = NULL;
	count_free(p);
	return 0;
}

int thin_get_metadata_snap(const struct thin_pool *p, uint64_t *block)
{
	if (!p->msnap)
		return -ENODATA;
	*block = p->msnap;
	return 0;
}

int thin_open_metadata_snap(const struct thin_io *io, struct thin_pool **out)
{
	struct thin_pool *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->io = *io;
	p->read_only = p->snap_view = true;
	r = read_sb(io, &p->sb);
	if (r == 0 && !p->sb.metadata_snap)
		r = -ENOENT;
	if (r == 0)
		r = pool_alloc_state(p);
	if (r == 0)
		r = msnap_header(p, p->sb.metadata_snap);
	for (unsigned i = 0; r == 0 && i < THIN_VOLTAB_BLOCKS; i++) {
		r = meta_read(p, p->ms.table[i]);
		if (r == 0)
			r = thin_area_verify(p->iobuf, p->ms.table[i]);
		if (r == 0)
			r = area_decode_voltab(p, i, p->iobuf);
	}
	if (r < 0) {
		thin_close(p);
		return r;
	}
	/* What the snapshot copied: the commit it was made at. */
	p->msnap = p->sb.metadata_snap;
	p->sb.seq = p->ms.seq;
	p->txn_id = p->ms.transaction_id;
	p->data_blocks = p->ms.data_blocks;
	p->data_free = p->ms.free_data_blocks;
	p->meta_free = p->ms.free_metadata_blocks;
	p->needs_check = p->sb.flags & THIN_SB_NEEDS_CHECK;
	p->ro_flag = p->sb.flags & THIN_SB_READ_ONLY;
	*out = p;
	return 0;
}

int thin_set_needs_check(struct thin_pool *p)
{
	p->needs_check = true;
	if (p->failed || p->read_only)
		return 0;
	p->dirty = true;
	return thin_commit(p);
}

bool thin_needs_check(const struct thin_pool *p)
{
	return p->needs_check;
}

void thin_pool_get_info(const struct thin_pool *p, struct thin_pool_info *i)
{
	memset(i, 0, sizeof(*i));
	i->commit_seq = p->sb.seq;
	i->transaction_id = p->txn_id;
	i->block_size = p->sb.block_size;
	i->data_offset = p->sb.data_offset;
	i->data_blocks = p->data_blocks;
	i->free_data_blocks = p->data_free;
	i->metadata_blocks = p->sb.node_blocks;
	i->free_metadata_blocks = p->meta_free;
	i->when_full = p->sb.when_full;
	i->low_water = p->sb.low_water;
	i->needs_check = p->needs_check;
	/* The pool's mode, not how this handle opened it. */
	i->read_only = p->ro_flag || p->needs_check;
	i->read_only_flag = p->ro_flag;
	i->metadata_snap = p->msnap;
	i->below_low_water = p->sb.low_water &&
			     p->data_free * 100 < (uint64_t)p->sb.low_water * p->data_blocks;
	for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++)
		i->n_volumes += p->vols[s].id != 0;
}

int thin_resize_data(struct thin_pool *p, uint64_t data_blocks)
{
	int r = admin_writable(p);

	if (r < 0)
		return r;
	if (data_blocks > p->sb.data_blocks_max ||
	    data_blocks > (p->sb.pool_bytes - p->sb.data_offset) / p->sb.block_size)
		return -EFBIG;
	for (uint64_t b = data_blocks; b < p->data_blocks; b++)
		if (p->data_rc[b] || p->data_rc_committed[b])
			return -ENOSPC;
	p->data_blocks = data_blocks;
	count_free(p);
	p->dirty = true;
	return 0;
}

/* ---- format ---- */

int thin_format(const struct thin_io *io, const struct thin_format_params *fp)
{
	struct thin_pool *p;
	uint32_t bs = fp->block_size ? fp->block_size : THIN_BLOCK_DEFAULT;
	uint64_t rough, nodes, meta_end;
	int r;

	if (bs < THIN_BLOCK_MIN || bs > THIN_BLOCK_MAX || (bs & (bs - 1)) ||
	    fp->when_full > THIN_WHEN_FULL_QUEUE || fp->low_water > 100)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->io = *io;
	/*
	 * Node blocks: one per 16 data blocks (a mapping costs 16-32 bytes of
	 * leaf), at least 256, room for the snapshots' diverging copies.
	 */
	rough = fp->pool_bytes / bs;
	nodes = fp->metadata_blocks ? fp->metadata_blocks : rough / 16;
	if (nodes < 256)
		nodes = 256;
	p->sb = (struct thin_sb){
		.seq = 0,
		.created = (uint64_t)time(NULL),
		.block_size = bs,
		.when_full = fp->when_full,
		.low_water = fp->low_water,
		.pool_bytes = fp->pool_bytes,
		.node_blocks = nodes,
		.data_blocks_max = rough,
		.next_volume_id = 1,
	};
	p->sb.area_blocks = thin_area_blocks(nodes, rough);
	p->sb.node_start = THIN_AREA_START + 2 * p->sb.area_blocks;
	meta_end = (p->sb.node_start + nodes) * THIN_META_BLOCK;
	p->sb.data_offset = (meta_end + bs - 1) / bs * bs;
	if (p->sb.data_offset >= fp->pool_bytes ||
	    (fp->pool_bytes - p->sb.data_offset) / bs == 0) {
		free(p);
		return -ENOSPC;
	}
	p->sb.data_blocks = (fp->pool_bytes - p->sb.data_offset) / bs;
	p->data_blocks = p->sb.data_blocks;
	p->next_id = 1;
	r = pool_alloc_state(p);
	if (r < 0)
		goto out;
	memset(p->area_stale, 3, p->sb.area_blocks);
	count_free(p);
	p->dirty = true;
	/* Slot 0 first: no superblock of an older pool may outrank the new one. */
	memset(p->iobuf, 0, sizeof(p->iobuf));
	r = io->write(io->ctx, p->iobuf, THIN_META_BLOCK, 0);
	if (r == 0)
		r = thin_commit(p);	/* seq 1: slot 1, area 1 */
out:
	thin_close(p);
	return r;
}

/* ---- check ---- */

struct checker {
	struct thin_pool *p;
	struct thin_check_report *rep;
	thin_rc_t *meta, *data;		/* counts the maps imply (THIN_RC_MAX: at least) */
};

/* One more reference counted in @rc; the count, which stops at THIN_RC_MAX. */
static thin_rc_t rc_add(thin_rc_t *rc)
{
	if (*rc < THIN_RC_MAX)
		(*rc)++;
	return *rc;
}

static void __attribute__((format(printf, 2, 3)))
problem(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	if (c->rep->first[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->rep->first, sizeof(c->rep->first), fmt, ap);
	va_end(ap);
}

/* Count the references below @blk (first visit only), checking keys lie in [lo, hi). */
static void check_node(struct checker *c, uint64_t blk, uint64_t lo, uint64_t hi)
{
	struct thin_pool *p = c->p;
	struct thin_node *n;

	if (!is_node_block(p, blk)) {
		c->rep->bad_nodes++;
		problem(c, "reference to block %llu outside the node area", (unsigned long long)blk);
		return;
	}
	if (rc_add(&c->meta[blk - p->sb.node_start]) > 1)
		return;
	if (node_get(p, blk, &n) < 0) {
		c->rep->bad_nodes++;
		problem(c, "node %llu unreadable or damaged", (unsigned long long)blk);
		return;
	}
	for (uint32_t i = 0; i < n->n; i++) {
		uint64_t k = n->key[i];

		if ((k < lo && (n->leaf || i > 0)) || k >= hi) {
			c->rep->bad_nodes++;
			problem(c, "node %llu: key %llu out of its parent's range",
				(unsigned long long)blk, (unsigned long long)k);
			return;
		}
	}
	for (uint32_t i = 0; i < n->n; i++) {
		if (n->leaf) {
			if (n->val[i] >= p->data_blocks) {
				c->rep->bad_nodes++;
				problem(c, "node %llu maps data block %llu beyond the pool",
					(unsigned long long)blk, (unsigned long long)n->val[i]);
				continue;
			}
			rc_add(&c->data[n->val[i]]);
		} else {
			uint64_t clo = i == 0 ? lo : n->key[i];
			uint64_t chi = i + 1 < n->n ? n->key[i + 1] : hi;

			check_node(c, n->val[i], clo, chi);
			/* check_node may add cache entries; @n stays where it is. */
		}
	}
}

static int count_one(uint64_t k, uint64_t v, void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

/* The metadata snapshot's trees: every node readable and held. */
static void check_msnap_node(struct checker *c, uint64_t blk, uint8_t *seen)
{
	struct thin_pool *p = c->p;
	struct thin_node *n;
	uint64_t i = blk - p->sb.node_start;

	if (!is_node_block(p, blk)) {
		c->rep->bad_nodes++;
		problem(c, "metadata snapshot: reference to block %llu outside the node area",
			(unsigned long long)blk);
		return;
	}
	if (bit_test(seen, i))
		return;
	seen[i / 8] |= (uint8_t)(1u << (i % 8));
	if (!bit_test(p->held, i)) {
		c->rep->bad_nodes++;
		problem(c, "metadata snapshot: node %llu is not held", (unsigned long long)blk);
		return;
	}
	if (node_get(p, blk, &n) < 0) {
		c->rep->bad_nodes++;
		problem(c, "metadata snapshot: node %llu unreadable or damaged",
			(unsigned long long)blk);
		return;
	}
	for (uint32_t k = 0; !n->leaf && k < n->n; k++)
		check_msnap_node(c, n->val[k], seen);
}

/* Its own blocks count once each; the trees of its volume table copy are walked. */
static int check_msnap(struct checker *c)
{
	struct thin_pool *p = c->p;
	uint64_t blk[MSNAP_BLOCKS_MAX];
	struct thin_vol_rec v;
	uint8_t *seen, table[THIN_META_BLOCK];
	unsigned n;
	int r = 0;

	if (!p->msnap)
		return 0;
	n = msnap_blocks(p, blk);
	for (unsigned k = 0; k < n; k++)
		rc_add(&c->meta[blk[k] - p->sb.node_start]);
	seen = calloc(1, (p->sb.node_blocks + 7) / 8);
	if (!seen)
		return -ENOMEM;
	for (unsigned t = 0; t < THIN_VOLTAB_BLOCKS; t++) {
		r = meta_read(p, p->ms.table[t]);
		if (r == 0)
			r = thin_area_verify(p->iobuf, p->ms.table[t]);
		/* check_msnap_node reads through p->iobuf. */
		memcpy(table, p->iobuf, sizeof(table));
		if (r < 0) {
			c->rep->bad_nodes++;
			problem(c, "metadata snapshot: volume table block %llu: %s",
				(unsigned long long)p->ms.table[t], strerror(-r));
			r = 0;
			continue;
		}
		for (unsigned k = 0; k < THIN_VOLS_PER_BLOCK; k++) {
			if (thin_vol_rec_decode(table + k * THIN_VOL_RECORD, &v) < 0) {
				c->rep->bad_nodes++;
				problem(c, "metadata snapshot: volume table block %llu: bad record",
					(unsigned long long)p->ms.table[t]);
				break;
			}
			if (v.id)
				check_msnap_node(c, v.root, seen);
		}
	}
	free(seen);
	return r;
}

/*
 * A metadata snapshot copies no space maps (nor could it pin the commit's:
 * the next commit but one rewrites that area). The counts its trees imply
 * are what the maps said at its commit, reserved blocks aside (count 0
 * there too): recounted once, as thin_check does, into the view's own.
 */
static int snap_recount(struct thin_pool *p)
{
	struct thin_check_report rep;
	struct checker c = { .p = p, .rep = &rep, .meta = p->meta_rc, .data = p->data_rc };

	memset(&rep, 0, sizeof(rep));
	for (unsigned s = 0; s < THIN_MAX_VOLUMES && !rep.bad_nodes; s++)
		if (p->vols[s].id)
			check_node(&c, p->vols[s].root, 0, UINT64_MAX);
	if (rep.bad_nodes) {
		rt_log(RT_LOG_ERROR, "thin pool: metadata snapshot: %s", rep.first);
		memset(p->meta_rc, 0, p->sb.node_blocks * sizeof(thin_rc_t));
		memset(p->data_rc, 0, p->sb.data_blocks_max * sizeof(thin_rc_t));
		return -EUCLEAN;
	}
	p->snap_counted = true;
	return 0;
}

int thin_check(struct thin_pool *p, struct thin_check_report *rep)
{
	struct checker c = { .p = p, .rep = rep };
	int r = 0;

	memset(rep, 0, sizeof(*rep));
	if (p->snap_view)
		return -EOPNOTSUPP;
	c.meta = calloc(p->sb.node_blocks, sizeof(thin_rc_t));
	c.data = calloc(p->sb.data_blocks_max ? p->sb.data_blocks_max : 1, sizeof(thin_rc_t));
	if (!c.meta || !c.data) {
		r = -ENOMEM;
		goto out;
	}
	for (unsigned s = 0; s < THIN_MAX_VOLUMES; s++) {
		struct thin_vol_rec *v = &p->vols[s];
		uint64_t count = 0;

		if (!v->id)
			continue;
		check_node(&c, v->root, 0, UINT64_MAX);
		if (rep->bad_nodes)
			continue;
		if (btree_walk(p, v->root, count_one, &count) < 0 || count != v->mapped) {
			rep->bad_counts++;
			problem(&c, "volume %u: %llu blocks mapped, its record says %llu", v->id,
				(unsigned long long)count, (unsigned long long)v->mapped);
		}
		if (v->size % p->sb.block_size) {
			rep->bad_counts++;
			problem(&c, "volume %u: size %llu not whole blocks", v->id,
				(unsigned long long)v->size);
		}
	}
	r = check_msnap(&c);
	if (r < 0)
		goto out;
	/* Nothing uncommitted: the last commit's counts are the running ones (mark_committed). */
	if (!p->dirty &&
	    (memcmp(p->meta_rc, p->meta_rc_committed, p->sb.node_blocks * sizeof(thin_rc_t)) ||
	     memcmp(p->data_rc, p->data_rc_committed,
		    p->sb.data_blocks_max * sizeof(thin_rc_t)))) {
		rep->bad_counts++;
		problem(&c, "the last commit's counts in memory differ from the running ones");
	}
	for (uint64_t i = 0; i < p->sb.node_blocks; i++) {
		if (p->meta_rc[i] > c.meta[i]) {
			rep->meta_leaks++;
			problem(&c, "node block %llu: count %u, referenced %u times",
				(unsigned long long)(p->sb.node_start + i), p->meta_rc[i], c.meta[i]);
		} else if (p->meta_rc[i] < c.meta[i] || c.meta[i] == THIN_RC_MAX) {
			rep->meta_missing++;
			problem(&c, "node block %llu: count %u, referenced %u times",
				(unsigned long long)(p->sb.node_start + i), p->meta_rc[i], c.meta[i]);
		}
	}
	for (uint64_t i = 0; i < p->sb.data_blocks_max; i++) {
		if (p->data_rc[i] > c.data[i]) {
			rep->data_leaks++;
			problem(&c, "data block %llu: count %u, mapped %u times",
				(unsigned long long)i, p->data_rc[i], c.data[i]);
		} else if (p->data_rc[i] < c.data[i] || c.data[i] == THIN_RC_MAX) {
			rep->data_missing++;
			problem(&c, "data block %llu: count %u, mapped %u times",
				(unsigned long long)i, p->data_rc[i], c.data[i]);
		}
	}
out:
	free(c.meta);
	free(c.data);
	cache_trim(p);
	return r;
}

int thin_check_and_clear(struct thin_pool *p, struct thin_check_report *rep)
{
	int r = thin_check(p, rep);

	if (r < 0)
		return r;
	if (rep->bad_nodes || rep->meta_leaks || rep->meta_missing || rep->data_leaks ||
	    rep->data_missing || rep->bad_counts) {
		/* Kept in the superblock (a node read failure is recorded the same way). */
		p->needs_check = true;
		if (!p->read_only && !p->snap_view) {
			p->dirty = true;
			/* After a node read failure it records needs_check alone and says -EIO. */
			if (thin_commit(p) < 0)
				rt_log(RT_LOG_DEBUG, "thin pool: check: needs_check recorded alone");
		}
		return -EUCLEAN;
	}
	if (p->needs_check && !p->read_only && !p->failed) {
		p->needs_check = false;
		p->dirty = true;
		return thin_commit(p);
	}
	return 0;
}
