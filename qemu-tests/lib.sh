#!/bin/sh
# Helpers for the lab's dom0 scripts (sourced by busybox sh): checks, waits and the verdict.
# A scenario calls check/expect_* (the first failure ends it) and finally `pass [DETAIL]`, or
# `skip REASON` when it does not apply to this boot (another store, start path or Xen version).

# Seconds a single command may take.
T=${T:-30}
XSLAB_PIDS=""

# Seconds since boot, with hundredths.
now() { cut -d' ' -f1 /proc/uptime; }

# Seconds since $1 (a `now` value).
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

log() { echo "[${XSLAB_SCENARIO:-init}] $*"; }

# Runs CMD... with the timeout T; sets OUT (stdout+stderr), RC and HOW ("exit N", or
# "timed out after T s").
runq() {
    OUT=$(timeout "$T" "$@" 2>&1)
    RC=$?
    if [ "$RC" -eq 143 ]; then
        HOW="timed out after $T s"
    else
        HOW="exit $RC"
    fi
}

# Ends the scenario with a failure: one line of reason.
fail() {
    printf 'FAIL %s' "$*" | tr '\n\r' '  ' | head -c 400 >/tmp/xslab-verdict
    exit 1
}

# Ends the scenario with success and optional detail.
pass() {
    printf 'PASS %s' "$*" | tr '\n\r' '  ' | head -c 400 >/tmp/xslab-verdict
    exit 0
}

# Ends the scenario without a verdict on what it is about: it does not apply here (one line
# of reason). The harness counts it apart, not as a failure.
skip() {
    printf 'SKIP %s' "$*" | tr '\n\r' '  ' | head -c 400 >/tmp/xslab-verdict
    exit 0
}

# The stub domain's id (empty with C xenstored), as init read it from /tool/xenstored/domid.
stub_domid() {
    cat /run/xslab-stub-domid 2>/dev/null
}

# check NAME CMD...: CMD must exit 0.
check() {
    name=$1
    shift
    runq "$@"
    [ "$RC" -eq 0 ] || fail "$name: '$*' $HOW: $OUT"
    log "ok $name"
}

# check_fails NAME CMD...: CMD must exit non-zero (and not time out).
check_fails() {
    name=$1
    shift
    runq "$@"
    [ "$RC" -ne 0 ] && [ "$RC" -ne 143 ] || fail "$name: '$*' $HOW (expected a failure): $OUT"
    log "ok $name"
}

# expect_eq NAME EXPECTED CMD...: CMD exits 0 and prints exactly EXPECTED.
expect_eq() {
    name=$1
    want=$2
    shift 2
    runq "$@"
    [ "$RC" -eq 0 ] && [ "$OUT" = "$want" ] ||
        fail "$name: '$*' printed '$OUT' ($HOW), expected '$want'"
    log "ok $name"
}

# expect_match NAME PATTERN CMD...: CMD exits 0 and its output has a line matching PATTERN
# (grep -E).
expect_match() {
    name=$1
    pattern=$2
    shift 2
    runq "$@"
    [ "$RC" -eq 0 ] && echo "$OUT" | grep -qE -- "$pattern" ||
        fail "$name: '$*' ($HOW) has no line matching '$pattern': $OUT"
    log "ok $name"
}

# wait_until SECS CMD...: retries CMD (quietly) until it succeeds; false after SECS.
wait_until() {
    limit=$1
    shift
    start=$(now)
    while :; do
        timeout 10 "$@" >/dev/null 2>&1 && return 0
        awk -v s="$(since "$start")" -v l="$limit" 'BEGIN { exit !(s >= l) }' && return 1
        sleep 0.2
    done
}

# wait_lines SECS FILE N: until FILE has at least N lines.
wait_lines() {
    wait_until "$1" sh -c "[ \$(wc -l < '$2') -ge $3 ]"
}

# bg CMD...: starts CMD in the background (killed when the scenario ends); pid in BG.
bg() {
    "$@" &
    BG=$!
    XSLAB_PIDS="$XSLAB_PIDS $BG"
}

cleanup_bg() {
    for p in $XSLAB_PIDS; do
        kill "$p" 2>/dev/null
    done
}

# The number of nodes in the whole store (a leak check that works with both daemons).
node_count() {
    timeout "$T" xenstore-ls -f / | wc -l
}

# `nodes bytes` from our daemon's memreport (`nodes: N (B bytes)`); empty with C xenstored.
memreport_nodes() {
    timeout "$T" xenstore-control memreport 2>/dev/null |
        sed -n 's/^nodes: \([0-9]*\) (\([0-9]*\) bytes).*/\1 \2/p'
}

# Destroys every domain but dom0 and the xenstore domain.
destroy_guests() {
    for d in $(timeout 10 xl list 2>/dev/null |
        awk 'NR > 1 && $1 != "Domain-0" && $1 != "Xenstore" { print $1 }'); do
        timeout "$T" xl destroy "$d"
    done
}

# True if xenstore answers dom0 within 10 s.
xenstore_answers() {
    timeout 10 xenstore-read / >/dev/null 2>&1
}

# Everything worth seeing after a failure (every command bounded: xenstore may be stuck).
diagnostics() {
    echo "XSLAB-DIAG begin"
    if xenstore_answers; then
        echo "--- xenstore answers dom0"
    else
        echo "--- xenstore does NOT answer dom0 (a read of / timed out after 10 s)"
    fi
    echo "--- xl list"
    timeout 10 xl list 2>&1
    for f in /var/log/xen/launch-xenstore.out /var/log/xen/init-xenstore-domain.out; do
        [ -s "$f" ] || continue
        echo "--- $f (tail)"
        tail -n 20 "$f"
    done
    echo "--- xenstored output and trace (tail)"
    tail -n 20 /var/log/xen/xenstored.out 2>/dev/null
    tail -n 60 /var/log/xen/xenstored-trace.log 2>/dev/null
    if [ -s /run/xslab-stub-domid ]; then
        stub=$(cat /run/xslab-stub-domid)
        echo "--- xenctx of the xenstore domain $stub"
        timeout 10 xenctx "$stub" 2>&1 | head -n 30
        for i in 1 2 3 4 5; do
            timeout 10 xenctx "$stub" 2>&1 | sed -n 's/^rip: /xenctx sample rip: /p;s/^flags: /  flags: /p'
            sleep 0.3
        done
        echo "--- event channels (xl debug-keys e)"
        timeout 10 xl debug-keys e >/dev/null 2>&1
        timeout 10 xl dmesg 2>&1 | grep -A 40 "Event channel information for domain $stub" | head -n 40
    fi
    echo "--- syslog (tail)"
    tail -n 30 /var/log/messages 2>/dev/null
    for f in /var/log/xen/console/*.log; do
        [ -e "$f" ] || continue
        echo "--- $f (tail)"
        tail -n 30 "$f"
    done
    echo "--- xl dmesg (tail)"
    timeout 10 xl dmesg 2>&1 | tail -n 60
    echo "XSLAB-DIAG end"
}

# Runs /xslab/scenarios/NAME.sh with a time limit and prints its one verdict line.
run_scenario() {
    s=$1
    rm -f /tmp/xslab-verdict
    echo "XSLAB-BEGIN $s"
    t0=$(now)
    XSLAB_SCENARIO=$s timeout "${XSLAB_SCENARIO_TIMEOUT:-300}" sh /xslab/scenarios/"$s".sh
    rc=$?
    if [ -s /tmp/xslab-verdict ]; then
        verdict=$(cat /tmp/xslab-verdict)
    elif [ $rc -eq 143 ]; then
        verdict="FAIL timed out after ${XSLAB_SCENARIO_TIMEOUT:-300} s"
    else
        verdict="FAIL no verdict (exit $rc)"
    fi
    case "$verdict" in
    PASS* | SKIP*) ;;
    *) diagnostics ;;
    esac
    destroy_guests
    killall -q xenstore-watch 2>/dev/null
    echo "XSLAB-VERDICT $s $verdict ($(since "$t0") s)"
}

# Every scenario cleans up its background commands.
if [ -n "$XSLAB_SCENARIO" ]; then
    trap cleanup_bg EXIT
    trap 'cleanup_bg; exit 143' TERM
fi

# guest_wait SECS: until the guest DOMID has written data/result (0), its domain is gone
# (2: it crashed; on_crash and on_reboot are "destroy"), xenstore does not answer within 10 s
# (3) or SECS pass (1).
guest_wait() {
    w0=$(now)
    while :; do
        timeout 10 xenstore-read "/local/domain/$DOMID/data/result" >/dev/null 2>&1
        case $? in
        0) return 0 ;;
        143) return 3 ;;
        esac
        # Exit 1 is xl's "no such domain"; a timeout (143) is not.
        timeout 10 xl list "$DOMID" >/dev/null 2>&1
        [ $? -eq 1 ] && return 2
        awk -v s="$(since "$w0")" -v l="$1" 'BEGIN { exit !(s >= l) }' && return 1
        sleep 0.3
    done
}

# guest_start: creates the lab guest (/xslab/guest.cfg), waits until it reports through
# xenstore and checks what it saw; sets DOMID and BOOT (seconds to the report).
# A guest that dies before it reports is retried once: the Debian kernel very rarely triple
# faults in its early PIT calibration under nested emulation (QEMU TCG), before it ever
# touches xenstore. Each retry is announced and counted in RETRIES.
guest_start() {
    attempt=1
    while :; do
        g0=$(now)
        T=60 check xl-create xl create /xslab/guest.cfg
        DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid xslab-guest: $DOMID"
        # A Linux guest reports after 10-40 s on an idle machine; far later when other
        # QEMUs share its cores.
        guest_wait 300
        case $? in
        0) break ;;
        1) fail "guest $DOMID: no data/result after 300 s" ;;
        3) fail "guest $DOMID: xenstore did not answer a read of its data/result within 10 s" ;;
        esac
        echo "XSLAB-INFO guest $DOMID died before it reported (attempt $attempt):"
        timeout 10 xl dmesg 2>&1 | grep -E "d$DOMID|Dom$DOMID" | tail -n 5
        [ "$attempt" -ge 2 ] && fail "guest $DOMID died before it reported, twice"
        attempt=$((attempt + 1))
        RETRIES=$((${RETRIES:-0} + 1))
    done
    BOOT=$(since "$g0")
    expect_eq guest-result "name=xslab-guest probe=hello" \
        xenstore-read "/local/domain/$DOMID/data/result"
}

# guest_stop: destroys the lab guest and waits until its xenstore home is gone.
guest_stop() {
    T=60 check xl-destroy xl destroy xslab-guest
    wait_until 30 sh -c "! xenstore-exists /local/domain/$DOMID" ||
        fail "/local/domain/$DOMID still there after xl destroy"
}
