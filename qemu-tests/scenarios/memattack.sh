#!/bin/sh
# Four guests fill their quotas with 2000-byte values at the same time (within C xenstored's
# default quotas, together more than the 8 MiB stub domain holds). The stub stays up; each
# guest is refused (ENOSPC at its node quota, or ENOMEM when the domain's memory reaches the
# guests' floor); dom0's reads and writes keep working throughout; after the guests are
# destroyed the heap is back to within 1% of where it started and writes work again.
. /xslab/lib.sh
P=/xslab/xsprobe
N=4
heap_used() { xenstore-control memreport | sed -n 's/^heap: \([0-9]*\) bytes used.*/\1/p'; }
nodes0=$(node_count)
used0=$(heap_used)
sed 's/^cmdline = "\(.*\)"/cmdline = "\1 xslab=memattack"/; s/^name = .*/name = "xslab-attack-NN"/' \
    /xslab/guest.cfg > /tmp/ma-template.cfg
grep -q "xslab=memattack" /tmp/ma-template.cfg || fail "cannot make the attackers' config"
# One after the other: Linux guests booting at the same time under TCG crashed (three of
# four in one run); each waits at data/go, so the attack itself starts at once for all.
doms=""
i=1
while [ $i -le $N ]; do
    sed "s/NN/$i/" /tmp/ma-template.cfg > /tmp/ma-$i.cfg
    T=60 check "xl-create-$i" xl create /tmp/ma-$i.cfg
    d=$(timeout 20 xl domid "xslab-attack-$i") || fail "xl domid xslab-attack-$i: $d"
    wait_until 300 xenstore-exists "/local/domain/$d/data/attack-ready" ||
        fail "attacker $d did not come up"
    doms="$doms $d"
    i=$((i + 1))
done
rm -f /tmp/ma-stop
# dom0 reads every 20 ms: back-to-back reads took much of the emulated CPU from the attackers.
bg $P loop --path /tool --until-file /tmp/ma-stop --duration-ms 1200000 --interval-ms 20 \
    >/tmp/ma-loop 2>/tmp/ma-loop.err
LOOP=$BG
for d in $doms; do check "go-$d" xenstore-write "/local/domain/$d/data/go" 1; done
# dom0 writes and reads while the attack runs. Four Linux guests writing 2000-byte values
# through 1 KiB rings on one emulated CPU: about 6 writes/s in all on a loaded host, so the
# attackers get 900 s together (the scenario limit is 1500 s).
k=0
read -r go_at _ </proc/uptime
for d in $doms; do
    read -r t _ </proc/uptime
    left=$((900 - ${t%.*} + ${go_at%.*}))
    [ $left -gt 10 ] || left=10
    wait_until $left sh -c "xenstore-read /local/domain/$d/data/attack-result | grep -q acked=" ||
        fail "attacker $d did not finish: $(xenstore-read /local/domain/$d/data/attack-result 2>&1 | head -c 100)"
    k=$((k + 1))
    check "dom0-write-$k" xenstore-write /memattack/dom0/$k "written while attacked"
    expect_eq "dom0-read-$k" "written while attacked" xenstore-read /memattack/dom0/$k
done
touch /tmp/ma-stop
wait "$LOOP" || fail "dom0's read loop saw errors: $(cat /tmp/ma-loop) $(head -c 200 /tmp/ma-loop.err)"
loop=$(cat /tmp/ma-loop)
got=""
for d in $doms; do
    r=$(xenstore-read "/local/domain/$d/data/attack-result")
    log "attacker $d: $r"
    echo "$r" | grep -q " errors=0 " || fail "attacker $d saw other errors than a refusal: $r"
    echo "$r" | grep -Eq "refused=(ENOSPC|ENOMEM)" || fail "attacker $d was not refused with ENOSPC/ENOMEM: $r"
    got="$got $(echo "$r" | sed -n 's/.*acked=\([0-9]*\).*refused=\([A-Z]*\).*/\1:\2/p')"
done
runq xenstore-control memreport
log "memreport under attack: $(echo "$OUT" | tr '\n' ' ')"
used1=$(heap_used)
timeout 10 xl dmesg > /tmp/ma-dmesg 2>&1
grep -a "PANIC\|memory allocation of" /tmp/ma-dmesg && fail "the stub hit its last resort"
lines=$(grep -ac "limit .* hit" /tmp/ma-dmesg)
grep -a "limit .* hit" /tmp/ma-dmesg | tail -n 4
for d in $doms; do T=60 check "xl-destroy-$d" xl destroy "$d"; done
for d in $doms; do
    wait_until 30 sh -c "! xenstore-exists /local/domain/$d" || fail "/local/domain/$d still there"
done
check rm xenstore-rm /memattack
used2=$(heap_used)
nodes2=$(node_count)
log "heap used: $used0 before, $used1 under attack, $used2 after; nodes $nodes0 -> $nodes2"
[ "$nodes2" -le $((nodes0 + 2)) ] || fail "nodes: $nodes0 -> $nodes2"
if [ -n "$used0" ]; then
    # Within 1% of the heap's size (the slabs keep partly used chunks: a page or two).
    size=$(xenstore-control memreport | sed -n 's/^heap: \([0-9]*\) bytes used, \([0-9]*\) bytes free.*/\1 \2/p' | awk '{ print $1 + $2 }')
    [ "$used2" -le $((used0 + size / 100)) ] || fail "heap used $used0 -> $used2 (size $size)"
fi
check write-after xenstore-write /memattack/after ok
check rm-after xenstore-rm /memattack
pass "attackers(acked:refused)=$(echo $got | tr ' ' ',') dom0_loop='$loop' limit_lines=$lines heap=$used0->$used1->$used2"
