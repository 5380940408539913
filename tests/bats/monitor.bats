#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# raidtool monitor: the events of running arrays on stdout (--json), and the
# admin's program run once per event with EVENT ARRAY [UNIT]. The run
# directory is the test's own, so --scan follows only this test's arrays.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup fio jq
	faulty_setup
	BGPIDS=()
	# The program the monitor runs: one line per call, its arguments.
	PROG=$TESTDIR/alert
	cat >"$PROG" <<EOF
#!/bin/sh
echo "\$*" >>"$TESTDIR/alerts"
# Output of its own: never among the monitor's events.
echo "alert ran"
EOF
	chmod +x "$PROG"
}

teardown() {
	reap_bgpids
	faulty_units_clear
	stop_arrays
	scratch_teardown
	faulty_units_stop
}

# start_monitor: raidtool monitor --scan --json in the background,
# its events in $TESTDIR/events, its program calls in $TESTDIR/alerts.
start_monitor() {
	# The binary itself, not the raidtool function: $! is then the monitor's pid.
	"$RAIDTOOL_BIN" monitor --scan --json --delay 0.1 --program "$PROG" \
		>"$TESTDIR/events" 2>"$TESTDIR/monitor.err" &
	MONPID=$!
	BGPIDS+=("$MONPID")
	# Its first look is taken once it has printed or looked: give it a moment.
	sleep 0.5
}

# wait_event EVENT [COUNT]: until the monitor printed COUNT (default 1) EVENTs.
wait_event() {
	local want=${2:-1}
	for _ in $(seq 150); do
		[ "$(events_of "$1" | wc -l)" -ge "$want" ] && return 0
		sleep 0.1
	done
	fail "no $1 event in 15 s; events: $(cat "$TESTDIR/events"); stderr: $(cat "$TESTDIR/monitor.err")"
}

# The monitor's JSON lines of one EVENT.
events_of() {
	jq -c "select(.event == \"$1\")" "$TESTDIR/events"
}

# The event names the monitor printed, one per line, in order.
event_names() {
	jq -r .event "$TESTDIR/events"
}

new_array() {
	local level=$1 count=$2 size=$3 i
	for ((i = 0; i < count; i++)); do
		UNITS+=("$(make_image "u$i.img" "$size")")
	done
	run raidtool create "$NAME" --level "$level" --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
}

# The loop device raidtool attached for image unit I.
unit_dev() {
	loop_of "${UNITS[$1]}"
}

@test "monitor: a unit failing under fio runs the program once: Fail NAME UNIT, then DegradedArray" {
	local i since
	for i in 0 1; do faulty_unit "$i" 48M; done
	run raidtool create "$NAME" --level 1 --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
	start_monitor
	fio --filename="$DEV" --name=load --direct=1 --ioengine=io_uring --iodepth=8 \
		--rw=write --bs=64k --size=24M --rate=8m --output-format=terse \
		>"$TESTDIR/fio.out" 2>&1 &
	BGPIDS+=("$!")
	since=0
	for _ in $(seq 100); do
		since=$(raidtool status --json "$NAME" | jq -r .stats.write_bytes)
		[ "$since" -ge $((2 << 20)) ] && break
		sleep 0.1
	done
	[ "$since" -ge $((2 << 20)) ] || fail "fio did not write"
	echo "fail rw" >"$TESTDIR/ffs1/ctl"
	wait_event DegradedArray
	wait "${BGPIDS[1]}" || fail "fio failed: $(cat "$TESTDIR/fio.out")"
	# Longer than the monitor's delay: a repeated event would have come.
	sleep 1
	run grep -c "^Fail " "$TESTDIR/alerts"
	assert_output 1
	run grep "^Fail " "$TESTDIR/alerts"
	assert_output "Fail $NAME ${UNITS[1]}"
	run grep -c "^DegradedArray $NAME\$" "$TESTDIR/alerts"
	assert_output 1
	# The Fail before the DegradedArray it causes, and nothing else.
	run event_names
	assert_output "$(printf 'Fail\nDegradedArray')"
	[ "$(events_of Fail | jq -r .role)" = 1 ]
	[ "$(events_of DegradedArray | jq -r .detail)" = degraded ]
}

@test "monitor: a rebuild gives RebuildStarted, then RebuildFinished (finished) and SpareActive" {
	new_array 1 2 64M
	start_monitor
	run raidtool fail "$NAME" 1
	assert_success
	wait_event DegradedArray
	run raidtool remove "$NAME" 1
	assert_success
	fresh=$(make_image fresh.img 64M)
	run raidtool add "$NAME" "$fresh" --speed-limit 16
	assert_success
	wait_event SpareActive
	run raidtool wait "$NAME"
	assert_success
	run event_names
	assert_output "$(printf 'Fail\nDegradedArray\nRebuildStarted\nRebuildFinished\nSpareActive')"
	[ "$(events_of RebuildFinished | jq -r .detail)" = finished ]
	[ "$(events_of RebuildStarted | jq -r .walk)" = rebuilding ]
	newdev=$(loop_of "$fresh")
	[ "$(events_of RebuildStarted | jq -r .unit)" = "$newdev" ]
	[ "$(events_of SpareActive | jq -r .unit)" = "$newdev" ]
	run cat "$TESTDIR/alerts"
	assert_line "RebuildStarted $NAME $newdev"
	assert_line "RebuildFinished $NAME $newdev"
}

@test "monitor: a hot replace gives RebuildStarted (walk replacing, the new unit), then RebuildFinished" {
	local new newdev
	new_array 1 2 64M
	start_monitor
	new=$(make_image new.img 64M)
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 16
	assert_success
	wait_event RebuildStarted
	newdev=$(loop_of "$new")
	run raidtool wait "$NAME"
	assert_success
	wait_event RebuildFinished
	# Never degraded: no Fail, no DegradedArray.
	run event_names
	assert_output "$(printf 'RebuildStarted\nRebuildFinished')"
	[ "$(events_of RebuildStarted | jq -r .walk)" = replacing ]
	[ "$(events_of RebuildStarted | jq -r .unit)" = "$newdev" ]
	[ "$(events_of RebuildFinished | jq -r .detail)" = finished ]
	[ "$(events_of RebuildFinished | jq -r .unit)" = "$newdev" ]
	# The role the new unit fills, not the slot it waits in meanwhile.
	[ "$(events_of RebuildStarted | jq -r .role)" = 1 ]
	[ "$(events_of RebuildFinished | jq -r .role)" = 1 ]
	run cat "$TESTDIR/alerts"
	assert_line "RebuildStarted $NAME $newdev"
}

@test "monitor --oneshot: nothing on a healthy array; after a failure DegradedArray, exit 0" {
	new_array 5 3 32M
	run --separate-stderr raidtool monitor --oneshot "$NAME"
	assert_success
	assert_output ""
	run raidtool fail "$NAME" 2
	assert_success
	run --separate-stderr raidtool monitor --oneshot --program "$PROG" "$NAME"
	assert_success
	assert_output --regexp "^[0-9T:Z-]+ DegradedArray array $NAME: degraded\$"
	run cat "$TESTDIR/alerts"
	assert_output "DegradedArray $NAME"
	# Another array's name: nothing of ours.
	run --separate-stderr raidtool monitor --oneshot "x$NAME"
	assert_success
	assert_output ""
	run --separate-stderr raidtool monitor --oneshot --json --scan
	assert_success
	[ "$(jq -r .event <<<"$output")" = DegradedArray ]
	[ "$(jq -r .array <<<"$output")" = "$NAME" ]
}

@test "monitor killed and restarted reports the degraded state that still holds" {
	new_array 1 2 32M
	start_monitor
	kill -KILL "$MONPID"
	wait "$MONPID" 2>/dev/null || true
	run raidtool fail "$NAME" 0
	assert_success
	# The failure happened while no monitor ran: the next one reports it at start.
	start_monitor
	wait_event DegradedArray
	run cat "$TESTDIR/alerts"
	assert_output "DegradedArray $NAME"
}

@test "monitor --scan: NewArray for an array started later, CheckFinished with its mismatches, Stopped" {
	UNITS=()
	for i in 0 1 2; do UNITS+=("$(make_image "u$i.img" 32M)"); done
	run raidtool create "$NAME" --level 5 --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	start_monitor
	run raidtool activate "$NAME"
	assert_success
	wait_event NewArray
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	wait_event CheckFinished
	[ "$(events_of CheckFinished | jq -r .detail)" = 0 ]
	[ "$(events_of CheckFinished | jq -r .walk)" = checking ]
	deactivate_settled "$NAME"
	wait_event Stopped
	run event_names
	assert_output "$(printf 'NewArray\nCheckFinished\nStopped')"
	run cat "$TESTDIR/alerts"
	assert_output "$(printf 'NewArray %s\nCheckFinished %s 0\nStopped %s' "$NAME" "$NAME" "$NAME")"
}

@test "monitor: an engine killed is DeviceDisappeared, once" {
	new_array 1 2 32M
	start_monitor
	kill_engine
	wait_event DeviceDisappeared
	sleep 1
	run event_names
	assert_output DeviceDisappeared
	run raidtool deactivate "$NAME"
	assert_success
	sleep 0.5
	run event_names
	assert_output DeviceDisappeared
}

@test "monitor: usage errors" {
	run --separate-stderr raidtool monitor
	[ "$status" -eq 2 ]
	run --separate-stderr raidtool monitor --scan foo
	[ "$status" -eq 2 ]
	run --separate-stderr raidtool monitor --scan --delay 0
	[ "$status" -eq 2 ]
}
