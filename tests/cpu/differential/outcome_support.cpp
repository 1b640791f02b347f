// Outcomes of differential cases: building their data, describing and diffing them.
#include <fmt/format.h>

#include "cpu/differential/harness.hpp"

namespace strata::differential {

namespace {

constexpr const char* kGprNames[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                     "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};

// The set flags of `bits` by name ("CF ZF"), for flag differences.
std::string flag_names(uint64_t bits) {
    static constexpr std::pair<uint64_t, const char*> kNames[] = {
        {flag::CF, "CF"}, {flag::PF, "PF"}, {flag::AF, "AF"}, {flag::ZF, "ZF"}, {flag::SF, "SF"}, {flag::TF, "TF"},
        {flag::IF, "IF"}, {flag::DF, "DF"}, {flag::OF, "OF"}, {flag::RF, "RF"}, {flag::AC, "AC"}};
    std::string out;
    for (auto [bit, name] : kNames)
        if (bits & bit) {
            if (!out.empty()) out += ' ';
            out += name;
            bits &= ~bit;
        }
    if (bits) out += fmt::format("{}{:#x}", out.empty() ? "" : " ", bits);
    return out;
}

std::string describe_exception(const std::optional<Exception>& e) {
    if (!e) return "none";
    std::string out = fmt::format("vector {} error code {:#x}", e->vector, e->error_code);
    if (e->vector == 14) out += fmt::format(" cr2 {:#x}", e->cr2);
    return out;
}

// Byte differences of a memory area, a line per run of differing bytes, at most a few lines.
void diff_bytes(std::string& out, std::string_view area, const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                std::string_view a_name, std::string_view b_name) {
    if (a.size() != b.size()) {
        out += fmt::format("{}: {} bytes read from {}, {} from {}\n", area, a.size(), a_name, b.size(), b_name);
        return;
    }
    constexpr unsigned kShownRuns = 6;
    unsigned runs = 0;
    size_t differing = 0;
    for (size_t i = 0; i < a.size();) {
        if (a[i] == b[i]) {
            ++i;
            continue;
        }
        size_t end = i;
        while (end < a.size() && a[end] != b[end] && end - i < 16) ++end;
        differing += end - i;
        if (runs++ < kShownRuns) {
            std::string bytes_a, bytes_b;
            for (size_t j = i; j < end; ++j) bytes_a += fmt::format("{:02x}", a[j]), bytes_b += fmt::format("{:02x}", b[j]);
            out += fmt::format("{}+{:#x}: {}={} {}={}\n", area, i, a_name, bytes_a, b_name, bytes_b);
        }
        i = end;
    }
    if (runs > kShownRuns) out += fmt::format("{}: {} bytes differ in all\n", area, differing);
}

}  // namespace

std::vector<uint8_t> qwords(std::initializer_list<uint64_t> values) {
    std::vector<uint8_t> bytes;
    for (uint64_t value : values)
        for (unsigned i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
    return bytes;
}

std::string diff(const Outcome& a, const Outcome& b, uint64_t ignored_flags, std::string_view a_name,
                 std::string_view b_name) {
    std::string out;
    // An outcome with a failure says nothing about the instructions: report it whatever the other.
    if (!a.failure.empty() || !b.failure.empty()) {
        if (!a.failure.empty()) out += fmt::format("failure on {}: {}\n", a_name, a.failure);
        if (!b.failure.empty()) out += fmt::format("failure on {}: {}\n", b_name, b.failure);
        return out;
    }
    bool same_vector = a.exception.has_value() == b.exception.has_value() &&
                       (!a.exception || a.exception->vector == b.exception->vector);
    if (!same_vector || (a.exception && (a.exception->error_code != b.exception->error_code ||
                                         (a.exception->vector == 14 && a.exception->cr2 != b.exception->cr2))))
        out += fmt::format("exception: {}={} {}={}\n", a_name, describe_exception(a.exception), b_name,
                           describe_exception(b.exception));
    if (a.rip != b.rip) out += fmt::format("rip: {}=CODE+{:#x} {}=CODE+{:#x}\n", a_name, a.rip, b_name, b.rip);
    for (unsigned i = 0; i < 16; ++i)
        if (a.gpr[i] != b.gpr[i])
            out += fmt::format("{}: {}={:#x} {}={:#x}\n", kGprNames[i], a_name, a.gpr[i], b_name, b.gpr[i]);
    uint64_t flags_a = a.rflags & ~ignored_flags, flags_b = b.rflags & ~ignored_flags;
    if (flags_a != flags_b)
        out += fmt::format("rflags: {}={:#x} {}={:#x} (differ in {}{})\n", a_name, a.rflags, b_name, b.rflags,
                           flag_names(flags_a ^ flags_b),
                           ignored_flags ? fmt::format("; {} not compared", flag_names(ignored_flags)) : "");
    for (unsigned i = 0; i < 16; ++i)
        if (a.xmm[i] != b.xmm[i])
            out += fmt::format("xmm{}: {}={:016x}{:016x} {}={:016x}{:016x}\n", i, a_name, a.xmm[i].high, a.xmm[i].low,
                               b_name, b.xmm[i].high, b.xmm[i].low);
    if (a.mxcsr != b.mxcsr) out += fmt::format("mxcsr: {}={:#x} {}={:#x}\n", a_name, a.mxcsr, b_name, b.mxcsr);
    diff_bytes(out, "DATA", a.data, b.data, a_name, b_name);
    diff_bytes(out, "STACK", a.stack, b.stack, a_name, b_name);
    return out;
}

std::string describe(const Outcome& o) {
    if (!o.failure.empty()) return fmt::format("failure: {}\n", o.failure);
    std::string out;
    for (unsigned i = 0; i < 16; ++i) out += fmt::format("{:<3}={:016x}{}", kGprNames[i], o.gpr[i], i % 4 == 3 ? "\n" : " ");
    out += fmt::format("rip=CODE+{:#x} rflags={:#x} ({})\n", o.rip, o.rflags, flag_names(o.rflags & ~uint64_t{2}));
    out += fmt::format("exception: {}\nmxcsr={:#x}\n", describe_exception(o.exception), o.mxcsr);
    for (unsigned i = 0; i < 16; ++i)
        if (o.xmm[i] != Xmm{}) out += fmt::format("xmm{}={:016x}{:016x}\n", i, o.xmm[i].high, o.xmm[i].low);
    return out;
}

}  // namespace strata::differential
