#!/usr/bin/env python3
"""Strata's soft engine beside qemu-system-x86_64 -accel tcg on the same kernel and initramfs.

Usage: bench/soft_vs_tcg.py STRATA_BINARY KERNEL INITRD [--cpus N] [--runs N]

Each run boots the guest, types commands at its shell prompt and times, from exec:
  marker    the line the shell prints for our first command
  workload  a CPU-bound job: sha256sum of 64 MiB from /dev/zero, and 300 fork/exec of /bin/true
  poweroff  the process exiting after `poweroff -f`
Then, in a separate boot per VMM, the host CPU an idle guest uses over 10 s at its shell prompt
and the peak RSS (VmHWM) of the VMM process. The table gives the median over --runs.
Use an optimized Strata build (Release or RelWithDebInfo). Strata's count of guest instructions
comes from STRATA_SOFT_STATS=1 (printed on stderr at exit).
"""
import argparse
import os
import re
import select
import statistics
import subprocess
import sys
import time

COMMANDS = (
    "echo bench-userspace-marker\n"
    "dd if=/dev/zero bs=1M count=64 2>/dev/null | sha256sum\n"
    "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done; echo bench-workload-done\n"
    "poweroff -f\n"
)
APPEND = "console=ttyS0 panic=-1"


def vmm_command(vmm, args):
    if vmm == "strata":
        return [args.strata, "run", "--accel", "soft", "--memory", "256M", "--cpus", str(args.cpus),
                "--kernel", args.kernel, "--initrd", args.initrd, "--cmdline", APPEND]
    return ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", str(args.cpus), "-nographic",
            "-no-reboot", "-kernel", args.kernel, "-initrd", args.initrd, "-append", APPEND]


def timed_boot(vmm, args):
    env = dict(os.environ, STRATA_SOFT_STATS="1")
    start = time.monotonic()
    p = subprocess.Popen(vmm_command(vmm, args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    # The commands go in once the shell prompts: QEMU's serial drops input the guest's UART is not
    # ready for (Strata holds it), and both VMMs must get the same.
    out, marks, typed = b"", {}, False
    while p.poll() is None:
        ready, _, _ = select.select([p.stdout], [], [], 1)
        if ready:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
            now = time.monotonic() - start
            if not typed and b"guest:/# " in out:
                p.stdin.write(COMMANDS.encode())
                p.stdin.flush()
                typed = True
            if b"\nbench-userspace-marker" in out and "marker" not in marks:
                marks["marker"] = now
            if b"\nbench-workload-done" in out and "workload" not in marks:
                marks["workload"] = now
        if time.monotonic() - start > 600:
            p.kill()
    p.wait()
    marks["poweroff"] = time.monotonic() - start
    err = p.stderr.read().decode(errors="replace")
    instructions = sum(int(n) for n in re.findall(r"instructions=(\d+)", err))
    marks["instructions"] = instructions
    if "workload" not in marks:
        sys.exit(f"{vmm}: the guest did not finish the workload:\n{out.decode(errors='replace')[-2000:]}\n{err}")
    return marks


def idle_cpu_and_rss(vmm, args):
    p = subprocess.Popen(vmm_command(vmm, args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    out = b""
    while b"guest:/# " not in out:
        out += os.read(p.stdout.fileno(), 65536)
    time.sleep(2)

    def cpu_seconds():
        fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu_seconds()
    time.sleep(10)
    idle = cpu_seconds() - before
    hwm = int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1)) // 1024
    p.kill()
    p.wait()
    return idle, hwm


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("strata")
    parser.add_argument("kernel")
    parser.add_argument("initrd")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    rows = {}
    for vmm in ("strata", "qemu-tcg"):
        runs = [timed_boot(vmm, args) for _ in range(args.runs)]
        idle, hwm = idle_cpu_and_rss(vmm, args)
        rows[vmm] = {k: statistics.median(r[k] for r in runs) for k in ("marker", "workload", "poweroff", "instructions")}
        rows[vmm]["idle"], rows[vmm]["hwm"] = idle, hwm

    s, q = rows["strata"], rows["qemu-tcg"]
    print(f"guest: {os.path.basename(args.kernel)} + {os.path.basename(args.initrd)}, {args.cpus} vCPU(s), "
          f"256 MiB, median of {args.runs} runs")
    print(f"{'':34} {'strata soft':>12} {'qemu tcg':>12} {'ratio':>7}")
    for key, label in (("marker", "exec → userspace marker (s)"), ("workload", "exec → workload done (s)"),
                       ("poweroff", "exec → power-off (s)")):
        print(f"{label:34} {s[key]:12.2f} {q[key]:12.2f} {s[key] / q[key]:7.2f}")
    if s["instructions"]:
        print(f"{'guest instructions (whole run)':34} {s['instructions'] / 1e9:11.2f}G {'-':>12}")
        print(f"{'guest MIPS (whole run)':34} {s['instructions'] / s['poweroff'] / 1e6:12.0f} {'-':>12}")
    print(f"{'host CPU of an idle guest, 10 s':34} {s['idle']:11.2f}s {q['idle']:11.2f}s")
    print(f"{'peak RSS (VmHWM, MiB)':34} {s['hwm']:12d} {q['hwm']:12d}")


if __name__ == "__main__":
    main()
