// Recording fakes of what devices do to the outside world: interrupt lines and machine stops.
#pragma once

#include <chrono>
#include <condition_variable>
#include <atomic>
#include <mutex>
#include <vector>

#include "bus/irq_line.hpp"
#include "bus/machine_control.hpp"

namespace strata::testing {

// Records every level a device sets; thread-safe because timer threads raise lines too.
class FakeIrqLine : public IrqLine {
public:
    void set_level(bool asserted) override {
        std::lock_guard lock(mutex_);
        levels_.push_back(asserted);
        changed_.notify_all();
    }
    [[nodiscard]] bool level() const {
        std::lock_guard lock(mutex_);
        return !levels_.empty() && levels_.back();
    }
    [[nodiscard]] std::vector<bool> levels() const {
        std::lock_guard lock(mutex_);
        return levels_;
    }
    [[nodiscard]] size_t raises() const {
        std::lock_guard lock(mutex_);
        size_t count = 0;
        for (bool l : levels_) count += l ? 1 : 0;
        return count;
    }
    void clear() {
        std::lock_guard lock(mutex_);
        levels_.clear();
    }
    // Waits up to `timeout` for the line to be raised at least `count` times in total.
    bool wait_for_raises(size_t count, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] {
            size_t n = 0;
            for (bool l : levels_) n += l ? 1 : 0;
            return n >= count;
        });
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<bool> levels_;
};

class FakeMachineControl : public MachineControl {
public:
    void request_stop(StopReason reason) override {
        std::lock_guard lock(mutex_);
        stops_.push_back(std::move(reason));
    }
    [[nodiscard]] std::vector<StopReason> stops() const {
        std::lock_guard lock(mutex_);
        return stops_;
    }
    void request_sleep() override { ++sleeps; }
    void request_wake() override { ++wakes; }

    std::atomic<int> sleeps{0};
    std::atomic<int> wakes{0};

private:
    mutable std::mutex mutex_;
    std::vector<StopReason> stops_;
};

}  // namespace strata::testing

#include <array>
#include <cstdint>
#include <span>

#include "base/bytes.hpp"
#include "bus/bus_device.hpp"

namespace strata::testing {

// Guest-style port accesses through a device's bus interface.
inline uint64_t in(BusDevice& device, uint64_t offset, size_t width) {
    std::array<uint8_t, 8> buffer{};
    device.read(offset, std::span(buffer).first(width));
    return load_le(std::span(buffer).first(width));
}
inline void out(BusDevice& device, uint64_t offset, uint64_t value, size_t width) {
    std::array<uint8_t, 8> buffer{};
    store_le(std::span(buffer).first(width), value);
    device.write(offset, std::span(buffer).first(width));
}
inline uint8_t inb(BusDevice& device, uint64_t offset) { return static_cast<uint8_t>(in(device, offset, 1)); }
inline void outb(BusDevice& device, uint64_t offset, uint8_t value) { out(device, offset, value, 1); }

}  // namespace strata::testing

#include <functional>

#include "devices/irqchip/apic_bus.hpp"

namespace strata::testing {

// Records every message an interrupt controller sends to the local APICs. `on_send`, if set, runs
// after the message is recorded and outside the fake's lock, like a local APIC that reacts at once
// (e.g. with an EOI back to the IOAPIC).
class FakeApicBus : public ApicBus {
public:
    void send(const ApicMessage& message) override {
        {
            std::lock_guard lock(mutex_);
            messages_.push_back(message);
        }
        if (on_send) on_send(message);
    }
    [[nodiscard]] std::vector<ApicMessage> messages() const {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    [[nodiscard]] size_t count() const {
        std::lock_guard lock(mutex_);
        return messages_.size();
    }
    void clear() {
        std::lock_guard lock(mutex_);
        messages_.clear();
    }

    std::function<void(const ApicMessage&)> on_send;

private:
    mutable std::mutex mutex_;
    std::vector<ApicMessage> messages_;
};

}  // namespace strata::testing

#include <gtest/gtest.h>

#include "base/state_stream.hpp"

namespace strata::testing {

// A device State as a snapshot carries it: encoded, decoded, and checked to be read whole and to
// encode back to the same bytes.
template <class State>
State through_snapshot(const State& state) {
    StateWriter out;
    state.encode(out);
    StateReader in(out.view(), "state");
    State decoded = State::decode(in);
    auto done = in.finish();
    EXPECT_TRUE(done) << done.error().message;
    StateWriter again;
    decoded.encode(again);
    EXPECT_TRUE(std::ranges::equal(again.view(), out.view())) << "the encoding is not canonical";
    return decoded;
}

}  // namespace strata::testing
