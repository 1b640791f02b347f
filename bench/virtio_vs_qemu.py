#!/usr/bin/env python3
"""virtio I/O of Strata's soft engine beside qemu-system-x86_64 -accel tcg, same guest, same images.

Usage: bench/virtio_vs_qemu.py STRATA_BINARY IOBENCH KERNEL INITRD [--runs N] [--no-net]

IOBENCH is bench/guest/iobench.c built static (the `iobench` target of a build with
-DSTRATA_BENCH=ON); it is added to a copy of INITRD as /bin/iobench (a second cpio archive after
the first: the kernel unpacks both). Each run boots one VMM with a 256 MiB raw disk image of random
bytes (virtio-blk: Strata --disk, QEMU -drive if=virtio,format=raw with its default cache) and user
networking (Strata --net user, QEMU -netdev user with virtio-net-pci), types at the shell:
  iobench seqread  /dev/vda 128        1 MiB O_DIRECT reads of the first 128 MiB      -> MB/s
  iobench seqwrite /dev/vda 64 160     1 MiB O_DIRECT writes at 160 MiB, fdatasync    -> MB/s
  iobench randread /dev/vda 5          4 KiB O_DIRECT random reads for 5 s, QD 1      -> IOPS
  iobench httpget 10.0.2.2 PORT /blob  64 MiB from an HTTP server this script runs on
                                       the host's 127.0.0.1, through slirp            -> MB/s
and powers off. Each number is the guest's own timing (CLOCK_MONOTONIC around the transfer); the
table gives the median over --runs and the ratio Strata / QEMU (above 1: Strata is faster).
Both VMMs run one vCPU and 512 MiB. The image's pages are in the host's page cache for both (it is
written just before), so the disk numbers measure the virtual I/O path, not the host's disk.
"""
import argparse
import functools
import http.server
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

APPEND = "console=ttyS0 panic=-1 quiet"
METRICS = (("seqread", "sequential read (MB/s)"), ("seqwrite", "sequential write (MB/s)"),
           ("randread", "4 KiB random read (IOPS)"), ("httpget", "slirp download (MB/s)"))


def commands(port):
    return ("iobench seqread /dev/vda 128; iobench seqwrite /dev/vda 64 160; iobench randread /dev/vda 5; "
            f"iobench httpget 10.0.2.2 {port} /blob; echo bench-$((40 + 2))-done\n"
            "poweroff -f\n")


def initrd_with_iobench(initrd, iobench, directory):
    stage = os.path.join(directory, "stage")
    os.makedirs(os.path.join(stage, "bin"))
    shutil.copy(iobench, os.path.join(stage, "bin", "iobench"))
    extra = subprocess.run("find bin | cpio -o -H newc -R 0:0 --quiet | gzip -9", shell=True, cwd=stage,
                           check=True, capture_output=True).stdout
    combined = os.path.join(directory, "initrd-iobench.cpio.gz")
    with open(combined, "wb") as out, open(initrd, "rb") as base:
        out.write(base.read())
        out.write(extra)
    return combined


def random_file(path, mib):
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))
        # Written back before the VMM starts: otherwise the guest's first flush pays for the host
        # writing back this file's dirty pages, for whichever VMM boots before the host's flusher
        # has done so (dirty_expire_centisecs, 30 s) and not for the slower one.
        out.flush()
        os.fsync(out.fileno())


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def vmm_command(vmm, args, initrd, disk):
    if vmm == "strata":
        command = [args.strata, "run", "--accel", "soft", "--memory", "512M", "--kernel", args.kernel,
                   "--initrd", initrd, "--cmdline", APPEND, "--disk", disk]
        return command + ([] if args.no_net else ["--net", "user"])
    command = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
               "-kernel", args.kernel, "-initrd", initrd, "-append", APPEND,
               "-drive", f"file={disk},if=virtio,format=raw"]
    return command + ([] if args.no_net else ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"])


def one_run(vmm, args, initrd, disk, port):
    p = subprocess.Popen(vmm_command(vmm, args, initrd, disk), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, typed, start = b"", False, time.monotonic()
    # Typed once the shell prompts: QEMU's serial drops input its UART is not ready for.
    while p.poll() is None and time.monotonic() - start < 900:
        ready, _, _ = select.select([p.stdout], [], [], 1)
        if not ready:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
        if not typed and b"guest:/# " in out:
            p.stdin.write(commands(port).encode())
            p.stdin.flush()
            typed = True
    if p.poll() is None:
        p.kill()
    p.wait()
    text = out.decode(errors="replace")
    if "bench-42-done" not in text:
        sys.exit(f"{vmm}: the guest did not finish:\n{text[-3000:]}\n{p.stderr.read().decode(errors='replace')}")
    found = {}
    for key, _ in METRICS:
        match = re.search(rf"^iobench {key} ([0-9.]+)", text, re.M)
        if match:
            found[key] = float(match.group(1))
        else:
            print(f"{vmm}: no {key} result:", *re.findall(rf".*iobench.*{key}.*", text), sep="\n  ", file=sys.stderr)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("strata")
    parser.add_argument("iobench")
    parser.add_argument("kernel")
    parser.add_argument("initrd")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-net", action="store_true", help="no network device and no slirp download")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="strata-bench-") as directory:
        initrd = initrd_with_iobench(args.initrd, args.iobench, directory)
        web = os.path.join(directory, "web")
        os.makedirs(web)
        random_file(os.path.join(web, "blob"), 64)
        server = serve(web)
        port = server.server_address[1]
        results = {}
        for vmm in ("strata", "qemu-tcg"):
            runs = []
            for _ in range(args.runs):
                disk = os.path.join(directory, "disk.img")
                random_file(disk, 256)  # fresh for each run, and in the host's page cache
                runs.append(one_run(vmm, args, initrd, disk, port))
            results[vmm] = {key: statistics.median(r[key] for r in runs) if all(key in r for r in runs) else None
                            for key, _ in METRICS}
        server.shutdown()

    s, q = results["strata"], results["qemu-tcg"]
    print(f"guest: {os.path.basename(args.kernel)}, 1 vCPU, 512 MiB; disk: 256 MiB raw; median of {args.runs} runs")
    print(f"{'':28} {'strata soft':>12} {'qemu tcg':>12} {'strata/qemu':>12}")
    for key, label in METRICS:
        cell = lambda v: f"{v:12.1f}" if v is not None else f"{'n/a':>12}"
        ratio = f"{s[key] / q[key]:12.2f}" if s[key] and q[key] else f"{'n/a':>12}"
        print(f"{label:28} {cell(s[key])} {cell(q[key])} {ratio}")


if __name__ == "__main__":
    main()
