#!/bin/sh
# A guest opens and closes its connection in a loop: ROUNDS (10) short-lived clients
# each set 5 watches and open 3 transactions (a write in each) and exit
# without ending them: Linux's xenbus driver unwatches and aborts for each closed file.
# Then ROUNDS more end with RESET_WATCHES inside a transaction (EBUSY, XSA-484) and outside
# (OK: every watch and transaction of the connection goes, XSA-330). Attacker gets:
# nothing that lasts. Checked: every round worked (a leaked transaction would soon be
# refused by the quota of 10), after the first phase its watches are its kernel's own and
# its transactions 0, after the resets both are 0; dom0's read loop and the good guest
# unaffected; memreport's totals back once the guests are gone.
. /xslab/lib.sh
abuse_begin
ROUNDS=10
ag_create linux xslab-churn churn
good_guest
BAD=$(ag_ready linux xslab-churn churn) || exit 1
log "good guest $GOOD, attacker $BAD"
# `watches transactions memory` of the attacker's memreport line.
usage() {
    timeout "$T" xenstore-control memreport |
        sed -n "s|^domain $BAD: nodes [0-9/]* memory \([0-9]*\)/[0-9]* watches \([0-9]*\)/[0-9]* transactions \([0-9]*\)/.*|\2 \3 \1|p"
}
# Every node the attacker's script uses, with values of their final length: its node
# memory stays constant, so its memreport figure shows what its connection holds.
H=/local/domain/$BAD/data
placeholder="rounds=00000 failed=00000"
for n in "go 00000" "go2 0" "churn-a $placeholder" "churn-result $placeholder"; do
    set -- $n
    node=$1
    shift
    check "init-$node" xenstore-write "$H/$node" "$*"
done
u0=$(usage)
[ -n "$u0" ] || fail "no memreport line for domain $BAD"
set -- $u0
w0=$1 t0=$2 m0=$3
log "attacker before: watches $w0 (its kernel's own), transactions $t0, memory $m0"
[ "$t0" -eq 0 ] || fail "the attacker has $t0 transactions before it starts"
measure_baseline "$GOOD" "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
measure_start "$GOOD"
sleep 2
want=$(printf 'rounds=%05d failed=%05d' "$ROUNDS" 0)
c0=$(now)
check go xenstore-write "$H/go" "$(printf %05d "$ROUNDS")"
wait_until 300 sh -c "[ \"\$(xenstore-read $H/churn-a)\" != '$placeholder' ]" ||
    fail "no summary of the first phase in data/churn-a"
expect_eq phase-a "$want" xenstore-read "$H/churn-a"
a_s=$(since "$c0")
set -- $(usage)
log "attacker after $ROUNDS closed clients ($a_s s): watches $1, transactions $2, memory $3"
[ "$1" -eq "$w0" ] && [ "$2" -eq 0 ] ||
    fail "after $ROUNDS closed clients the attacker holds $1 watches (had $w0) and $2 transactions"
[ "$3" -eq "$m0" ] || fail "after $ROUNDS closed clients the attacker holds $3 bytes (had $m0)"
c1=$(now)
check go2 xenstore-write "$H/go2" 1
wait_until 300 sh -c "[ \"\$(xenstore-read $H/churn-result)\" != '$placeholder' ]" ||
    fail "no summary of the second phase in data/churn-result"
expect_eq phase-b "$want" xenstore-read "$H/churn-result"
b_s=$(since "$c1")
set -- $(usage)
log "attacker after $ROUNDS RESET_WATCHES ($b_s s): watches $1, transactions $2, memory $3"
[ "$1" -eq 0 ] && [ "$2" -eq 0 ] ||
    fail "after RESET_WATCHES the attacker holds $1 watches and $2 transactions"
[ "$3" -le "$m0" ] || fail "after RESET_WATCHES the attacker holds $3 bytes (had $m0)"
m1=$3
measure_stop "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
abuse_end xslab-churn xslab-good
pass "attacker=nothing-kept rounds=$ROUNDS+$ROUNDS watches=$w0->$w0->0 transactions=0" \
    "memory=$m0->$m0->$m1 phase_s=$a_s,$b_s $MEASURED $BASELINE retries=$RETRIES"
