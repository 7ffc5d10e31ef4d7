#!/bin/sh
# A -> B -> A -> B: every update switches the running image, counts up and keeps the store.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
check write xenstore-write /lucycle/a 1 /lucycle/b two
xenstore-ls -fp > /tmp/lc-ls0
runq xenstore-control version
n=$(echo "$OUT" | sed -n 's/^live-updates \([0-9]*\)$/\1/p')
[ -n "$n" ] || fail "version: $OUT"
for img in xsstub xsstub-b xsstub xsstub-b; do
    T=120 check "update-$img" xenstore-control live-update "/xslab/$img"
    n=$((n + 1))
    runq xenstore-control version
    echo "$OUT" | grep -q "live-updates $n" || fail "after $img: $OUT"
    if [ "$img" = xsstub-b ]; then
        echo "$OUT" | grep -q "+b build-id" || fail "B not running: $OUT"
    else
        echo "$OUT" | grep -q "+b build-id" && fail "A not running: $OUT"
    fi
    xenstore-ls -fp > /tmp/lc-ls1
    cmp -s /tmp/lc-ls0 /tmp/lc-ls1 || fail "store changed after $img"
    log "ok $img running, live-updates $n"
done
check rm xenstore-rm /lucycle
pass "updates=$n"
