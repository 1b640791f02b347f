#include "bus/msi.hpp"

#include <atomic>

namespace strata {
namespace {

// The message is read and written whole, from the device's thread and a vCPU's: a 64-bit address
// and 32-bit data packed in one atomic pair would be larger than a lock-free word, so the two
// halves are kept apart and a trigger racing with a reprogramming may send either message, as on
// hardware where the table write and the interrupt race too.
class SendingRoute final : public MsiRoute {
public:
    explicit SendingRoute(MsiController& controller) : controller_(controller) {}
    void set_message(uint64_t address, uint32_t data) override {
        address_.store(address, std::memory_order_relaxed);
        data_.store(data, std::memory_order_release);
    }
    void trigger() override {
        uint32_t data = data_.load(std::memory_order_acquire);
        controller_.send(address_.load(std::memory_order_relaxed), data);
    }

private:
    MsiController& controller_;
    std::atomic<uint64_t> address_{0};
    std::atomic<uint32_t> data_{0};
};

}  // namespace

std::unique_ptr<MsiRoute> MsiController::create_route() { return std::make_unique<SendingRoute>(*this); }

}  // namespace strata
