#!/usr/bin/env python3
"""Snapshot and restore of Strata beside QEMU, same guest, in the same run.

Usage: bench/snapshot_vs_qemu.py STRATA_BINARY KERNEL INITRD [--runs N] [--memory 512M]

Each VMM boots KERNEL with INITRD (the default guest: scripts/fetch-guest) to its shell with
MEMORY of RAM and one vCPU, then takes two snapshots of it, one while the VM runs on (RAM written
in the background, the VM stopped only while its state is taken) and one with the VM paused
throughout, and restores the first (Strata) or the second (QEMU, whose loaded VM stays as the
saved one was: paused, then cont):
  Strata:  strata run --accel soft --api-socket S ...;  strata snapshot --api-socket S DIR1
           (--mode auto: background); strata snapshot --api-socket S DIR2 --mode paused;
           strata restore DIR1 --accel soft
  QEMU:    qemu-system-x86_64 -accel tcg ... with an HMP monitor on a Unix socket; max-bandwidth
           lifted; migrate_set_capability background-snapshot on, migrate -d "exec:cat > FILE1";
           the capability off, stop, migrate -d "exec:cat > FILE2" (QEMU's snapshot to a file:
           savevm needs a qcow2 disk); the same command line with -incoming "exec:cat FILE2", cont
and measures
  snapshot time    from the request to the VMM saying it is written (Strata: strata snapshot's
                   wall time; QEMU: from "migrate" (or "stop") to "info migrate" reporting
                   completed and the file fsync'd, as Strata's are before it answers)
  paused for it    how long the VM's vCPUs stood still for the background snapshot (Strata: the
                   answer's paused_ms, which strata snapshot prints; QEMU: info migrate's downtime)
  snapshot size    the bytes the snapshot takes on disk (allocated blocks: Strata's RAM file is
                   sparse) and, beside it, its apparent size
  restore, to running   Strata: from the restore's start to its vCPUs running, as the restored VM
                   reports it (strata info: restore.to_running_ms); QEMU: from starting the
                   process to "cont" being accepted once "info status" no longer says inmigrate
                   (the saved VM was stopped, so QEMU leaves the loaded one paused)
  restore, to shell     from starting the restoring process to the shell's answer to a command
                   typed at once (echo): what a user waits for, process start-up included
The table gives the median over --runs. Targets (issue 9): Strata's restore to running under 50 ms,
and Strata faster than QEMU on snapshot and restore.
"""
import argparse
import json
import re
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

APPEND = "console=ttyS0 panic=-1 quiet"
PROMPT = b"Exit the shell to power off."


def read_until(p, needle, out, limit):
    start = time.monotonic()
    while needle not in out:
        if p.poll() is not None or time.monotonic() - start > limit:
            raise SystemExit(f"waited {limit} s for {needle!r}:\n{out[-3000:].decode(errors='replace')}")
        ready, _, _ = select.select([p.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    return out


def disk_usage(path):
    allocated = apparent = 0
    for root, _, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [os.path.basename(path)])]:
        for name in files:
            st = os.stat(os.path.join(root, name))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def boot(command):
    p = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = read_until(p, PROMPT, b"", 600)
    # Settle: the guest's last start-up work (the power button watcher, the shell) is done.
    time.sleep(2)
    p.stdin.write(b"echo booted-$((40+2))\n")
    p.stdin.flush()
    read_until(p, b"booted-42", out, 60)
    return p


def restore_to_shell(command, started=None):
    """Starts the restoring VMM, types a command at once, waits for its answer. started(start), if
    given, is called after the process starts and returns the restore-to-running time in ms."""
    start = time.monotonic()
    p = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    running_ms = started(start) if started else None
    p.stdin.write(b"echo restored-$((40+2))\n")
    p.stdin.flush()
    read_until(p, b"restored-42", b"", 120)
    return p, (time.monotonic() - start) * 1000, running_ms


def strata_snapshot(args, sock, snap, mode):
    """strata snapshot's wall time (ms) and the pause it reports (ms)."""
    start = time.monotonic()
    done = subprocess.run([args.strata, "snapshot", "--api-socket", sock, snap, "--mode", mode], check=True,
                          capture_output=True, text=True)
    took_ms = (time.monotonic() - start) * 1000
    paused = re.search(r"the VM was paused for ([0-9.]+) ms", done.stdout)
    if mode == "background" and "(its RAM was written while it ran)" not in done.stdout:
        raise SystemExit(f"strata snapshot did not write in the background: {done.stdout}{done.stderr}")
    return took_ms, float(paused.group(1)) if paused else None


def strata_run(args, work):
    sock = os.path.join(work, "strata.sock")
    snap = os.path.join(work, "strata-snap")
    p = boot([args.strata, "run", "--accel", "soft", "--memory", args.memory, "--kernel", args.kernel, "--initrd",
              args.initrd, "--cmdline", APPEND, "--api-socket", sock])
    background_ms, background_paused_ms = strata_snapshot(args, sock, snap, "background")
    paused_ms, _ = strata_snapshot(args, sock, snap + "-paused", "paused")
    subprocess.run(["rm", "-rf", snap + "-paused"])
    p.kill()
    p.wait()
    allocated, apparent = disk_usage(snap)
    rsock = os.path.join(work, "restored.sock")
    r, shell_ms, _ = restore_to_shell([args.strata, "restore", snap, "--accel", "soft", "--api-socket", rsock])
    info = json.loads(subprocess.run([args.strata, "info", "--api-socket", rsock], check=True,
                                     capture_output=True).stdout)
    running_ms = info.get("restore", {}).get("to_running_ms")
    r.kill()
    r.wait()
    subprocess.run(["rm", "-rf", snap])
    return {"background_ms": background_ms, "background_paused_ms": background_paused_ms, "paused_ms": paused_ms,
            "allocated": allocated, "apparent": apparent, "running_ms": running_ms, "shell_ms": shell_ms}


def hmp(path, command, wait_for=None, limit=300):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.settimeout(limit)
        data = b""
        while b"(qemu)" not in data:
            data += s.recv(65536)
        s.sendall(command.encode() + b"\n")
        data = b""
        while data.count(b"(qemu)") < 1:
            data += s.recv(65536)
        return data.decode(errors="replace")


def qemu_command(args, monitor, extra):
    return ["qemu-system-x86_64", "-accel", "tcg", "-m", args.memory.rstrip("M"), "-nodefaults", "-display", "none",
            "-serial", "stdio", "-no-reboot", "-kernel", args.kernel, "-initrd", args.initrd, "-append", APPEND,
            "-monitor", f"unix:{monitor},server=on,wait=off"] + extra


def qemu_migrate(monitor, image):
    """Migrates to `image` and waits for the end; returns info migrate's last answer."""
    # -d: HMP's migrate without it only notices the end on a one-second timer.
    hmp(monitor, f'migrate -d "exec:cat > {image}"')
    while True:
        status = hmp(monitor, "info migrate")
        if "Migration status: completed" in status:
            break
        if "Migration status: failed" in status or "Migration status: cancelled" in status:
            raise SystemExit(f"QEMU's migration to {image} failed:\n{status}")
        time.sleep(0.005)
    # Strata's snapshot is on disk when it says so (fsync); make QEMU's file as durable.
    fd = os.open(image, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return status


def qemu_run(args, work):
    monitor = os.path.join(work, "qemu.monitor")
    image = os.path.join(work, "qemu.state")
    p = boot(qemu_command(args, monitor, []))
    # QEMU limits a migration's bandwidth (128 MiB/s by default): lift it, a file is not a network.
    hmp(monitor, "migrate_set_parameter max-bandwidth 100G")
    hmp(monitor, "migrate_set_capability background-snapshot on")
    start = time.monotonic()
    status = qemu_migrate(monitor, image + "-background")
    background_ms = (time.monotonic() - start) * 1000
    downtime = re.search(r"downtime: ([0-9]+) ms", status)
    os.unlink(image + "-background")
    hmp(monitor, "migrate_set_capability background-snapshot off")
    start = time.monotonic()
    hmp(monitor, "stop")
    qemu_migrate(monitor, image)
    paused_ms = (time.monotonic() - start) * 1000
    p.kill()
    p.wait()
    allocated, apparent = disk_usage(image)
    monitor2 = os.path.join(work, "qemu2.monitor")

    def started(start):
        # The source was stopped before it was saved, so the incoming VM stays paused once it is
        # loaded: wait for the load to end, then "cont" — running from there.
        while not os.path.exists(monitor2):
            if time.monotonic() - start > 120:
                raise SystemExit("the restoring QEMU made no monitor socket within 120 s")
            time.sleep(0.001)
        status = ""
        while True:
            if time.monotonic() - start > 120:
                raise SystemExit(f"the restoring QEMU did not finish loading within 120 s: {status}")
            status = hmp(monitor2, "info status")
            if "inmigrate" not in status and "paused" in status:
                break
            time.sleep(0.001)
        hmp(monitor2, "cont")
        return (time.monotonic() - start) * 1000

    r, shell_ms, running_ms = restore_to_shell(qemu_command(args, monitor2, ["-incoming", f"exec:cat {image}"]),
                                               started)
    r.kill()
    r.wait()
    os.unlink(image)
    return {"background_ms": background_ms, "background_paused_ms": float(downtime.group(1)) if downtime else None,
            "paused_ms": paused_ms, "allocated": allocated, "apparent": apparent, "running_ms": running_ms,
            "shell_ms": shell_ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("strata")
    parser.add_argument("kernel")
    parser.add_argument("initrd")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory", default="512M")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="strata-snapbench-") as work:
        for vmm, run in (("strata", strata_run), ("qemu", qemu_run)):
            # Each run in its own folder: a killed VMM leaves its sockets behind.
            runs = [run(args, tempfile.mkdtemp(dir=work)) for _ in range(args.runs)]
            results[vmm] = {key: (statistics.median(r[key] for r in runs) if all(r[key] is not None for r in runs)
                                  else None) for key in runs[0]}
    s, q = results["strata"], results["qemu"]
    mib = lambda b: b / (1 << 20)
    print(f"guest: {os.path.basename(args.kernel)} to its shell, 1 vCPU, {args.memory}; median of {args.runs} runs")
    print(f"{'':32} {'strata soft':>12} {'qemu tcg':>12} {'qemu/strata':>12}")
    rows = (("snapshot, VM running on (ms)", "background_ms", float),
            ("  of which the VM paused (ms)", "background_paused_ms", float),
            ("snapshot, VM paused (ms)", "paused_ms", float), ("snapshot on disk (MiB)", "allocated", mib),
            ("snapshot apparent size (MiB)", "apparent", mib), ("restore to running (ms)", "running_ms", float),
            ("restore to shell answer (ms)", "shell_ms", float))
    for label, key, conv in rows:
        cell = lambda v: f"{conv(v):12.1f}" if v is not None else f"{'n/a':>12}"
        ratio = f"{q[key] / s[key]:12.2f}" if s[key] and q[key] else f"{'n/a':>12}"
        print(f"{label:32} {cell(s[key])} {cell(q[key])} {ratio}")


if __name__ == "__main__":
    sys.exit(main())
