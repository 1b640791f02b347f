#include "net_backend_support.hpp"

#include "base/error.hpp"

namespace strata::testing {

RunningBackend::RunningBackend(NetBackend& backend, NetBackend::Receiver& receiver, const std::string& name)
    : backend_(backend) {
    auto loop = EventLoop::create(name);
    if (!loop) panic("event loop for a back-end test: " + loop.error().message);
    loop_ = std::move(*loop);
    loop_->run_sync([&] { started_ = backend_.start(*loop_, receiver); });
}

RunningBackend::~RunningBackend() {
    loop_->run_sync([this] { backend_.stop(); });
}

}  // namespace strata::testing
