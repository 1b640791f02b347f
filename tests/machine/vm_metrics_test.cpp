// The metrics' two forms: the JSON the API serves at /v1/metrics and the Prometheus text at
// /metrics, from one snapshot; and the counting lines the board puts in front of devices.
#include "machine/vm_metrics.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "machine/interrupt_counts.hpp"

namespace strata {
namespace {

class LevelLine : public IrqLine {
public:
    void set_level(bool asserted) override { level = asserted; }
    bool level = false;
};

VmMetrics sample_metrics() {
    VmMetrics metrics;
    metrics.name = "web\"1\"";
    metrics.engine = "soft";
    metrics.state = "running";
    metrics.uptime_ms = 1500;
    metrics.guest_time_ms = 1200;
    VcpuMetrics vcpu{.index = 0, .exits = {{"halt", 7}}, .halted_ns = 250'000'000, .soft = VcpuMetrics::Soft{}};
    vcpu.soft->instructions = 123456;
    vcpu.soft->blocks_decoded = 42;
    metrics.vcpus.push_back(vcpu);
    metrics.vcpus.push_back({.index = 1, .exits = {{"io", 3}, {"intr", 1}}, .halted_ns = std::nullopt, .soft = std::nullopt});
    metrics.devices.push_back({"pio", "COM1 (16550A)", 0x3f8, 10, 20});
    metrics.interrupts.gsi = {{4, 9}};
    metrics.interrupts.msi = 5;
    return metrics;
}

TEST(VmMetrics, JsonHasEveryCounterByVcpuDeviceAndInterrupt) {
    nlohmann::json json = metrics_json(sample_metrics());
    EXPECT_EQ(json["vcpus"][0]["exits"]["halt"], 7);
    EXPECT_EQ(json["vcpus"][0]["halted_ns"], 250'000'000);
    EXPECT_EQ(json["vcpus"][0]["soft"]["instructions"], 123456);
    EXPECT_EQ(json["vcpus"][0]["soft"]["block_cache_misses"], 42);
    EXPECT_TRUE(json["vcpus"][1]["halted_ns"].is_null());
    EXPECT_FALSE(json["vcpus"][1].contains("soft"));
    EXPECT_EQ(json["vcpus"][1]["exits"]["io"], 3);
    EXPECT_EQ(json["devices"][0]["device"], "COM1 (16550A)");
    EXPECT_EQ(json["devices"][0]["writes"], 20);
    EXPECT_EQ(json["interrupts"]["gsi"]["4"], 9);
    EXPECT_EQ(json["interrupts"]["msi"], 5);
}

TEST(VmMetrics, PrometheusTextIsWellFormedWithEscapedLabels) {
    std::string text = metrics_prometheus(sample_metrics());
    // Every line is a comment or `name{labels} value` (exposition format 0.0.4).
    static const std::regex sample(R"re(strata_[a-z_]+\{vm="(?:[^"\\]|\\.)*"(,[a-z_]+="(?:[^"\\]|\\.)*")*\} [0-9.e+-]+)re");
    std::istringstream lines(text);
    int samples = 0;
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("# HELP strata_") || line.starts_with("# TYPE strata_")) continue;
        EXPECT_TRUE(std::regex_match(line, sample)) << line;
        ++samples;
    }
    EXPECT_GT(samples, 10);
    EXPECT_NE(text.find("strata_vcpu_exits_total{vm=\"web\\\"1\\\"\",vcpu=\"1\",reason=\"io\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("strata_vcpu_halted_seconds_total{vm=\"web\\\"1\\\"\",vcpu=\"0\"} 0.25\n"), std::string::npos) << text;
    EXPECT_NE(text.find("strata_vcpu_instructions_total{vm=\"web\\\"1\\\"\",vcpu=\"0\"} 123456\n"), std::string::npos);
    EXPECT_EQ(text.find("vcpu=\"1\"} 0\n"), std::string::npos) << "the kvm-style vCPU has no soft counters";
    EXPECT_NE(text.find("device=\"COM1 (16550A)\",base=\"0x3f8\",access=\"write\"} 20\n"), std::string::npos);
    EXPECT_NE(text.find("strata_interrupts_total{vm=\"web\\\"1\\\"\",kind=\"gsi\",gsi=\"4\"} 9\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE strata_interrupts_total counter\n"), std::string::npos);
}

TEST(InterruptCounts, ALineCountsRisingEdgesNotRepeatedRaises) {
    LevelLine engine_line;
    CountingIrqLine line(engine_line);
    line.raise();
    line.raise();  // still high: the same interrupt
    EXPECT_TRUE(engine_line.level);
    line.lower();
    line.pulse();
    EXPECT_FALSE(engine_line.level);
    EXPECT_EQ(line.raised(), 2u);
}

}  // namespace
}  // namespace strata
