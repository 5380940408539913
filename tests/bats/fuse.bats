#!/usr/bin/env bats
# The FUSE transports (lib/fuse.c): RAIDTOOL_FUSE_TRANSPORT chooses io_uring
# or /dev/fuse and status says which carried the requests; many jobs racing
# on the same stripes (raid5, and raid1 whose writes the ring carries
# event-driven, holding their stripe locks) verify under both; a connection
# torn down mid-request (kill -9 of the engine during fio, the connection
# aborted under fio, deactivate during I/O, readers and writers of the FUSE
# file interrupted) leaves no thread stuck and nothing mounted. The
# background walks' pieces run on the io_uring queues' loops (status counts
# them), on the walk's own rings over /dev/fuse, and a connection aborted
# in the middle of a rebuild on the loops leaves nothing stuck.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup fio jq
	BGPIDS=()
}

teardown() {
	reap_bgpids
	if [ -n "${FUSECTL_MOUNTED:-}" ]; then
		umount /sys/fs/fuse/connections 2>/dev/null || true
	fi
	stop_arrays
	scratch_teardown
}

# start_with TRANSPORT LEVEL CHUNK COUNT SIZE: zeroed images, create
# --assume-clean (parity of zeros holds), activate through TRANSPORT.
start_with() {
	local transport=$1 level=$2 chunk=$3 count=$4 size=$5 i
	UNITS=()
	for ((i = 0; i < count; i++)); do
		UNITS+=("$(make_image "u$i.img" "$size")")
	done
	run raidtool create "$NAME" --level "$level" --chunk "$chunk" --assume-clean "${UNITS[@]}"
	assert_success
	RAIDTOOL_FUSE_TRANSPORT=$transport run --separate-stderr raidtool activate "$NAME"
	assert_success
	assert_output "/dev/raidtool/$NAME"
	DEV=/dev/raidtool/$NAME
	# shellcheck disable=SC2034  # read by fio_same_stripe_race (helpers.bash)
	DEVSIZE=$(blockdev --getsize64 "$DEV")
}

fuse_field() {
	status_json | jq -r ".fuse.$1"
}

# wait_gone PID: the process has ended within 30 s (a thread stuck in the
# kernel keeps a killed process around); a zombie child of ours has ended.
wait_gone() {
	local pid=$1 state
	for _ in $(seq 300); do
		state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 0
		[[ "$state" == Z* ]] && return 0
		sleep 0.1
	done
	fail "process $pid did not end: $(cat /proc/"$pid"/task/*/wchan 2>/dev/null | tr '\0' ' ')"
}

# fio writing random blocks of $DEV in the background (pid in FIOPID).
fio_background() {
	fio --name=bg --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bs=4k-128k --numjobs=4 --time_based --runtime=60 \
		--output="$TESTDIR/fio.out" >/dev/null 2>&1 &
	FIOPID=$!
	BGPIDS+=("$FIOPID")
}

# Wait until the array has served at least N more writes than it had.
wait_writes() {
	local want=$1 w
	for _ in $(seq 300); do
		w=$(status_json | jq -r .stats.writes)
		[ "${w:-0}" -ge "$want" ] && return 0
		sleep 0.1
	done
	fail "the array never saw $want writes"
}

# race_test TRANSPORT WANT [LEVEL]: fio_same_stripe_race on raid5 (or
# LEVEL), then check finds parity (mirrors) clean.
race_test() {
	local transport=$1 want=$2 level=${3:-5} ring
	start_with "$transport" "$level" 16K 4 64M
	[ "$(fuse_field transport)" = "$want" ]
	fio_same_stripe_race 8
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "check done: 0 mismatches"
	ring=$(fuse_field ring_requests)
	if [ "$want" = io_uring ]; then
		[ "$ring" -gt 1000 ] || fail "only $ring requests on the ring"
	else
		[ "$ring" -eq 0 ] || fail "$ring requests on a ring that should not exist"
	fi
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

kill_test() {
	local transport=$1 pid
	start_with "$transport" 0 64K 2 64M
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	fio_background
	wait_writes 200
	kill -KILL "$pid"
	wait_gone "$pid"
	# fio sees errors and ends: nothing waits forever on the dead connection.
	wait_gone "$FIOPID"
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "had died"
	no_leftovers
	# The array comes back through the same transport.
	RAIDTOOL_FUSE_TRANSPORT=$transport run --separate-stderr raidtool activate "$NAME"
	assert_success
	head -c 8M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/pattern"
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "transport uring: status says io_uring, the ring carries the I/O, data reads back" {
	require_uring
	start_with uring 5 64K 3 64M
	[ "$(fuse_field transport)" = io_uring ]
	[ "$(fuse_field queues)" -ge 1 ]
	[ "$(fuse_field queue_depth)" -ge 2 ]
	[ "$(cat /sys/module/fuse/parameters/enable_uring)" = Y ]
	before=$(fuse_field ring_requests)
	head -c 32M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=1M count=32 iflag=direct status=none) "$TESTDIR/pattern"
	after=$(fuse_field ring_requests)
	[ "$after" -ge $((before + 64)) ] || fail "ring requests went from $before to $after"
	run raidtool status "$NAME"
	assert_success
	assert_output --partial "transport : io_uring ("
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "transport dev: status says /dev/fuse, no ring, data reads back" {
	start_with dev 0 64K 2 64M
	[ "$(fuse_field transport)" = /dev/fuse ]
	[ "$(fuse_field queues)" = 0 ]
	head -c 16M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/pattern"
	[ "$(fuse_field ring_requests)" = 0 ]
	[ "$(fuse_field dev_requests)" -gt 32 ]
	run raidtool status "$NAME"
	assert_output --partial "transport : /dev/fuse,"
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "transport: an unknown RAIDTOOL_FUSE_TRANSPORT is refused before anything is written" {
	UNITS=("$(make_image u0.img 32M)" "$(make_image u1.img 32M)")
	run raidtool create "$NAME" --level 1 "${UNITS[@]}"
	assert_success
	sums=$(checksums "${UNITS[@]}")
	RAIDTOOL_FUSE_TRANSPORT=ring run raidtool activate "$NAME"
	assert_failure
	assert_output --partial "RAIDTOOL_FUSE_TRANSPORT 'ring'"
	assert_output --partial "dev, uring or auto"
	[ "$(checksums "${UNITS[@]}")" = "$sums" ]
	[ ! -e "/dev/raidtool/$NAME" ]
}

# poll_reads: 4k reads one at a time (QD1) of the array's first 8 MiB, compared with the pattern.
poll_reads() {
	head -c 8M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=4k count=2048 iflag=direct status=none) "$TESTDIR/pattern"
}

@test "poll over io_uring: the queues poll before they sleep (status counts the waits saved); data reads back" {
	require_uring
	RAIDTOOL_FUSE_POLL_US='' start_with uring 0 64K 2 64M
	[ "$(fuse_field poll_us)" = 50 ]
	poll_reads
	polled=$(fuse_field polled)
	[ "$polled" -gt 0 ] || fail "2048 reads one at a time, and no wait ended by polling"
	run raidtool status "$NAME"
	assert_output --partial "poll 50 us: "
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "poll: RAIDTOOL_FUSE_POLL_US=0 makes the queues sleep at once; data reads back" {
	require_uring
	RAIDTOOL_FUSE_POLL_US=0 start_with uring 0 64K 2 64M
	[ "$(fuse_field poll_us)" = 0 ]
	poll_reads
	[ "$(fuse_field polled)" = 0 ]
	[ "$(fuse_field ring_requests)" -gt 2048 ]
	run raidtool status "$NAME"
	assert_output --partial "entries, no poll)"
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "poll: a RAIDTOOL_FUSE_POLL_US out of range is refused before anything is written" {
	local v
	UNITS=("$(make_image u0.img 32M)" "$(make_image u1.img 32M)")
	run raidtool create "$NAME" --level 1 "${UNITS[@]}"
	assert_success
	sums=$(checksums "${UNITS[@]}")
	for v in 1001 -1 +50 soon 50us; do
		RAIDTOOL_FUSE_POLL_US=$v run raidtool activate "$NAME"
		assert_failure
		assert_output --partial "RAIDTOOL_FUSE_POLL_US '$v': not a number of microseconds from 0 to 1000"
	done
	[ "$(checksums "${UNITS[@]}")" = "$sums" ]
	[ ! -e "/dev/raidtool/$NAME" ]
}

@test "race over io_uring: 8 fio jobs on the same raid5 stripes verify, parity checks clean" {
	require_uring
	race_test uring io_uring
}

@test "race over /dev/fuse: 8 fio jobs on the same raid5 stripes verify, parity checks clean" {
	race_test dev /dev/fuse
}

@test "race over io_uring: 8 fio jobs on the same raid1 stripes verify, mirrors check clean" {
	require_uring
	race_test uring io_uring 1
}

@test "race over /dev/fuse: 8 fio jobs on the same raid1 stripes verify, mirrors check clean" {
	race_test dev /dev/fuse 1
}

@test "degraded raid5 over io_uring: fio verify of random reads and writes runs on the ring, the lost role's chunks rebuilt there" {
	require_uring
	start_with uring 5 64K 4 64M
	run raidtool fail "$NAME" 1
	assert_success
	ring=$(fuse_field ring_requests)
	workers=$(fuse_field worker_requests)
	# Written degraded, then read back degraded: a quarter of the chunks are role 1's.
	run fio --name=deg --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bsrange=4k-16k --size=32M --numjobs=2 --offset_increment=32M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
		--output-format=terse --terse-version=3
	assert_success
	ring=$(($(fuse_field ring_requests) - ring))
	workers=$(($(fuse_field worker_requests) - workers))
	echo "# ring requests $ring, to workers $workers" >&3
	[ "$ring" -gt 5000 ] || fail "only $ring requests on the ring"
	[ $((workers * 20)) -le "$ring" ] || fail "$workers of $ring requests went to workers"
	[ "$(status_json | jq -r .health)" = degraded ]
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

# same_blocks_test TRANSPORT LEVEL COUNT: 8 jobs writing the same few
# blocks at once (raid1: two writes of a block must not land in opposite
# orders on the mirrors; raid5: nor interleave their parity updates; writes
# of 4-16 KiB, which the ring serves event-driven, queued on each other's
# stripe locks), then check finds mirrors or parity clean.
same_blocks_test() {
	local transport=$1 level=$2 count=$3
	start_with "$transport" "$level" 16K "$count" 64M
	run fio --name=same --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bsrange=4k-16k --size=1M --numjobs=8 --time_based --runtime=5 \
		--output-format=terse --terse-version=3
	assert_success
	check_clean
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "raid1 over io_uring: 8 jobs writing the same blocks at once leave mirrors equal" {
	require_uring
	same_blocks_test uring 1 2
}

@test "raid1 over /dev/fuse: 8 jobs writing the same blocks at once leave mirrors equal" {
	same_blocks_test dev 1 2
}

@test "raid5 over io_uring: 8 jobs writing the same blocks at once leave parity clean" {
	require_uring
	same_blocks_test uring 5 4
}

@test "raid5 over /dev/fuse: 8 jobs writing the same blocks at once leave parity clean" {
	same_blocks_test dev 5 4
}

@test "kill -9 of the engine during fio over io_uring: nothing stuck, deactivate cleans up" {
	require_uring
	kill_test uring
}

@test "kill -9 of the engine during fio over /dev/fuse: nothing stuck, deactivate cleans up" {
	kill_test dev
}

@test "deactivate during I/O: refused, the I/O verifies, then a clean stop leaves nothing" {
	start_with auto 5 64K 3 64M
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	# Writes verified as they go (verify_backlog), for long enough that the
	# device is still open when deactivate asks.
	fio --name=v --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bs=4k-256k --size=48M --time_based --runtime=15 \
		--verify=crc32c --verify_backlog=256 --verify_fatal=1 --verify_state_save=0 \
		--output="$TESTDIR/fio.out" >/dev/null 2>&1 &
	fiopid=$!
	# shellcheck disable=SC2030  # each test's own list, reaped by its teardown
	BGPIDS+=("$fiopid")
	wait_writes 100
	run raidtool deactivate "$NAME"
	assert_failure 4
	assert_output --partial "(fio)"
	wait "$fiopid"
	run raidtool deactivate "$NAME"
	assert_success
	wait_gone "$pid"
	no_leftovers
}

@test "INTERRUPT: readers of the FUSE file killed mid-request leave the engine serving" {
	start_with auto 0 64K 2 64M
	file=$RAIDTOOL_RUNDIR/$NAME/mnt/$NAME
	head -c 16M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# Signals land while direct reads of the file wait on the engine: the
	# kernel then sends FUSE_INTERRUPT for the request in flight.
	for _ in $(seq 20); do
		run timeout -s INT 0.05 dd if="$file" of=/dev/null bs=1M iflag=direct
	done
	for _ in $(seq 10); do
		run timeout -s KILL 0.05 dd if="$file" of=/dev/null bs=1M iflag=direct
	done
	cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/pattern"
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	run raidtool deactivate "$NAME"
	assert_success
	wait_gone "$pid"
	no_leftovers
}

# interrupt_writes_test TRANSPORT: direct writes of the FUSE file itself
# (the kernel then sends FUSE_INTERRUPT for the request in flight) killed by
# signals on raid1, whose writes the ring serves event-driven: the engine
# goes on serving, a pattern written afterwards reads back from both
# mirrors, and a clean stop leaves nothing.
interrupt_writes_test() {
	local transport=$1 file pid
	start_with "$transport" 1 64K 2 64M
	file=$RAIDTOOL_RUNDIR/$NAME/mnt/$NAME
	head -c 16M /dev/urandom > "$TESTDIR/pattern"
	for _ in $(seq 20); do
		run timeout -s INT 0.05 dd if="$TESTDIR/pattern" of="$file" bs=1M oflag=direct conv=notrunc
	done
	for _ in $(seq 10); do
		run timeout -s KILL 0.05 dd if="$TESTDIR/pattern" of="$file" bs=1M oflag=direct conv=notrunc
	done
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/pattern"
	check_clean
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	run raidtool deactivate "$NAME"
	assert_success
	wait_gone "$pid"
	no_leftovers
}

@test "INTERRUPT over io_uring: writers of a raid1 FUSE file killed mid-request leave the engine serving" {
	require_uring
	interrupt_writes_test uring
}

@test "INTERRUPT over /dev/fuse: writers of a raid1 FUSE file killed mid-request leave the engine serving" {
	interrupt_writes_test dev
}

# abort_test TRANSPORT [LEVEL COUNT]: the FUSE connection aborted (fusectl)
# while fio writes raid1 (or LEVEL on COUNT units) through it: fio ends with
# errors, no engine thread is left in uninterruptible sleep, deactivate stops
# the engine, nothing is left, and the array comes back with mirrors (or
# parity) that agree.
abort_test() {
	local transport=$1 level=${2:-1} count=${3:-2} pid conn state
	if ! mountpoint -q /sys/fs/fuse/connections; then
		mount -t fusectl fusectl /sys/fs/fuse/connections ||
			require "needs fusectl on /sys/fs/fuse/connections"
		FUSECTL_MOUNTED=1
	fi
	start_with "$transport" "$level" 64K "$count" 64M
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	conn=$(stat -c %d "$RAIDTOOL_RUNDIR/$NAME/mnt")
	[ -e "/sys/fs/fuse/connections/$conn/abort" ] || fail "no fusectl entry for connection $conn"
	fio_background
	wait_writes 200
	echo 1 > "/sys/fs/fuse/connections/$conn/abort"
	wait_gone "$FIOPID"
	sleep 1
	for task in /proc/"$pid"/task/*; do
		state=$(awk '{ print $3 }' "$task/stat" 2>/dev/null) || continue
		[ "$state" != D ] || fail "engine thread ${task##*/} stuck: $(cat "$task/wchan")"
	done
	run raidtool deactivate "$NAME"
	assert_success
	wait_gone "$pid"
	no_leftovers
	RAIDTOOL_FUSE_TRANSPORT=$transport run --separate-stderr raidtool activate "$NAME"
	assert_success
	head -c 8M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/pattern"
	run raidtool wait "$NAME"
	check_clean
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "connection aborted under raid1 writes over io_uring: no engine thread stuck, deactivate cleans up" {
	require_uring
	abort_test uring
}

@test "connection aborted under raid1 writes over /dev/fuse: no engine thread stuck, deactivate cleans up" {
	abort_test dev
}

@test "connection aborted under raid5 writes over io_uring: no engine thread stuck, deactivate cleans up" {
	require_uring
	abort_test uring 5 4
}

# walk_pieces WHICH: status's count of walk pieces run on the loops or on the walk's own rings.
walk_pieces() {
	status_json | jq -r ".stats.walk_pieces.$1"
}

# walks_test TRANSPORT: a rebuild under fio and a check, data verified;
# LOOPS and OWN: the pieces run on the queues' loops, on the walk's rings.
walks_test() {
	local transport=$1
	start_with "$transport" 5 64K 4 64M
	head -c 32M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool fail "$NAME" "$TESTDIR/u1.img"
	assert_success
	run raidtool remove "$NAME" "$TESTDIR/u1.img"
	assert_success
	fio --name=w --filename="$DEV" --offset=32M --direct=1 --ioengine=io_uring --iodepth=8 \
		--rw=randwrite --bs=4k-64k --size=16M --verify=crc32c --verify_state_save=0 \
		--output="$TESTDIR/fio.out" \
		>/dev/null 2>&1 &
	FIOPID=$!
	# shellcheck disable=SC2031  # teardown reaps it if the test fails
	BGPIDS+=("$FIOPID")
	run raidtool add "$NAME" "$(make_image u9.img 64M)"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "rebuild of role 1 done"
	wait "$FIOPID" || fail "fio verify under the rebuild: $(cat "$TESTDIR/fio.out")"
	cmp <(dd if="$DEV" bs=1M count=32 iflag=direct status=none) "$TESTDIR/pattern"
	check_clean
	LOOPS=$(walk_pieces loops)
	OWN=$(walk_pieces own)
}

@test "walks over io_uring: a rebuild under fio and a check run their pieces on the queues' loops; data verifies" {
	require_uring
	walks_test uring
	[ "$LOOPS" -gt 0 ] || fail "no walk piece ran on the loops (own rings: $OWN)"
	[ "$OWN" -eq 0 ] || fail "$OWN walk pieces ran on the walk's own rings"
}

@test "walks over /dev/fuse: the walk runs its pieces on its own rings; data verifies" {
	walks_test dev
	[ "$LOOPS" -eq 0 ] || fail "$LOOPS walk pieces on loops that /dev/fuse does not have"
	[ "$OWN" -gt 0 ] || fail "no walk piece counted"
}

@test "connection aborted during a rebuild on the queues' loops: nothing stuck, deactivate ends it, the array comes back whole" {
	require_uring
	local pid conn stuck now state t
	if ! mountpoint -q /sys/fs/fuse/connections; then
		mount -t fusectl fusectl /sys/fs/fuse/connections ||
			require "needs fusectl on /sys/fs/fuse/connections"
		FUSECTL_MOUNTED=1
	fi
	start_with uring 5 64K 4 256M
	head -c 16M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	pid=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	conn=$(stat -c %d "$RAIDTOOL_RUNDIR/$NAME/mnt")
	run raidtool fail "$NAME" "$TESTDIR/u2.img"
	assert_success
	run raidtool remove "$NAME" "$TESTDIR/u2.img"
	assert_success
	# Unlimited, so that pieces are on the loops when the connection goes.
	run raidtool add "$NAME" "$(make_image u9.img 256M)"
	assert_success
	status_until_above .stats.walk_pieces.loops 2 || true
	echo 1 > "/sys/fs/fuse/connections/$conn/abort"
	# Rarely the rebuild is over by now: what follows must hold all the same.
	[ "$(status_json | jq -r .walk.running)" = true ] ||
		echo "# the rebuild ended before the abort" >&3
	sleep 1
	# The walk goes on (on its own rings): its I/O workers sleep in D for a
	# moment; a thread that stays there for a second is stuck.
	stuck=$(ls /proc/"$pid"/task)
	for _ in $(seq 10); do
		sleep 0.1
		now=""
		for t in $stuck; do
			state=$(awk '{ print $3 }' "/proc/$pid/task/$t/stat" 2>/dev/null) || continue
			[ "$state" != D ] || now="$now $t"
		done
		stuck=$now
	done
	[ -z "$stuck" ] || fail "engine threads stuck:$stuck ($(cat /proc/"$pid"/task/*/wchan | tr '\0' ' '))"
	# A queue that left with pieces on its ring would leave the walk waiting for ever.
	run timeout 60 "$RAIDTOOL_BIN" deactivate "$NAME"
	assert_success
	wait_gone "$pid"
	no_leftovers
	# The rebuild resumes from its checkpoint (or had ended on the walk's own rings).
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/pattern"
	check_clean
}
