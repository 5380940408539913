#!/usr/bin/env bats
# The engine's data path: fio verify on every level, a filesystem round trip
# across deactivate/activate, and the on-disk placement of chunks and parity
# checked against the documented layouts by reading the units directly.

load helpers

setup() {
	fuse_setup fio
	XOR=$(test_helper rt-xor)
}

teardown() {
	scratch_teardown
}

# start_array LEVEL CHUNK SIZE...: one image per SIZE, create, activate.
start_array() {
	local level=$1 chunk=$2 i=0 size
	shift 2
	UNITS=()
	for size in "$@"; do
		UNITS+=("$(make_image "u$i.img" "$size")")
		i=$((i + 1))
	done
	run raidtool create "$NAME" --level "$level" --chunk "$chunk" "${UNITS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
	[ -b "$DEV" ]
	DEVSIZE=$(blockdev --getsize64 "$DEV")
	[ "$DEVSIZE" -gt 0 ]
}

# fio_verify RW BSRANGE JOBS: each job writes and verifies its own slice of the
# whole device. The slices are not stripe aligned, so neighbours share stripes.
fio_verify() {
	local rw=$1 bs=$2 jobs=$3 slice
	slice=$(( (DEVSIZE / jobs) / 4096 * 4096 ))
	run fio --name=verify --filename="$DEV" --direct=1 --ioengine=io_uring \
		--iodepth=16 --rw="$rw" --bsrange="$bs" --bs_unaligned=0 \
		--numjobs="$jobs" --size="$slice" --offset_increment="$slice" \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --randrepeat=0 \
		--group_reporting --output-format=terse --terse-version=3
	assert_success
}

fio_all() {
	fio_verify write 4k-1m 1
	fio_verify randwrite 4k-1m 4
	fio_verify randwrite 4k-64k 8
	fio_same_stripe_race
	run raidtool deactivate "$NAME"
	assert_success
}

@test "linear of three unequal units: fio verify, sequential and random, several jobs" {
	start_array linear 64K 48M 64M 80M
	fio_all
}

@test "raid0 of 3 units, chunk 64K: fio verify" {
	start_array 0 64K 64M 64M 64M
	fio_all
}

@test "raid0 of 4 units, chunk 512K: fio verify" {
	start_array 0 512K 64M 64M 64M 64M
	fio_all
}

@test "raid1 of 2 units: fio verify" {
	start_array 1 64K 64M 64M
	fio_all
}

@test "raid5 of 3 units, chunk 64K: fio verify" {
	start_array 5 64K 64M 64M 64M
	fio_all
}

@test "raid5 of 5 units, chunk 512K: fio verify" {
	start_array 5 512K 64M 64M 64M 64M 64M
	fio_all
}

@test "raid5 of 3 units, chunk 512K: fio verify" {
	start_array 5 512K 64M 64M 64M
	fio_all
}

@test "ext4 round trip: files survive deactivate and activate, fsck clean" {
	start_array 5 64K 96M 96M 96M
	run mkfs.ext4 -q -F "$DEV"
	assert_success
	mkdir "$TESTDIR/mnt" "$TESTDIR/tree"
	for d in a b c; do
		mkdir "$TESTDIR/tree/$d"
		for i in 1 2 3 4 5 6 7 8; do
			head -c $(( (RANDOM % 512 + 1) * 1024 )) /dev/urandom > "$TESTDIR/tree/$d/f$i"
		done
	done
	(cd "$TESTDIR/tree" && find . -type f -exec sha256sum {} + | sort -k2) > "$TESTDIR/sums"
	mount "$DEV" "$TESTDIR/mnt"
	cp -a "$TESTDIR/tree/." "$TESTDIR/mnt/"
	umount "$TESTDIR/mnt"
	run raidtool deactivate "$NAME"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	run fsck.ext4 -fn "$DEV"
	assert_success
	mount "$DEV" "$TESTDIR/mnt"
	run bash -c "cd '$TESTDIR/mnt' && sha256sum -c --quiet '$TESTDIR/sums'"
	assert_success
	[ "$(find "$TESTDIR/mnt" -type f -name 'f*' | wc -l)" -eq 24 ]
	umount "$TESTDIR/mnt"
	run raidtool deactivate "$NAME"
	assert_success
}

# extract FILE OFFSET LEN OUT
extract() {
	dd if="$1" of="$4" bs=4096 skip=$(( $2 / 4096 )) count=$(( $3 / 4096 )) status=none
}

# Write random data over the whole array, deactivate, and compare the first
# stripes (and the last) chunk by chunk with where the documented layout
# puts them; for raid5 also each stripe's parity against an independent XOR.
check_placement() {
	local level=$1 n=$2 chunk=$3 dataoff c stripe k p role off nchunks ndata last
	head -c "$DEVSIZE" /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct status=none
	run raidtool deactivate "$NAME"
	assert_success
	dataoff=$(raidtool examine --json "${UNITS[0]}" | jq -r '.this_unit.data_offset')
	[ "$dataoff" -gt 0 ]
	case "$level" in 0) ndata=$n ;; 5) ndata=$((n - 1)) ;; *) ndata=1 ;; esac
	nchunks=$(( DEVSIZE / chunk ))
	last=$(( nchunks - 1 ))
	for c in $(seq 0 $(( 4 * n * ndata - 1 ))) "$last"; do
		stripe=$(( c / ndata )); k=$(( c % ndata ))
		case "$level" in
		0) role=$k ;;
		5) p=$(( (n - 1) - (stripe % n) )); role=$(( (p + 1 + k) % n )) ;;
		esac
		off=$(( dataoff + stripe * chunk ))
		extract "$TESTDIR/pattern" $(( c * chunk )) "$chunk" "$TESTDIR/want"
		extract "${UNITS[$role]}" "$off" "$chunk" "$TESTDIR/got"
		cmp -s "$TESTDIR/want" "$TESTDIR/got" ||
			fail "chunk $c: not at role $role offset $off"
	done
	if [ "$level" = 5 ]; then
		for stripe in $(seq 0 $(( 2 * n - 1 ))) $(( last / ndata )); do
			p=$(( (n - 1) - (stripe % n) ))
			local parts=()
			for role in $(seq 0 $((n - 1))); do
				[ "$role" -eq "$p" ] && continue
				extract "${UNITS[$role]}" $(( dataoff + stripe * chunk )) "$chunk" "$TESTDIR/d$role"
				parts+=("$TESTDIR/d$role")
			done
			"$XOR" "$TESTDIR/xor" "${parts[@]}"
			extract "${UNITS[$p]}" $(( dataoff + stripe * chunk )) "$chunk" "$TESTDIR/parity"
			cmp -s "$TESTDIR/xor" "$TESTDIR/parity" ||
				fail "stripe $stripe: parity on role $p is not the XOR of its data"
		done
	fi
}

@test "placement: raid0 of 3 units puts chunks round-robin" {
	start_array 0 64K 32M 32M 32M
	check_placement 0 3 65536
}

@test "placement: raid5 of 3 units is left-symmetric with correct parity" {
	start_array 5 64K 32M 32M 32M
	check_placement 5 3 65536
}

@test "placement: raid5 of 4 units is left-symmetric with correct parity" {
	start_array 5 64K 32M 32M 32M 32M
	check_placement 5 4 65536
}

@test "placement: raid1 mirrors hold identical data; linear concatenates in role order" {
	start_array 1 64K 32M 32M
	head -c "$DEVSIZE" /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct status=none
	run raidtool deactivate "$NAME"
	assert_success
	local dataoff
	dataoff=$(raidtool examine --json "${UNITS[0]}" | jq -r '.this_unit.data_offset')
	for u in "${UNITS[@]}"; do
		extract "$u" "$dataoff" "$DEVSIZE" "$TESTDIR/got"
		cmp "$TESTDIR/pattern" "$TESTDIR/got"
	done

	scratch_teardown
	scratch_setup
	start_array linear 64K 16M 24M
	head -c "$DEVSIZE" /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct status=none
	run raidtool deactivate "$NAME"
	assert_success
	local size0
	dataoff=$(raidtool examine --json "${UNITS[0]}" | jq -r '.this_unit.data_offset')
	size0=$(raidtool examine --json "${UNITS[0]}" | jq -r '.roles[0].data_size')
	size0=$(( size0 / 65536 * 65536 ))
	extract "$TESTDIR/pattern" 0 "$size0" "$TESTDIR/want"
	extract "${UNITS[0]}" "$dataoff" "$size0" "$TESTDIR/got"
	cmp "$TESTDIR/want" "$TESTDIR/got"
	extract "$TESTDIR/pattern" "$size0" $(( DEVSIZE - size0 )) "$TESTDIR/want"
	extract "${UNITS[1]}" "$dataoff" $(( DEVSIZE - size0 )) "$TESTDIR/got"
	cmp "$TESTDIR/want" "$TESTDIR/got"
}
