#!/bin/sh
# Twenty guests created at once and destroyed at once. Each is the raw
# test guest in its benign mode (`xsstub-test-guest=benign`: reads its name, writes
# data/result, idles), 8 MiB: twenty Linux guests of 128 MiB would not fit beside dom0's
# 1 GiB in the lab's 2 GiB, and would take minutes to boot under TCG. A guest that dies
# before it reports is created again once (counted in retries=). Checked: every guest
# reported its own name through xenstore, every home is gone after the destruction, the
# node count (xenstore-ls) and memreport's totals are back to the start, dom0's read loop
# and the good guest unaffected throughout.
. /xslab/lib.sh
abuse_begin
[ -e /xslab/xsstub-fault ] || fail "no /xslab/xsstub-fault (cargo xtask lab builds it)"
N=20
nodes0=$(node_count)
good_guest
free=$(timeout "$T" xl info 2>/dev/null | sed -n 's/^free_memory *: *//p')
log "free memory before the $N guests: $free MiB (each takes 8 MiB and a little)"
[ -n "$free" ] && [ "$free" -ge $((N * 10)) ] || fail "only $free MiB free for $N guests"
many_cfg() {
    cat >"/tmp/xslab-many-$1.cfg" <<CFG
name = "xslab-many-$1"
type = "pvh"
kernel = "/xslab/xsstub-fault"
cmdline = "xsstub-test-guest=benign"
memory = 8
vcpus = 1
on_crash = "destroy"
CFG
}
measure_baseline "$GOOD" "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
measure_start "$GOOD"
rm -f /tmp/xslab-many-ids
c0=$(now)
pids=""
i=1
while [ "$i" -le "$N" ]; do
    many_cfg "$i"
    # (xl creates one domain at a time under its lock: the last waits for all the others.)
    timeout 400 xl create "/tmp/xslab-many-$i.cfg" >"/tmp/xslab-many-$i.out" 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
# (Not a bare `wait`: the measurements run in the background too.)
wait $pids
create_s=$(since "$c0")
# Each guest's result (their domids from one `xl list`: xl is slow under TCG), re-creating
# once a guest that died before reporting.
timeout 60 xl list >/tmp/xslab-many-list 2>&1
retries=0
i=1
while [ "$i" -le "$N" ]; do
    g=xslab-many-$i
    id=$(awk -v n="$g" '$1 == n { print $2 }' /tmp/xslab-many-list)
    r=""
    [ -n "$id" ] && r=$(timeout "$T" xenstore-read "/local/domain/$id/data/result" 2>/dev/null)
    attempt=1
    while [ "$r" != "name=$g" ]; do
        id=$(timeout 20 xl domid "$g" 2>/dev/null)
        if [ -n "$id" ] && wait_until 60 sh -c \
            "xenstore-exists /local/domain/$id/data/result || ! xl list $id >/dev/null 2>&1"; then
            r=$(timeout "$T" xenstore-read "/local/domain/$id/data/result" 2>/dev/null) && break
        fi
        echo "XSLAB-INFO guest $g (${id:-no domid}) died before it reported (attempt $attempt):"
        cat "/tmp/xslab-many-$i.out"
        [ -n "$id" ] && timeout 10 xl dmesg 2>&1 | grep -a "(d$id)" | tail -n 3
        [ "$attempt" -ge 2 ] && fail "guest $g died before it reported, twice"
        attempt=$((attempt + 1))
        retries=$((retries + 1))
        timeout 60 xl destroy "$g" >/dev/null 2>&1
        T=120 check "xl-create-$g" xl create "/tmp/xslab-many-$i.cfg"
    done
    [ "$r" = "name=$g" ] || fail "guest $g ($id) reported '$r'"
    echo "$id" >>/tmp/xslab-many-ids
    i=$((i + 1))
done
report_s=$(since "$c0")
ids=$(cat /tmp/xslab-many-ids)
log "all $N guests reported after $report_s s (xl create of all: $create_s s): domids $(echo $ids)"
runq xenstore-control memreport
log "memreport with $N guests: $(echo "$OUT" | grep -E '^(nodes|heap|connections|domains):' | tr '\n' ' ')"
d0=$(now)
pids=""
i=1
while [ "$i" -le "$N" ]; do
    timeout 120 xl destroy "xslab-many-$i" >/dev/null 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
wait $pids
for id in $ids; do
    wait_until 60 sh -c "! xenstore-exists /local/domain/$id" ||
        fail "/local/domain/$id still there after xl destroy"
done
destroy_s=$(since "$d0")
left=$(timeout 20 xl list | grep -c xslab-many)
[ "$left" -eq 0 ] || fail "$left guests still listed after xl destroy"
measure_stop "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
abuse_end xslab-good
nodes1=$(node_count)
[ "$nodes1" -eq "$nodes0" ] || fail "the store went from $nodes0 to $nodes1 nodes"
pass "guests=$N reported=$N homes_gone=$N create_s=$create_s report_s=$report_s" \
    "destroy_s=$destroy_s nodes=$nodes0->$nodes1 $MEASURED $BASELINE retries=$((retries + RETRIES))"
