#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Crash-atomic superblock updates (raidtool-format(5), "Update protocol"):
# every command that writes superblocks is killed at its K-th pwrite64, for
# every K from 1 to the number of pwrite64 calls it makes, and the array must
# then start (in the old or the new state) with the bytes written before.
#
# The kill is strace's fault injection: the K-th pwrite64 of the traced
# process is not made, SIGKILL is delivered instead, exactly as if the power
# went at that point. Superblock copies are written with pwrite64 (one per
# copy, copy 0 then copy 1 of each unit); the only other pwrite64 is the
# engine's pid file, so killing there too is a harmless extra case.
# Commands the running engine carries out (fail, remove, add to a running
# array, deactivate) write from the engine process: strace attaches to it
# (-p PID -f: all its threads) before the command is sent. strace counts K
# per thread; each such command's superblock writes are made by one thread
# (the control thread, or the main thread for deactivate), which the
# measuring run checks.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup strace jq
	SPIDS=()
}

teardown() {
	local d
	# strace -f waits for a traced engine that outlives the command: KILL
	# (the kernel detaches its tracees; the engine is stopped below).
	stop_pids KILL "${SPIDS[@]}"
	for d in "$RAIDTOOL_RUNDIR"/*/pid; do
		[ -f "$d" ] || continue
		raidtool deactivate "$(basename "$(dirname "$d")")" >/dev/null 2>&1 || true
	done
	scratch_teardown
}

# fresh K: a new raid5 of three 16 MiB units named $NAME-kK (in A), started,
# 4 MiB of random bytes written through its device and their sha256 in SUM;
# the array is left running. Every K gets its own array and files.
fresh() {
	local k=$1 dir=$TESTDIR/k$1 i units=()
	mkdir -p "$dir"
	# shellcheck disable=SC2153  # NAME: set by scratch_setup
	A="${NAME}k$k"
	for i in 0 1 2; do
		truncate -s 16M "$dir/u$i.img"
		units+=("$dir/u$i.img")
	done
	# Zeroed images: no initial sync, whose own superblock update would
	# make the number of writes each command makes depend on timing.
	run raidtool create "$A" --level 5 --chunk 64K --assume-clean "${units[@]}"
	assert_success
	HASH=$(raidtool list --json 2>/dev/null | jq -r ".arrays[] | select(.name == \"$A\") | .hashcode")
	[ -n "$HASH" ] || fail "no hashcode for $A"
	head -c 4M /dev/urandom > "$dir/data"
	SUM=$(sha256sum < "$dir/data" | awk '{print $1}')
	run raidtool activate "$A"
	assert_success
	dd if="$dir/data" of="/dev/raidtool/$A" bs=1M oflag=direct conv=fsync status=none
}

# verify ID NAME: activate ID (name or hashcode) must succeed, and the 4 MiB
# written by fresh read back; then stop the array again.
# With WRITE_HOLE=1, the one refusal allowed is raid5's write hole: a
# command that fails a role, killed, is an engine crash on a degraded raid5;
# that start needs --force (raidtool(8)), which must then work.
verify() {
	local id=$1 name=$2 got
	run --separate-stderr raidtool activate "$id"
	# shellcheck disable=SC2154  # stderr: set by run --separate-stderr
	if [ "$status" -ne 0 ] && [ "${WRITE_HOLE:-0}" = 1 ] &&
		[[ "$stderr" == *"raid5 write hole"*"use --force"* ]]; then
		run --separate-stderr raidtool activate --force "$id"
	fi
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[ "$status" -eq 0 ] || fail "activate '$id' after the crash: status $status: $stderr"
	got=$(head -c 4M "/dev/raidtool/$name" | sha256sum | awk '{print $1}')
	[ "$got" = "$SUM" ] || fail "'$name': data differs after the crash ($got, want $SUM)"
	deactivate_settled "$name"
}

# release K: detach the loop devices of the K-th array's files.
release() {
	local dev back
	while read -r dev back; do
		case "$back" in "$TESTDIR/k$1"/*) losetup -d "$dev" 2>/dev/null ;; esac
	done < <(losetup -nO NAME,BACK-FILE 2>/dev/null)
}

# count_offline LOG CMD...: run CMD under strace, count its pwrite64 calls.
count_offline() {
	local log=$1
	shift
	strace -f -qq -o "$log" -e trace=pwrite64 "$@" >/dev/null 2>&1 || true
	N=$(grep -c 'pwrite64(' "$log" || true)
	[ "$N" -gt 0 ] || fail "no pwrite64 counted for: $*"
}

# crash_offline K CMD...: CMD killed at its K-th pwrite64.
crash_offline() {
	local k=$1
	shift
	run strace -f -qq -o /dev/null -e trace=pwrite64 \
		-e inject=pwrite64:signal=SIGKILL:when="$k" "$@"
}

engine_pid() {
	cat "$RAIDTOOL_RUNDIR/$1/pid"
}

# count_engine LOG PREP CMD...: on a fresh array (kept as k0), run PREP (a
# shell function taking the array name, may be :) then CMD with strace
# attached to the engine; N = its pwrite64 calls, all from one thread.
count_engine() {
	local log=$1 prep=$2
	shift 2
	fresh 0
	"$prep" "$A"
	attach_strace "$(engine_pid "$A")" -o "$log" -e trace=pwrite64
	"$@" "$A" >/dev/null 2>&1 || true
	detach_strace
	N=$(grep -c 'pwrite64(' "$log" || true)
	[ "$N" -gt 0 ] || fail "no pwrite64 counted for: $*"
	[ "$(awk '{print $1}' "$log" | sort -u | wc -l)" -eq 1 ] ||
		fail "pwrite64 from several threads: $(cat "$log")"
	raidtool deactivate "$A" >/dev/null 2>&1 || true
	release 0
}

# crash_engine K PREP CMD...: like count_engine, killed at the K-th pwrite64,
# then verified.
crash_engine() {
	local k=$1 prep=$2
	shift 2
	fresh "$k"
	"$prep" "$A"
	attach_strace "$(engine_pid "$A")" -e trace=pwrite64 \
		-e inject=pwrite64:signal=SIGKILL:when="$k" -o /dev/null
	run "$@" "$A"
	detach_strace
	verify "$A" "$A"
	release "$k"
}

# The offline commands: stop the array, count, then every K.
@test "rename killed at every superblock write: the array starts with its data" {
	fresh 0
	deactivate_settled "$A"
	count_offline "$TESTDIR/count.log" "$RAIDTOOL_BIN" rename "$A" "${A}x"
	[ "$N" -eq 8 ] || fail "rename made $N pwrite64 calls, expected 8 (its two lock files, 3 units x 2 copies)"
	release 0
	for ((k = 1; k <= N; k++)); do
		fresh "$k"
		deactivate_settled "$A"
		crash_offline "$k" "$RAIDTOOL_BIN" rename "$A" "${A}x"
		[ "$status" -ne 0 ] || fail "K=$k: rename was not killed"
		# Old or new name: the hashcode finds it either way.
		name=$(raidtool list --json 2>/dev/null | jq -r ".arrays[] | select(.hashcode == \"$HASH\") | .name")
		[ "$name" = "$A" ] || [ "$name" = "${A}x" ] || fail "K=$k: array named '$name'"
		verify "$HASH" "$name"
		release "$k"
	done
}

@test "rehash killed at every superblock write: the array starts with its data" {
	fresh 0
	deactivate_settled "$A"
	count_offline "$TESTDIR/count.log" "$RAIDTOOL_BIN" rehash "$A" 5eedf00d
	[ "$N" -eq 8 ] || fail "rehash made $N pwrite64 calls, expected 8 (its two lock files, 3 units x 2 copies)"
	release 0
	for ((k = 1; k <= N; k++)); do
		fresh "$k"
		deactivate_settled "$A"
		crash_offline "$k" "$RAIDTOOL_BIN" rehash "$A" "$(printf '5eed%04x' "$k")"
		[ "$status" -ne 0 ] || fail "K=$k: rehash was not killed"
		verify "$A" "$A"
		release "$k"
	done
}

@test "add to a stopped array killed at every superblock write: the array starts with its data" {
	fresh 0
	deactivate_settled "$A"
	truncate -s 16M "$TESTDIR/k0/spare.img"
	count_offline "$TESTDIR/count.log" "$RAIDTOOL_BIN" add "$A" "$TESTDIR/k0/spare.img"
	[ "$N" -eq 10 ] || fail "add made $N pwrite64 calls, expected 10 (its two lock files, 4 units x 2 copies)"
	release 0
	for ((k = 1; k <= N; k++)); do
		fresh "$k"
		deactivate_settled "$A"
		truncate -s 16M "$TESTDIR/k$k/spare.img"
		crash_offline "$k" "$RAIDTOOL_BIN" add "$A" "$TESTDIR/k$k/spare.img"
		[ "$status" -ne 0 ] || fail "K=$k: add was not killed"
		verify "$A" "$A"
		release "$k"
	done
}

@test "activate killed at every write: the array starts with its data" {
	local log=$TESTDIR/count.log
	fresh 0
	deactivate_settled "$A"
	# The engine stays traced while it runs: count once it is up, then stop it.
	strace -f -qq -o "$log" -e trace=pwrite64 "$RAIDTOOL_BIN" activate "$A" >/dev/null 2>&1 &
	SPIDS+=("$!")
	for _ in $(seq 100); do
		[ -e "/dev/raidtool/$A" ] && [ "$(grep -c 'pwrite64(' "$log")" -ge 8 ] && break
		sleep 0.1
	done
	# strace counts K per process: the engine (the daemon activate forks)
	# makes the superblock writes, its parent only the lock file's.
	N=$(awk '/pwrite64\(/ { n[$1]++ } END { for (p in n) if (n[p] > m) m = n[p]; print m + 0 }' "$log")
	[ "$N" -eq 7 ] || fail "activate's engine made $N pwrite64 calls, expected 7 (3 units x 2, pid file)"
	deactivate_settled "$A"
	release 0
	for ((k = 1; k <= N; k++)); do
		fresh "$k"
		deactivate_settled "$A"
		crash_offline "$k" "$RAIDTOOL_BIN" activate "$A"
		[ "$status" -ne 0 ] || fail "K=$k: activate was not killed"
		verify "$A" "$A"
		release "$k"
	done
}

# The engine's commands. PREP functions get the array name.
no_prep() {
	:
}

fail_role1() {
	raidtool fail "$1" 1 >/dev/null
}

spare_file() {
	truncate -s 16M "$TESTDIR/spare-$1.img"
	echo "$TESTDIR/spare-$1.img"
}

add_spare() {
	raidtool add "$1" "$(spare_file "$1")"
}

do_fail() {
	raidtool fail "$1" 1
}

do_remove() {
	raidtool remove "$1" 1
}

# Killed or not, deactivate has been carried out once it was not refused for
# a device held open for a moment (see deactivate_settled in helpers.bash).
do_deactivate() {
	local out
	for _ in $(seq 20); do
		out=$(raidtool deactivate "$1" 2>&1) && return 0
		[[ "$out" == *"is open in process"* ]] || return 1
		sleep 0.2
	done
	return 1
}

@test "fail on a running array killed at every superblock write: the array starts with its data" {
	count_engine "$TESTDIR/count.log" no_prep do_fail
	[ "$N" -eq 4 ] || fail "fail made $N pwrite64 calls, expected 4 (2 remaining units x 2)"
	for ((k = 1; k <= N; k++)); do
		WRITE_HOLE=1 crash_engine "$k" no_prep do_fail
	done
}

@test "remove on a running array killed at every superblock write: the array starts with its data" {
	count_engine "$TESTDIR/count.log" fail_role1 do_remove
	[ "$N" -eq 4 ] || fail "remove made $N pwrite64 calls, expected 4"
	for ((k = 1; k <= N; k++)); do
		WRITE_HOLE=1 crash_engine "$k" fail_role1 do_remove
	done
}

@test "add to a running array killed at every superblock write: the array starts with its data" {
	count_engine "$TESTDIR/count.log" no_prep add_spare_cmd
	[ "$N" -eq 8 ] || fail "add made $N pwrite64 calls, expected 8"
	for ((k = 1; k <= N; k++)); do
		crash_engine "$k" no_prep add_spare_cmd
	done
}

add_spare_cmd() {
	add_spare "$1"
}

@test "deactivate killed at every superblock write: the array starts with its data" {
	count_engine "$TESTDIR/count.log" no_prep do_deactivate
	[ "$N" -eq 6 ] || fail "deactivate made $N pwrite64 calls, expected 6"
	for ((k = 1; k <= N; k++)); do
		crash_engine "$k" no_prep do_deactivate
	done
}
