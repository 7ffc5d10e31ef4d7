#!/bin/sh
# dom0 writes until xenstore refuses with ENOMEM (the heap's core reserve is reached; the
# domain has no room to grow); reads are still answered; removing the nodes frees the memory
# and writes work again.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
P=/xslab/xsprobe
# However this ends, the store is emptied again (outside a transaction: xsprobe rm).
XSLAB_ON_EXIT="timeout 300 $P rm /exhaust >/dev/null 2>&1"
heap() { xenstore-control memreport | sed -n 's/^heap: \([0-9]*\) bytes used, \([0-9]*\) bytes free.*/\1 \2/p'; }
set -- $(heap)
used0=$1
grown=$(xenstore-control memreport | sed -n 's/.* \([0-9]*\) bytes grown, \([0-9]*\) bytes max.*/\1 \2/p')
T=600 runq $P write-loop --prefix /exhaust/n --value-size 2000 --until-refused
log "dom0 fill: $OUT ($HOW)"
[ "$RC" -eq 0 ] || fail "the fill saw errors: $OUT"
echo "$OUT" | grep -q "refused=ENOMEM" || fail "dom0 was not refused with ENOMEM: $OUT"
n=$(echo "$OUT" | sed -n 's/.*acked=\([0-9]*\).*/\1/p')
set -- $(heap)
log "heap at the refusal: $1 used, $2 free (grown/max: $grown)"
expect_eq read-at-limit "" xenstore-read /tool
T=120 check verify-at-limit $P verify --prefix /exhaust/n --count "$n" --value-size 2000
# At the limit the stock client's writes are refused. A few may still fit (the fill stopped
# when a write's worst-case cost no longer fitted above the floor, and its connection's
# close freed a little), but not many: each takes more than 2000 bytes.
extra=0
while :; do
    runq xenstore-write "/exhaust/more$extra" "$(head -c 2000 /dev/zero | tr '\0' y)"
    [ "$RC" -eq 0 ] || break
    extra=$((extra + 1))
    [ "$extra" -le 40 ] || fail "write-at-limit: 40 more 2000-byte writes were accepted after ENOMEM"
done
[ "$RC" -ne 124 ] && [ "$RC" -ne 143 ] || fail "write-at-limit: xenstore-write $HOW"
log "ok write-at-limit (refused after $extra more writes)"
timeout 10 xl dmesg | grep -a "limit heap hit" | tail -n 1
timeout 10 xl dmesg | grep -a "PANIC\|memory allocation of" && fail "the stub hit its last resort"
# The stock xenstore-rm removes in a transaction, which holds a copy of every node it
# removes: at the limit it may get ENOMEM. Then the removal outside a transaction.
T=300 runq xenstore-rm /exhaust
log "xenstore-rm (a transaction) at the limit: exit $RC: $(echo "$OUT" | head -c 200)"
if timeout 10 xenstore-exists /exhaust; then
    T=300 check rm $P rm /exhaust
fi
set -- $(heap)
log "heap after rm: $1 used, $2 free"
check write-again xenstore-write /exhaust/again "$(head -c 2000 /dev/zero | tr '\0' z)"
check rm-again xenstore-rm /exhaust
pass "written=$n refused=ENOMEM extra_at_limit=$extra reads=ok heap_used=$used0->$1"
