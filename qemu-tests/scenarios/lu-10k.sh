#!/bin/sh
# A live update with 10,000 nodes in a plain 8 MiB xenstore domain: the store is the same
# before and after.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
P=/xslab/xsprobe
N=10000
JOBS=4
fill_lane() {
    k=$1
    while [ "$k" -lt 10 ]; do
        timeout 600 $P fill --prefix "/lu10k/d$k" --count $((N / 10)) --window 1 >/dev/null || return 1
        k=$((k + JOBS))
    done
}
f0=$(now)
pids=""
l=0
while [ $l -lt $JOBS ]; do
    fill_lane $l &
    pids="$pids $!"
    XSLAB_PIDS="$XSLAB_PIDS $!"
    l=$((l + 1))
done
for p in $pids; do wait "$p" || fail "fill failed"; done
log "filled $N nodes in $(since "$f0") s"
runq xenstore-control memreport
log "memreport: $(echo "$OUT" | tr '\n' ' ')"
timeout 300 xenstore-ls -fp /lu10k > /tmp/l10-ls0 || fail "xenstore-ls failed"
[ "$(grep -c = /tmp/l10-ls0)" -ge "$N" ] || fail "only $(grep -c = /tmp/l10-ls0) nodes listed"
runq xenstore-control version
n0=$(echo "$OUT" | sed -n 's/^live-updates \([0-9]*\)$/\1/p')
t0=$(now)
T=240 check live-update xenstore-control live-update /xslab/xsstub-b
log "live update took $(since "$t0") s"
runq xenstore-control version
echo "$OUT" | grep -q "^live-updates $((n0 + 1))\$" || fail "version after: $OUT"
timeout 300 xenstore-ls -fp /lu10k > /tmp/l10-ls1 || fail "xenstore-ls failed after"
cmp -s /tmp/l10-ls0 /tmp/l10-ls1 || fail "the store differs: $(diff /tmp/l10-ls0 /tmp/l10-ls1 | head -n 3)"
tl=$(timeout 10 xl dmesg | grep -a "live update $((n0 + 1)) timeline" | tail -n 2 | sed 's/.*timeline (us) //' | tr '\n' ' ')
# One directory at a time (xenstore-rm removes in a transaction, which holds a copy of
# every node it removes).
k=0
while [ "$k" -lt 10 ]; do
    T=120 check "rm-d$k" xenstore-rm "/lu10k/d$k"
    k=$((k + 1))
done
T=60 check rm xenstore-rm /lu10k
timeout 10 xl dmesg | grep -a "xsstub: PANIC" && fail "the stub panicked"
pass "nodes=$N timeline: $tl"
