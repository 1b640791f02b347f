/*
 * virtio_rng: a small virtio-pci driver for the board's virtio-rng, as Linux's virtio_pci_modern
 * and virtio_ring drive it, to check the transport on both engines: PCI configuration, moving
 * BAR 4 to where this guest's identity map reaches (below 4 GiB), the capability list, feature
 * negotiation, one split queue, a notification (under kvm: an ioeventfd), DMA into guest memory
 * and MSI-X (under kvm: an irqfd route), with vector masking and its pending bit.
 * Exit codes: 0 all good; 1 no virtio-rng at 00:02.0; 2 a capability missing; 3 FEATURES_OK
 * refused; 4 the queue vector did not stick; 5 no used buffer; 6 the bytes are all zero;
 * 7 no MSI-X interrupt; 8 an interrupt while masked; 9 no pending bit; 10 none after unmasking.
 */
#include "runtime/runtime.h"

enum { SLOT = 2, BAR4 = 0x20, VECTOR = 0x50 };
enum { NEW_BAR = 0xe0000000u };
enum { STATUS_ACK = 1, STATUS_DRIVER = 2, STATUS_DRIVER_OK = 4, STATUS_FEATURES_OK = 8 };
/* Common configuration offsets (virtio 1.2 §4.1.4.3). */
enum {
    DRIVER_FEATURE_SELECT = 0x08, DRIVER_FEATURE = 0x0c, DEVICE_STATUS = 0x14, QUEUE_SELECT = 0x16,
    QUEUE_SIZE = 0x18, QUEUE_MSIX_VECTOR = 0x1a, QUEUE_ENABLE = 0x1c, QUEUE_NOTIFY_OFF = 0x1e,
    QUEUE_DESC = 0x20, QUEUE_DRIVER = 0x28, QUEUE_DEVICE = 0x30,
};
enum { QUEUE_ENTRIES = 8 };

struct descriptor {
    uint64_t address;
    uint32_t length;
    uint16_t flags;
    uint16_t next;
};
static struct descriptor table[QUEUE_ENTRIES] __attribute__((aligned(16)));
static volatile struct {
    uint16_t flags, idx, ring[QUEUE_ENTRIES], used_event;
} avail __attribute__((aligned(2)));
static volatile struct {
    uint16_t flags, idx;
    struct { uint32_t id, length; } ring[QUEUE_ENTRIES];
    uint16_t avail_event;
} used __attribute__((aligned(4)));
static volatile uint8_t buffers[2][32];
static volatile uint32_t interrupts;

static uint32_t config_read32(uint8_t reg) {
    outl(0xcf8, 0x80000000u | (SLOT << 11) | (reg & 0xfc));
    return inl(0xcfc);
}
static void config_write32(uint8_t reg, uint32_t value) {
    outl(0xcf8, 0x80000000u | (SLOT << 11) | (reg & 0xfc));
    outl(0xcfc, value);
}
static uint8_t config_read8(uint8_t reg) { return (uint8_t)(config_read32(reg) >> (8 * (reg & 3))); }

static void on_msix(struct interrupt_frame* frame) {
    (void)frame;
    ++interrupts;
    lapic_eoi();
}
static bool interrupted(void) { return interrupts != 0; }
static bool interrupted_twice(void) { return interrupts >= 2; }
static bool used_one(void) { return used.idx >= 1; }
static bool used_two(void) { return used.idx >= 2; }
static bool never(void) { return false; }

static void offer(uint16_t n, uint64_t notify) {
    table[n] = (struct descriptor){(uint64_t)(uintptr_t)buffers[n], sizeof buffers[n], 2 /* WRITE */, 0};
    avail.ring[n] = n;
    __asm__ volatile("mfence" ::: "memory");
    avail.idx = (uint16_t)(n + 1);
    __asm__ volatile("mfence" ::: "memory");
    mmio_write16(notify, 0);
}

void guest_main(void) {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    lapic_enable();
    idt_set_handler(VECTOR, on_msix);
    if (config_read32(0x00) != 0x10441af4u) guest_exit(1);

    /* Move BAR 4 (64-bit) below 4 GiB, with memory decoding off while it moves. */
    config_write32(0x04, 0);
    config_write32(BAR4, NEW_BAR);
    config_write32(BAR4 + 4, 0);
    config_write32(0x04, 0x6);  /* memory space, bus master */
    uint64_t bar = config_read32(BAR4) & ~0xfull;

    uint64_t common = 0, notify = 0, msix_table = 0;
    uint32_t multiplier = 0;
    uint8_t msix = 0;
    for (uint8_t at = config_read8(0x34); at != 0; at = config_read8((uint8_t)(at + 1))) {
        uint8_t id = config_read8(at);
        if (id == 0x11) {
            msix = at;
            msix_table = bar + (config_read32((uint8_t)(at + 4)) & ~7u);
        } else if (id == 0x09) {
            uint8_t type = config_read8((uint8_t)(at + 3));
            uint32_t offset = config_read32((uint8_t)(at + 8));
            if (type == 1) common = bar + offset;
            if (type == 2) {
                notify = bar + offset;
                multiplier = config_read32((uint8_t)(at + 16));
            }
        }
    }
    if (!common || !notify || !msix) guest_exit(2);

    /* MSI-X: vector 1 → this CPU's LAPIC, VECTOR; enable. */
    mmio_write32(msix_table + 16 + 0, 0xfee00000u | (lapic_id() << 12));
    mmio_write32(msix_table + 16 + 4, 0);
    mmio_write32(msix_table + 16 + 8, VECTOR);
    mmio_write32(msix_table + 16 + 12, 0);
    config_write32(msix, config_read32(msix) | (1u << 31));

    mmio_write8(common + DEVICE_STATUS, 0);
    mmio_write8(common + DEVICE_STATUS, STATUS_ACK | STATUS_DRIVER);
    mmio_write32(common + DRIVER_FEATURE_SELECT, 1);
    mmio_write32(common + DRIVER_FEATURE, 1);  /* VERSION_1 */
    mmio_write8(common + DEVICE_STATUS, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(mmio_read8(common + DEVICE_STATUS) & STATUS_FEATURES_OK)) guest_exit(3);

    mmio_write16(common + QUEUE_SELECT, 0);
    mmio_write16(common + QUEUE_SIZE, QUEUE_ENTRIES);
    mmio_write16(common + QUEUE_MSIX_VECTOR, 1);
    if (mmio_read16(common + QUEUE_MSIX_VECTOR) != 1) guest_exit(4);
    mmio_write64(common + QUEUE_DESC, (uint64_t)(uintptr_t)table);
    mmio_write64(common + QUEUE_DRIVER, (uint64_t)(uintptr_t)&avail);
    mmio_write64(common + QUEUE_DEVICE, (uint64_t)(uintptr_t)&used);
    uint64_t queue_notify = notify + mmio_read16(common + QUEUE_NOTIFY_OFF) * multiplier;
    mmio_write16(common + QUEUE_ENABLE, 1);
    mmio_write8(common + DEVICE_STATUS, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);

    offer(0, queue_notify);
    if (!wait_until(used_one, 2000)) guest_exit(5);
    bool nonzero = false;
    for (unsigned i = 0; i < sizeof buffers[0]; ++i) nonzero |= buffers[0][i] != 0;
    if (!nonzero || used.ring[0].length != sizeof buffers[0]) guest_exit(6);
    if (!wait_until(interrupted, 2000)) guest_exit(7);
    printf("virtio_rng: %u bytes through MSI-X vector %x\n", used.ring[0].length, VECTOR);

    /* Masked: the device still completes, the interrupt waits in the PBA until unmasked. */
    mmio_write32(msix_table + 16 + 12, 1);
    offer(1, queue_notify);
    if (!wait_until(used_two, 2000)) guest_exit(5);
    (void)wait_until(never, 20);
    if (interrupts != 1) guest_exit(8);
    uint64_t pba = bar + (config_read32((uint8_t)(msix + 8)) & ~7u);
    if (!(mmio_read32(pba) & 2)) guest_exit(9);
    mmio_write32(msix_table + 16 + 12, 0);
    if (!wait_until(interrupted_twice, 2000)) guest_exit(10);
    print("virtio_rng: masked vector pended and arrived when unmasked\n");
    guest_exit(0);
}
