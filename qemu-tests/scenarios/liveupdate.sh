#!/bin/sh
# Live update in memory, A -> B, with 1000 nodes of varied permissions, a dom0 watch, an
# open transaction (carried with -F) and a running guest: the store is identical after, the
# watch keeps firing, the guest keeps its connection, the transaction commits, and no dom0
# daemon, 9pfs share or file was involved.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
P=/xslab/xsprobe

guest_start
check ping-before xenstore-write "/local/domain/$DOMID/data/ping" before
wait_until 30 sh -c "[ \"\$(xenstore-read /local/domain/$DOMID/data/pong)\" = before ]" ||
    fail "the guest does not answer pings"

# One request at a time: Linux's xenbus device reuses its buffer for pipelined writes.
T=120 check fill $P fill --prefix /lu/n --count 1000 --window 1
check prep xenstore-write /lu/w/x 0 /lu/t 0
rm -f /tmp/lu-watch /tmp/lu-ready /tmp/lu-go
bg $P watch --path /lu/w --token lu --count 3 --out /tmp/lu-watch --timeout-s 300
wait_lines 20 /tmp/lu-watch 1 || fail "watch: no initial event"
bg $P txn-hold --path /lu/t/inside --value carried --ready-file /tmp/lu-ready \
    --go-file /tmp/lu-go --timeout-s 300
TXN=$BG
wait_until 20 test -e /tmp/lu-ready || fail "the transaction did not start"

runq xenstore-control version
log "before: $(echo "$OUT" | tr '\n' ' ')"
n0=$(echo "$OUT" | sed -n 's/^live-updates \([0-9]*\)$/\1/p')
[ -n "$n0" ] || fail "version before: $OUT"
xenstore-ls -fp > /tmp/lu-ls0
[ "$(grep -c '^/lu/n/' /tmp/lu-ls0)" -eq 1000 ] || fail "fill: $(grep -c '^/lu/n/' /tmp/lu-ls0) nodes"

t0=$(now)
T=120 check live-update xenstore-control live-update -F -t 3 /xslab/xsstub-b
log "live-update took $(since "$t0") s"

runq xenstore-control version
log "after: $(echo "$OUT" | tr '\n' ' ')"
echo "$OUT" | grep -q "+b build-id" || fail "image B is not running: $OUT"
echo "$OUT" | grep -q "^live-updates $((n0 + 1))\$" || fail "version after: $OUT"
own=""
if [ "$XSLAB_XEN" != 4.17 ]; then
    # Xen 4.19+: the stub's own connection is carried over and answers its self-test again.
    stub=$(stub_domid)
    wait_until 20 sh -c "xl dmesg | grep -aq '(d$stub) xsstub: own connection: .*: restored: .* ok'" ||
        fail "own connection not restored: $(xl dmesg | grep -a 'own connection' | tail -n 2)"
    log "ok the stub's own connection was restored and answered"
    own=" own-connection=restored"
fi
xenstore-ls -fp > /tmp/lu-ls1
cmp -s /tmp/lu-ls0 /tmp/lu-ls1 || fail "xenstore-ls -fp differs: $(diff /tmp/lu-ls0 /tmp/lu-ls1 | head)"
log "ok xenstore-ls -fp identical ($(wc -l < /tmp/lu-ls1) lines)"

check watch-write xenstore-write /lu/w/after 1
wait_lines 20 /tmp/lu-watch 2 || fail "the watch did not fire after the update: $(cat /tmp/lu-watch)"
log "ok the dom0 watch fired without re-registering"

check ping-after xenstore-write "/local/domain/$DOMID/data/ping" after
wait_until 30 sh -c "[ \"\$(xenstore-read /local/domain/$DOMID/data/pong)\" = after ]" ||
    fail "the guest's connection did not survive"
log "ok the guest answered through its existing connection"

touch /tmp/lu-go
wait "$TXN"
rc=$?
[ $rc -eq 0 ] || fail "the carried transaction did not commit (exit $rc)"
expect_eq txn-committed carried xenstore-read /lu/t/inside

pgrep -l xenstored && fail "a xenstored runs in dom0"
grep -q ' 9p ' /proc/mounts && fail "a 9p share is mounted"
guest_stop
check cleanup xenstore-rm /lu
pass "nodes=1000 watch=ok guest=ok txn=committed$own"
