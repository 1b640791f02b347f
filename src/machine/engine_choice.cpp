#include "machine/engine_choice.hpp"

#include "cpu/kvm/kvm_engine.hpp"

namespace strata {

Result<std::unique_ptr<CpuEngine>> create_engine(Accel accel, const GuestMemory& memory, unsigned cpus,
                                                 const std::function<void(std::string_view)>& warn) {
    if (accel == Accel::Soft)
        return fail("--accel soft: the soft CPU engine is not part of this build yet; use --accel kvm or auto");

    kvm::HostKvmInfo host = kvm::probe_host_kvm();
    if (!host.available) return fail("--accel {}: KVM is not usable: {}", accel == Accel::Kvm ? "kvm" : "auto", host.reason);
    if (!host.hardware_assisted) {
        if (accel == Accel::Auto)
            warn(fmt::format("--accel auto picks kvm, but {}; the soft engine is not built yet, so guest kernels "
                             "will run emulated and slowly on this host",
                             host.reason));
        else
            warn(fmt::format("--accel kvm: {}; guest kernel code will run slowly", host.reason));
    }
    auto engine = kvm::KvmEngine::create(memory, cpus);
    if (!engine) return context(engine.error(), "kvm engine");
    return std::unique_ptr<CpuEngine>(std::move(*engine));
}

}  // namespace strata
