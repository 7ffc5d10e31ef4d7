#!/bin/sh
# The stock dom0 clients against the daemon: xenstore-utils, xl, xenstore-control and
# test-xenstore.
. /xslab/lib.sh

check write xenstore-write /tools/a 1 /tools/dir/b "two words"
expect_eq read 1 xenstore-read /tools/a
expect_eq read-2 "two words" xenstore-read /tools/dir/b
expect_match ls-fp '^/tools/dir/b = "two words" +\(n0\)$' xenstore-ls -fp /tools
expect_eq list "$(printf 'a\ndir')" xenstore-list /tools
check exists xenstore-exists /tools/dir/b
check_fails exists-missing xenstore-exists /tools/nothing
check_fails read-missing xenstore-read /tools/nothing
check chmod xenstore-chmod /tools/a n0 r1
expect_match ls-perms '^/tools/a = "1" +\(n0,r1\)$' xenstore-ls -fp /tools
check rm xenstore-rm /tools/dir
check_fails rm-gone xenstore-exists /tools/dir/b

# A watch: the initial event, then one per change at or below the path.
bg xenstore-watch -n 3 /tools/w >/tmp/tools-watch 2>&1
wait_lines 20 /tmp/tools-watch 1 || fail "watch: no initial event: $(cat /tmp/tools-watch)"
check watch-write xenstore-write /tools/w/x 1
check watch-rm xenstore-rm /tools/w
wait_lines 20 /tmp/tools-watch 3 || fail "watch: events missing: $(cat /tmp/tools-watch)"
[ "$(cat /tmp/tools-watch)" = "$(printf '/tools/w\n/tools/w/x\n/tools/w')" ] ||
    fail "watch: events were: $(cat /tmp/tools-watch)"
log "ok watch events"
check rm-tools xenstore-rm /tools

expect_match xl-list '^Domain-0 +0 ' xl list
if [ "$XSLAB_STORE" = stub ]; then
    expect_match xl-list-stub '^Xenstore +[0-9]+ ' xl list
fi

check control-check xenstore-control check
expect_match control-quota '[a-z]+ *: +[0-9]+' xenstore-control quota
check control-quota-soft xenstore-control quota-soft
check control-print xenstore-control print "xslab: hello from the tools scenario"
expect_match control-help 'quota' xenstore-control help

T=240 check test-xenstore test-xenstore
echo "$OUT" | tail -n 5
pass
