#!/bin/sh
# Compatibility is checked before the jump: an image that does not declare what it reads (no
# XSSTUB note) is refused unless -F, and one that declares other hand-over versions is
# refused even with -F. The running image keeps serving; nothing is counted.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
check write xenstore-write /luinc/a 1
runq xenstore-control version
before=$OUT

runq xenstore-control live-update /xslab/xsstub-nonote
[ "$RC" -ne 0 ] || fail "an image without the note was accepted"
echo "$OUT" | grep -q "no XSSTUB compatibility note" || fail "unclear refusal: $OUT"
log "ok no note: refused (exit $RC): $(echo "$OUT" | tr '\n' ' ' | head -c 200)"

runq xenstore-control live-update -F /xslab/xsstub-future
[ "$RC" -ne 0 ] || fail "an image reading only newer hand-over versions was accepted"
echo "$OUT" | grep -q "reads hand-over buffers v90..v99" || fail "unclear refusal: $OUT"
log "ok other versions: refused even with -F (exit $RC): $(echo "$OUT" | tr '\n' ' ' | head -c 200)"

runq xenstore-control version
[ "$OUT" = "$before" ] || fail "version changed: $before -> $OUT"
expect_eq read-after 1 xenstore-read /luinc/a

# With -F the image without the note is taken (it is this very image, note renamed).
T=120 check update-forced xenstore-control live-update -F /xslab/xsstub-nonote
runq xenstore-control version
echo "$OUT" | grep -q "live-updates" || fail "version after: $OUT"
expect_eq read-forced 1 xenstore-read /luinc/a
# And back to a normal image (the note-less one still reads what it is handed).
T=120 check update-back xenstore-control live-update /xslab/xsstub
check rm xenstore-rm /luinc
pass "no-note=refused(forced:ok) other-versions=refused"
