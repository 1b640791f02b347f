// LocalApic's register bits and access rules, shared by its .cpp files (local_apic*.cpp) and by
// nothing else.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <optional>

#include "devices/irqchip/apic_bus.hpp"

namespace strata::local_apic {

// IA32_APIC_BASE (SDM vol. 3A §11.4.4).
constexpr uint64_t kBaseBsp = 1u << 8;
constexpr uint64_t kBaseExtd = 1u << 10;  // x2APIC mode
constexpr uint64_t kBaseEnable = 1u << 11;
constexpr uint64_t kBaseAddressMask = 0x000f'ffff'ffff'f000;  // bits 51:12

// LVT entries (§11.5.1).
constexpr uint32_t kLvtVector = 0xff;
constexpr uint32_t kLvtDeliveryStatus = 1u << 12;
constexpr uint32_t kLvtRemoteIrr = 1u << 14;
constexpr uint32_t kLvtLevelTriggered = 1u << 15;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kLvtTscDeadline = 1u << 18;  // timer mode bits 18:17 = 10b

// SVR (§11.9): vector, APIC software enable, focus processor checking.
constexpr uint32_t kSvrEnable = 1u << 8;
constexpr uint32_t kSvrWritable = 0x3ff;

// ESR bits (§11.5.3).
constexpr uint8_t kErrorSendIllegalVector = 1u << 5;
constexpr uint8_t kErrorReceiveIllegalVector = 1u << 6;
constexpr uint8_t kErrorIllegalRegister = 1u << 7;

// ICR (§11.6.1; x2APIC §11.12.9).
constexpr uint32_t kIcrWritable = 0x000c'cfff;  // vector, mode, dest mode, level, trigger, shorthand
constexpr uint64_t kIcrX2apicReserved = 0xfff0'0000u | 0x3'0000u | 0x2000u;  // bits 31:20, 17:16, 13
constexpr uint32_t kIcrDeliveryStatus = 1u << 12;

// DFR (§11.6.2.2): the model in bits 31:28 (1111b flat, 0000b cluster), the rest reads 1.
constexpr uint32_t kDfrModel = 0xf000'0000;
constexpr uint32_t kDfrReadsOne = 0x0fff'ffff;

// The access rules of each register (§11.4.1 table 11-1, x2APIC §11.12.1.2 table 11-6).
// `writable`: the bits a write stores; `status`: read-only bits an x2APIC WRMSR may carry without
// #GP (they read back what the APIC sets, e.g. remote IRR); any other bit is reserved, and a
// non-zero reserved bit in an x2APIC WRMSR raises #GP (§11.12.1.3).
enum Access : uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3 };
enum Modes : uint8_t { kXapic = 1, kX2apic = 2, kBoth = 3 };
struct RegisterRule {
    uint16_t offset;
    uint8_t count;        // consecutive registers (ISR, TMR, IRR, LINT0-1)
    Access xapic_access;  // in xAPIC mode
    Access x2apic_access;
    Modes modes;
    uint32_t writable;
    uint32_t status;
};

// The rule of the register at `offset` (16-byte aligned) if it exists in this mode.
[[nodiscard]] const RegisterRule* rule_for(uint32_t offset, bool x2apic);

// 256-bit registers (ISR, TMR, IRR) as eight 32-bit words.
using VectorBits = std::array<uint32_t, 8>;
[[nodiscard]] inline std::optional<uint8_t> highest_vector(const VectorBits& bits) {
    for (size_t word = bits.size(); word-- > 0;) {
        if (bits[word] != 0)
            return static_cast<uint8_t>(word * 32 + (31 - static_cast<unsigned>(std::countl_zero(bits[word]))));
    }
    return std::nullopt;
}
[[nodiscard]] inline bool test_vector(const VectorBits& bits, uint8_t vector) {
    return (bits[vector / 32] >> (vector % 32)) & 1;
}
inline void set_vector(VectorBits& bits, uint8_t vector, bool value) {
    uint32_t bit = 1u << (vector % 32);
    bits[vector / 32] = value ? bits[vector / 32] | bit : bits[vector / 32] & ~bit;
}

[[nodiscard]] inline DeliveryMode lvt_delivery_mode(uint32_t lvt) { return static_cast<DeliveryMode>((lvt >> 8) & 7); }
[[nodiscard]] constexpr uint8_t priority_class(uint8_t priority) { return priority >> 4; }

}  // namespace strata::local_apic
