#!/bin/sh
# Malformed and oversized messages from a guest (the raw test guest,
# `xsstub-test-guest=malformed`, the fault-injection build). Malformed but well-framed
# requests (missing NULs, bad numbers, bad paths, unknown and reserved types, privileged
# types, an unknown transaction, RESET_WATCHES in a transaction: XSA-484) each get their exact
# XS_ERROR; a 4000-byte watch token (XSA-324) is accepted and events that would exceed 4096
# bytes are dropped; the connection keeps working. Then a message announcing 5000 bytes
# (XSA-72) faults that connection only: its ring's error field becomes 3 (protocol) and
# nothing more is served on it. Checked: every outcome, dom0's read loop and the good guest
# unaffected, memreport's totals back once the guests are gone. Keep the table in step
# with kernel/src/service/testguest/modes.rs and xsstate/tests/abuse.rs.
. /xslab/lib.sh
abuse_begin
good_guest
measure_baseline "$GOOD" "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
measure_start "$GOOD"
sleep 2
ag_create raw xslab-malformed malformed
BAD=$(timeout 20 xl domid xslab-malformed) || fail "xl domid xslab-malformed: $BAD"
log "good guest $GOOD, attacker $BAD"
tg() { timeout "$T" xl dmesg | grep -a "(d$BAD) XSSTUB-TESTGUEST" | tr -d '\r' | sed 's/.*XSSTUB-TESTGUEST //'; }
wait_until 90 sh -c "xl dmesg | grep -aq '(d$BAD) XSSTUB-TESTGUEST after the fault'" ||
    fail "the malformed guest did not finish: $(tg | tail -n 5)"
sleep 1
measure_stop "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
tg >/tmp/abuse-tg
cat /tmp/abuse-tg
cat >/tmp/abuse-want <<WANT
name xslab-malformed
case read-no-nul: ERROR EINVAL
case read-two-args: ERROR EINVAL
case read-empty: ERROR EINVAL
case read-bad-char: ERROR EINVAL
case read-not-utf8: ERROR EINVAL
case read-double-slash: ERROR EINVAL
case read-trailing-slash: ERROR EINVAL
case read-special: ERROR EINVAL
case read-too-long: ERROR EINVAL
case write-no-value-nul: ERROR EINVAL
case mkdir-special: ERROR EINVAL
case rm-root: ERROR EACCES
case set-perms-bad-domid: ERROR EINVAL
case set-perms-bad-letter: ERROR EINVAL
case set-perms-none: ERROR EINVAL
case get-domain-path-bad: ERROR EINVAL
case get-domain-path-huge: ERROR EINVAL
case directory-part-bad-offset: ERROR EINVAL
case watch-no-token: ERROR EINVAL
case watch-bad-path: ERROR EINVAL
case unwatch-unknown: ERROR ENOENT
case txn-end-bad-arg: ERROR EINVAL
case type-99: ERROR ENOSYS
case type-20-restrict: ERROR ENOSYS
case type-15-watch-event: ERROR ENOSYS
case type-16-error: ERROR ENOSYS
case type-max: ERROR ENOSYS
case introduce-unpriv: ERROR EACCES
case control-unpriv: ERROR EACCES
case set-quota-unpriv: ERROR EACCES
case read-unknown-tx: ERROR ENOENT
case reset-watches-in-txn: ERROR EBUSY
case txn-abort-after: OK
case watch-huge-token: OK
case write-long-child: OK
case write-short-child: OK
xsa324 events after the writes 1 largest 4008
case unwatch-huge-token: OK
alive name xslab-malformed (was xslab-malformed)
ring error field 3
after the fault READ name: NO REPLY
WANT
diff /tmp/abuse-want /tmp/abuse-tg >/tmp/abuse-diff ||
    fail "the malformed guest's outcomes differ (want < > got): $(grep '^[<>]' /tmp/abuse-diff | head -n 6)"
cases=$(grep -c '^case ' /tmp/abuse-want)
stub_lines | grep -q "xsstub: domain $BAD: connection faulted: message payload of 5000 bytes exceeds 4096" ||
    fail "no 'domain $BAD: connection faulted' line: $(stub_lines | tail -n 5)"
stub_lines | grep "xsstub: domain $BAD: " | sed 's/.*xsstub: //'
abuse_end xslab-malformed xslab-good
pass "attacker=XS_ERROR for $cases/$cases cases (EINVAL/ENOSYS/EACCES/ENOENT/EBUSY)" \
    "xsa324=oversized-event-dropped oversized=ring-error-3 $MEASURED $BASELINE retries=$RETRIES"
