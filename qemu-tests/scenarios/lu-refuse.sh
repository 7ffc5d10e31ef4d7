#!/bin/sh
# Bad images are refused before anything is touched: a truncated kernel, an ELF without the
# PVH note, and junk. The running image keeps serving and nothing was counted.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
check write xenstore-write /lurefuse/a 1
runq xenstore-control version
before=$OUT
head -c 200000 /xslab/xsstub > /tmp/lr-truncated
dd if=/dev/urandom of=/tmp/lr-junk bs=1024 count=64 2>/dev/null
# Each file with the reason its refusal must give (from xsstate::pvh's errors).
for case in "/tmp/lr-truncated:does not fit in the" "/bin/busybox:not a PVH image" \
    "/tmp/lr-junk:unsupported ELF header"; do
    f=${case%%:*}
    why=${case#*:}
    runq xenstore-control live-update "$f"
    [ "$RC" -ne 0 ] || fail "$f was accepted"
    echo "$OUT" | grep -q "image refused" || fail "$f: not refused as an image: $OUT"
    echo "$OUT" | grep -q "$why" || fail "$f: the reason is not '$why': $OUT"
    log "ok $f refused (exit $RC): $(echo "$OUT" | tr '\n' ' ' | head -c 200)"
    expect_eq "read-after-$(basename $f)" 1 xenstore-read /lurefuse/a
done
runq xenstore-control version
[ "$OUT" = "$before" ] || fail "version changed: $before -> $OUT"
check rm xenstore-rm /lurefuse
pass "3 refused"
