#!/busybox/busybox sh
# PID 1 of a `cargo xtask vmtest` VM: records the scenario with lanner-capture and prints what the
# host checks (the probe, capture's log, the spool as base64) between markers on the console.
# /bin holds a real shell (dash) and coreutils; busybox gives the rest.
/busybox/busybox --install -s /busybox
export PATH=/bin:/busybox
mkdir -p /proc /sys /dev /tmp /spool /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /tmp
ip link set lo up
say() { echo "VMTEST $*"; }
section() { echo "VMTEST-BEGIN $1"; cat "$2"; echo "VMTEST-END $1"; }
finish() { sync; poweroff -f; }
say kernel "$(uname -r)"

lanner-capture --probe > /tmp/probe.txt 2>&1
say probe-exit $?
section probe /tmp/probe.txt

# Waiting for capture runs no program (shell builtins and a FIFO as the clock), so no exec races
# with the programs being attached.
mkfifo /tmp/tick
tick() { read -t 0.1 _ <> /tmp/tick; }
started() {
    while IFS= read -r l; do case "$l" in *"recording to"*) return 0 ;; esac; done < /tmp/capture.log
    return 1
}
RUST_LOG=info lanner-capture --spool /spool --chunk-interval 200ms --duration 10m 2> /tmp/capture.log &
CAP=$!
i=0
until started; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $CAP 2>/dev/null; then
        say capture-did-not-start
        section capture /tmp/capture.log
        finish
    fi
    tick
done
say recording

# The seed's three threats, from a real shell (busybox's own `sh` would run its applets in-process;
# `exit 0` keeps dash from exec'ing the last command in its own process).
/bin/sh -c 'cat /etc/shadow > /dev/null; touch /etc/badconfigfile; mkdir /bin/dangerousfolder; exit 0'
# An exec storm of short-lived processes from a parent with its own name.
/bin/stormer -c 'i=0; while [ $i -lt 40 ]; do /bin/true storm-$i; i=$((i + 1)); done'
# rename, unlink and mkdir.
mkdir /tmp/vmtest-dir
echo x > /tmp/vmtest-dir/a
mv /tmp/vmtest-dir/a /tmp/vmtest-dir/b
rm /tmp/vmtest-dir/b
# A TCP connect to a listener on loopback.
nc -l -p 7777 > /dev/null &
NC=$!
i=0
until netstat -ltn | grep -q ':7777 ' || [ $i -gt 100 ]; do i=$((i + 1)); sleep 0.1; done
echo hello | nc 127.0.0.1 7777
sleep 0.2
kill $NC 2>/dev/null
# Task facts: an environment, a new pid namespace, the executable's inode (read here too).
LANNER_VM_ENV=matrix /bin/sh -c 'exit 0' task-facts
unshare -p -f /bin/sh -c 'exit 0' pid-namespace
say sh-inode "$(stat -c %i /bin/sh)"
# Datagrams from an unconnected UDP socket to two addresses, then a connect and a plain send.
/udpsend
say udpsend-exit $?
# A static 32-bit program's exec and open.
/x32 /etc/hostname
say x32-exit $?
sleep 0.7

kill -INT $CAP
wait $CAP
say capture-exit $?
section capture /tmp/capture.log
tar -C /spool -cf /tmp/spool.tar .
echo "VMTEST-BEGIN spool"
base64 /tmp/spool.tar
echo "VMTEST-END spool"
say done
finish
