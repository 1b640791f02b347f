// Just enough AML (ACPI Machine Language) encoding to write Strata's DSDT by hand: names, integers,
// packages, scopes, devices, EISA ids and resource templates.
//
// State: none; every function returns the encoded bytes.
// Features: the terms listed above; package lengths of any size up to 2^28.
// Missing: methods, operation regions, fields: the DSDT has no code.
// Spec: ACPI 6.5 §20.2 (AML grammar), §20.2.4 (package length encoding), §6.4 (resource data types).
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

// Encodes the PkgLength of a body of `body_size` bytes (the length counts its own bytes too).
[[nodiscard]] Bytes package_length(size_t body_size);

}  // namespace strata::aml
