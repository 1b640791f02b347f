// Just enough AML (ACPI Machine Language) encoding to write Strata's DSDT by hand: names, integers,
// packages, scopes, devices, EISA ids and resource templates.
//
// State: none; every function returns the encoded bytes.
// Features: the terms listed above; package lengths of any size up to 2^28; small IO and IRQ
//           descriptors; Word (bus number, I/O), DWord and QWord (memory) address space
//           descriptors for the windows a host bridge produces.
// Missing: methods, operation regions, fields: the DSDT has no code; address space descriptors
//          that are consumed, relocatable (_MIF/_MAF clear), subtractive or translated, and the
//          Extended Address Space descriptor.
// Spec: ACPI 6.5 §20.2 (AML grammar), §20.2.4 (package length encoding), §6.4 (resource data types),
//       §6.4.3.5 (address space descriptors).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace strata::aml {

using Bytes = std::vector<uint8_t>;

// A 4-character NameSeg such as "_S5_" (shorter names are padded with '_', §20.2.2).
[[nodiscard]] Bytes name_seg(std::string_view name);
// Name (name, value): DefName := NameOp NameString DataRefObject.
[[nodiscard]] Bytes name(std::string_view name, const Bytes& value);
// The shortest integer encoding: ZeroOp, OneOp, BytePrefix, WordPrefix, DWordPrefix, QWordPrefix.
[[nodiscard]] Bytes integer(uint64_t value);
// Package (n) { elements }.
[[nodiscard]] Bytes package(const std::vector<Bytes>& elements);
// EisaId ("PNP0501"): the compressed 32-bit EISA id as a DWord constant.
[[nodiscard]] Bytes eisa_id(std::string_view id);
// Scope (\path) { body } with `path` a root-relative NameSeg such as "_SB_".
[[nodiscard]] Bytes root_scope(std::string_view path, const Bytes& body);
// Device (name) { body }.
[[nodiscard]] Bytes device(std::string_view name, const Bytes& body);
// ResourceTemplate () { descriptors }: a Buffer closed by an end tag.
[[nodiscard]] Bytes resource_template(const Bytes& descriptors);
// IO (Decode16, base, base, 1, length): a fixed I/O port range.
[[nodiscard]] Bytes io_port(uint16_t base, uint8_t length);
// IRQNoFlags () { irq }: an edge-triggered, active-high ISA interrupt.
[[nodiscard]] Bytes irq(unsigned irq);

// Address space descriptors for a window that a bridge decodes and passes on to the devices
// behind it: ResourceProducer, MinFixed, MaxFixed, PosDecode, granularity 0, no translation, the
// length max - min + 1 (the "fixed size, fixed location" combination of §6.4.3.5). `min` and
// `max` are inclusive; max < min panics.
//
// WordBusNumber (...): bus numbers [min, max] (§6.4.3.5.3).
[[nodiscard]] Bytes word_bus_number(uint16_t min, uint16_t max);
// WordIO (..., EntireRange): I/O ports [min, max] (§6.4.3.5.3; I/O flags §6.4.3.5.5).
[[nodiscard]] Bytes word_io(uint16_t min, uint16_t max);
// _MEM, the memory attribute of a memory window (§6.4.3.5.5, memory flags bits 2:1).
enum class MemoryCaching : uint8_t { NonCacheable = 0, Cacheable = 1, WriteCombining = 2, Prefetchable = 3 };
// DWordMemory (..., caching, ReadWrite): memory [min, max] below 4 GiB (§6.4.3.5.2).
[[nodiscard]] Bytes dword_memory(uint32_t min, uint32_t max, MemoryCaching caching);
// QWordMemory (..., caching, ReadWrite): memory [min, max] anywhere (§6.4.3.5.1).
[[nodiscard]] Bytes qword_memory(uint64_t min, uint64_t max, MemoryCaching caching);

// Encodes the PkgLength of a body of `body_size` bytes (the length counts its own bytes too).
[[nodiscard]] Bytes package_length(size_t body_size);

}  // namespace strata::aml
