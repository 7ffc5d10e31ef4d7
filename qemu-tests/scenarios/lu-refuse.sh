#!/bin/sh
# Bad images are refused before anything is touched: a truncated kernel, an ELF without the
# PVH note, and junk. The running image keeps serving and nothing was counted. Also the
# migration-stream version Xen 4.21's xenstore-control asks for with -v (sent raw with
# xsprobe, as that client sends it): 2 is refused with its reason, 1 (what this image hands
# over) is accepted (refused only for the missing image).
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
# As Xen 4.21's `xenstore-control live-update -t 60 -v N FILE` sends its start command.
for case in "2:migration stream version 2 not supported" "1:-s without an image"; do
    v=${case%%:*}
    why=${case#*:}
    runq /xslab/xsprobe control live-update -s -t 60 -v "$v"
    [ "$RC" -eq 0 ] || fail "live-update -s -v $v: $OUT"
    echo "$OUT" | grep -q -- "$why" || fail "live-update -s -v $v: the answer is not '$why': $OUT"
    log "ok -v $v: $OUT"
done
expect_match help-version '-v <version>' xenstore-control help
runq xenstore-control version
[ "$OUT" = "$before" ] || fail "version changed: $before -> $OUT"
check rm xenstore-rm /lurefuse
pass "3 images refused; stream version 2 refused, 1 accepted"
