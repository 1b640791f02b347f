/*
 * bare_kvm_loop: the floor for Strata's exit path. A KVM_RUN loop with nothing else: it loads a
 * multiboot v1 ELF32 guest (normally guests/pio_loop.elf), gives it the 32-bit multiboot entry
 * state (Multiboot 0.6.96 §3.2), creates the in-kernel irqchip and PIT as Strata does, and counts
 * exits until the guest writes to isa-debug-exit (port 0xf4).
 *
 *   bare_kvm_loop [--memory MIB] [--cmdline TEXT] KERNEL.elf
 *
 * Output (stderr, one line): exits, the loop exits (port 0x3000, or MMIO at 0xfe000000 for
 * pio_loop's mode=mmio) and their rate, measured from the
 * first loop exit to the debug-exit write. COM1 output goes to stdout. Exit status as Strata's:
 * (V << 1) | 1 for a debug-exit write of V, 2 for an error, 4 for a triple fault.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    MULTIBOOT_INFO = 0x10000,  /* same places as Strata's pc_layout.hpp */
    CMDLINE = 0x20000,
    CMDLINE_MAX = 0x10000,
    KERNEL_MIN = 0x100000,
    LOOP_PORT = 0x3000,
    LOOP_MMIO = 0xfe000000,  /* pio_loop's mode=mmio */
    DEBUG_EXIT_PORT = 0xf4,
    COM1 = 0x3f8,
};

__attribute__((noreturn)) static void die(const char* what) {
    fprintf(stderr, "bare_kvm_loop: %s: %s\n", what, strerror(errno));
    exit(2);
}

__attribute__((noreturn)) static void fail(const char* what) {
    fprintf(stderr, "bare_kvm_loop: %s\n", what);
    exit(2);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copies the PT_LOAD segments of an ELF32 image into guest memory; returns the entry point. */
static uint32_t load_elf32(const uint8_t* image, size_t size, uint8_t* memory, uint64_t memory_size) {
    if (size < sizeof(Elf32_Ehdr)) fail("kernel: too small for an ELF header");
    Elf32_Ehdr header;
    memcpy(&header, image, sizeof header);
    if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS32 ||
        header.e_machine != EM_386)
        fail("kernel: not an ELF32 i386 image");
    if (header.e_phentsize != sizeof(Elf32_Phdr)) fail("kernel: unexpected program header size");
    uint64_t table_end = (uint64_t)header.e_phoff + (uint64_t)header.e_phnum * sizeof(Elf32_Phdr);
    if (table_end > size) fail("kernel: program headers beyond the file");
    for (unsigned i = 0; i < header.e_phnum; ++i) {
        Elf32_Phdr ph;
        memcpy(&ph, image + header.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
        if (ph.p_filesz > ph.p_memsz) fail("kernel: segment file size exceeds its memory size");
        if ((uint64_t)ph.p_offset + ph.p_filesz > size) fail("kernel: segment beyond the file");
        if (ph.p_paddr < KERNEL_MIN || (uint64_t)ph.p_paddr + ph.p_memsz > memory_size)
            fail("kernel: segment outside guest RAM above 1 MiB");
        memcpy(memory + ph.p_paddr, image + ph.p_offset, ph.p_filesz);
        memset(memory + ph.p_paddr + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    }
    return header.e_entry;
}

static void set_segment(struct kvm_segment* s, uint16_t selector, uint8_t type) {
    *s = (struct kvm_segment){.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
                              .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1};
}

int main(int argc, char** argv) {
    uint64_t memory_mib = 64;
    const char* cmdline = "";
    const char* kernel = NULL;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--memory") && i + 1 < argc) memory_mib = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--cmdline") && i + 1 < argc) cmdline = argv[++i];
        else if (argv[i][0] != '-' && !kernel) kernel = argv[i];
        else {
            fprintf(stderr, "usage: bare_kvm_loop [--memory MIB] [--cmdline TEXT] KERNEL.elf\n");
            return 2;
        }
    }
    if (!kernel) fail("no kernel given");
    if (memory_mib < 4 || memory_mib > 3072) fail("--memory must be 4-3072 MiB");
    if (strlen(cmdline) >= CMDLINE_MAX) fail("--cmdline too long");
    uint64_t memory_size = memory_mib << 20;

    int kernel_fd = open(kernel, O_RDONLY | O_CLOEXEC);
    if (kernel_fd < 0) die(kernel);
    struct stat st;
    if (fstat(kernel_fd, &st) != 0) die(kernel);
    uint8_t* image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, kernel_fd, 0);
    if (image == MAP_FAILED) die(kernel);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    /* Intel VMX wants a TSS area for real-mode emulation; harmless elsewhere. */
    (void)ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) != 0) die("KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm, KVM_CREATE_PIT2, &pit) != 0) die("KVM_CREATE_PIT2");

    uint8_t* memory = mmap(NULL, memory_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) die("guest memory");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = memory_size, .userspace_addr = (uint64_t)(uintptr_t)memory};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) != 0) die("KVM_SET_USER_MEMORY_REGION");

    uint32_t entry = load_elf32(image, (size_t)st.st_size, memory, memory_size);
    /* Multiboot info (Multiboot 0.6.96 §3.3): flags bit 0 mem_lower/mem_upper, bit 2 cmdline. */
    uint32_t info[8] = {0};
    info[0] = (1u << 0) | (1u << 2);
    info[1] = 639;
    info[2] = (uint32_t)((memory_size - KERNEL_MIN) >> 10);
    info[4] = CMDLINE;
    memcpy(memory + MULTIBOOT_INFO, info, sizeof info);
    memcpy(memory + CMDLINE, cmdline, strlen(cmdline) + 1);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run)) die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run* run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("kvm_run");

    /* The host's CPUID as KVM supports it: long mode must be visible or EFER.LME is refused. */
    size_t cpuid_entries = 256;
    struct kvm_cpuid2* cpuid = calloc(1, sizeof *cpuid + cpuid_entries * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid) fail("out of memory");
    cpuid->nent = (uint32_t)cpuid_entries;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) != 0) die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) != 0) die("KVM_SET_CPUID2");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) != 0) die("KVM_GET_SREGS");
    set_segment(&sregs.cs, 0x08, 0xb);  /* execute/read, accessed */
    set_segment(&sregs.ds, 0x10, 0x3);  /* read/write, accessed */
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.cr0 = 0x11;  /* PE | ET, paging off */
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) != 0) die("KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = entry, .rax = 0x2BADB002, .rbx = MULTIBOOT_INFO, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) != 0) die("KVM_SET_REGS");

    uint64_t exits = 0, loop_exits = 0;
    double loop_start = 0, loop_end = 0;
    int status = -1;
    while (status < 0) {
        if (ioctl(vcpu, KVM_RUN, 0) != 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("KVM_RUN");
        }
        ++exits;
        switch (run->exit_reason) {
            case KVM_EXIT_IO: {
                uint8_t* data = (uint8_t*)run + run->io.data_offset;
                if (run->io.port == LOOP_PORT) {
                    if (loop_exits++ == 0) loop_start = now_seconds();
                    break;
                }
                if (run->io.direction == KVM_EXIT_IO_OUT) {
                    if (run->io.port == DEBUG_EXIT_PORT) {
                        uint32_t value = 0;
                        memcpy(&value, data, run->io.size < 4 ? run->io.size : 4);
                        loop_end = now_seconds();
                        status = (int)(((value << 1) | 1) & 0xff);
                    } else if (run->io.port == COM1) {
                        for (uint32_t i = 0; i < run->io.count; ++i) putchar(data[i * run->io.size]);
                    }
                } else {
                    /* COM1 LSR says "transmitter empty" so the guest's polled output goes on; all
                     * other ports float high as on a PC. */
                    memset(data, run->io.port == COM1 + 5 ? 0x60 : 0xff, (size_t)run->io.size * run->io.count);
                }
                break;
            }
            case KVM_EXIT_MMIO:
                if (run->mmio.phys_addr == LOOP_MMIO) {
                    if (loop_exits++ == 0) loop_start = now_seconds();
                    break;
                }
                if (!run->mmio.is_write) memset(run->mmio.data, 0xff, sizeof run->mmio.data);
                break;
            case KVM_EXIT_INTR: break;
            case KVM_EXIT_HLT: fail("guest halted");
            case KVM_EXIT_SHUTDOWN: fprintf(stderr, "bare_kvm_loop: triple fault\n"); status = 4; break;
            default:
                fprintf(stderr, "bare_kvm_loop: unexpected exit reason %u\n", run->exit_reason);
                status = 2;
                break;
        }
    }
    fflush(stdout);
    double seconds = loop_exits ? loop_end - loop_start : 0;
    fprintf(stderr, "bare_kvm_loop: exits=%llu loop_exits=%llu loop_seconds=%.6f loop_exits_per_second=%.0f\n",
            (unsigned long long)exits, (unsigned long long)loop_exits, seconds,
            seconds > 0 ? (double)loop_exits / seconds : 0.0);
    return status;
}
