#!/bin/sh
# A guest opens transactions up to and past the quota (10 open: the 11th gets ENOSPC), reads
# nodes in one of them up to and past the transaction-nodes quota (1024 accessed nodes: the
# 1025th gets ENOSPC), then ends them (nine aborted, one committed). Attacker gets: ENOSPC
# twice, and the operator sees `domain N: limit transactions hit` and `domain N: limit
# transaction-nodes hit` on the stub's console. Checked: the exact outcome, the two lines,
# its transactions back to 0, dom0's read loop and the good guest unaffected, memreport's
# totals back once the guests are gone.
. /xslab/lib.sh
abuse_begin
ag_create linux xslab-txn txn
good_guest
BAD=$(ag_ready linux xslab-txn txn) || exit 1
log "good guest $GOOD, attacker $BAD"
measure_baseline "$GOOD" "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
measure_start "$GOOD"
sleep 2
check go xenstore-write "/local/domain/$BAD/data/go" 1
wait_until 300 xenstore-exists "/local/domain/$BAD/data/txn-result" ||
    fail "the attacker left no data/txn-result"
measure_stop "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
want="transactions=10 txn_refused=ENOSPC nodes=1024 nodes_refused=ENOSPC aborted=9 commit=OK"
expect_eq attacker-outcome "$want" xenstore-read "/local/domain/$BAD/data/txn-result"
expect_eq committed 1 xenstore-read "/local/domain/$BAD/data/txn/committed"
expect_match attacker-txns-gone "^domain $BAD: .* transactions 0/10 " xenstore-control memreport
limit_lines "$BAD" >/tmp/abuse-limits
cat /tmp/abuse-limits
grep -q "^domain $BAD: limit transactions hit: TRANSACTION_START refused with ENOSPC: 10 open, quota 10" \
    /tmp/abuse-limits || fail "no 'domain $BAD: limit transactions hit' line: $(stub_lines | tail -n 5)"
grep -q "^domain $BAD: limit transaction-nodes hit: transaction [0-9]* accessed 1024 nodes" \
    /tmp/abuse-limits || fail "no 'domain $BAD: limit transaction-nodes hit' line"
abuse_end xslab-txn xslab-good
pass "attacker=ENOSPC@txn11,ENOSPC@node1025 commit=OK limits=transactions,transaction-nodes" \
    "$MEASURED $BASELINE retries=$RETRIES"
