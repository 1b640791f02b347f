// Randomized differential tests: sequences of integer instructions from a fixed seed (see
// random_sequences.hpp) on the kvm engine and the soft engine must leave the same registers,
// flags and memory. On kvm alone, every generated sequence must run to its end: the generator
// promises sequences that never fault, and that is what makes their comparison meaningful.
#include <gtest/gtest.h>

#include <chrono>

#include "cpu/differential/random_sequences.hpp"

namespace strata::differential {
namespace {

constexpr uint64_t kSeed = 0x5715'a7a0'd1ff;
constexpr size_t kSequences = 400, kLength = 24;

TEST(DifferentialRandom, SequencesRunToTheirEndOnKvm) {
    auto runner = Runner::create(EngineKind::Kvm);
    if (!runner) GTEST_SKIP() << runner.error().message;
    std::vector<Case> cases = random_integer_sequences(kSeed, kSequences, kLength);
    auto code = assemble(cases);
    ASSERT_TRUE(code) << code.error().message;
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < cases.size(); ++i) {
        Outcome o = (*runner)->run(cases[i], (*code)[i]);
        EXPECT_TRUE(o.failure.empty() && !o.exception && o.rip == (*code)[i].size())
            << cases[i].name << ":\n" << cases[i].code << "\n" << describe(o);
    }
    auto elapsed = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[ cost     ] kvm: " << elapsed / static_cast<double>(cases.size()) << " us a case ("
              << cases.size() << " cases of " << kLength << " generated instructions)\n";
}

TEST(DifferentialRandom, SameSeedSameSequences) {
    auto a = random_integer_sequences(kSeed, 20, kLength), b = random_integer_sequences(kSeed, 20, kLength);
    auto c = random_integer_sequences(kSeed + 1, 20, kLength);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].code, b[i].code);
    EXPECT_NE(a[0].code, c[0].code);
}

TEST(DifferentialRandom, KvmAgreesWithSoft) {
    compare(EngineKind::Kvm, EngineKind::Soft, random_integer_sequences(kSeed, kSequences, kLength));
}

}  // namespace
}  // namespace strata::differential
