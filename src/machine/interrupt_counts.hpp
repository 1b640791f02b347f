// Interrupts as devices raise them, counted for the control API's metrics: the board hands each
// device a counting line in front of the engine's GSI line, and a counting MSI controller in
// front of the engine's (its routes too, the kvm engine's irqfds included). What the engine raises
// itself (KVM's in-kernel PIT, local APIC timers, IPIs) is not a device's and is not counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "bus/irq_line.hpp"
#include "bus/msi.hpp"

namespace strata {

// Counts rising edges: a level line raised while it is high is one interrupt, not two.
class CountingIrqLine final : public IrqLine {
public:
    explicit CountingIrqLine(IrqLine& inner) : inner_(inner) {}
    void set_level(bool asserted) override {
        if (!asserted) level_.store(false, std::memory_order_relaxed);
        else if (!level_.exchange(true, std::memory_order_relaxed)) raised_.fetch_add(1, std::memory_order_relaxed);
        inner_.set_level(asserted);
    }
    [[nodiscard]] uint64_t raised() const { return raised_.load(std::memory_order_relaxed); }

private:
    IrqLine& inner_;
    std::atomic<bool> level_{false};
    std::atomic<uint64_t> raised_{0};
};

class CountingMsi final : public MsiController {
public:
    explicit CountingMsi(MsiController& inner) : inner_(inner) {}
    void send(uint64_t address, uint32_t data) override {
        sent_.fetch_add(1, std::memory_order_relaxed);
        inner_.send(address, data);
    }
    [[nodiscard]] std::unique_ptr<MsiRoute> create_route() override;
    [[nodiscard]] uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }

private:
    class Route;
    MsiController& inner_;
    std::atomic<uint64_t> sent_{0};
};

class CountingMsi::Route final : public MsiRoute {
public:
    Route(std::unique_ptr<MsiRoute> inner, std::atomic<uint64_t>& sent) : inner_(std::move(inner)), sent_(sent) {}
    void set_message(uint64_t address, uint32_t data) override { inner_->set_message(address, data); }
    void trigger() override {
        sent_.fetch_add(1, std::memory_order_relaxed);
        inner_->trigger();
    }

private:
    std::unique_ptr<MsiRoute> inner_;
    std::atomic<uint64_t>& sent_;
};

inline std::unique_ptr<MsiRoute> CountingMsi::create_route() {
    auto inner = inner_.create_route();
    if (!inner) return nullptr;
    return std::make_unique<Route>(std::move(inner), sent_);
}

}  // namespace strata
