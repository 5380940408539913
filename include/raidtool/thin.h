/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_THIN_H
#define RAIDTOOL_THIN_H

/*
 * The thin pool: many thin volumes and their snapshots on one array, with
 * dm-thin's metadata API as the model (raidtool-format(5), THIN POOL).
 *
 * The pool owns the array's whole data area. Its first bytes are the
 * metadata region (4 KiB blocks: two pool superblocks, two space-map areas,
 * then B-tree nodes), the rest are data blocks of the pool's block size.
 * Every volume maps virtual block -> data block through a copy-on-write
 * B-tree; a node is shadowed (copied) before it is changed unless it was
 * made in the running transaction and nothing else shares it. Reference
 * counts of data blocks and of metadata nodes (the space maps) and the
 * volume table are written to one of two alternating areas. A commit
 * writes the transaction's nodes and area blocks, flushes, then writes the
 * superblock slot of its sequence number (CRC32C) and flushes again; opening
 * takes the valid superblock with the highest sequence number. A block
 * freed in a transaction is not reused before it commits, so a crash at any
 * moment comes back at the last completed commit.
 *
 * Everything goes through struct thin_io, so the tests can run a pool on
 * a RAM device that loses unflushed writes. Not thread-safe: the caller
 * serialises calls on one pool.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THIN_META_BLOCK 4096u		/* metadata block size */
#define THIN_BLOCK_MIN (64u * 1024u)	/* data block size bounds (powers of two) */
#define THIN_BLOCK_MAX (1024u * 1024u)
#define THIN_BLOCK_DEFAULT (64u * 1024u)
#define THIN_NAME_MAX 63		/* bytes of a volume name */
#define THIN_MAX_VOLUMES 496u		/* volume table slots */

/* Byte-addressed access to the pool's area (the array's data area). */
struct thin_io {
	void *ctx;
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	int (*write)(void *ctx, const void *buf, size_t len, uint64_t off);
	/* Returns once every completed write is on stable storage. */
	int (*flush)(void *ctx);
};

enum thin_when_full {
	THIN_WHEN_FULL_ERROR = 0,	/* a write needing a block fails with ENOSPC */
	THIN_WHEN_FULL_QUEUE = 1,	/* it waits a while for space first */
};

struct thin_format_params {
	uint64_t pool_bytes;		/* bytes of the area the pool owns */
	uint32_t block_size;		/* data block size; 0: THIN_BLOCK_DEFAULT */
	uint32_t when_full;		/* enum thin_when_full */
	uint32_t low_water;		/* percent of data blocks free that warns; 0: none */
	uint64_t metadata_blocks;	/* node blocks; 0: chosen from the data blocks */
};

/*
 * Write a new, empty pool over @io (both superblock slots, so an older
 * pool's superblocks cannot come back). -EINVAL for a bad block size or
 * option, -ENOSPC when @pool_bytes leaves no room for data blocks.
 */
int thin_format(const struct thin_io *io, const struct thin_format_params *p);

/*
 * Does @io hold a pool? 1 yes (a valid superblock in a slot), 0 no
 * (neither slot has the pool's magic), <0 an I/O error or -EBADMSG (the
 * magic, but no slot passes its checks).
 */
int thin_probe(const struct thin_io *io);

struct thin_pool;

/*
 * Open the pool at its last commit. @read_only: every change fails with
 * -EROFS. -ENODATA no pool, -EBADMSG/-EUCLEAN damaged metadata.
 */
int thin_open(const struct thin_io *io, bool read_only, struct thin_pool **out);

/* Free the pool; what was not committed is lost (call thin_commit first). */
void thin_close(struct thin_pool *p);

/*
 * Commit the running transaction (nothing is written when nothing changed).
 * A failed commit or a metadata read error sets needs_check and fails the
 * transaction: the next thin_commit goes back to the last commit, commits
 * needs_check there (so it outlives a restart) and returns -EIO; the pool
 * is read-only from then on, until thin_check_and_clear finds it clean.
 * thin_dirty is true while such a failure waits to be recorded.
 */
int thin_commit(struct thin_pool *p);

/* Drop the running transaction: back to the last commit, as reopened. */
int thin_abort(struct thin_pool *p);

/* Did the running transaction change anything? */
bool thin_dirty(const struct thin_pool *p);
/*
 * A metadata error dropped a transaction that held changes (the mappings
 * of writes acknowledged since the last commit): no flush of this pool may
 * succeed again until it is opened anew, as dm-thin's fail mode.
 */
bool thin_lost(const struct thin_pool *p);

/* dm's get/set transaction id: set only when @old is the current one, else -EINVAL. */
uint64_t thin_transaction_id(const struct thin_pool *p);
int thin_set_transaction_id(struct thin_pool *p, uint64_t old, uint64_t id);

/* Read-only mode (dm_pool_metadata_read_only): changes fail with -EROFS. */
void thin_set_read_only(struct thin_pool *p, bool ro);

/*
 * The pool's mode, kept in its superblock (THIN_SB_READ_ONLY) and committed
 * at once: read-only refuses every change (-EROFS) and commits nothing
 * more. Read-write is refused (-EUCLEAN) while needs_check is set.
 */
int thin_set_mode(struct thin_pool *p, bool read_only);

/*
 * The metadata snapshot (dm's reserve/release_metadata_snap): a copy of
 * the last commit's volume table that holds every node in use then, so
 * that no later commit overwrites them until it is released; a reader
 * (thin_open_metadata_snap) walks it while the pool runs. Reserve commits
 * the running transaction first and the snapshot's location after (the
 * superblock names it; it survives a restart). -EBUSY one is held already;
 * release: -ENODATA none held. It costs a header, 16 table blocks and one
 * bitmap block per 32736 node blocks, and never a data block: the data
 * blocks' counts are not touched (a write copies no more data meanwhile).
 */
int thin_reserve_metadata_snap(struct thin_pool *p);
int thin_release_metadata_snap(struct thin_pool *p);
int thin_get_metadata_snap(const struct thin_pool *p, uint64_t *block);
/*
 * Open the held metadata snapshot read-only (-ENOENT: none held): its
 * volume table and maps as at its commit; thin_pool_get_info gives that
 * commit's counts. No space maps: thin_check fails with -EOPNOTSUPP;
 * the first thin_vol_shared recounts the references from the snapshot's
 * trees (each distinct node read once) into the view's own count arrays.
 */
int thin_open_metadata_snap(const struct thin_io *io, struct thin_pool **out);

/* The needs-check flag: set (and committed at once) on any metadata error. */
int thin_set_needs_check(struct thin_pool *p);
bool thin_needs_check(const struct thin_pool *p);

struct thin_pool_info {
	uint64_t commit_seq;		/* sequence number of the last commit */
	uint64_t transaction_id;
	uint32_t block_size;
	uint64_t data_offset;		/* bytes: where data block 0 starts */
	uint64_t data_blocks, free_data_blocks;
	uint64_t metadata_blocks, free_metadata_blocks;	/* node blocks */
	uint32_t when_full, low_water;
	bool needs_check, read_only, below_low_water;
	bool read_only_flag;		/* thin_set_mode (read_only: that, or needs_check) */
	uint64_t metadata_snap;		/* the metadata snapshot's header block; 0: none held */
	uint32_t n_volumes;
};
void thin_pool_get_info(const struct thin_pool *p, struct thin_pool_info *i);

/*
 * Grow the data area to @data_blocks (the array grew). -ENOSPC for a
 * shrink that would lose a mapped block, -EFBIG beyond what the space-map
 * areas hold (fixed at format).
 */
int thin_resize_data(struct thin_pool *p, uint64_t data_blocks);

/* Volumes. Ids start at 1; names are 1..63 bytes of [A-Za-z0-9._-]. */
struct thin_vol_info {
	uint32_t id;
	char name[THIN_NAME_MAX + 1];
	uint64_t size;			/* bytes (virtual) */
	uint64_t mapped;		/* mapped blocks */
	uint32_t origin;		/* id of the volume it was snapshotted from; 0: none */
	uint64_t created_txn;		/* commit sequence number it was created in */
	uint64_t root;			/* metadata block of its map's root node */
};

int thin_name_check(const char *name);		/* 0, or -EINVAL */

/*
 * Create an empty volume of @size bytes (a multiple of the block size).
 * -EEXIST name taken, -EINVAL bad name or size, -ENOSPC table or metadata full.
 */
int thin_vol_create(struct thin_pool *p, const char *name, uint64_t size, uint32_t *id);

/*
 * Snapshot @origin as @name in constant time: the new volume shares the
 * origin's root node (one reference count goes up). The caller quiesces
 * the origin's I/O for the moment. -ENOENT no such origin.
 */
int thin_vol_snapshot(struct thin_pool *p, const char *origin, const char *name,
		      uint32_t *id);

/* Delete: its mappings' references go; blocks no one else shares are free. */
int thin_vol_delete(struct thin_pool *p, const char *name);

/*
 * Resize to @size bytes (a positive multiple of the block size). A shrink
 * is refused (-ENOTEMPTY) without @force; with it the blocks beyond the
 * new end are unmapped. -ENOENT no such volume.
 */
int thin_vol_resize(struct thin_pool *p, const char *name, uint64_t size, bool force);

/* Find a volume by name: 0 and its id, or -ENOENT. */
int thin_vol_find(const struct thin_pool *p, const char *name, uint32_t *id);

/*
 * Volumes in id order: @index from 0; -ENOENT past the last. thin_vol_get
 * by id; -ENOENT when no such volume (deleted: its I/O fails).
 */
int thin_vol_at(const struct thin_pool *p, uint32_t index, struct thin_vol_info *v);
int thin_vol_get(const struct thin_pool *p, uint32_t id, struct thin_vol_info *v);

/* Mappings of volume @id (dm_thin_*). -ENODATA: @vblock is not mapped. */
int thin_lookup(struct thin_pool *p, uint32_t id, uint64_t vblock, uint64_t *pblock);
int thin_insert(struct thin_pool *p, uint32_t id, uint64_t vblock, uint64_t pblock);
int thin_remove_range(struct thin_pool *p, uint32_t id, uint64_t begin, uint64_t end);
/* -ENODATA when nothing is mapped. */
int thin_highest_mapped(struct thin_pool *p, uint32_t id, uint64_t *vblock);

/*
 * A free data block, its count set to 1 for the caller to map (a block
 * allocated and never mapped is a leak until the transaction is aborted).
 * -ENOSPC when no data block is free or the metadata reserve would be
 * touched (metadata never runs out first).
 */
int thin_alloc_data_block(struct thin_pool *p, uint64_t *block);
/* Drop a reference the caller holds (an allocated block it did not map). */
int thin_release_data_block(struct thin_pool *p, uint64_t block);
int thin_data_refcount(const struct thin_pool *p, uint64_t block, uint32_t *count);

/*
 * The pieces of thin_vol_write for a caller that moves the data itself,
 * without holding the pool during the I/O (lib/thin-run.c).
 * thin_map_lookup: where @vblock of volume @id is (-ENODATA: unmapped);
 * with @must_copy (a write), whether a write must go to a new block
 * instead (see thin_vol_write); @cached_only: -EWOULDBLOCK rather than
 * read metadata from the pool's device.
 * thin_data_reserve: a free data block that no one else gets, not counted
 * as used by a commit (a crash leaks nothing); thin_insert_reserved maps
 * it once its data is written (count 1; the reservation ends either way);
 * thin_data_unreserve gives it back.
 */
int thin_map_lookup(struct thin_pool *p, uint32_t id, uint64_t vblock, bool cached_only,
		    uint64_t *pblock, bool *must_copy);
int thin_data_reserve(struct thin_pool *p, uint64_t *block);
void thin_data_unreserve(struct thin_pool *p, uint64_t block);
int thin_insert_reserved(struct thin_pool *p, uint32_t id, uint64_t vblock, uint64_t block);

/*
 * Data I/O of a volume, @off and @len multiples of 512 within its size:
 * unmapped blocks read as zeros; a write to an unmapped block allocates
 * one, to a shared block copies it first (whole block: the rest of its
 * bytes come from the old block), as it does to a block the last commit
 * may map from another volume (a crash must not show this write there). Data reaches the pool through io->write
 * before its mapping is inserted; thin_commit flushes before the superblock.
 */
int thin_vol_read(struct thin_pool *p, uint32_t id, void *buf, size_t len, uint64_t off);
int thin_vol_write(struct thin_pool *p, uint32_t id, const void *buf, size_t len,
		   uint64_t off);
/* Unmap whole blocks inside [off, off + len); partial blocks are left alone. */
int thin_vol_discard(struct thin_pool *p, uint32_t id, uint64_t off, uint64_t len);

/*
 * thin_check (offline): every node read and verified (checksum, its own
 * block number, key order and bounds), every reference count recomputed
 * from the volume table and the maps and compared with the space maps,
 * every volume's mapped count. Clean: all zero.
 */
struct thin_check_report {
	uint64_t bad_nodes;		/* unreadable or failing their checks */
	uint64_t meta_leaks, meta_missing;	/* count above / below what the maps say */
	uint64_t data_leaks, data_missing;
	uint64_t bad_counts;		/* volumes whose mapped count is wrong */
	char first[256];		/* the first problem, in words */
};
int thin_check(struct thin_pool *p, struct thin_check_report *r);

/*
 * Clear needs_check (and commit) when thin_check is clean: 0; else
 * -EUCLEAN and the flag stays.
 */
int thin_check_and_clear(struct thin_pool *p, struct thin_check_report *r);

/* Walk volume @id's mappings in order, as runs of consecutive blocks. */
typedef int (*thin_range_fn)(uint64_t vbegin, uint64_t pbegin, uint64_t len, void *arg);
int thin_vol_walk(struct thin_pool *p, uint32_t id, thin_range_fn fn, void *arg);

/*
 * The number of volume @id's mapped blocks that another volume shares (a
 * write to them copies first).
 */
int thin_vol_shared(struct thin_pool *p, uint32_t id, uint64_t *shared);

/*
 * A stopped array opened for the pool commands (lib/thin-offline.c): an
 * engine in this process over its units (held O_EXCL: activate waits),
 * whose reads, writes and flushes thin_array_io hands to the pool. The
 * first write (only with @write) marks the array dirty until
 * thin_array_close has flushed; a command that writes nothing changes
 * nothing on the units.
 * A running array: with @write -EBUSY; without, the pool's last commit is
 * read through the array's read-only device (/dev/raidtool/NAME.pool,
 * O_DIRECT). A commit made meanwhile may overwrite what such a reader walks
 * (there is no metadata snapshot yet): it then fails with a checksum error.
 */
struct thin_array;
int thin_array_open(const char *id, bool write, struct thin_array **out);
int thin_array_close(struct thin_array *a);
const struct thin_io *thin_array_io(const struct thin_array *a);
uint64_t thin_array_bytes(const struct thin_array *a);
const char *thin_array_name(const struct thin_array *a);
/* A filesystem or other signature in the array's contents: 1 (its @type), 0 none. */
int thin_array_signature(struct thin_array *a, char *type, size_t len);
/* thin_array_open and thin_open, explaining an array that holds no pool. */
int thin_array_open_pool(const char *id, bool write, struct thin_array **a,
			 struct thin_pool **p);

/*
 * A running array's pool (lib/thin-run.c): each volume a block device
 * /dev/raidtool/LINK/VOL (the file RT_CONTROL_VOL_PREFIX VOL in the array's
 * FUSE mount, a loop device on it), I/O through the pool onto the engine,
 * event-driven on the FUSE queues' rings where it can be, commits on
 * FLUSH/FSYNC and at least once a second. Returns 1 and *@out when the
 * array holds a pool, 0 (and NULL) when not. thin_run_array_backend: the
 * array's own file, read-only while it holds a pool, linked as
 * thin_run_array_link (LINK.pool). thin_run_export: once the array's mount
 * (@x) is up, the volumes' files go in it; volumes created and deleted
 * later come and go there. thin_run_busy: -EBUSY and @why while a volume's
 * device is mounted or open. thin_run_stop: unexport, commit, close
 * (before the array's export stops).
 */
struct rt_engine;
struct rt_export;
struct rt_fuse_backend;
struct thin_run;
struct thin_run_params {
	const char *link_name;		/* the array's name under /dev/raidtool */
	uint32_t blocksize;		/* the loop devices' logical block size */
};
int thin_run_probe(struct rt_engine *e);
int thin_run_start(struct rt_engine *e, const struct thin_run_params *p, struct thin_run **out);
int thin_run_export(struct thin_run *tr, struct rt_export *x);
const struct rt_fuse_backend *thin_run_array_backend(struct thin_run *tr);
const char *thin_run_array_link(struct thin_run *tr);
int thin_run_busy(struct thin_run *tr, char *why, size_t whylen);
/*
 * The control socket's "vol" request: "create NAME SIZE", "snapshot VOL
 * SNAP", "delete VOL", "resize VOL SIZE [force]" (refused, -EBUSY, while
 * the volume's device is in use; exported again at its new size); each committed, the device appearing or going
 * (a deleted volume's device stays while open; its I/O fails). @tr NULL:
 * -ENODATA, no pool. The reason of a refusal goes to @msg.
 */
int thin_run_command(struct thin_run *tr, const char *arg, char *msg, size_t len);
/*
 * The control socket's "pool" request: "reserve-metadata-snap",
 * "release-metadata-snap" (a pool that commits nothing, being read-only,
 * needs none: 0 and THIN_RUN_NOTHING_COMMITS in @msg, also for an array
 * run with @readonly_run, whose pool is not started), "abort",
 * "set-transaction-id OLD NEW" (committed), "read-only", "read-write".
 */
#define THIN_RUN_NOTHING_COMMITS "nothing commits (read-only)"
int thin_run_pool_command(struct thin_run *tr, bool readonly_run, const char *arg, char *msg,
			  size_t len);
int thin_run_stop(struct thin_run *tr);

/*
 * The pure part (lib/thin-format.c): decoding what the pool keeps on disk,
 * fuzzed. Returns 0, -ENODATA (no magic), -EBADMSG (checksum), -EUCLEAN
 * (fields out of range).
 */
#define THIN_NODE_MAX 254u		/* entries per B-tree node */
struct thin_node {
	bool leaf;
	uint32_t n;
	uint64_t key[THIN_NODE_MAX];
	uint64_t val[THIN_NODE_MAX];	/* leaf: data block; internal: child node block */
};
void thin_node_encode(const struct thin_node *n, uint64_t blocknr, uint8_t *buf);
int thin_node_decode(const uint8_t *buf, size_t len, uint64_t blocknr, struct thin_node *n);

struct thin_sb {
	uint64_t seq;			/* commit sequence number: slot seq % 2, area seq % 2 */
	uint64_t transaction_id;
	uint64_t created;		/* seconds since the epoch */
	uint32_t flags;			/* THIN_SB_* */
	uint32_t block_size;
	uint32_t when_full, low_water;
	uint64_t pool_bytes;
	uint64_t data_offset;		/* bytes */
	uint64_t data_blocks;		/* in use now */
	uint64_t data_blocks_max;	/* what the area's data space map holds */
	uint64_t node_start;		/* first node block */
	uint64_t node_blocks;
	uint64_t area_blocks;		/* blocks of each area; area 0 at block 2 */
	uint32_t next_volume_id;
	uint64_t metadata_snap;		/* header block of the metadata snapshot; 0: none */
};
#define THIN_SB_NEEDS_CHECK 1u
#define THIN_SB_READ_ONLY 2u		/* thin_set_mode */
#define THIN_SB_FLAGS_KNOWN (THIN_SB_NEEDS_CHECK | THIN_SB_READ_ONLY)
void thin_sb_encode(const struct thin_sb *sb, uint8_t *buf);
int thin_sb_decode(const uint8_t *buf, size_t len, struct thin_sb *sb);

#endif
