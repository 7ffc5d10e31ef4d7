#!/bin/sh
# One fixed client session, printed between markers and hashed, so that the C and the stub
# runs can be compared line by line (`cargo xtask lab --compare`).
. /xslab/lib.sh

out=/tmp/session.out
: >"$out"

# step CMD...: the command line, its output (stdout and stderr) and its exit status.
step() {
    line="\$"
    for a in "$@"; do
        if [ ${#a} -gt 40 ]; then
            line="$line <${#a} chars>"
        else
            line="$line $a"
        fi
    done
    echo "$line" >>"$out"
    timeout "$T" "$@" >>"$out" 2>&1
    echo "exit=$?" >>"$out"
}

# step_head CMD...: as step, with only the first line of the output.
step_head() {
    echo "\$ $*" >>"$out"
    timeout "$T" "$@" >/tmp/session-step 2>&1
    rc=$?
    head -n 1 /tmp/session-step >>"$out"
    echo "exit=$rc" >>"$out"
}

step xenstore-write /session/a 1
step xenstore-read /session/a
# An owner Xen does not know is refused (ENOENT; the stub domain asks Xen as C xenstored
# does); another entry naming such a domain is kept.
step xenstore-chmod /session/a n4242
step xenstore-chmod /session/a n0 r4242
step xenstore-ls -fp /session
step xenstore-write /session/dir/x hello /session/dir/y "two words" /session/dir/z ""
step xenstore-read /session/dir/z
step xenstore-ls -f /session
step xenstore-list /session/dir
step xenstore-exists /session/dir/x
step xenstore-exists /session/nope
step xenstore-read /session/nope
step xenstore-read /session/nope/deeper
step xenstore-list /session/nope
step xenstore-rm /session/dir/x
step xenstore-rm /session/nope
step xenstore-rm /session/nope/deeper
step xenstore-ls -f /session
step xenstore-chmod /session/dir n0 r5 w7 b9
step xenstore-ls -fp /session
step xenstore-chmod -r /session b0
step xenstore-ls -fp /session
step xenstore-chmod /session/dir x0
step xenstore-write "/session/bad path" x
step xenstore-write /session/trailing/ x
step xenstore-write /session//double x
step xenstore-read ""
step xenstore-read name
step xenstore-read domid
step xenstore-write session-rel/node v
step xenstore-read /local/domain/0/session-rel/node
step xenstore-rm session-rel
step xenstore-exists /local/domain/0/session-rel
step xenstore-write /session/big "$(head -c 3000 /dev/zero | tr '\0' a)"
echo "\$ xenstore-read /session/big | wc -c" >>"$out"
timeout "$T" xenstore-read /session/big 2>&1 | wc -c >>"$out"
step xenstore-write /session/toobig "$(head -c 5000 /dev/zero | tr '\0' a)"
step xenstore-write "/session/$(head -c 3100 /dev/zero | tr '\0' p)" x
step xenstore-write "/session/$(head -c 2000 /dev/zero | tr '\0' p)" x
step xenstore-rm "/session/$(head -c 2000 /dev/zero | tr '\0' p)"
step xenstore-read @introduceDomain
step xenstore-write @foo x

# Watch events in order, from a second client.
rm -f /tmp/session-watch
bg xenstore-watch -n 4 /session/w >/tmp/session-watch 2>&1
wait_lines 20 /tmp/session-watch 1
step xenstore-write /session/w/a 1
step xenstore-write /session/w/a 2
step xenstore-rm /session/w
wait_lines 20 /tmp/session-watch 4
echo "\$ (watch events)" >>"$out"
cat /tmp/session-watch >>"$out"

# A directory too large for one DIRECTORY reply (libxenstore falls back to
# DIRECTORY_PART): 300 children of 24-byte names.
set --
for i in $(seq 100 399); do set -- "$@" "/session/many/child-with-a-long-name-$i" "$i"; done
step xenstore-write "$@"
echo "\$ xenstore-list /session/many | wc -l; sha256sum" >>"$out"
timeout "$T" xenstore-list /session/many >/tmp/session-many 2>&1
echo "exit=$? lines=$(wc -l </tmp/session-many) $(sort /tmp/session-many | sha256sum | cut -c1-16)" >>"$out"
step xenstore-rm /session/many
# Options of the stock clients.
step xenstore-write /session/t/a/b x
step xenstore-read -p /session/t/a/b
step xenstore-list -p /session/t
step xenstore-rm -t /session/t/a/b
step xenstore-exists /session/t
step xenstore-control check
step xenstore-control print "a line from the session"
# Edges: permission lists at and past the quota, names with every allowed character and some
# that are not, values with NULs and at the size limit, the root.
step xenstore-write /session/e x
step xenstore-chmod /session/e n0 r1 r2 r3 r4
step xenstore-chmod /session/e n0 r1 r2 r3 r4 r5
step xenstore-chmod /session/e n0 r1 r2 r3 r4 r5 r6 r7 r8 r9 r10
step xenstore-ls -p /session/e
step xenstore-write "/session/Az09-_@" ok
step xenstore-read "/session/Az09-_@"
step xenstore-write "/session/a.b" dot
step xenstore-write "/session/a:b" colon
step xenstore-write "/session/a!b" bang
step xenstore-write "/session/a~b" tilde
step xenstore-write "/session/é" unicode
step xenstore-write "/session/a/./b" x
step xenstore-write "/session/a/../b" x
step xenstore-write /session/v "$(head -c 4000 /dev/zero | tr '\0' v)"
# (4060: through /dev/xen/xenbus, which dom0's tools use with a stub domain, Linux takes a
# header and payload of at most 4096 bytes; C xenstored in dom0 is reached by its socket,
# which takes a 4096-byte payload.)
step xenstore-write /session/v2 "$(head -c 4060 /dev/zero | tr '\0' v)"
step xenstore-write /session/v3 "$(head -c 4096 /dev/zero | tr '\0' v)"
step xenstore-ls /session/e
step xenstore-read /
step xenstore-list /session/nope/deep/er
step xenstore-rm /
step xenstore-exists /local
step xenstore-rm /session
step xenstore-exists /session
# The quota listings as this Xen's C xenstored prints them; a domain's usage and the help
# that follows a refused command only by their first line (the figures depend on what else
# the store holds; the command lists differ).
step xenstore-control quota
step xenstore-control quota-soft
step_head xenstore-control quota 0
step_head xenstore-control quota set nodes 0
step xenstore-control quota set nodes 1000
step_head xenstore-control quota set bogus 3
step xenstore-control quota-soft set memory 2097152

echo "XSLAB-SESSION-BEGIN"
sed 's/^/XSLAB-S| /' "$out"
echo "XSLAB-SESSION-END"
pass "lines=$(wc -l <"$out") sha256=$(sha256sum "$out" | cut -d' ' -f1)"
