#!/bin/sh
# A guest that writes garbage ring indices (XSA-38) loses only its own connection: its ring's
# error field is set, dom0 keeps being served, and a guest started afterwards works.
# The misbehaving guest is the stub image's fault-injection build (the shipped image has no
# test guest), booted by xl with a test command line.
. /xslab/lib.sh
[ -e /xslab/xsstub-fault ] || fail "no /xslab/xsstub-fault (cargo xtask lab builds it)"

cat >/tmp/badring.cfg <<CFG
name = "xslab-badring"
type = "pvh"
kernel = "/xslab/xsstub-fault"
cmdline = "xsstub-test-guest=garbage-ring"
memory = 16
vcpus = 1
on_crash = "destroy"
CFG

T=60 check xl-create-bad xl create /tmp/badring.cfg
BAD=$(timeout 20 xl domid xslab-badring) || fail "xl domid xslab-badring: $BAD"
testguest_lines() { xl dmesg | grep -a "(d$BAD) XSSTUB-TESTGUEST" | tr -d '\r'; }
wait_until 60 sh -c "xl dmesg | grep -aq '(d$BAD) XSSTUB-TESTGUEST ring error'" ||
    fail "the test guest reported nothing: $(testguest_lines)"
testguest_lines
testguest_lines | grep -q "XSSTUB-TESTGUEST name xslab-badring" ||
    fail "the test guest could not read its name before misbehaving: $(testguest_lines)"
testguest_lines | grep -q "XSSTUB-TESTGUEST ring error field 2" ||
    fail "its ring's error field is not XENSTORE_ERROR_RINGIDX: $(testguest_lines)"
log "ok the misbehaving guest's ring carries error 2"

# Nobody else notices: dom0's clients and a new guest are served.
check dom0-write xenstore-write /badring/after ok
expect_eq dom0-read ok xenstore-read /badring/after
expect_match dom0-list-bad "^xslab-badring" sh -c "xl list | grep xslab-badring"
guest_start
log "a new guest ($DOMID) works next to the broken one (boot $BOOT s)"
guest_stop

T=60 check xl-destroy-bad xl destroy xslab-badring
wait_until 30 sh -c "! xenstore-exists /local/domain/$BAD" ||
    fail "/local/domain/$BAD still there after xl destroy"
check rm-badring xenstore-rm /badring
pass "baddomid=$BAD"
