#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Thin pools and volumes on a stopped array (issue 13, offline part): pool
# create/status/check/dump and vol create/snapshot/delete/list through an
# engine in the command's own process; the bad input of the issue is
# refused with a clear message and changes nothing on any unit.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	BGPIDS=()
	fuse_setup jq
	UNITS=("$(make_image u0.img 48M)" "$(make_image u1.img 48M)")
}

teardown() {
	reap_bgpids
	scratch_teardown
	# The volumes' links live in a directory of the array's name.
	[ -n "${NAME:-}" ] && [ -d "/dev/raidtool/$NAME" ] && rm -rf "/dev/raidtool/$NAME"
	return 0
}

# new_pool [POOL CREATE OPTION...]: a stopped raid1 of UNITS holding a pool.
new_pool() {
	run raidtool create "$NAME" --level 1 --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool pool create "$NAME" "$@"
	assert_success
	assert_output --partial "created a thin pool on '$NAME'"
}

pool_field() {
	raidtool pool status --json "$NAME" | jq -r ".$1"
}

@test "pool create, status, vol create/snapshot/list/delete, check, dump" {
	new_pool --block-size 128K --low-water 20 --when-full queue
	run --separate-stderr raidtool pool status --json "$NAME"
	assert_success
	[ "$(jq -r .block_size <<<"$output")" = 131072 ]
	[ "$(jq -r .when_full <<<"$output")" = queue ]
	[ "$(jq -r .low_water <<<"$output")" = 20 ]
	[ "$(jq -r .needs_check <<<"$output")" = false ]
	[ "$(jq -r .transaction_id <<<"$output")" = 0 ]
	local data free
	data=$(jq -r .data_blocks <<<"$output")
	free=$(jq -r .free_data_blocks <<<"$output")
	[ "$data" -gt 300 ] && [ "$free" = "$data" ]
	[ "$(jq -r .free_metadata_blocks <<<"$output")" -gt 0 ]

	# A volume far larger than the pool: thin.
	run raidtool vol create "$NAME" vol0 --size 10T
	assert_success
	run raidtool vol snapshot "$NAME" vol0 snap1
	assert_success
	run raidtool vol snapshot "$NAME" snap1 snap2
	assert_success
	run raidtool vol snapshot "$NAME" snap2 snap3
	assert_success
	run --separate-stderr raidtool vol list --json "$NAME"
	assert_success
	[ "$(jq -r 'map(.name) | join(",")' <<<"$output")" = vol0,snap1,snap2,snap3 ]
	[ "$(jq -r '.[3].origin' <<<"$output")" = snap2 ]
	[ "$(jq -r '.[0].size' <<<"$output")" = 10995116277760 ]
	[ "$(jq -r '.[0].mapped' <<<"$output")" = 0 ]
	run raidtool vol list "$NAME"
	assert_success
	assert_line --regexp '^snap1 +2 +10.0 TiB .* vol0$'

	run raidtool vol delete "$NAME" snap1
	assert_success
	run --separate-stderr raidtool vol list --json "$NAME"
	[ "$(jq -r 'map(.name) | join(",")' <<<"$output")" = vol0,snap2,snap3 ]
	[ "$(pool_field volumes)" = 3 ]
	run raidtool pool check "$NAME"
	assert_success
	assert_output "pool on '$NAME': clean"
	run --separate-stderr raidtool pool dump "$NAME"
	assert_success
	[ "$(jq -r '.volume_table | length' <<<"$output")" = 3 ]
	[ "$(jq -r '.volume_table[2].name' <<<"$output")" = snap3 ]
	[ "$(jq -r '.free_data_blocks' <<<"$output")" = "$free" ]
	# Running: listings read the last commit; pool check and pool create wait until it stops.
	run raidtool activate "$NAME"
	assert_success
	run --separate-stderr raidtool vol list --json "$NAME"
	assert_success
	[ "$(jq -r 'map(.name) | join(",")' <<<"$output")" = vol0,snap2,snap3 ]
	run --separate-stderr raidtool pool status --json "$NAME"
	assert_success
	[ "$(jq -r .volumes <<<"$output")" = 3 ]
	run --separate-stderr raidtool pool dump "$NAME"
	assert_success
	[ "$(jq -r '.volume_table | length' <<<"$output")" = 3 ]
	for cmd in "pool check" "pool create --force"; do
		# shellcheck disable=SC2086  # the subcommand is two words
		run raidtool $cmd "$NAME"
		assert_failure 4
		assert_output --partial "'$NAME': running"
	done
	deactivate_settled "$NAME"
	run raidtool vol list "$NAME"
	assert_success
}

# refused EXIT MESSAGE COMMAND...: fails with EXIT, says MESSAGE, and
# neither the pool's metadata nor any byte of the units changed.
refused() {
	local code=$1 msg=$2 before dump
	shift 2
	before=$(checksums "${UNITS[@]}")
	dump=$(raidtool pool dump "$NAME")
	run raidtool "$@"
	assert_failure "$code"
	assert_output --partial "$msg"
	[ "$(raidtool pool dump "$NAME")" = "$dump" ] || fail "metadata changed by: $*"
	[ "$(checksums "${UNITS[@]}")" = "$before" ] || fail "units changed by: $*"
}

@test "bad input: unknown volume, duplicate name, bad sizes, missing origin; nothing changes" {
	new_pool
	run raidtool vol create "$NAME" vol0 --size 1G
	assert_success
	refused 5 "'vol0': a volume of that name exists" vol create "$NAME" vol0 --size 1G
	refused 5 "'vol0': a volume of that name exists" vol snapshot "$NAME" vol0 vol0
	refused 2 "size 0 is not a positive multiple of the pool's block size" \
		vol create "$NAME" vol1 --size 0
	refused 2 "size 100000 is not a positive multiple of the pool's block size (65536)" \
		vol create "$NAME" vol1 --size 100000
	refused 2 "not a size" vol create "$NAME" vol1 --size lots
	refused 2 "--size is required" vol create "$NAME" vol1
	refused 2 "not a volume name" vol create "$NAME" "a/b" --size 1G
	refused 3 "'nosuch': no such volume to snapshot" vol snapshot "$NAME" nosuch snap
	refused 3 "'nosuch': no such volume" vol delete "$NAME" nosuch
	refused 5 "holds a thin pool" pool create "$NAME"
	refused 2 "--block-size '32K': must be a power of two from 64K to 1M" \
		pool create "$NAME" --block-size 32K --force
	refused 2 "--when-full 'wait': use error or queue" pool create "$NAME" --when-full wait
	refused 2 "--low-water '101': a percentage" pool create "$NAME" --low-water 101
	refused 2 "--low-water '-1': a percentage" pool create "$NAME" --low-water -1
	refused 2 "'frobnicate' is not a subcommand" vol frobnicate "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

@test "pool create refuses an array holding a filesystem unless --force" {
	require_cmds mkfs.ext4
	run raidtool create "$NAME" --level 1 --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	run mkfs.ext4 -q -F "/dev/raidtool/$NAME"
	assert_success
	deactivate_settled "$NAME"
	local before
	before=$(checksums "${UNITS[@]}")
	run raidtool pool create "$NAME"
	assert_failure 5
	assert_output "raidtool: '$NAME': holds ext4; 'pool create --force' overwrites it"
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
	run raidtool pool status "$NAME"
	assert_failure 3
	assert_output --partial "'$NAME': holds no thin pool"
	run raidtool pool create --force "$NAME"
	assert_success
	[ "$(pool_field volumes)" = 0 ]
}

@test "create over units that held a pool: the new array holds no pool, at any level" {
	local level
	new_pool
	run raidtool vol create "$NAME" vol0 --size 1G
	assert_success
	for level in 1 0; do
		# zero wipes the array's superblocks only: the pool's stay in the data area.
		run raidtool zero "${UNITS[@]}"
		assert_success
		run raidtool create "$NAME" --level "$level" --assume-clean "${UNITS[@]}"
		assert_success
		run raidtool pool status "$NAME"
		assert_failure 3
		assert_output --partial "'$NAME': holds no thin pool"
		# Started, it shows its own device, not a pool's volumes.
		run raidtool activate "$NAME"
		assert_success
		assert_output "/dev/raidtool/$NAME"
		deactivate_settled "$NAME"
		run raidtool pool create "$NAME"
		assert_success
	done
}

@test "pool commands on an array without a pool, and on no array" {
	run raidtool create "$NAME" --level 1 --assume-clean "${UNITS[@]}"
	assert_success
	local before
	before=$(checksums "${UNITS[@]}")
	for cmd in "pool status" "pool check" "pool dump" "vol list"; do
		# shellcheck disable=SC2086  # the subcommand is two words
		run raidtool $cmd "$NAME"
		assert_failure 3
		assert_output --partial "'$NAME': holds no thin pool (see 'raidtool pool create')"
	done
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
	run raidtool vol list "${NAME}none"
	assert_failure 3
}

@test "--help of pool, vol and every subcommand" {
	local -A opts=(
		["pool create"]="--block-size --when-full --low-water --force ARRAY"
		["pool status"]="--json ARRAY"
		["pool check"]="ARRAY"
		["pool dump"]="ARRAY"
		["vol create"]="--size ARRAY VOL"
		["vol snapshot"]="ARRAY VOL SNAP"
		["vol delete"]="ARRAY VOL"
		["vol list"]="--json ARRAY"
		["vol resize"]="--size --force ARRAY VOL"
		["pool abort"]="ARRAY"
		["pool set-transaction-id"]="ARRAY OLD NEW"
		["pool set"]="--read-only --read-write ARRAY"
		["pool reserve-metadata-snap"]="ARRAY"
		["pool release-metadata-snap"]="ARRAY"
	)
	local c o
	for c in "${!opts[@]}"; do
		# shellcheck disable=SC2086  # two words
		run raidtool $c --help
		assert_success
		assert_line --regexp "^Usage: raidtool $c "
		for o in ${opts[$c]}; do
			[[ $output == *"$o"* ]] || fail "$c --help does not mention $o"
		done
	done
	run raidtool pool --help
	assert_success
	assert_output --partial "  check "
	run raidtool vol
	assert_failure 2
	assert_output --partial "  snapshot "
	run raidtool --help
	assert_output --partial "  pool "
	assert_output --partial "  vol "
}

# --- live volumes ------------------------------------------------------------

# live_pool VOL:SIZE...: a stopped raid1 pool with these volumes, then activated.
live_pool() {
	local v
	new_pool
	for v in "$@"; do
		run raidtool vol create "$NAME" "${v%%:*}" --size "${v#*:}"
		assert_success
	done
	run raidtool activate "$NAME"
	assert_success
	assert_output "/dev/raidtool/$NAME.pool"
}

@test "live: every volume is a block device; fio verify; the array's own device is read-only" {
	require_cmds fio
	live_pool vol0:1G vol1:64M
	[ -b "/dev/raidtool/$NAME/vol0" ] && [ -b "/dev/raidtool/$NAME/vol1" ]
	[ "$(blockdev --getsize64 "/dev/raidtool/$NAME/vol0")" = 1073741824 ]
	run fio --name=thin --filename="/dev/raidtool/$NAME/vol0" --rw=randwrite --bs=4k \
		--size=24M --direct=1 --ioengine=libaio --iodepth=8 --verify=crc32c \
		--do_verify=1 --verify_fatal=1 --randrepeat=0 --verify_state_save=0
	assert_success
	# Unmapped blocks read as zeros.
	[ "$(head -c 1M "/dev/raidtool/$NAME/vol1" | tr -d '\0' | wc -c)" = 0 ]
	# Scans leave the volumes' devices alone, as they do the array's own.
	if command -v strace >/dev/null; then
		strace -f -e trace=openat -o "$TESTDIR/trace" "$RAIDTOOL_BIN" list >/dev/null
		! grep -q "\"$(readlink -f "/dev/raidtool/$NAME/vol0")\"" "$TESTDIR/trace" ||
			fail "a scan opened the volume's device"
	fi
	run dd if=/dev/zero of="/dev/raidtool/$NAME.pool" bs=4k count=1 oflag=direct
	assert_failure
	# Listings of the running pool read a metadata snapshot: what fio wrote is mapped.
	run --separate-stderr raidtool vol list --json "$NAME"
	assert_success
	[ "$(jq -r '.[0].mapped' <<<"$output")" -gt 0 ]
	run --separate-stderr raidtool pool status --json "$NAME"
	assert_success
	[ "$(jq -r .free_data_blocks <<<"$output")" -lt "$(jq -r .data_blocks <<<"$output")" ]
	deactivate_settled "$NAME"
	[ ! -e "/dev/raidtool/$NAME" ]
	run raidtool pool check "$NAME"
	assert_success
	run --separate-stderr raidtool vol list --json "$NAME"
	[ "$(jq -r '.[0].mapped' <<<"$output")" -gt 0 ]
	[ "$(jq -r '.[1].mapped' <<<"$output")" = 0 ]
}

@test "live: a snapshot keeps the origin's bytes (sha256) while the origin is rewritten; three deep" {
	local sum
	live_pool vol0:256M
	head -c 16M /dev/urandom > "$TESTDIR/old"
	dd if="$TESTDIR/old" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync status=none
	deactivate_settled "$NAME"
	run raidtool vol snapshot "$NAME" vol0 snap1
	assert_success
	run raidtool activate "$NAME"
	assert_success
	sum=$(sha256sum < "$TESTDIR/old")
	# The origin rewritten with other bytes, partly in 4K pieces (partial blocks copy).
	head -c 16M /dev/urandom > "$TESTDIR/new"
	dd if="$TESTDIR/new" of="/dev/raidtool/$NAME/vol0" bs=4k count=100 oflag=direct status=none
	dd if="$TESTDIR/new" of="/dev/raidtool/$NAME/vol0" bs=1M skip=1 seek=1 oflag=direct \
		conv=fsync status=none
	[ "$(head -c 16M "/dev/raidtool/$NAME/snap1" | sha256sum)" = "$sum" ]
	cmp <(head -c 409600 "$TESTDIR/new") <(head -c 409600 "/dev/raidtool/$NAME/vol0")
	cmp <(tail -c +1048577 "$TESTDIR/new") \
		<(head -c 16M "/dev/raidtool/$NAME/vol0" | tail -c +1048577)
	# Between 400K and 1M the origin kept its old bytes.
	cmp <(head -c 1M "$TESTDIR/old" | tail -c +409601) \
		<(head -c 1M "/dev/raidtool/$NAME/vol0" | tail -c +409601)
	# Writing the snapshot leaves the origin alone.
	head -c 16M "/dev/raidtool/$NAME/vol0" | sha256sum > "$TESTDIR/origin.sum"
	dd if=/dev/urandom of="/dev/raidtool/$NAME/snap1" bs=64k count=8 oflag=direct \
		conv=fsync status=none
	[ "$(head -c 16M "/dev/raidtool/$NAME/vol0" | sha256sum)" = "$(cat "$TESTDIR/origin.sum")" ]
	head -c 16M "/dev/raidtool/$NAME/snap1" | sha256sum > "$TESTDIR/snap1.sum"
	deactivate_settled "$NAME"
	run raidtool vol snapshot "$NAME" snap1 snap2
	assert_success
	run raidtool vol snapshot "$NAME" snap2 snap3
	assert_success
	run raidtool activate "$NAME"
	assert_success
	[ "$(head -c 16M "/dev/raidtool/$NAME/snap3" | sha256sum)" = "$(cat "$TESTDIR/snap1.sum")" ]
	dd if=/dev/urandom of="/dev/raidtool/$NAME/snap2" bs=1M count=2 oflag=direct \
		conv=fsync status=none
	[ "$(head -c 16M "/dev/raidtool/$NAME/snap3" | sha256sum)" = "$(cat "$TESTDIR/snap1.sum")" ]
	[ "$(head -c 16M "/dev/raidtool/$NAME/snap1" | sha256sum)" = "$(cat "$TESTDIR/snap1.sum")" ]
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: writers race on the same blocks of a just-snapshotted volume; origin and snapshot exact" {
	require_cmds fio
	local round snapsum pid
	live_pool vol0:64M
	head -c 8M /dev/urandom > "$TESTDIR/old"
	# What every writer below writes: each 4K piece holds its own offset.
	fio --name=expect --filename="$TESTDIR/expect" --rw=write --bs=4k --size=4M \
		--verify=pattern --verify_pattern=%o --do_verify=0 --verify_state_save=0 \
		--ioengine=psync >/dev/null
	for round in 1 2; do
		dd if="$TESTDIR/old" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync \
			status=none
		run raidtool vol snapshot "$NAME" vol0 "snap$round"
		assert_success
		# A reader of the snapshot meanwhile.
		head -c 8M "/dev/raidtool/$NAME/snap$round" | sha256sum > "$TESTDIR/snap.sum" &
		pid=$!
		BGPIDS+=("$pid")
		# 16 writers, writer j the 4K piece j of every 64K block of the first 4M:
		# all 16 pieces of a shared block at once, each of them the block's first
		# write (a copy) as far as it knows; every piece is written once, so a
		# write that a racing copy lost shows.
		run fio --name=race --filename="/dev/raidtool/$NAME/vol0" --rw=write:60k --bs=4k \
			--size=4M --offset_increment=4k --numjobs=16 --iodepth=4 \
			--ioengine=io_uring --direct=1 --verify=pattern --verify_pattern=%o \
			--do_verify=0 --verify_state_save=0 --group_reporting
		assert_success
		cmp "$TESTDIR/expect" <(head -c 4M "/dev/raidtool/$NAME/vol0") ||
			fail "round $round: a write racing a copy of its block was lost"
		# Then writers in place and copying at once: every piece again, same bytes.
		run fio --name=again --filename="/dev/raidtool/$NAME/vol0" --rw=randwrite --bs=4k \
			--size=4M --numjobs=4 --iodepth=8 --ioengine=io_uring --direct=1 \
			--randrepeat=0 --verify=pattern --verify_pattern=%o --do_verify=0 \
			--verify_state_save=0 --group_reporting
		assert_success
		wait "$pid"
		snapsum=$(sha256sum < "$TESTDIR/old")
		[ "$(cat "$TESTDIR/snap.sum")" = "$snapsum" ] || fail "round $round: snapshot read while written"
		[ "$(head -c 8M "/dev/raidtool/$NAME/snap$round" | sha256sum)" = "$snapsum" ] ||
			fail "round $round: the snapshot changed"
		cmp "$TESTDIR/expect" <(head -c 4M "/dev/raidtool/$NAME/vol0") ||
			fail "round $round: a write to the origin was lost or misplaced"
		cmp <(tail -c +4194305 "$TESTDIR/old") \
			<(head -c 8M "/dev/raidtool/$NAME/vol0" | tail -c +4194305) ||
			fail "round $round: the origin changed beyond what was written"
	done
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: discard returns a volume's blocks to the pool; ext4 and fstrim" {
	require_cmds mkfs.ext4 fstrim
	local free0 free1 free2
	live_pool vol0:256M
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=16 oflag=direct \
		conv=fsync status=none
	run blkdiscard "/dev/raidtool/$NAME/vol0"
	assert_success
	[ "$(head -c 16M "/dev/raidtool/$NAME/vol0" | tr -d '\0' | wc -c)" = 0 ]
	deactivate_settled "$NAME"
	free0=$(pool_field free_data_blocks)
	[ "$free0" = "$(pool_field data_blocks)" ]
	run raidtool activate "$NAME"
	assert_success
	run mkfs.ext4 -q -E nodiscard "/dev/raidtool/$NAME/vol0"
	assert_success
	mkdir "$TESTDIR/m"
	mount "/dev/raidtool/$NAME/vol0" "$TESTDIR/m"
	head -c 24M /dev/urandom > "$TESTDIR/m/file"
	sync
	umount "$TESTDIR/m"
	deactivate_settled "$NAME"
	free1=$(pool_field free_data_blocks)
	run raidtool activate "$NAME"
	assert_success
	mount "/dev/raidtool/$NAME/vol0" "$TESTDIR/m"
	# Not while a volume is mounted.
	run raidtool deactivate "$NAME"
	assert_failure 4
	assert_output --partial "/dev/raidtool/$NAME/vol0"
	assert_output --partial "is mounted on $TESTDIR/m"
	rm "$TESTDIR/m/file"
	# Freed blocks are trimmed once the deletion is committed to the journal.
	sync
	run fstrim "$TESTDIR/m"
	assert_success
	umount "$TESTDIR/m"
	deactivate_settled "$NAME"
	free2=$(pool_field free_data_blocks)
	# The file's 24M (384 blocks of 64K) came back, but for a few the journal took meanwhile.
	[ "$free2" -ge $((free1 + 370)) ] || fail "free data blocks $free1 -> $free2"
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: kill -9 of the engine under writes with fsync: back at the last commit, check clean, every fsynced chunk verifies" {
	local round done_n i pid
	live_pool vol0:256M
	head -c 48M /dev/urandom > "$TESTDIR/data"
	for round in 1 2 3; do
		: > "$TESTDIR/done"
		# 1M chunks, each synced before it is recorded as done.
		(
			for i in $(seq 0 47); do
				dd if="$TESTDIR/data" of="/dev/raidtool/$NAME/vol0" bs=1M skip="$i" \
					seek="$i" count=1 oflag=direct conv=fsync status=none 2>/dev/null || exit 0
				echo "$i" >> "$TESTDIR/done"
			done
		) &
		pid=$!
		BGPIDS+=("$pid")
		sleep "0.$((RANDOM % 9 + 1))"
		kill_engine
		wait "$pid" || true
		done_n=$(wc -l < "$TESTDIR/done")
		run raidtool activate "$NAME"
		assert_success
		for ((i = 0; i < done_n; i++)); do
			cmp <(dd if="$TESTDIR/data" bs=1M skip="$i" count=1 status=none) \
				<(dd if="/dev/raidtool/$NAME/vol0" bs=1M skip="$i" count=1 \
					iflag=direct status=none) ||
				fail "round $round: chunk $i of $done_n synced chunks differs"
		done
		deactivate_settled "$NAME"
		run raidtool pool check "$NAME"
		assert_success
		run raidtool activate "$NAME"
		assert_success
	done
}

@test "live: kill -9, then deactivate: the volumes' links go with their loop devices" {
	local d0 d1
	live_pool vol0:64M vol1:64M
	d0=$(readlink "/dev/raidtool/$NAME/vol0")
	d1=$(readlink "/dev/raidtool/$NAME/vol1")
	kill_engine
	# A detached loop device's number goes to the next one attached (any
	# array's): a link left behind would name that device.
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "detached $d0"
	assert_output --partial "detached $d1"
	assert_output --partial "removed 1 link to $d0"
	[ ! -L "/dev/raidtool/$NAME/vol0" ] && [ ! -L "/dev/raidtool/$NAME/vol1" ]
	[ ! -L "/dev/raidtool/$NAME.pool" ]
	[ ! -e "/dev/raidtool/$NAME" ]
	run raidtool activate "$NAME"
	assert_success
	[ "$(readlink "/dev/raidtool/$NAME/vol0" | cut -c1-9)" = /dev/loop ]
}

@test "live: a link left naming the loop device an engine takes is removed, with a warning" {
	local next gone stale="/dev/raidtool/$NAME-old"
	new_pool
	run raidtool vol create "$NAME" vol0 --size 64M
	assert_success
	# As an engine that died leaves it once its loop device was detached by hand.
	next=$(losetup -f)
	mkdir -p "$stale"
	ln -s "$next" "$stale/vol0"
	run raidtool activate "$NAME"
	gone=1
	[ -e "$stale" ] && gone=0 && rm -rf "$stale"
	assert_success
	assert_output --partial "removed 1 stale link to $next"
	readlink "/dev/raidtool/$NAME.pool" "/dev/raidtool/$NAME/vol0" | grep -qx "$next"
	[ "$gone" = 1 ]	# the link, and the directory it emptied
}

@test "live: vol create, snapshot (while fio writes the origin) and delete on a running array" {
	require_cmds fio
	local sum pid
	# Room for fio's blocks, copied once more after the snapshot.
	UNITS=("$(make_image big0.img 160M)" "$(make_image big1.img 160M)")
	live_pool vol0:256M
	run raidtool vol create "$NAME" vol1 --size 64M
	assert_success
	assert_output "created volume 'vol1' of 64.0 MiB"
	[ -b "/dev/raidtool/$NAME/vol1" ]
	head -c 16M /dev/urandom > "$TESTDIR/old"
	dd if="$TESTDIR/old" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync status=none
	sum=$(sha256sum < "$TESTDIR/old")
	# fio keeps writing the origin beyond its first 16M meanwhile.
	fio --name=busy --filename="/dev/raidtool/$NAME/vol0" --rw=randwrite --bs=4k \
		--offset=32M --size=16M --direct=1 --time_based --runtime=30 \
		>"$TESTDIR/fio.out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	sleep 1
	run raidtool vol snapshot "$NAME" vol0 snap1
	assert_success
	[ -b "/dev/raidtool/$NAME/snap1" ]
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=4 oflag=direct conv=fsync \
		status=none
	stop_pids TERM "$pid"
	[ "$(head -c 16M "/dev/raidtool/$NAME/snap1" | sha256sum)" = "$sum" ]
	head -c 16M "/dev/raidtool/$NAME/vol0" | sha256sum > "$TESTDIR/origin.sum"
	dd if=/dev/urandom of="/dev/raidtool/$NAME/snap1" bs=1M count=4 oflag=direct conv=fsync \
		status=none
	[ "$(head -c 16M "/dev/raidtool/$NAME/vol0" | sha256sum)" = "$(cat "$TESTDIR/origin.sum")" ]
	# Refusals, told by the engine.
	run raidtool vol create "$NAME" vol1 --size 64M
	assert_failure 5
	assert_output --partial "'vol1': a volume of that name exists"
	run raidtool vol snapshot "$NAME" nosuch snap2
	assert_failure 3
	assert_output --partial "'nosuch': no such volume to snapshot"
	# Delete while open: its I/O fails, its device goes once closed and the array stops.
	exec 7< "/dev/raidtool/$NAME/vol1"
	run raidtool vol delete "$NAME" vol1
	assert_success
	run dd if="/dev/raidtool/$NAME/vol1" of=/dev/null bs=4k count=1 iflag=direct
	assert_failure
	exec 7<&-
	run raidtool vol delete "$NAME" vol1
	assert_failure 3
	run raidtool vol delete "$NAME" snap1
	assert_success
	[ ! -e "/dev/raidtool/$NAME/snap1" ]
	deactivate_settled "$NAME"
	run --separate-stderr raidtool vol list --json "$NAME"
	[ "$(jq -r 'map(.name) | join(",")' <<<"$output")" = vol0 ]
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: a 10T volume on a small pool fails cleanly with ENOSPC when the pool fills; what was written verifies" {
	local n
	live_pool huge:10T
	[ "$(blockdev --getsize64 "/dev/raidtool/$NAME/huge")" = 10995116277760 ]
	head -c 64M /dev/urandom > "$TESTDIR/data"
	run dd if="$TESTDIR/data" of="/dev/raidtool/$NAME/huge" bs=1M oflag=direct conv=fsync
	assert_failure
	assert_output --partial "No space left on device"
	n=$(sed -n 's/^\([0-9]*\)+[0-9]* records out$/\1/p' <<<"$output")
	[ -n "$n" ] && [ "$n" -gt 30 ] || fail "records written: '$n': $output"
	sync "/dev/raidtool/$NAME/huge"
	cmp <(head -c "${n}M" "$TESTDIR/data") \
		<(dd if="/dev/raidtool/$NAME/huge" bs=1M count="$n" iflag=direct status=none)
	# Far out, unmapped: zeros.
	[ "$(dd if="/dev/raidtool/$NAME/huge" bs=1M skip=5000000 count=1 iflag=direct \
		status=none | tr -d '\0' | wc -c)" = 0 ]
	deactivate_settled "$NAME"
	[ "$(pool_field free_data_blocks)" = 0 ]
	[ "$(pool_field free_metadata_blocks)" -gt 0 ]
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: the pool on a degraded raid5 still serves, and after a rebuild" {
	local sum
	UNITS=("$(make_image r0.img 40M)" "$(make_image r1.img 40M)" "$(make_image r2.img 40M)")
	run raidtool create "$NAME" --level 5 --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool pool create "$NAME"
	assert_success
	run raidtool vol create "$NAME" vol0 --size 1G
	assert_success
	run raidtool activate "$NAME"
	assert_success
	head -c 24M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync status=none
	sum=$(sha256sum < "$TESTDIR/data")
	run raidtool fail "$NAME" 1
	assert_success
	[ "$(head -c 24M "/dev/raidtool/$NAME/vol0" | sha256sum)" = "$sum" ]
	# Writes go on degraded: a snapshot, then the origin rewritten.
	run raidtool vol snapshot "$NAME" vol0 snap
	assert_success
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=8 oflag=direct conv=fsync \
		status=none
	[ "$(head -c 24M "/dev/raidtool/$NAME/snap" | sha256sum)" = "$sum" ]
	run raidtool remove "$NAME" 1
	assert_success
	run raidtool add "$NAME" "$(make_image r3.img 40M)"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	[ "$(head -c 24M "/dev/raidtool/$NAME/snap" | sha256sum)" = "$sum" ]
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: --when-full queue: a write to a full pool waits until a discard frees blocks" {
	local pid
	new_pool --when-full queue
	run raidtool vol create "$NAME" vol0 --size 1G
	assert_success
	run raidtool vol create "$NAME" vol1 --size 1G
	assert_success
	run raidtool activate "$NAME"
	assert_success
	# Most of the pool taken by vol1; 8M more for vol0 do not fit.
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol1" bs=1M count=40 oflag=direct conv=fsync \
		status=none
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync \
		status=none 2>"$TESTDIR/dd.err" &
	pid=$!
	BGPIDS+=("$pid")
	sleep 3
	kill -0 "$pid" || fail "the write did not wait: $(cat "$TESTDIR/dd.err")"
	run blkdiscard "/dev/raidtool/$NAME/vol1"
	assert_success
	wait "$pid" || fail "the queued write failed: $(cat "$TESTDIR/dd.err")"
	cmp "$TESTDIR/data" <(head -c 8M "/dev/raidtool/$NAME/vol0")
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

# --- metadata snapshot, transaction id, mode, resize, needs_check ------------

# stop_fio_check PID: fio still ran (else its output is the failure); stop it, the array;
# then a clean pool check.
stop_fio_check() {
	kill -0 "$1" || fail "fio stopped: $(cat "$TESTDIR/fio.out")"
	stop_pids TERM "$1"
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

# dump_consistent: `pool dump` of the array parses, and its maps agree with
# themselves and its counts: per volume the runs ascend, lie inside the
# volume and the pool, and add up to its mapped count; the distinct pool
# blocks mapped are exactly the blocks in use (data_blocks - free_data_blocks).
dump_consistent() {
	local dump
	dump=$(RAIDTOOL_LOCK_TIMEOUT=2 raidtool pool dump "$NAME" 2>"$TESTDIR/dump.err") ||
		fail "pool dump failed: $(cat "$TESTDIR/dump.err")"
	[ ! -s "$TESTDIR/dump.err" ] || fail "pool dump: $(cat "$TESTDIR/dump.err")"
	jq -e '
		. as $d
		| ($d.data_blocks - $d.free_data_blocks) as $used
		| ([$d.volume_table[] | .mappings[] | range(.pool; .pool + .length)]
		   | unique | length) as $distinct
		| ($d.volume_table | all(
			(.mappings | map(.length) | add // 0) == .mapped
			and ([.mappings[] | .virtual + .length] | max // 0)
			    <= (.size / $d.block_size)
			and (.mappings | all(.pool + .length <= $d.data_blocks))
			and ([.mappings[] | .virtual] == ([.mappings[] | .virtual] | sort))))
		  and $distinct == $used' <<<"$dump" >/dev/null ||
		fail "inconsistent dump: $(jq -c '{data_blocks, free_data_blocks, commit,
			v: [.volume_table[] | {name, mapped}]}' <<<"$dump")"
}

@test "live: pool dump while fio writes, snapshots come and go and commits run: a consistent copy every round" {
	require_cmds fio
	local pid round
	UNITS=("$(make_image big0.img 160M)" "$(make_image big1.img 160M)")
	live_pool vol0:1G
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=32 oflag=direct conv=fsync \
		status=none
	# 4K writes over the 32M: after each snapshot every first write remaps a block.
	fio --name=busy --filename="/dev/raidtool/$NAME/vol0" --rw=randwrite --bs=4k --size=32M \
		--direct=1 --fsync=4 --time_based --runtime=300 >"$TESTDIR/fio.out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	for round in $(seq 1 12); do
		run raidtool vol snapshot "$NAME" vol0 "s$round"
		assert_success
		if ((round > 2)); then
			run raidtool vol delete "$NAME" "s$((round - 2))"
			assert_success
		fi
		dump_consistent
		dump_consistent
		# Nothing else holds the array's lock: a view that waits for it waits for itself.
		RAIDTOOL_LOCK_TIMEOUT=2 run --separate-stderr raidtool pool status --json "$NAME"
		assert_success
		[ -z "$stderr" ] || fail "pool status: $stderr"
		[ "$(jq -r .metadata_snap <<<"$output")" = null ] || fail "a snapshot stayed held"
	done
	stop_fio_check "$pid"
	dump_consistent
}

@test "pool set-transaction-id, set --read-only/--read-write, vol resize; bad input changes nothing" {
	new_pool
	run raidtool vol create "$NAME" vol0 --size 1G
	assert_success
	run raidtool pool set-transaction-id "$NAME" 0 5
	assert_success
	assert_output "'$NAME': transaction id 5 (was 0)"
	[ "$(pool_field transaction_id)" = 5 ]
	run raidtool pool status "$NAME"
	assert_line "  transaction id: 5 (commit 3)"
	refused 2 "transaction id is 5, not 4" pool set-transaction-id "$NAME" 4 6
	refused 2 "OLD 'x': not a transaction id" pool set-transaction-id "$NAME" x 6
	refused 2 "NEW '1x': not a transaction id" pool set-transaction-id "$NAME" 5 1x

	run raidtool vol resize "$NAME" vol0 --size 2G
	assert_success
	assert_output "resized volume 'vol0' to 2.00 GiB"
	[ "$(raidtool vol list --json "$NAME" | jq -r '.[0].size')" = 2147483648 ]
	refused 5 "'vol0': 1073741824 bytes is smaller than its 2147483648; a shrink unmaps" \
		vol resize "$NAME" vol0 --size 1G
	refused 3 "'nosuch': no such volume" vol resize "$NAME" nosuch --size 1G
	refused 2 "size 100000 is not a positive multiple" vol resize "$NAME" vol0 --size 100000
	refused 2 "--size is required" vol resize "$NAME" vol0

	run raidtool pool set "$NAME" --read-only
	assert_success
	[ "$(pool_field read_only)" = true ]
	refused 1 "read-only ('raidtool pool set --read-write' makes it writable)" \
		vol create "$NAME" vol1 --size 1G
	refused 1 "read-only" pool set-transaction-id "$NAME" 5 6
	refused 2 "give one of --read-only and --read-write" pool set "$NAME"
	run raidtool pool set "$NAME" --read-write
	assert_success
	[ "$(pool_field read_only)" = false ]

	# A shrink with --force unmaps what lies beyond.
	run raidtool activate "$NAME"
	assert_success
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=4 oflag=direct conv=fsync \
		status=none
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=4 seek=1536 oflag=direct \
		conv=fsync status=none
	deactivate_settled "$NAME"
	[ "$(raidtool vol list --json "$NAME" | jq -r '.[0].mapped_blocks')" = 128 ]
	run raidtool vol resize --force "$NAME" vol0 --size 1G
	assert_success
	[ "$(raidtool vol list --json "$NAME" | jq -r '.[0].mapped_blocks')" = 64 ]
	[ "$(pool_field free_data_blocks)" = "$(($(pool_field data_blocks) - 64))" ]
	run raidtool pool check "$NAME"
	assert_success
	run raidtool pool abort "$NAME"
	assert_success
	assert_output "'$NAME': not running: nothing uncommitted to abort"
}

@test "live: read-only mode, transaction id, abort, resize and metadata snapshot through the engine" {
	local sum dev
	live_pool vol0:256M vol1:64M
	head -c 4M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync status=none
	sum=$(sha256sum < "$TESTDIR/data")
	run raidtool pool set "$NAME" --read-only
	assert_success
	run dd if=/dev/zero of="/dev/raidtool/$NAME/vol0" bs=64k count=1 oflag=direct conv=fsync
	assert_failure
	[ "$(head -c 4M "/dev/raidtool/$NAME/vol0" | sha256sum)" = "$sum" ]
	run --separate-stderr raidtool pool status --json "$NAME"
	assert_success
	[ "$(jq -r .read_only <<<"$output")" = true ]
	dump_consistent
	run raidtool vol create "$NAME" vol2 --size 64M
	assert_failure 1
	assert_output --partial "read-only"
	run raidtool pool set "$NAME" --read-write
	assert_success
	dd if=/dev/zero of="/dev/raidtool/$NAME/vol0" bs=64k count=1 seek=100 oflag=direct \
		conv=fsync status=none
	run raidtool pool set-transaction-id "$NAME" 0 7
	assert_success
	run raidtool pool set-transaction-id "$NAME" 0 8
	assert_failure 2
	assert_output --partial "transaction id is 7, not 0"
	[ "$(pool_field transaction_id)" = 7 ]
	run raidtool pool abort "$NAME"
	assert_success
	assert_output --regexp "^'$NAME': back at commit [0-9]+$"
	[ "$(head -c 4M "/dev/raidtool/$NAME/vol0" | sha256sum)" = "$sum" ]
	# Resize in place: a grow while the device is open; a shrink only when nothing holds it.
	dev=$(readlink -f "/dev/raidtool/$NAME/vol1")
	exec 7< "/dev/raidtool/$NAME/vol1"
	run raidtool vol resize "$NAME" vol1 --size 128M
	assert_success
	[ "$(blockdev --getsize64 "/dev/raidtool/$NAME/vol1")" = 134217728 ]
	[ "$(readlink -f "/dev/raidtool/$NAME/vol1")" = "$dev" ]
	run raidtool vol resize --force "$NAME" vol1 --size 32M
	assert_failure 4
	assert_output --partial "'vol1': its device is in use"
	[ "$(blockdev --getsize64 "$dev")" = 134217728 ]
	exec 7<&-
	run raidtool vol resize --force "$NAME" vol1 --size 32M
	assert_success
	[ "$(blockdev --getsize64 "/dev/raidtool/$NAME/vol1")" = 33554432 ]
	[ "$(readlink -f "/dev/raidtool/$NAME/vol1")" = "$dev" ]
	run dd if=/dev/zero of="$dev" bs=64k count=1 seek=512 oflag=direct
	assert_failure
	# A metadata snapshot held by hand: dump refuses to take a second one.
	run raidtool pool reserve-metadata-snap "$NAME"
	assert_success
	[ "$(pool_field metadata_snap)" != null ]
	run raidtool pool dump "$NAME"
	assert_failure 4
	assert_output --partial "a metadata snapshot is held already"
	run raidtool pool release-metadata-snap "$NAME"
	assert_success
	run raidtool pool release-metadata-snap "$NAME"
	assert_failure 3
	assert_output --partial "no metadata snapshot is held"
	dump_consistent
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}

@test "live: vol resize grows a mounted ext4 in place (same device, fd held open); resize2fs; the data stays" {
	command -v mkfs.ext4 >/dev/null || require "needs mkfs.ext4"
	command -v resize2fs >/dev/null || require "needs resize2fs"
	local dev sum
	live_pool vol0:64M
	dev=$(readlink -f "/dev/raidtool/$NAME/vol0")
	run mkfs.ext4 -q -F "/dev/raidtool/$NAME/vol0"
	assert_success
	mkdir "$TESTDIR/m"
	mount "/dev/raidtool/$NAME/vol0" "$TESTDIR/m"
	head -c 24M /dev/urandom > "$TESTDIR/m/old"
	sum=$(sha256sum < "$TESTDIR/m/old")
	sync
	exec 7< "$dev"
	run raidtool vol resize "$NAME" vol0 --size 256M
	assert_success
	[ "$(readlink -f "/dev/raidtool/$NAME/vol0")" = "$dev" ]
	[ "$(blockdev --getsize64 "$dev")" = 268435456 ]
	# Online when we may (ext4 wants CAP_SYS_RESOURCE, which a container may lack).
	if (($(printf '%d' "0x$(awk '/^CapEff/ {print $2}' /proc/self/status)") >> 24 & 1)); then
		run resize2fs "/dev/raidtool/$NAME/vol0"
		assert_success
	else
		umount "$TESTDIR/m"
		run e2fsck -fy "/dev/raidtool/$NAME/vol0"
		assert_success
		run resize2fs "/dev/raidtool/$NAME/vol0"
		assert_success
		mount "/dev/raidtool/$NAME/vol0" "$TESTDIR/m"
	fi
	[ "$(df -k --output=size "$TESTDIR/m" | tail -1)" -gt 200000 ]
	# More than the old 64M fits now, in the blocks beyond the old end.
	head -c 120M /dev/urandom > "$TESTDIR/m/new"
	sync
	exec 7<&-
	umount "$TESTDIR/m"
	echo 3 > /proc/sys/vm/drop_caches
	mount "/dev/raidtool/$NAME/vol0" "$TESTDIR/m"
	[ "$(sha256sum < "$TESTDIR/m/old")" = "$sum" ]
	[ "$(stat -c %s "$TESTDIR/m/new")" = 125829120 ]
	umount "$TESTDIR/m"
	run fsck.ext4 -fn "/dev/raidtool/$NAME/vol0"
	assert_success
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
	[ "$(raidtool vol list --json "$NAME" | jq -r '.[0].size')" = 268435456 ]
}

vol_list_quiet() {
	RAIDTOOL_LOCK_TIMEOUT=2 raidtool vol list --json "$NAME" 2>"$TESTDIR/list.err" ||
		fail "vol list failed: $(cat "$TESTDIR/list.err")"
	[ ! -s "$TESTDIR/list.err" ] || fail "vol list: $(cat "$TESTDIR/list.err")"
}

# vol_shares LIST: "NAME:MAPPED:SHARED ..." in the order of the list.
vol_shares() {
	jq -r '[.[] | "\(.name):\(.mapped_blocks):\(.shared_blocks)"] | join(" ")' <<<"$1"
}

@test "live: vol list reads a metadata snapshot: SHARED right after a snapshot and while fio writes" {
	command -v fio >/dev/null || require "needs fio"
	local bs n list pid round
	live_pool vol0:256M vol1:64M
	bs=$(pool_field block_size)
	n=$((4 * 1048576 / bs))
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs=1M count=4 oflag=direct conv=fsync \
		status=none
	run raidtool vol snapshot "$NAME" vol0 snap
	assert_success
	# No wait for a commit: the view commits first.
	list=$(vol_list_quiet)
	[ "$(vol_shares "$list")" = "vol0:$n:$n vol1:0:0 snap:$n:$n" ] || fail "$list"
	# Two blocks of the origin rewritten, no flush: copied, shared no more (the
	# view's reserve commits them; the last commit alone would not have them yet).
	dd if=/dev/urandom of="/dev/raidtool/$NAME/vol0" bs="$bs" count=2 oflag=direct \
		status=none
	list=$(vol_list_quiet)
	[ "$(vol_shares "$list")" = "vol0:$n:$((n - 2)) vol1:0:0 snap:$n:$((n - 2))" ] ||
		fail "$list"
	# Under fio (the origin's 4M): every copy consistent, origin and snapshot share alike.
	fio --name=busy --filename="/dev/raidtool/$NAME/vol0" --rw=randwrite --bs=4k --size=4M \
		--direct=1 --fsync=4 --time_based --runtime=120 >"$TESTDIR/fio.out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	for round in $(seq 1 6); do
		list=$(vol_list_quiet)
		jq -e --argjson n "$n" 'map({(.name): .}) | add
			| .vol0.mapped_blocks == $n and .snap.mapped_blocks == $n
			  and .vol0.shared_blocks == .snap.shared_blocks
			  and .vol0.shared_blocks <= $n - 2' <<<"$list" >/dev/null || fail "$list"
		[ "$(pool_field metadata_snap)" = null ] || fail "a snapshot stayed held"
	done
	stop_fio_check "$pid"
	# Offline, from the pool's own maps: the same rule.
	list=$(raidtool vol list --json "$NAME")
	jq -e 'map({(.name): .}) | add | .vol0.shared_blocks == .snap.shared_blocks' \
		<<<"$list" >/dev/null || fail "$list"
}

@test "live: a damaged metadata node sets needs_check, kept in the superblock; read-only until a clean pool check" {
	local root off u i sum
	live_pool vol0:256M
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="/dev/raidtool/$NAME/vol0" bs=1M oflag=direct conv=fsync status=none
	sum=$(sha256sum < "$TESTDIR/data")
	deactivate_settled "$NAME"
	# 128 mappings: the root is the one leaf. raid1: array byte X is data_offset + X on each unit.
	root=$(raidtool pool dump "$NAME" | jq -r '.volume_table[0].root')
	[ "$root" -gt 0 ]
	for i in 0 1; do
		u=${UNITS[$i]}
		off=$(($(raidtool examine --json "$u" | jq -r .this_unit.data_offset) + root * 4096))
		dd if="$u" of="$TESTDIR/node$i" bs=4096 skip=$((off / 4096)) count=1 status=none
		printf '\377\377\377\377' | dd of="$u" bs=1 seek=$((off + 100)) conv=notrunc status=none
	done
	sync
	run raidtool activate "$NAME"
	assert_success
	[ "$(pool_field needs_check)" = false ]
	run dd if="/dev/raidtool/$NAME/vol0" of=/dev/null bs=64k count=1 iflag=direct
	assert_failure
	# The next commit (within a second) records it.
	for _ in $(seq 1 20); do
		[ "$(pool_field needs_check)" = true ] && break
		sleep 0.5
	done
	[ "$(pool_field needs_check)" = true ] || fail "needs_check not set"
	[ "$(pool_field read_only)" = true ]
	run raidtool pool status "$NAME"
	assert_line "  needs check:    yes"
	assert_line "  mode:           read-only (needs check)"
	run dd if=/dev/zero of="/dev/raidtool/$NAME/vol0" bs=64k count=1 seek=1000 oflag=direct \
		conv=fsync
	assert_failure
	run raidtool vol create "$NAME" vol1 --size 64M
	assert_failure
	assert_output --partial "read-only until 'raidtool pool check' finds it clean"
	run raidtool pool set "$NAME" --read-write
	assert_failure
	assert_output --partial "needs_check is set"
	deactivate_settled "$NAME"
	# Kept across a restart; a check that finds the damage leaves it set.
	[ "$(pool_field needs_check)" = true ]
	run raidtool pool check "$NAME"
	assert_failure 1
	assert_output --partial "bad nodes"
	[ "$(pool_field needs_check)" = true ]
	for i in 0 1; do
		u=${UNITS[$i]}
		off=$(($(raidtool examine --json "$u" | jq -r .this_unit.data_offset) + root * 4096))
		dd if="$TESTDIR/node$i" of="$u" bs=4096 seek=$((off / 4096)) conv=notrunc status=none
	done
	sync
	run raidtool pool check "$NAME"
	assert_success
	[ "$(pool_field needs_check)" = false ]
	[ "$(pool_field read_only)" = false ]
	run raidtool activate "$NAME"
	assert_success
	[ "$(head -c 8M "/dev/raidtool/$NAME/vol0" | sha256sum)" = "$sum" ]
	dd if=/dev/zero of="/dev/raidtool/$NAME/vol0" bs=64k count=1 seek=1000 oflag=direct \
		conv=fsync status=none
	deactivate_settled "$NAME"
	run raidtool pool check "$NAME"
	assert_success
}
