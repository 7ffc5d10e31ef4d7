#!/bin/sh
# Quiesce: an open transaction makes the update wait (BUSY) and, without -F, fail with an
# error naming the domain; the client's -a frees the staged image (memreport's heap line).
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
P=/xslab/xsprobe
heap_used() { xenstore-control memreport | sed -n 's/^heap: \([0-9]*\) bytes used.*/\1/p'; }
check prep xenstore-write /luq/t 0 /luq/u 0
used0=$(heap_used)
[ -n "$used0" ] || fail "memreport has no heap line"
rm -f /tmp/lq-ready /tmp/lq-go
bg $P txn-hold --path /luq/t/x --value 1 --ready-file /tmp/lq-ready --go-file /tmp/lq-go \
    --timeout-s 120
TXN=$BG
wait_until 20 test -e /tmp/lq-ready || fail "the transaction did not start"
busy0=$(timeout 10 xl dmesg | grep -ac "live-update: BUSY: transactions open by domain(s) 0")
t0=$(now)
runq xenstore-control live-update -t 3 /xslab/xsstub-b
log "refused after $(since "$t0") s (exit $RC): $(echo "$OUT" | tr '\n' ' ')"
[ "$RC" -ne 0 ] || fail "the update ran with a transaction open"
echo "$OUT" | grep -q "transactions still open by domain(s) 0" ||
    fail "the error does not name the domain: $OUT"
busy1=$(timeout 10 xl dmesg | grep -ac "live-update: BUSY: transactions open by domain(s) 0")
[ "$busy1" -gt "$busy0" ] || fail "the stub never answered BUSY while the transaction was open"
log "ok BUSY answered $((busy1 - busy0)) times before the refusal"
used1=$(heap_used)
log "heap used: $used0 before, $used1 after the abort"
[ "$used1" -le $((used0 + 16384)) ] || fail "the aborted image was not freed: $used0 -> $used1"
runq xenstore-control version
echo "$OUT" | grep -q "+b" && fail "B is running"
touch /tmp/lq-go
wait "$TXN" || fail "the transaction did not commit after the refused update"
expect_eq committed 1 xenstore-read /luq/t/x
check rm xenstore-rm /luq
pass "busy=$((busy1 - busy0)) refused=named-domain-0 heap=$used0->$used1"
