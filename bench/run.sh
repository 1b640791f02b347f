#!/usr/bin/env bash
# Strata's benchmarks against QEMU and a bare KVM_RUN loop; prints one table. Builds nothing:
#   bench/run.sh [BUILD_DIR]        (default ./build; needs strata, guests, bench targets built)
# Environment: RUNS (startup runs per VMM, default 20), COUNT (pio_loop iterations, default
# 1000000), PIO_RUNS (runs per pio measurement, default 3), PIO_MODE (pio_loop mode=, default
# pio), QEMU (binary), QEMU_CPU (default host,-arch-capabilities: plain "host" makes QEMU 7.2 abort
# on this PVM host while setting MSR 0x10a). See bench/README.md for what each number means.
set -euo pipefail

build=${1:-./build}
runs=${RUNS:-20}
count=${COUNT:-1000000}
pio_runs=${PIO_RUNS:-3}
pio_mode=${PIO_MODE:-pio}
qemu=${QEMU:-qemu-system-x86_64}
qemu_cpu=${QEMU_CPU:-host,-arch-capabilities}

strata=$build/src/app/strata
guests=$build/guests
timer=$build/bench/startup_timer
bare=$build/bench/bare_kvm_loop
for needed in "$timer" "$bare" "$guests/exit_now.elf" "$guests/pio_loop.elf"; do
    [[ -e $needed ]] || { echo "run.sh: $needed is missing; build the guests and bench targets first" >&2; exit 2; }
done
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "run.sh: /dev/kvm is not usable" >&2; exit 2; }

# Each system is a function: SYSTEM KERNEL CMDLINE -> the command line that boots it.
sys_strata() { echo "$strata run --accel kvm --test-devices --memory 512M --kernel $1 --cmdline '$2'"; }
sys_strata_16m() { echo "$strata run --accel kvm --test-devices --memory 16M --kernel $1 --cmdline '$2'"; }
qemu_common="-accel kvm -cpu $qemu_cpu -m 128 -nodefaults -display none -serial stdio -no-reboot \
-device isa-debug-exit,iobase=0xf4,iosize=4"
sys_qemu_microvm() { echo "$qemu -M microvm $qemu_common -kernel $1 -append '$2'"; }
sys_qemu_pc() { echo "$qemu -M pc $qemu_common -kernel $1 -append '$2'"; }
sys_bare() { echo "$bare --memory 64 --cmdline '$2' $1"; }

systems=(strata strata_16m qemu_microvm qemu_pc bare)
titles=(strata strata-16M qemu-microvm qemu-pc bare-loop)

available() {
    case $1 in
        strata*) [[ -x $strata ]] ;;
        qemu*) command -v "$qemu" > /dev/null ;;
        *) true ;;
    esac
}

# measure RUNS SYSTEM KERNEL CMDLINE -> "median_ms max_rss_kib" or "fail(STATUS)"
measure() {
    local line
    line=$(eval "$timer $1 $(sys_"$2" "$3" "$4")" || true)
    local status=${line#*status=}; status=${status%% *}
    if [[ $status != 1 ]]; then echo "fail($status)"; return; fi
    local ms=${line#*median_ms=}; ms=${ms%% *}
    local rss=${line#*max_rss_kib=}; rss=${rss%% *}
    echo "$ms $rss"
}

declare -A startup rss_mib rate
for i in "${!systems[@]}"; do
    s=${systems[$i]}
    if ! available "$s"; then startup[$s]=n/a; rss_mib[$s]=n/a; rate[$s]=n/a; continue; fi
    echo "run.sh: measuring ${titles[$i]}" >&2
    read -r ms kib <<< "$(measure "$runs" "$s" "$guests/exit_now.elf" "")"
    if [[ $ms == fail* ]]; then startup[$s]=$ms; rss_mib[$s]=$ms
    else startup[$s]=$ms; rss_mib[$s]=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }'); fi
    # Exit rate: the difference between count=COUNT and count=0 removes start-up and shutdown.
    read -r t_full _ <<< "$(measure "$pio_runs" "$s" "$guests/pio_loop.elf" "count=$count mode=$pio_mode")"
    read -r t_zero _ <<< "$(measure "$pio_runs" "$s" "$guests/pio_loop.elf" "count=0 mode=$pio_mode")"
    if [[ $t_full == fail* ]]; then rate[$s]=$t_full
    elif [[ $t_zero == fail* ]]; then rate[$s]=$t_zero
    else rate[$s]=$(awk -v n="$count" -v a="$t_full" -v b="$t_zero" 'BEGIN { d = a - b; if (d <= 0) print "n/a"; else printf "%.0f", n / (d / 1000) }')
    fi
done

ratio() {  # bare / strata, when both are numbers
    awk -v b="$1" -v s="$2" 'BEGIN { if (b + 0 > 0 && s + 0 > 0) printf "%.2f", b / s; else print "n/a" }'
}

printf '%-14s' metric; for t in "${titles[@]}"; do printf ' %13s' "$t"; done; printf ' %12s\n' bare/strata
row() {
    local -n values=$2
    printf '%-14s' "$1"
    for s in "${systems[@]}"; do printf ' %13s' "${values[$s]}"; done
    printf ' %12s\n' "$(ratio "${values[bare]}" "${values[strata]}")"
}
row startup-ms startup
row peak-RSS-MiB rss_mib
row pio-exits/s rate
echo "(startup: median of $runs runs of exit_now; RSS: max ru_maxrss; pio: count=$count mode=$pio_mode, $pio_runs runs)"
