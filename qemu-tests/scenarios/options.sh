#!/bin/sh
# C xenstored's limit options on the stub domain's command line, as an administrator passes
# them (init-xenstore-domain --param, XENSTORE_DOMAIN_ARGS): the suite's direct boot starts
# the stub with OPTIONS below (xtask's DIRECT_PARAM). Checked: `xenstore-control quota` and
# `quota-soft` show what they set, a malformed one (-S bogus) leaves its default, C 4.18's
# quota name (node-permissions) works with `quota set`, the stub's log names every option
# (taken, refused, or inert), and after a live update the quotas, the one changed at run time
# included, are still in force.
. /xslab/lib.sh
OPTIONS="-E 3000 --transaction=20 -W 256 -Q node-permissions=8 --quota-soft memory=3000000 \
-w watch-event=30 --no-fork -K -S bogus"
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
[ "$XSLAB_STUB_PARAM" = "$OPTIONS" ] ||
    skip "needs XSLAB_STUB_PARAM='$OPTIONS' (the suite's direct boot), not '$XSLAB_STUB_PARAM'"

# quota_is NAME VALUE: `xenstore-control quota` lists NAME with VALUE.
quota_is() {
    runq xenstore-control quota
    [ "$RC" -eq 0 ] || fail "xenstore-control quota ($HOW): $OUT"
    got=$(echo "$OUT" | awk -v n="$1" '$1 == n && $2 == ":" { print $3 }')
    [ "$got" = "$2" ] || fail "quota $1 is '$got', not $2: $OUT"
}
# The permissions quota's name in the listing: C xenstored's of this Xen (4.18 renamed it).
case "$XSLAB_XEN" in
4.17) PERMS=permissions ;;
*) PERMS=node-permissions ;;
esac
check_all() {
    quota_is nodes 3000
    quota_is transactions 20
    quota_is watches 256
    quota_is "$PERMS" "$1"
    quota_is node-size 2048
    quota_is outstanding 20
    expect_match "soft-memory-$2" '^memory +: +3000000 ' xenstore-control quota-soft
    log "ok quotas as the command line set them ($2)"
}
check_all 8 boot

# The stub's log: each option and what became of it.
lines=$(stub_lines)
for want in "option \`-E 3000\`: quota nodes = 3000" \
    "option \`--transaction=20\`: quota transactions = 20" \
    "option \`-Q node-permissions=8\`: quota permissions = 8" \
    "option \`--quota-soft memory=3000000\`: soft quota memory = 3000000" \
    "option \`-w watch-event=30\`: watch-event timeout = 30 s" \
    "option \`--no-fork\`: nothing to do in a stub domain" \
    "option \`-K\` ignored: not supported" \
    "option \`-S bogus\` ignored: \`bogus\` is not a number"; do
    echo "$lines" | grep -qF -- "$want" || fail "the stub's log has no '$want': $(echo "$lines" | grep option)"
done
log "ok the stub's log names every option"

# C 4.18's name for the permissions quota, at run time.
check quota-set xenstore-control quota set node-permissions 6
quota_is "$PERMS" 6
check_all 6 set

# A live update keeps them (the state carries the quotas, the run-time one included).
[ -e /xslab/xsstub-b ] || fail "no /xslab/xsstub-b for the live update"
T=120 check live-update xenstore-control live-update /xslab/xsstub-b
check_all 6 updated
T=120 check live-update-back xenstore-control live-update /xslab/xsstub
check quota-set-back xenstore-control quota set node-permissions 8
check_all 8 back
pass "quotas set from the command line, logged, kept through two live updates"
