// Machine code run natively in the test process, as a reference for the soft CPU's user-mode
// floating-point and SIMD instructions: the host CPU is the x86-64 the soft engine imitates, so
// an instruction's result, flags and MXCSR on the host are what the soft CPU must produce. (The
// differential harness compares against KVM the same way; this is its quick, in-process cousin for
// sweeps of many inputs, and needs no /dev/kvm.)
//
// NativeCode copies bytes into an executable page and calls them as `void f(void* block)`
// (System V: the block's address in RDI). The code must return with RET and keep RSP, RBX, RBP
// and R12-R15.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace strata::soft::testing {

class NativeCode {
public:
    explicit NativeCode(const std::vector<uint8_t>& bytes) : size_(bytes.size() + 1) {
        void* page = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) {
            ADD_FAILURE() << "mmap for native code failed";
            return;
        }
        std::memcpy(page, bytes.data(), bytes.size());
        static_cast<uint8_t*>(page)[bytes.size()] = 0xc3;  // RET, in case the bytes do not end with one
        if (::mprotect(page, size_, PROT_READ | PROT_EXEC) != 0) {
            ADD_FAILURE() << "mprotect for native code failed";
            ::munmap(page, size_);
            return;
        }
        page_ = page;
    }
    ~NativeCode() {
        if (page_) ::munmap(page_, size_);
    }
    NativeCode(const NativeCode&) = delete;
    NativeCode& operator=(const NativeCode&) = delete;

    [[nodiscard]] bool ok() const { return page_ != nullptr; }
    void operator()(void* block) const {
        using Function = void (*)(void*);
        reinterpret_cast<Function>(page_)(block);
    }

private:
    void* page_ = nullptr;
    size_t size_ = 0;
};

}  // namespace strata::soft::testing
