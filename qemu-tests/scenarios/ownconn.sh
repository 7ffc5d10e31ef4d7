#!/bin/sh
# The stub domain's own xenstore connection (Xen 4.19+: init-xenstore-domain gives it a
# xenstore event channel whose remote end is itself, and the ring at HVM_PARAM_STORE_PFN).
# At boot the stub sent a request to itself through that ring as a client does and checked
# the reply; its console line says how it went. Xen 4.17 gives it no such channel.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
stub=$(stub_domid)
[ -n "$stub" ] || fail "no /tool/xenstored/domid"
runq xl dmesg
line=$(echo "$OUT" | grep -a "(d$stub) xsstub: own connection" | tr -d '\r' | tail -n 1)
[ -n "$line" ] || fail "the stub logged no 'own connection' line"
log "$line"
case "$line" in
*"own connection: none"*)
    [ "$XSLAB_XEN" = 4.17 ] ||
        fail "Xen $XSLAB_XEN gives the xenstore domain its own event channel, the stub saw none: $line"
    skip "Xen $XSLAB_XEN gives the xenstore domain no xenstore connection of its own"
    ;;
*" ok"*) ;;
*) fail "$line" ;;
esac
[ "$XSLAB_XEN" != 4.17 ] || fail "Xen 4.17 has no such channel, yet: $line"
pass "$(echo "$line" | sed 's/.*own connection: //')"
