#!/bin/sh
# A state buffer corrupted after it was written (the fault-injection flavour flips a byte
# before its jump) is never served as an empty store: the new image finds the checksum wrong
# and rolls back; the old image finds the same buffer unusable, has nothing to roll back to,
# and stops loudly. xenstore is then dead, not wrong: a read times out instead of answering
# ENOENT. Run it last: dom0 has no xenstore afterwards.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
check write xenstore-write /lucs/marker here
# Into the fault flavour, told to corrupt its state when it hands over next.
T=120 check into-fault xenstore-control live-update -c "--fault=corrupt-state" /xslab/xsstub-fault
runq xenstore-control version
echo "$OUT" | grep -q "+fault" || fail "the fault flavour is not running: $OUT"
expect_eq marker-kept here xenstore-read /lucs/marker
stub=$(cat /run/xslab-stub-domid 2>/dev/null)
# Out of it: the corrupted state must not be served.
T=60 runq xenstore-control live-update /xslab/xsstub
log "update with a corrupted state ($HOW): $(echo "$OUT" | tr '\n' ' ' | head -c 300)"
[ "$RC" -ne 0 ] || fail "the update with a corrupted state reported success"
timeout 10 xl dmesg > /tmp/lcs-dmesg 2>&1
grep -a "rolling back" /tmp/lcs-dmesg | tail -n 1
grep -a "FATAL" /tmp/lcs-dmesg | tail -n 1
grep -aq "checksum" /tmp/lcs-dmesg || fail "no checksum refusal in the log"
if grep -aq "xsstub: FATAL: the state handed over by a live update cannot be used" /tmp/lcs-dmesg; then
    # Dead, not empty: a read gets no answer at all.
    runq timeout 10 xenstore-read /lucs/marker
    [ "$RC" -eq 124 ] || [ "$RC" -eq 143 ] ||
        fail "xenstore answered after the loud stop ($HOW): '$OUT'"
    pass "outcome=loud-stop (the corrupted state was refused by both images; nothing served)"
fi
# Otherwise it must have rolled back with the store intact.
expect_eq marker-after-rollback here xenstore-read /lucs/marker
pass "outcome=rollback"
