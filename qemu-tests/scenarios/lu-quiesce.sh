#!/bin/sh
# Quiesce: an open transaction makes the update wait (BUSY) and, without -F, fail with an
# error naming the domain; the client's -a frees the staged image (memreport's heap line).
# Then a client killed while it waits (an operator's Ctrl-C: no -a, and all dom0 tools share
# one ring, so the stub cannot see it go): new transactions are held only until the stub
# abandons the silent update (10 s without -s), and the staged image is freed.
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

# The killed client.
rm -f /tmp/lq-ready /tmp/lq-go /tmp/lq2-ready /tmp/lq2-go
bg $P txn-hold --path /luq/t/y --value 1 --ready-file /tmp/lq-ready --go-file /tmp/lq-go \
    --timeout-s 180
TXN=$BG
wait_until 20 test -e /tmp/lq-ready || fail "the second transaction did not start"
timeout 10 xl dmesg -c >/dev/null
xenstore-control live-update -t 120 /xslab/xsstub-b >/tmp/lq-client.out 2>&1 &
CLIENT=$!
# Not `xl dmesg` while the update is pending (it did not return until the update ended):
# the image is staged (memreport's heap grows by it), then -s gets BUSY within a second.
size=$(stat -c %s /xslab/xsstub-b)
t0=$(now)
until [ "$(heap_used)" -gt $((used0 + size)) ]; do
    awk -v s="$(since "$t0")" 'BEGIN { exit !(s < 60) }' ||
        fail "the image was not staged for the client that will be killed"
    sleep 0.5
done
sleep 3
# (TERM: a background job of this non-interactive shell ignores SIGINT.)
kill -TERM "$CLIENT"
wait "$CLIENT" 2>/dev/null
t_kill=$(now)
log "client killed while waiting: $(tr '\n' ' ' </tmp/lq-client.out)"
# A transaction started now is held while the update is pending, then goes ahead.
bg $P txn-hold --path /luq/u/z --value 1 --ready-file /tmp/lq2-ready --go-file /tmp/lq2-go \
    --timeout-s 120
TXN2=$BG
wait_until 40 test -e /tmp/lq2-ready || fail "a new transaction was still held 40 s after the client died"
waited=$(since "$t_kill")
log "a new transaction started $waited s after the client was killed"
awk -v w="$waited" 'BEGIN { exit !(w >= 5) }' ||
    fail "the new transaction was not held at all ($waited s): the update was not pending?"
timeout 10 xl dmesg | grep -aq "live-update: BUSY: transactions open by domain(s) 0" ||
    fail "the killed client's update was never answered BUSY"
timeout 10 xl dmesg | grep -aq "live-update abandoned: no command from the client" ||
    fail "the stub did not log the abandoned update"
touch /tmp/lq-go /tmp/lq2-go
wait "$TXN" || fail "the first transaction did not commit after the abandoned update"
wait "$TXN2" || fail "the held transaction did not commit"
expect_eq committed-y 1 xenstore-read /luq/t/y
expect_eq committed-z 1 xenstore-read /luq/u/z
used2=$(heap_used)
log "heap used after the abandoned update: $used2"
[ "$used2" -le $((used0 + 16384)) ] || fail "the abandoned image was not freed: $used0 -> $used2"
runq xenstore-control version
echo "$OUT" | grep -q "+b" && fail "B is running after the abandoned update"
check rm xenstore-rm /luq
pass "busy=$((busy1 - busy0)) refused=named-domain-0 heap=$used0->$used1;" \
    "killed client: transactions held $waited s, image freed ($used2)"
