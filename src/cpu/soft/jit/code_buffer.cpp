#include "cpu/soft/jit/code_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

// libgcc's registration of an .eh_frame section for code it did not load (unwind-dw2-fde.h).
extern "C" void __register_frame(void* begin);
extern "C" void __deregister_frame(void* begin);

namespace strata::soft {

namespace {

// DWARF call frame instructions and register numbers (DWARF 4 §6.4.2; the x86-64 psABI §3.7).
constexpr uint8_t kDefCfa = 0x0c, kOffset = 0x80, kNop = 0x00;
constexpr uint8_t kRsp = 7, kRbx = 3, kReturnAddress = 16;

// An .eh_frame section being written: bytes appended at `size`.
struct FrameWriter {
    CodeBuffer::EhFrame& bytes;
    size_t size = 0;
    void put(uint8_t b) { bytes.at(size++) = b; }
    void put32(uint32_t value) { for (unsigned i = 0; i < 4; ++i) put(static_cast<uint8_t>(value >> (8 * i))); }
    void put64(uint64_t value) { for (unsigned i = 0; i < 8; ++i) put(static_cast<uint8_t>(value >> (8 * i))); }
    // Pads the record that starts at `start` (its length field) to a multiple of 8 bytes and
    // fills in that length, which excludes the field itself.
    void close_record(size_t start) {
        while ((size - start) % 8 != 0) put(kNop);
        auto length = static_cast<uint32_t>(size - start - 4);
        for (unsigned i = 0; i < 4; ++i) bytes.at(start + i) = static_cast<uint8_t>(length >> (8 * i));
    }
};

// One CIE with the translations' frame rule and one FDE covering [begin, begin + size), then the
// terminating zero: an .eh_frame section as __register_frame takes it.
void frame_description(CodeBuffer::EhFrame& bytes, const uint8_t* begin, size_t size) {
    FrameWriter out{bytes};
    out.put32(0);  // length, filled in below
    out.put32(0);  // CIE id
    out.put(1);    // version
    for (char c : {'z', 'R', '\0'}) out.put(static_cast<uint8_t>(c));
    out.put(1);     // code alignment factor
    out.put(0x78);  // data alignment factor: -8 (SLEB128)
    out.put(kReturnAddress);
    out.put(1);     // augmentation data: one byte,
    out.put(0x00);  // FDE addresses are absolute 8-byte pointers (DW_EH_PE_absptr)
    // CFA = RSP + 16; the return address at CFA - 8, the caller's RBX at CFA - 16.
    for (uint8_t b : {kDefCfa, kRsp, uint8_t{16}, uint8_t(kOffset | kReturnAddress), uint8_t{1}, uint8_t(kOffset | kRbx), uint8_t{2}})
        out.put(b);
    out.close_record(0);

    size_t fde = out.size;
    out.put32(0);
    out.put32(static_cast<uint32_t>(out.size));  // back to the CIE, from this field
    out.put64(reinterpret_cast<uint64_t>(begin));
    out.put64(size);
    out.put(0);  // no augmentation data
    out.close_record(fde);
    out.put32(0);
}

// The executable view, within a direct call's reach (±2 GiB) of Strata's own code when the
// address space allows, so that translations call handlers with CALL rel32: the first free hint
// below or above the program's text, else anywhere.
void* map_near_program(int fd, size_t bytes) {
    auto text = reinterpret_cast<uintptr_t>(&map_near_program);
    for (uintptr_t distance : {uintptr_t{256} << 20, uintptr_t{768} << 20}) {
        for (uintptr_t hint : {(text - distance - bytes) & ~uintptr_t{0xfffff}, (text + distance) & ~uintptr_t{0xfffff}}) {
            void* map = mmap(reinterpret_cast<void*>(hint), bytes, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
            if (map != MAP_FAILED) return map;
        }
    }
    return mmap(nullptr, bytes, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
}

}  // namespace

std::unique_ptr<CodeBuffer> CodeBuffer::create(size_t bytes) {
    int fd = memfd_create("strata-translations", MFD_CLOEXEC);
    if (fd < 0) return nullptr;
    void* writable = MAP_FAILED;
    void* executable = MAP_FAILED;
    if (ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
        writable = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        executable = map_near_program(fd, bytes);
    }
    close(fd);
    if (writable == MAP_FAILED || executable == MAP_FAILED) {
        if (writable != MAP_FAILED) munmap(writable, bytes);
        if (executable != MAP_FAILED) munmap(executable, bytes);
        return nullptr;
    }
    return std::unique_ptr<CodeBuffer>(
        new CodeBuffer(static_cast<uint8_t*>(writable), static_cast<uint8_t*>(executable), bytes));
}

CodeBuffer::CodeBuffer(uint8_t* writable, uint8_t* executable, size_t size)
    : writable_(writable), executable_(executable), size_(size) {
    frame_description(eh_frame_, executable, size);
    __register_frame(eh_frame_.data());
}

CodeBuffer::~CodeBuffer() {
    __deregister_frame(eh_frame_.data());
    munmap(writable_, size_);
    munmap(executable_, size_);
}

const uint8_t* CodeBuffer::commit(size_t bytes) {
    const uint8_t* code = executable_ + used_;
    used_ += bytes;
    return code;
}

}  // namespace strata::soft
