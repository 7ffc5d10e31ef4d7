#!/bin/sh
# Live update smoke: the stub domain updates into the same image and keeps its state.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || { pass "stub only"; exit 0; }
check write xenstore-write /lu/a 1 /lu/b two
runq xenstore-control version
log "version before: $OUT"
xenstore-ls -fp > /tmp/ls0
T=120 check live-update xenstore-control live-update /xslab/xsstub
log "$OUT"
runq xenstore-control version
log "version after: $OUT"
echo "$OUT" | grep -q "live-updates 1" || fail "version after: $OUT"
xenstore-ls -fp > /tmp/ls1
cmp /tmp/ls0 /tmp/ls1 || fail "store differs: $(diff /tmp/ls0 /tmp/ls1 | head -20)"
expect_eq read-after two xenstore-read /lu/b
pass "ok"
