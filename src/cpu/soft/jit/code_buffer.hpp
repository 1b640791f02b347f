// Executable memory for translated blocks (jit/translator.hpp): one memfd mapped twice, writable
// at one address and executable at another, so that no page is ever writable and executable at
// one address. Code is appended; the buffer is emptied whole (reset) when the block cache drops
// its arena, since every translation belongs to a block in it.
//
// Unwinding: a guest fault is a C++ exception thrown by a handler that translated code called,
// caught by the interpreter. For that to unwind through translated code, the whole executable
// range is described to the C++ runtime (__register_frame) by one frame rule that every
// translation keeps: its code starts with PUSH RBX and changes RSP no further between calls, so
// at each call in it the canonical frame address is RSP + 16, the return address at CFA - 8 and
// the caller's RBX at CFA - 16.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace strata::soft {

class CodeBuffer {
public:
    using EhFrame = std::array<uint8_t, 64>;  // a CIE (24 bytes), an FDE (32) and the terminator
    // nullptr when the host refuses the mappings (then nothing is translated).
    static std::unique_ptr<CodeBuffer> create(size_t bytes);
    ~CodeBuffer();
    CodeBuffer(const CodeBuffer&) = delete;
    CodeBuffer& operator=(const CodeBuffer&) = delete;

    // Where the next translation is written, and how many bytes are left there.
    [[nodiscard]] uint8_t* write_cursor() const { return writable_ + used_; }
    // The executable address of write_cursor().
    [[nodiscard]] const uint8_t* execute_cursor() const { return executable_ + used_; }
    [[nodiscard]] size_t room() const { return size_ - used_; }
    // Takes the `bytes` written at write_cursor(); returns their executable address.
    const uint8_t* commit(size_t bytes);
    // Forgets every translation.
    void reset() { used_ = 0; }

    [[nodiscard]] size_t used() const { return used_; }

private:
    CodeBuffer(uint8_t* writable, uint8_t* executable, size_t size);

    uint8_t* writable_;
    uint8_t* executable_;
    size_t size_;
    size_t used_ = 0;
    EhFrame eh_frame_{};  // the CIE and FDE registered for [executable_, +size_)
};

}  // namespace strata::soft
