#!/usr/bin/env bats
# Discard and write-zeroes (issue 11, point 4): the loop device's discard
# and write-zeroes reach the engine as FUSE fallocate, which zeroes whole
# stripes on the units (punched holes) and writes zeros elsewhere; what was
# discarded reads back as zeros, and parity and mirrors stay consistent.

load helpers

setup() {
	fuse_setup blkdiscard fstrim
	faulty_setup
}

teardown() {
	faulty_units_clear
	stop_arrays
	scratch_teardown
	faulty_units_stop
}

discards() {
	raidtool status --json "$NAME" | jq -r .stats.discard_bytes
}

# Bytes the unit image files hold on disk (punched holes free them).
units_allocated() {
	du -B1 -c "${UNITS[@]}" | tail -n 1 | cut -f1
}

# blkdiscard_zeros: random data over the first 24M, then a discard of a range
# that starts and ends inside stripes and a write-zeroes after it; both read
# back as zeros, the data around them is untouched.
blkdiscard_zeros() {
	head -c 24M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# 1M + 12K .. 13M + 20K: partial blocks of stripes at both ends.
	run blkdiscard -o $((1048576 + 12288)) -l $((12582912 + 8192)) "$DEV"
	assert_success
	run blkdiscard -z -o 15M -l 3M "$DEV"
	assert_success
	cp "$TESTDIR/data" "$TESTDIR/expect"
	dd if=/dev/zero of="$TESTDIR/expect" bs=4096 seek=$(((1048576 + 12288) / 4096)) \
		count=$(((12582912 + 8192) / 4096)) conv=notrunc status=none
	dd if=/dev/zero of="$TESTDIR/expect" bs=1M seek=15 count=3 conv=notrunc status=none
	cmp <(dd if="$DEV" bs=1M count=24 iflag=direct status=none) "$TESTDIR/expect"
	# The discarded range alone, against /dev/zero.
	cmp <(dd if="$DEV" bs=4096 skip=$(((1048576 + 12288) / 4096)) \
		count=$(((12582912 + 8192) / 4096)) iflag=direct status=none) \
		<(head -c $((12582912 + 8192)) /dev/zero)
	[ "$(discards)" -ge $((12582912 + 8192 + 3145728)) ]
}

# fstrim_ext4: a file system filled and emptied, then trimmed: the trim
# reaches the engine (it used to say "the discard operation is not
# supported") and frees space in the unit files.
fstrim_ext4() {
	local before after d0
	run mkfs.ext4 -q -F -E nodiscard "$DEV"
	assert_success
	mkdir -p "$TESTDIR/mnt"
	mount "$DEV" "$TESTDIR/mnt"
	head -c 40M /dev/urandom > "$TESTDIR/mnt/f"
	sync
	rm "$TESTDIR/mnt/f"
	sync
	before=$(units_allocated)
	d0=$(discards)
	run fstrim -v "$TESTDIR/mnt"
	assert_success
	umount "$TESTDIR/mnt"
	after=$(units_allocated)
	echo "allocated $before -> $after, discarded $d0 -> $(discards)"
	[ "$(discards)" -gt "$d0" ]
	[ "$after" -lt $((before - 20 * 1048576)) ]
	run fsck.ext4 -fn "$DEV"
	assert_success
}

@test "linear: blkdiscard and write-zeroes read back zeros; fstrim on ext4 frees unit space" {
	start_zeroed linear 2 64M --chunk 64K
	blkdiscard_zeros
	fstrim_ext4
	deactivate_settled "$NAME"
}

@test "raid0: blkdiscard and write-zeroes read back zeros; fstrim on ext4 frees unit space" {
	start_zeroed 0 3 64M --chunk 64K
	blkdiscard_zeros
	fstrim_ext4
	deactivate_settled "$NAME"
}

@test "raid1: blkdiscard and fstrim read back zeros, mirrors still agree (check 0)" {
	start_zeroed 1 2 64M --chunk 64K
	blkdiscard_zeros
	check_clean
	fstrim_ext4
	check_clean
	deactivate_settled "$NAME"
}

@test "raid5: blkdiscard and fstrim read back zeros, parity still agrees (check 0)" {
	start_zeroed 5 4 64M --chunk 64K
	blkdiscard_zeros
	check_clean
	fstrim_ext4
	check_clean
	deactivate_settled "$NAME"
}

@test "raid5 degraded: a discard writes zeros around the missing unit, data reads back" {
	start_zeroed 5 3 64M --chunk 64K
	run raidtool fail "$NAME" 1
	assert_success
	blkdiscard_zeros
	deactivate_settled "$NAME"
}

@test "raid5: a unit failing to zero its part of a discard is made faulty; zeros are written around it, parity agrees after its rebuild" {
	local i
	for i in 0 1 2; do
		if [ "$i" = 1 ]; then
			faulty_unit 1 64M
		else
			UNITS+=("$(make_image "u$i.img" 64M)")
		fi
	done
	run raidtool create "$NAME" --level 5 --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
	head -c 24M /dev/urandom >"$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# Its writes and punched holes fail from now on; the other units zero their part.
	echo "fail write" >"$TESTDIR/ffs1/ctl"
	run blkdiscard -o 2M -l 8M "$DEV"
	assert_success
	[ "$(raidtool status --json "$NAME" | jq -r '.units[] | select(.slot == 1) | .state')" = faulty ]
	cp "$TESTDIR/data" "$TESTDIR/expect"
	dd if=/dev/zero of="$TESTDIR/expect" bs=1M seek=2 count=8 conv=notrunc status=none
	cmp <(dd if="$DEV" bs=1M count=24 iflag=direct status=none) "$TESTDIR/expect"
	# Back in, rebuilt from the others: parity and data agree, the bytes too.
	faulty_units_clear
	run raidtool remove "$NAME" 1
	assert_success
	run raidtool add "$NAME" "${UNITS[1]}"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	check_clean
	cmp <(dd if="$DEV" bs=1M count=24 iflag=direct status=none) "$TESTDIR/expect"
}
