#include "cpu/soft/jit/translator.hpp"

#include <cstdlib>
#include <cstring>

#include "cpu/soft/jit/emitter.hpp"

namespace strata::soft {

namespace {

constexpr size_t kBufferBytes = 64ull << 20;

unsigned initial_threshold() {
    const char* value = std::getenv("STRATA_SOFT_TRANSLATE");
    if (!value || !*value) return Translator::kDefault;
    if (std::strcmp(value, "off") == 0) return Translator::kOff;
    char* end = nullptr;
    unsigned long runs = std::strtoul(value, &end, 10);
    return *end == '\0' && runs < Translator::kOff ? static_cast<unsigned>(runs) : Translator::kDefault;
}

}  // namespace

std::atomic<unsigned> Translator::threshold_{initial_threshold()};

std::unique_ptr<Translator> Translator::create(Cpu& cpu) {
    std::unique_ptr<CodeBuffer> code = CodeBuffer::create(kBufferBytes);
    if (!code) return nullptr;
    return std::unique_ptr<Translator>(new Translator(cpu, std::move(code)));
}

bool Translator::translate(Block& block) {
    if (block.mode != CodeMode::Long64 || block.wraps || block.second_page != ~0ull || block.count == 0) return false;
    try {
        Emitter emitter(cpu_, code_->write_cursor(), code_->execute_cursor(), code_->room());
        emitter.block(block);
        auto code = reinterpret_cast<Handler>(const_cast<uint8_t*>(code_->commit(emitter.getSize())));
        block.entry = code;
    } catch (const Xbyak::Error&) {
        return false;  // the buffer is full until the block cache is dropped
    }
    ++translated_;
    return true;
}

}  // namespace strata::soft
