#!/bin/sh
# Rollback: an update into the fault-injection flavour, which refuses (then panics) while
# taking over, ends with the previous image serving the same store byte for byte: the
# client gets an error naming what failed, the dom0 watch, the guest's connection and an
# open transaction survive, and `version` counts the rollbacks.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
P=/xslab/xsprobe

guest_start
check ping-before xenstore-write "/local/domain/$DOMID/data/ping" before
wait_until 30 sh -c "[ \"\$(xenstore-read /local/domain/$DOMID/data/pong)\" = before ]" ||
    fail "the guest does not answer pings"
T=120 check fill $P fill --prefix /lurb/n --count 300 --window 1
check prep xenstore-write /lurb/w/x 0 /lurb/t 0
rm -f /tmp/lrb-watch /tmp/lrb-ready /tmp/lrb-go
bg $P watch --path /lurb/w --token rb --count 4 --out /tmp/lrb-watch --timeout-s 300
wait_lines 20 /tmp/lrb-watch 1 || fail "watch: no initial event"
bg $P txn-hold --path /lurb/t/inside --value carried --ready-file /tmp/lrb-ready \
    --go-file /tmp/lrb-go --timeout-s 300
TXN=$BG
wait_until 20 test -e /tmp/lrb-ready || fail "the transaction did not start"

runq xenstore-control version
before=$(echo "$OUT" | head -n 1)
n0=$(echo "$OUT" | sed -n 's/^live-updates \([0-9]*\)$/\1/p')
r0=$(echo "$OUT" | sed -n 's/^rollbacks \([0-9]*\)$/\1/p')
[ -n "$n0" ] && [ -n "$r0" ] || fail "version: $OUT"
xenstore-ls -fp > /tmp/lrb-ls0

k=0
for fault in restore panic; do
    k=$((k + 1))
    T=120 runq xenstore-control live-update -F -t 5 -c "--fault=$fault" /xslab/xsstub-fault
    log "update with --fault=$fault (exit $RC): $(echo "$OUT" | tr '\n' ' ' | head -c 300)"
    [ "$RC" -ne 0 ] || fail "--fault=$fault: the update reported success"
    echo "$OUT" | grep -q "rolled back" || fail "--fault=$fault: the error does not say rolled back: $OUT"
    case $fault in
    restore) echo "$OUT" | grep -q "injected failure" || fail "the reason is not named: $OUT" ;;
    panic) echo "$OUT" | grep -q "panic" || fail "the panic is not named: $OUT" ;;
    esac
    runq xenstore-control version
    [ "$(echo "$OUT" | head -n 1)" = "$before" ] || fail "another image runs after the rollback: $OUT"
    echo "$OUT" | grep -q "^live-updates $n0\$" || fail "the failed update was counted: $OUT"
    echo "$OUT" | grep -q "^rollbacks $((r0 + k))\$" || fail "rollbacks not counted: $OUT"
    xenstore-ls -fp > /tmp/lrb-ls1
    cmp -s /tmp/lrb-ls0 /tmp/lrb-ls1 || fail "--fault=$fault: the store differs: $(diff /tmp/lrb-ls0 /tmp/lrb-ls1 | head -n 5)"
    log "ok --fault=$fault: rolled back, store identical ($(wc -l < /tmp/lrb-ls1) lines)"
    check "watch-write-$fault" xenstore-write /lurb/w/after-$fault 1
    wait_lines 20 /tmp/lrb-watch $((1 + k)) ||
        fail "the watch did not fire after rollback $k: $(cat /tmp/lrb-watch)"
    check "ping-$fault" xenstore-write "/local/domain/$DOMID/data/ping" "$fault"
    wait_until 30 sh -c "[ \"\$(xenstore-read /local/domain/$DOMID/data/pong)\" = $fault ]" ||
        fail "the guest's connection did not survive rollback $k"
    xenstore-ls -fp > /tmp/lrb-ls0
done
touch /tmp/lrb-go
wait "$TXN" || fail "the open transaction did not commit after the rollbacks"
expect_eq txn-committed carried xenstore-read /lurb/t/inside
timeout 10 xl dmesg | grep -a "rolling back" | tail -n 2
guest_stop
check cleanup xenstore-rm /lurb
pass "rollbacks=2 (restore, panic) store=identical watch=ok guest=ok txn=committed"
