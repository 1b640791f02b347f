// A level-triggered interrupt line that several devices share, as PCI INTx lines are (PCI 3.0
// §2.2.6: open-drain, wire-ORed): the output is asserted while any input is. Each device drives
// its own input, so one device lowering its input does not drop another's request.
#pragma once

#include <deque>
#include <mutex>

#include "bus/irq_line.hpp"

namespace strata {

class WiredOrLine {
public:
    explicit WiredOrLine(IrqLine& output) : output_(output) {}
    WiredOrLine(const WiredOrLine&) = delete;
    WiredOrLine& operator=(const WiredOrLine&) = delete;

    // A new input, deasserted; it lives as long as the line.
    IrqLine& add_input() {
        std::lock_guard lock(mutex_);
        return inputs_.emplace_back(*this);
    }

private:
    class Input final : public IrqLine {
    public:
        explicit Input(WiredOrLine& line) : line_(line) {}
        void set_level(bool level) override { line_.input_changed(*this, level); }
        bool high = false;

    private:
        WiredOrLine& line_;
    };

    void input_changed(Input& input, bool asserted) {
        std::lock_guard lock(mutex_);
        if (input.high == asserted) return;
        input.high = asserted;
        unsigned before = asserted_count_;
        asserted_count_ += asserted ? 1 : -1u;
        // The output changes only when the first input rises or the last one falls; the lock is
        // held so that level changes reach the output in the order they were counted.
        if ((before == 0) != (asserted_count_ == 0)) output_.set_level(asserted_count_ != 0);
    }

    IrqLine& output_;
    std::mutex mutex_;
    std::deque<Input> inputs_;  // stable addresses
    unsigned asserted_count_ = 0;
};

}  // namespace strata
