#include "machine/engine_choice.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "cpu/kvm/kvm_engine.hpp"
#include "cpu/soft/soft_engine.hpp"

namespace strata {

namespace {

// True the first time it is asked about `what` for this user (a marker file in
// $XDG_CACHE_HOME/strata or ~/.cache/strata), and also whenever the marker cannot be written.
bool first_time_for_this_host(std::string_view what) {
    std::filesystem::path dir;
    if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) dir = cache;
    else if (const char* home = std::getenv("HOME"); home && *home) dir = std::filesystem::path(home) / ".cache";
    else return true;
    dir /= "strata";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::string marker = (dir / fmt::format("warned-{}", what)).string();
    int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ::close(fd);
        return true;
    }
    return errno != EEXIST;
}

}  // namespace

Result<std::unique_ptr<CpuEngine>> create_engine(Accel accel, const GuestMemory& memory, unsigned cpus,
                                                 TimerService& timers,
                                                 const std::function<void(std::string_view)>& warn,
                                                 const std::function<void(std::string_view)>& note) {
    auto soft = [&]() -> Result<std::unique_ptr<CpuEngine>> {
        auto engine = soft::create_soft_engine(memory, cpus, timers);
        if (!engine) return context(engine.error(), "soft engine");
        return engine;
    };
    if (accel == Accel::Soft) return soft();

    kvm::HostKvmInfo host = kvm::probe_host_kvm();
    if (accel == Accel::Auto && (!host.available || !host.hardware_assisted)) {
        std::string why = host.available ? host.reason : fmt::format("KVM is not usable: {}", host.reason);
        // The first clause of the reason is enough for one line.
        note(fmt::format("--accel auto chose the soft engine: {}", why.substr(0, why.find(':'))));
        return soft();
    }
    if (!host.available) return fail("--accel kvm: KVM is not usable: {}", host.reason);
    // Said once per user and host (README, "On hosts without VT-x or AMD-V"): every run would
    // repeat the same fact.
    if (!host.hardware_assisted && first_time_for_this_host(host.pvm ? "pvm" : "no-vmx"))
        warn(fmt::format("{}: guest kernel code runs about 1000x slower (said once; see the README)",
                         host.pvm ? "this host's KVM is PVM" : "this CPU has no VT-x/AMD-V"));
    auto engine = kvm::KvmEngine::create(memory, cpus);
    if (!engine) return context(engine.error(), "kvm engine");
    return std::unique_ptr<CpuEngine>(std::move(*engine));
}

}  // namespace strata
