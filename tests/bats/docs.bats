#!/usr/bin/env bats
# The documentation matches the tool: every option a command's --help prints
# is in that command's section of raidtool(8), every option that section
# defines (its heading, the tags of its option list) is in --help, the common
# options every command's --help lists (cli_run's -v, -q, -h, --usage) are
# under OPTIONS, and every command has a section and bash completion. Needs no root.

load helpers

setup() {
	require_cmds python3
}

# help_vs_man MANPAGE: the mismatches, one per line; exit 1 when any.
help_vs_man() {
	python3 - "$RAIDTOOL_BIN" "$1" <<'PY'
import re, subprocess, sys
rt, man = sys.argv[1], sys.argv[2]
def run(*a):
    p = subprocess.run([rt, *' '.join(a).split()], capture_output=True, text=True)
    return p.stdout
top = run('--help')
cmds = []
inlist = False
for line in top.splitlines():
    if line.startswith('Commands:'):
        inlist = True; continue
    if inlist:
        m = re.match(r'^  ([a-z][a-z-]*)\s', line)
        if m: cmds.append(m.group(1))
        elif not line.strip(): inlist = False
def plain(s):
    s = re.sub(r'\\f[BIRP]', '', s)
    s = s.replace('\\-', '-').replace('\\(dq', '"')
    return s
src = open(man).read().splitlines()
# sections: .SS lines whose first word is a command open a command's section
sections = {}
cur = None
for line in src:
    if line.startswith('.SH'):
        cur = None; continue
    if line.startswith('.SS'):
        words = plain(line[3:]).split()
        name = words[0] if words else ''
        if name in cmds:
            cur = name; sections.setdefault(cur, [])
        # other .SS (subsections) stay in the current command's section
    if cur:
        sections[cur].append(line)
bad = []
# A command's own options, and the common ones every command takes after its
# name (cli_run), which raidtool(8) describes once, under OPTIONS.
# A command with subcommands (pool, vol): the options of all of them, which
# its one raidtool(8) section describes.
def help_opts(c):
    out = run(c, '--help')
    own, common = set(), set()
    subs = []
    opts = own
    for line in out.splitlines():
        if line.startswith('Common options:'):
            opts = common; continue
        if line.startswith('Subcommands:'):
            opts = None; continue
        if opts is None:
            m = re.match(r'^  ([a-z][a-z-]*)\s', line)
            if m: subs.append(m.group(1))
            continue
        m = re.match(r'^\s+(?:-\S, )?(--[a-z][a-z0-9-]*)', line)
        if m: opts.add(m.group(1))
    for sub in subs:
        o, k = help_opts(c + ' ' + sub)
        own |= o; common |= k
    return own - {'--help', '--usage'}, common
options_text = []
cur_sh = None
for line in src:
    if line.startswith('.SH'):
        cur_sh = plain(line[3:]).strip()
    elif cur_sh == 'OPTIONS':
        options_text.append(line)
options_mentioned = set(re.findall(r'--[a-z][a-z0-9-]*', plain('\n'.join(options_text))))
def man_defined(lines):
    # options a section defines: its heading, and the tags of .TP items
    opts = set()
    for i, line in enumerate(lines):
        if line.startswith('.SS') or (i > 0 and lines[i-1].startswith('.TP')):
            opts |= set(re.findall(r'--[a-z][a-z0-9-]*', plain(line)))
    return opts
for c in cmds:
    if c not in sections:
        bad.append(f'{c}: no section in raidtool(8)'); continue
    h, common = help_opts(c)
    for o in sorted(common - options_mentioned):
        bad.append(f'{c} {o}: a common option in --help, not under OPTIONS in raidtool(8)')
    text = plain('\n'.join(sections[c]))
    mentioned = set(re.findall(r'--[a-z][a-z0-9-]*', text))
    for o in sorted(h - mentioned):
        bad.append(f'{c} {o}: in --help, not in raidtool(8)')
    for o in sorted(man_defined(sections[c]) - h):
        bad.append(f'{c} {o}: in raidtool(8), not in --help')
print('\n'.join(bad))
sys.exit(1 if bad else 0)
PY
}

# The commands 'raidtool --help' lists.
commands() {
	raidtool --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }'
}

@test "every option in a command's --help is in its raidtool(8) section, and the reverse" {
	run help_vs_man "$TOP/man/raidtool.8"
	assert_success
	assert_output ""
}

@test "the help/man check fails on an option raidtool(8) defines that --help lacks, and on one missing" {
	sed 's/^\.BR \\-t ", " \\-\\-test$/.BR \\-t ", " \\-\\-tezt/' "$TOP/man/raidtool.8" \
		>"$BATS_TEST_TMPDIR/a.8"
	run help_vs_man "$BATS_TEST_TMPDIR/a.8"
	assert_failure
	assert_output "status --tezt: in raidtool(8), not in --help"
	# monitor's --syslog taken out of raidtool(8).
	sed 's/\\-\\-syslog/\\-\\-sysl0g/g' "$TOP/man/raidtool.8" >"$BATS_TEST_TMPDIR/b.8"
	run help_vs_man "$BATS_TEST_TMPDIR/b.8"
	assert_failure
	assert_line "monitor --syslog: in --help, not in raidtool(8)"
	# The common --quiet (cli_run) taken out of raidtool(8)'s OPTIONS.
	sed 's/\\-\\-quiet/\\-\\-qu1et/g' "$TOP/man/raidtool.8" >"$BATS_TEST_TMPDIR/c.8"
	run help_vs_man "$BATS_TEST_TMPDIR/c.8"
	assert_failure
	assert_line "create --quiet: a common option in --help, not under OPTIONS in raidtool(8)"
}

@test "every command has a section in raidtool(8) and is completed by bash completion" {
	local c compl
	# The words of 'local commands="..."' in _raidtool.
	compl=" $(sed -n '/local commands="/,/"$/p' "$TOP/completions/raidtool.bash" |
		sed 's/local commands=//; s/"//g' | tr -s '[:space:]' ' ') "
	for c in $(commands); do
		grep -q "^\.SS ${c//-/\\\\-}\( \|\\\\\|$\)" "$TOP/man/raidtool.8" ||
			fail "$c: no section in raidtool(8)"
		[[ $compl == *" $c "* ]] || fail "$c: not among bash completion's commands"
	done
}
