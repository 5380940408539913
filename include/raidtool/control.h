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

/*
 * A unit's state in a status, or in the reply of fail, remove, add: its
 * slot's state in the role table (RT_SLOT_*, format.h), "removed" for a
 * unit that left the array, or the class of a unit a scan found but that
 * assembly would not use (scan.h). One name each on the wire; "" for none.
 */
enum rt_unit_state {
	RT_UNIT_STATE_NONE = 0,		/* "": not named */
	RT_UNIT_STATE_EMPTY,		/* "empty" */
	RT_UNIT_STATE_ACTIVE,		/* "active" */
	RT_UNIT_STATE_SPARE,		/* "spare" */
	RT_UNIT_STATE_FAULTY,		/* "faulty" */
	RT_UNIT_STATE_MISSING,		/* "missing" */
	RT_UNIT_STATE_REBUILDING,	/* "rebuilding" */
	RT_UNIT_STATE_REPLACING,	/* "replacing" */
	RT_UNIT_STATE_REPLACED,		/* "replaced" */
	RT_UNIT_STATE_REMOVED,		/* "removed" */
	RT_UNIT_STATE_STALE,		/* "stale" */
	RT_UNIT_STATE_CONFLICT,		/* "conflict" */
	RT_UNIT_STATE_SUSPECT,		/* "suspect" */
	RT_UNIT_STATE_UNKNOWN,		/* "unknown": a slot state or name not known here */
	RT_UNIT_STATE_COUNT
};

/*
 * The one table of the unit states' names (the wire, messages). Parsing ""
 * or NULL gives RT_UNIT_STATE_NONE, an unknown name RT_UNIT_STATE_UNKNOWN.
 */
const char *control_unit_state_name(enum rt_unit_state state);
enum rt_unit_state control_unit_state_parse(const char *name);
/* The state of a slot of the role table (RT_SLOT_*). */
enum rt_unit_state control_unit_state_of_slot(uint32_t slot_state);

struct rt_control_stats {
	uint64_t reads, writes, flushes, read_bytes, write_bytes, errors;
	/* raid5 stripes written whole (merged: from several requests), by RMW, by RCW */
	uint64_t stripe_full, stripe_merged, stripe_rmw, stripe_rcw;
	uint64_t discards, discard_bytes;	/* discard / write-zeroes requests */
	/* Background walk pieces run on the FUSE queues' loops, and on the walk's own rings. */
	uint64_t walk_loop_pieces, walk_own_pieces;
};

/*
 * A status (struct rt_control_status) and its units (struct rt_control_unit)
 * are handles: control_status() fills one, and these read it. The members
 * and the wire's field table are the library's (lib/control-internal.h).
 */
struct rt_control_status;
struct rt_control_unit;

/* A zeroed status to fill (control_status, control_status_wait); NULL: no memory. */
struct rt_control_status *control_status_new(void);
void control_status_free(struct rt_control_status *st);	/* NULL is fine */

/* "active", "read-only"; not running: "inactive", or "dead" when its engine died. */
const char *control_status_state(const struct rt_control_status *st);
const char *control_status_name(const struct rt_control_status *st);
const uint8_t *control_status_uuid(const struct rt_control_status *st);
uint32_t control_status_hashcode(const struct rt_control_status *st);
int32_t control_status_level(const struct rt_control_status *st);	/* enum rt_level */
uint64_t control_status_size(const struct rt_control_status *st);	/* bytes */
uint64_t control_status_nblocks(const struct rt_control_status *st);
uint32_t control_status_blocksize(const struct rt_control_status *st);
uint32_t control_status_chunk_size(const struct rt_control_status *st);
uint32_t control_status_n_devices(const struct rt_control_status *st);
uint64_t control_status_events(const struct rt_control_status *st);
/* enum rt_array_state (the superblock's clean / dirty). */
uint32_t control_status_array_state(const struct rt_control_status *st);
/* RT_HEALTH_NONE when not running. */
enum rt_health control_status_health(const struct rt_control_status *st);

/* The engine: the loop device ("" when inactive), its /dev/raidtool/ link, pid (0), start. */
const char *control_status_device(const struct rt_control_status *st);
const char *control_status_link(const struct rt_control_status *st);
pid_t control_status_pid(const struct rt_control_status *st);
uint64_t control_status_started(const struct rt_control_status *st);	/* seconds, epoch */
const struct rt_control_stats *control_status_stats(const struct rt_control_status *st);

/* The initial sync has not finished: regions still to sync, of all. */
bool control_status_unsynced(const struct rt_control_status *st);
uint64_t control_status_unsynced_left(const struct rt_control_status *st);
uint64_t control_status_unsynced_total(const struct rt_control_status *st);

/* Errors that are not the disk's fault: bit r, role r is out of space. */
uint64_t control_status_nospace_mask(const struct rt_control_status *st);
/* Tries of a failed unit I/O within a window before the unit is failed. */
uint32_t control_status_retry_count(const struct rt_control_status *st);
uint32_t control_status_retry_window_ms(const struct rt_control_status *st);

/* The running or last walk (rebuild, resync, check, repair, replace), as read together. */
struct rt_control_walk {
	enum rt_walk_kind kind;		/* RT_WALK_NONE: none yet */
	bool running;			/* false: the last walk, which ended */
	int32_t result;			/* of the last finished walk: 0 or -errno */
	uint32_t role;			/* rebuilding, replacing: the role */
	uint64_t done, total;		/* bytes of a role's data area */
	uint64_t speed;			/* bytes per second */
	uint64_t speed_max;		/* background walks' limit, bytes per second; 0: none */
	uint64_t mismatches, repaired;	/* check/repair */
	uint64_t regions, regions_total;/* resync */
	/* raid1 repair: stripes with a tie left as found; bit r: role r's copy settled a tie */
	uint64_t ties, kept_roles;
};
struct rt_control_walk control_status_walk(const struct rt_control_status *st);

/* The FUSE transport: "io_uring" or "/dev/fuse" ("" when inactive), requests on each. */
struct rt_control_fuse {
	char transport[16];
	uint64_t ring_requests, dev_requests;
	uint32_t queues, queue_depth;	/* io_uring queues, entries each */
	uint64_t worker_requests;	/* of the ring's, served by a worker thread */
	uint32_t poll_us;		/* the queues' poll time before they sleep (0: none) */
	uint64_t polled;		/* waits a poll ended without sleeping */
};
struct rt_control_fuse control_status_fuse(const struct rt_control_status *st);

/* Its units, sorted by slot (found ones, and the roles missing). */
unsigned control_status_unit_count(const struct rt_control_status *st);
const struct rt_control_unit *control_status_unit_at(const struct rt_control_status *st,
						     unsigned i);

/* A zeroed unit for a reply to fill (control_call_unit); NULL: no memory. */
struct rt_control_unit *control_unit_new(void);
void control_unit_free(struct rt_control_unit *u);	/* NULL is fine */

/* Its slot: a role (< n_devices), or a spare's; its block device, "" when none. */
uint32_t control_unit_slot(const struct rt_control_unit *u);
const char *control_unit_device(const struct rt_control_unit *u);
const uint8_t *control_unit_uuid(const struct rt_control_unit *u);
uint32_t control_unit_hashcode(const struct rt_control_unit *u);
enum rt_unit_state control_unit_state(const struct rt_control_unit *u);

/* A unit's I/O as its engine counts it, as read together. */
struct rt_control_unit_io {
	uint64_t reads, writes, read_bytes, write_bytes, errors;
	uint64_t retries;		/* I/Os tried again after an error */
	bool no_space;			/* its last write failed for want of space */
};
struct rt_control_unit_io control_unit_io(const struct rt_control_unit *u);


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
 * slot, device, uuid, hashcode and new state: faulty, removed, rebuilding,
 * spare; RT_UNIT_STATE_NONE when the reply names none).
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
