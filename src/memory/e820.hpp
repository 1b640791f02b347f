// The PC memory map as firmware reports it (ACPI spec 6.5 §15, "System Address Map Interfaces"):
// the holes below 1 MiB (EBDA, VGA, BIOS area) and the MMIO hole below 4 GiB are not RAM.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.hpp"

namespace strata {

enum class E820Type : uint32_t { Ram = 1, Reserved = 2, Acpi = 3, Nvs = 4 };

struct E820Entry {
    uint64_t addr;
    uint64_t size;
    E820Type type;
};

// Low memory below the EBDA, usable by the guest.
constexpr uint64_t kEbdaStart = 0x9'FC00;
// The BIOS area where the MP table and the ACPI RSDP live (scanned by guests); reserved.
constexpr uint64_t kBiosAreaStart = 0xE'0000;
constexpr uint64_t kBiosAreaEnd = 0x10'0000;

// The map for `memory`: [0, EBDA) RAM, EBDA reserved, BIOS area reserved, 1 MiB..low end RAM,
// and RAM above 4 GiB when the guest has any.
std::vector<E820Entry> build_e820(const GuestMemory& memory);

}  // namespace strata
