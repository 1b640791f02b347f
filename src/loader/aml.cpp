#include "loader/aml.hpp"

#include <algorithm>
#include <iterator>

#include "base/error.hpp"

namespace strata::aml {

namespace {

// AML opcodes (ACPI 6.5 §20.3, §20.4).
enum class Op : uint8_t {
    Zero = 0x00, One = 0x01, Name = 0x08, BytePrefix = 0x0a, WordPrefix = 0x0b, DWordPrefix = 0x0c,
    QWordPrefix = 0x0e, Scope = 0x10, Buffer = 0x11, Package = 0x12, RootChar = 0x5c, ExtPrefix = 0x5b,
    Device = 0x82,  // after ExtPrefix
};

// Small resource descriptor tags (§6.4.2): type << 3 | length.
constexpr uint8_t kIrqNoFlagsTag = 0x22, kIoPortTag = 0x47, kEndTag = 0x79;
constexpr uint8_t kDecode16 = 0x01;

// Large resource descriptors (§6.4.3): bit 7 set, the item name in bits 6:0.
constexpr uint8_t kDWordAddressTag = 0x87, kWordAddressTag = 0x88, kQWordAddressTag = 0x8a;
// An address space descriptor's Resource Type byte (§6.4.3.5.1, byte 3).
enum class ResourceType : uint8_t { Memory = 0, Io = 1, BusNumber = 2 };
// General flags (byte 4): _MAF bit 3, _MIF bit 2, _DEC bit 1 clear (positive decode), bit 0 clear:
// ResourceProducer, what ASL compilers write for it (ACPI 6.5 calls the bit ignored for these three
// descriptors, older revisions consumer/producer).
constexpr uint8_t kFixedProducerWindow = 1u << 3 | 1u << 2;
// Type-specific flags (§6.4.3.5.5): I/O _RNG = 3 (EntireRange: ISA and non-ISA ports), and memory
// _RW (bit 0) read-write with _MEM in bits 2:1; _MTP and _TTP stay 0 (AddressRangeMemory, TypeStatic).
constexpr uint8_t kIoEntireRange = 0x03;
constexpr uint8_t kMemoryReadWrite = 0x01;

uint8_t op(Op code) { return static_cast<uint8_t>(code); }

// Room first, then the copy: g++ 12 at -O3 misreads a range insert that reallocates a small
// vector as an out-of-bounds move (-Warray-bounds), a known false positive of that compiler.
void append(Bytes& out, const Bytes& more) {
    out.reserve(out.size() + more.size());
    std::ranges::copy(more, std::back_inserter(out));
}

void append_le(Bytes& out, uint64_t value, unsigned bytes) {
    for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// OpCode PkgLength body: the shape of Scope, Device, Package and Buffer.
Bytes with_length(std::initializer_list<uint8_t> opcode, const Bytes& body) {
    Bytes out(opcode);
    append(out, package_length(body.size()));
    append(out, body);
    return out;
}

// A Word, DWord or QWord address space descriptor of a fixed window (§6.4.3.5.1-3): tag, a 16-bit
// length of what follows, resource type, general and type-specific flags, then five fields of
// `width` bytes: granularity, minimum, maximum, translation offset, length.
Bytes address_space(uint8_t tag, unsigned width, ResourceType type, uint8_t type_flags, uint64_t min, uint64_t max) {
    // _LEN has the width of the other fields, so a window of the whole space (WordIO 0-0xffff,
    // a length of 0x10000) cannot be written; none of Strata's windows is one.
    uint64_t field_max = width == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * width)) - 1;
    uint64_t length = max - min + 1;
    if (max < min || max > field_max || length == 0 || length > field_max)
        panic(fmt::format("AML address space descriptor: no {}-byte _LEN for the window {:#x}-{:#x}", width, min, max));
    Bytes out{tag};
    append_le(out, 3 + 5 * width, 2);
    out.push_back(static_cast<uint8_t>(type));
    out.push_back(kFixedProducerWindow);
    out.push_back(type_flags);
    // Fixed size and location: _GRA must be 0 and _LEN = _MAX - _MIN + 1 (§6.4.3.5).
    append_le(out, 0, width);
    append_le(out, min, width);
    append_le(out, max, width);
    append_le(out, 0, width);  // _TRA: the bridge does not translate addresses
    append_le(out, length, width);
    return out;
}

uint8_t memory_flags(MemoryCaching caching) {
    return static_cast<uint8_t>(static_cast<uint8_t>(caching) << 1 | kMemoryReadWrite);
}

}  // namespace

Bytes package_length(size_t body_size) {
    // One byte holds lengths up to 63; otherwise bits 7-6 of the lead byte count 1-3 following
    // bytes, the lead byte's low nibble holds bits 0-3 and each following byte the next 8 bits.
    if (body_size + 1 <= 0x3f) return {static_cast<uint8_t>(body_size + 1)};
    for (unsigned extra = 1; extra <= 3; ++extra) {
        size_t total = body_size + 1 + extra;
        if (total >= (size_t{1} << (4 + 8 * extra))) continue;
        Bytes out{static_cast<uint8_t>(extra << 6 | (total & 0xf))};
        for (unsigned i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
        return out;
    }
    panic("AML package of more than 2^28 bytes");
}

Bytes name_seg(std::string_view name) {
    if (name.empty() || name.size() > 4) panic("AML NameSeg must have 1 to 4 characters");
    // Four bytes, '_'-padded (§20.2.2). Filled by index: g++ 12 at -O3 mistakes a range
    // construction from the view followed by resize() for an overflow (-Wstringop-overflow).
    Bytes out(4, '_');
    for (size_t i = 0; i < name.size(); ++i) out[i] = static_cast<uint8_t>(name[i]);
    return out;
}

Bytes name(std::string_view name, const Bytes& value) {
    Bytes out{op(Op::Name)};
    append(out, name_seg(name));
    append(out, value);
    return out;
}

Bytes integer(uint64_t value) {
    if (value == 0) return {op(Op::Zero)};
    if (value == 1) return {op(Op::One)};
    Bytes out;
    if (value <= 0xff) {
        out.push_back(op(Op::BytePrefix));
        append_le(out, value, 1);
    } else if (value <= 0xffff) {
        out.push_back(op(Op::WordPrefix));
        append_le(out, value, 2);
    } else if (value <= 0xffff'ffff) {
        out.push_back(op(Op::DWordPrefix));
        append_le(out, value, 4);
    } else {
        out.push_back(op(Op::QWordPrefix));
        append_le(out, value, 8);
    }
    return out;
}

Bytes package(const std::vector<Bytes>& elements) {
    if (elements.size() > 0xff) panic("AML Package of more than 255 elements");
    Bytes body{static_cast<uint8_t>(elements.size())};  // NumElements
    for (const auto& element : elements) append(body, element);
    return with_length({op(Op::Package)}, body);
}

Bytes eisa_id(std::string_view id) {
    // §6.1.5 _HID: three letters of 5 bits ('A' = 1) then four hex digits, stored big-endian.
    if (id.size() != 7) panic("EISA id must be 3 letters and 4 hex digits");
    auto letter = [&](size_t i) { return static_cast<uint32_t>(id[i] - '@') & 0x1f; };
    auto hex = [&](size_t i) {
        char c = id[i];
        return static_cast<uint32_t>(c <= '9' ? c - '0' : (c & ~0x20) - 'A' + 10) & 0xf;
    };
    uint32_t value = letter(0) << 26 | letter(1) << 21 | letter(2) << 16 | hex(3) << 12 | hex(4) << 8 |
                     hex(5) << 4 | hex(6);
    Bytes out{op(Op::DWordPrefix)};
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
    return out;
}

Bytes root_scope(std::string_view path, const Bytes& body) {
    Bytes inner{op(Op::RootChar)};
    append(inner, name_seg(path));
    append(inner, body);
    return with_length({op(Op::Scope)}, inner);
}

Bytes device(std::string_view device_name, const Bytes& body) {
    Bytes inner = name_seg(device_name);
    append(inner, body);
    return with_length({op(Op::ExtPrefix), op(Op::Device)}, inner);
}

Bytes resource_template(const Bytes& descriptors) {
    Bytes data = descriptors;
    data.push_back(kEndTag);
    data.push_back(0);  // end tag checksum 0: "treated as correct" (§6.4.2.9)
    Bytes body = integer(data.size());  // BufferSize
    append(body, data);
    return with_length({op(Op::Buffer)}, body);
}

Bytes io_port(uint16_t base, uint8_t length) {
    // §6.4.2.5: info, minimum base, maximum base (both = base), alignment 1, length.
    Bytes out{kIoPortTag, kDecode16};
    append_le(out, base, 2);
    append_le(out, base, 2);
    out.push_back(1);
    out.push_back(length);
    return out;
}

Bytes irq(unsigned line) {
    // §6.4.2.1 without the flags byte: a 16-bit mask of ISA IRQs.
    Bytes out{kIrqNoFlagsTag};
    append_le(out, 1u << (line & 15), 2);
    return out;
}

Bytes word_bus_number(uint16_t min, uint16_t max) {
    return address_space(kWordAddressTag, 2, ResourceType::BusNumber, 0, min, max);
}

Bytes word_io(uint16_t min, uint16_t max) {
    return address_space(kWordAddressTag, 2, ResourceType::Io, kIoEntireRange, min, max);
}

Bytes dword_memory(uint32_t min, uint32_t max, MemoryCaching caching) {
    return address_space(kDWordAddressTag, 4, ResourceType::Memory, memory_flags(caching), min, max);
}

Bytes qword_memory(uint64_t min, uint64_t max, MemoryCaching caching) {
    return address_space(kQWordAddressTag, 8, ResourceType::Memory, memory_flags(caching), min, max);
}

}  // namespace strata::aml
