/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_CONTROL_H
#define RAIDTOOL_CONTROL_H

/*
 * The run directory of running arrays and the control socket their engines
 * answer on. Layout and protocol: raidtool-control(7). Everything of a
 * running array is keyed by its UUID, so two arrays of one name can run at
 * once:
 *
 *   <rundir>/<UUID>/pid           engine pid; an OFD write lock on it while alive
 *   <rundir>/<UUID>/device        the loop device, once ready
 *   <rundir>/<UUID>/link          its /dev/raidtool/ link, once ready
 *   <rundir>/<UUID>/control.sock  the control socket (root only)
 *   <rundir>/<UUID>/mnt/<NAME>    the FUSE mount point and the array's file
 *   <rundir>/<UUID>/log           messages of a background engine
 *   <rundir>/<NAME> -> <UUID>     by-name link of the first running array of a name
 *
 * <rundir> is $RAIDTOOL_RUNDIR, or /run/raidtool.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <raidtool/format.h>
#include <raidtool/rebuild.h>

#define RT_RUNDIR_DEFAULT "/run/raidtool"
#define RT_CONTROL_SOCK "control.sock"
#define RT_CONTROL_PID "pid"
#define RT_CONTROL_DEVICE "device"
#define RT_CONTROL_LINK "link"
#define RT_CONTROL_MNT "mnt"
#define RT_CONTROL_VOL_PREFIX "vol:"	/* mnt/vol:VOL: a thin volume's file (':' is in no array name) */
#define RT_CONTROL_LOG "log"
#define RT_CONTROL_LINE_MAX 4096	/* a request line, newline included */
/* A request may start with "uuid=UUID ": served only by the engine of that array. */
#define RT_CONTROL_UUID_PREFIX "uuid="

/* The run directory (never NULL). */
const char *control_rundir(void);

/* "<rundir>/<UUID>" or "<rundir>/<UUID>/<file>" (@file NULL: the directory). */
int control_path(const uint8_t uuid[RT_UUID_SIZE], const char *file, char *buf, size_t len);

/* Create the run directory (mode 0755) unless it exists. */
int control_make_rundir(void);

/*
 * The by-name link <rundir>/<NAME> -> <UUID>: held by the first running
 * array of a name (its /dev/raidtool/NAME link goes with it; a second one
 * of the name runs as /dev/raidtool/HASHCODE). Lookup: -ENOENT when none.
 * Claim (the engine, holding its pid lock): 0 when the link is now ours,
 * -EEXIST when another running array holds it. Release: only our own.
 */
int control_name_lookup(const char *name, uint8_t uuid[RT_UUID_SIZE]);
int control_name_claim(const char *name, const uint8_t uuid[RT_UUID_SIZE]);
void control_name_release(const char *name, const uint8_t uuid[RT_UUID_SIZE]);

/*
 * Is @dev the block device of a running array? 0 with its @name and @uuid,
 * -ENODEV when it is not. Taken from the loop device's backing file (see
 * control_array_of_file), not from the environment.
 */
int control_array_of_device(const char *dev, char *name, size_t namelen,
			    uint8_t uuid[RT_UUID_SIZE]);

/*
 * Is @file (a loop device's backing file) an engine's FUSE file, i.e.
 * ".../<UUID>/mnt/<NAME>" under any run directory? Pure: no I/O.
 */
int control_array_of_file(const char *file, char *name, size_t namelen,
			  uint8_t uuid[RT_UUID_SIZE]);

/*
 * Is @file a thin volume's file in an engine's FUSE mount,
 * ".../<UUID>/mnt/" RT_CONTROL_VOL_PREFIX "<VOL>" (lib/thin-run.c)? 0 with the
 * array's @uuid and the volume's name @vol, else -ENODEV. Pure: no I/O.
 */
int control_volume_of_file(const char *file, uint8_t uuid[RT_UUID_SIZE], char *vol,
			   size_t vollen);

/* ---- is it running? ----------------------------------------------------- */

enum rt_control_state {
	RT_CONTROL_INACTIVE = 0,	/* no run directory or no pid file */
	RT_CONTROL_ACTIVE = 1,		/* an engine holds the pid file's lock */
	RT_CONTROL_STALE = 2,		/* run files left by an engine that died */
};

struct rt_control_probe {
	int state;			/* enum rt_control_state */
	pid_t pid;			/* the engine's (or the dead engine's); 0 if unknown */
	char device[64];		/* "/dev/loopN", "" until ready */
	char link[RT_NAME_MAX + 32];	/* "/dev/raidtool/NAME" (or HASHCODE) when active */
};

/* Cheap, no socket traffic: for `list`. 0, or a negative errno. */
int control_probe(const uint8_t uuid[RT_UUID_SIZE], struct rt_control_probe *p);

/*
 * The one wording of each reason why array @name's engine cannot be asked,
 * logged as an error by every command and library path that meets it:
 * "'NAME': not running", with " (@detail)" when @detail is not NULL, and
 * "'NAME': the engine (pid N) does not answer: REASON" (without "(pid N)"
 * when @pid is 0) for @err from control_request and the calls below.
 */
void control_log_not_running(const char *name, const char *detail);
void control_log_no_answer(const char *name, pid_t pid, int err);

/*
 * The engine's side of the pid file: create the run directory, take the
 * lock (-EALREADY when another engine holds it), write our pid. The lock
 * lives as long as *@fd is open.
 */
int control_lock(const uint8_t uuid[RT_UUID_SIZE], int *fd);

/* ---- status ------------------------------------------------------------- */

/* An array's health, as a running engine reports it (status "health"). */
enum rt_health {
	RT_HEALTH_NONE = 0,		/* not reported: not running ("" on the wire) */
	RT_HEALTH_OK,			/* "clean": every role in sync */
	RT_HEALTH_DEGRADED,		/* "degraded": runs (or would start) without a role */
	RT_HEALTH_FAILED,		/* "failed": lost more than its level spares, or its engine died */
	RT_HEALTH_COUNT
};

/*
 * The one table of the names the status uses on the wire (raidtool-control(7))
 * and in messages: health "clean", "degraded", "failed"; walk (enum
 * rt_walk_kind) "rebuilding", "resyncing", "checking", "repairing"; "" for
 * none. Parsing "" or an unknown name gives RT_HEALTH_NONE / RT_WALK_NONE.
 */
const char *control_health_name(enum rt_health health);
enum rt_health control_health_parse(const char *name);
const char *control_walk_name(enum rt_walk_kind walk);
enum rt_walk_kind control_walk_parse(const char *name);

struct rt_control_unit {
	uint32_t slot;			/* role (< n_devices) or a spare's slot */
	char device[256];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	char state[16];			/* active, spare, faulty, missing, rebuilding, stale */
	uint64_t reads, writes, read_bytes, write_bytes, errors;
	uint64_t retries;		/* I/Os tried again after an error */
	bool no_space;			/* its last write failed for want of space */
};

struct rt_control_stats {
	uint64_t reads, writes, flushes, read_bytes, write_bytes, errors;
	/* raid5 stripes written whole (merged: from several requests), by RMW, by RCW */
	uint64_t stripe_full, stripe_merged, stripe_rmw, stripe_rcw;
	uint64_t discards, discard_bytes;	/* discard / write-zeroes requests */
};

struct rt_control_status {
	char state[16];			/* "active" / "inactive" */
	char name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	int32_t level;			/* enum rt_level */
	uint64_t size;			/* bytes */
	uint64_t nblocks;
	uint32_t blocksize, chunk_size, n_devices;
	uint64_t events;
	uint32_t array_state;		/* enum rt_array_state (superblock) */
	char device[64];		/* "" when inactive */
	char link[RT_NAME_MAX + 32];
	pid_t pid;			/* 0 when inactive */
	uint64_t started;		/* seconds since the epoch */
	unsigned n_units;
	struct rt_control_unit units[RT_MAX_UNITS];
	struct rt_control_stats stats;
	/* Failure and recovery (appended). */
	enum rt_health health;		/* RT_HEALTH_NONE when inactive */
	enum rt_walk_kind walk;		/* the running or last walk; RT_WALK_NONE: none yet */
	bool walk_running;		/* false: @walk is the last walk, which ended */
	int32_t walk_result;		/* of the last finished walk: 0 or -errno */
	uint32_t walk_role;		/* rebuilding: the role */
	uint64_t walk_done, walk_total;	/* bytes of a role's data area */
	uint64_t walk_speed;		/* bytes per second */
	uint64_t mismatches, repaired;	/* check/repair */
	uint64_t regions, regions_total;/* resync */
	/* The initial sync has not finished (appended). */
	bool unsynced;
	uint64_t unsynced_left, unsynced_total;	/* regions still to sync, of all */
	/* raid1 repair (appended): stripes with a tie left as found; bit r: role r's copy settled a tie */
	uint64_t ties, kept_roles;
	/* Errors that are not the disk's fault (appended). */
	uint64_t nospace_mask;		/* bit r: role r is out of space */
	uint32_t retry_count, retry_window_ms;
	/* Background walks' speed limit (appended): bytes per second, 0: none. */
	uint64_t walk_speed_max;
	/* The FUSE transport (appended): "io_uring" or "/dev/fuse", "" when inactive. */
	char transport[16];
	uint64_t fuse_ring_requests, fuse_dev_requests;
	uint32_t fuse_queues, fuse_queue_depth;	/* io_uring queues, entries each */
};

/* ---- the requests ------------------------------------------------------- */

/* What a client may ask an engine (raidtool-control(7)): one enum for both ends. */
enum rt_control_verb {
	RT_VERB_PING,
	RT_VERB_STATUS,
	RT_VERB_STOP,
	/* The admin operations (control_ops.command). */
	RT_VERB_FAIL,
	RT_VERB_REMOVE,
	RT_VERB_ADD,
	RT_VERB_CHECK,
	RT_VERB_REPAIR,
	RT_VERB_CANCEL,
	RT_VERB_TUNE,
	RT_VERB_SPEED,
	RT_VERB_VOL,			/* thin volumes of the array's pool (lib/thin-run.c) */
	RT_VERB_REPLACE,		/* hot replace: "UNIT PATH" */
	RT_VERB_POOL,			/* the pool itself: metadata snapshot, abort, mode */
	RT_VERB_COUNT
};

/* "ping", "status", ... as on the wire. */
const char *control_verb_name(enum rt_control_verb verb);

struct rt_control_req {
	enum rt_control_verb verb;
	bool force;			/* fail, add, replace: also what the level cannot spare */
	/*
	 * fail, remove: the member (role, unit hashcode or device); add: the
	 * device or image (absolute path); repair: "prefer=ROLE" or ""; tune:
	 * "COUNT WINDOW_MS"; speed: bytes per second; replace: the member
	 * (without spaces), a space and the new unit (absolute path); vol:
	 * "create VOL BYTES", "snapshot VOL SNAP", "delete VOL" or "resize VOL
	 * SIZE [force]"; pool: thin_run_pool_command's words. NULL or "": none.
	 */
	const char *arg;
};

/* ---- the server (in the engine) ----------------------------------------- */

struct control_server;

struct control_ops {
	void *ctx;
	/* Fill @st (called on the server thread). */
	int (*status)(void *ctx, struct rt_control_status *st);
	/*
	 * A client asks to stop. Return 0 to accept: the server stops serving
	 * and keeps the connection; control_server_finish answers it once the
	 * shutdown is complete. A negative errno with a reason in @why refuses.
	 */
	int (*stop)(void *ctx, char *why, size_t whylen);
	/*
	 * Any other request (fail, remove, add, check, repair, cancel, tune,
	 * speed, vol; rq->arg is never NULL). 0 with a message for the client in
	 * @msg, or a negative errno with the reason in @msg. May be NULL.
	 * fail, remove and add describe the unit they changed in @unit (zeroed
	 * before the call; left so when there is none), sent as the reply's
	 * "unit" object.
	 */
	int (*command)(void *ctx, const struct rt_control_req *rq, char *msg, size_t msglen,
		       struct rt_control_unit *unit);
};

/* Bind <rundir>/<UUID>/control.sock (mode 0600) and serve on a thread; @name is for messages. */
int control_server_start(const uint8_t uuid[RT_UUID_SIZE], const char *name,
			 const struct control_ops *ops, struct control_server **out);

/* Stop serving (joins the thread); the socket stays until finish. */
void control_server_stop(struct control_server *s);

/*
 * Stop serving; answer a pending `stop` with @err (0: ok) and @msg; remove
 * the socket; free. NULL is fine.
 */
void control_server_finish(struct control_server *s, int err, const char *msg);

/* ---- the client (the CLI) ----------------------------------------------- */

/* Requests go to the engine of array @uuid; @name is for the messages. */

/*
 * Send one request line (without the newline) and read the one-line reply
 * into @reply. -ENOENT/-ECONNREFUSED when no engine answers. The typed
 * calls below build the line; this is for tests and tools.
 */
int control_request(const uint8_t uuid[RT_UUID_SIZE], const char *request, char *reply,
		    size_t len, int timeout_ms);

/* ping: 0 and the engine's pid. */
int control_ping(const uint8_t uuid[RT_UUID_SIZE], const char *name, pid_t *pid);

/* status: the running array's state. */
int control_status(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		   struct rt_control_status *st);

/*
 * status of an engine that holds its pid lock (@p from control_probe, kept
 * up to date): while it has no socket (starting or stopping) asked again for
 * a moment; -ESHUTDOWN, logged as "not running", once its lock is gone (it
 * stopped).
 */
int control_status_wait(const uint8_t uuid[RT_UUID_SIZE], const char *name,
			struct rt_control_status *st, struct rt_control_probe *p);

/*
 * stop: returns once the engine has shut down cleanly (0; @msg, when given,
 * holds what it said of the superblocks left dirty, else empty), or -EBUSY
 * with the engine's reason logged when the device is in use.
 */
int control_stop(const uint8_t uuid[RT_UUID_SIZE], const char *name, char *msg, size_t len);

/*
 * Any other request: 0 and the engine's message in @msg, or the engine's
 * errno with its reason logged. The typed calls below fill @rq for it.
 */
int control_call(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		 const struct rt_control_req *rq, char *msg, size_t len);
/*
 * control_call, and the unit a fail, remove or add changed in @unit (its
 * slot, device, uuid, hashcode and new state: "faulty", "removed",
 * "rebuilding", "spare"; state "" when the reply names none).
 */
int control_call_unit(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		      const struct rt_control_req *rq, char *msg, size_t len,
		      struct rt_control_unit *unit);
int control_add(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *path,
		bool force, char *msg, size_t len);
int control_fail(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *member,
		 bool force, char *msg, size_t len);
int control_remove(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *member,
		   char *msg, size_t len);

#endif
