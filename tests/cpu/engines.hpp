// The CPU engines a test can run on, by kind: engine tests and the differential tests
// (tests/cpu/differential) ask for one here and skip, saying why, when it cannot be made on this
// host or in this build.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string_view>

#include "cpu/engine.hpp"
#include "base/machine_clock.hpp"
#include "cpu/kvm/kvm_engine.hpp"
#include "cpu/soft/soft_engine.hpp"

namespace strata::testing {

enum class EngineKind { Kvm, Soft };

inline std::string_view engine_name(EngineKind kind) { return kind == EngineKind::Kvm ? "kvm" : "soft"; }

// The engine of `kind` over `memory` with `cpus` vCPUs, or why there is none: /dev/kvm missing or
// not read-write.
inline Result<std::unique_ptr<CpuEngine>> make_engine(EngineKind kind, const GuestMemory& memory, unsigned cpus) {
    switch (kind) {
        case EngineKind::Kvm: {
            int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
            if (fd < 0) return fail_errno("kvm engine: /dev/kvm cannot be opened read-write");
            ::close(fd);
            auto engine = kvm::KvmEngine::create(memory, cpus);
            if (!engine) return context(engine.error(), "kvm engine");
            return std::unique_ptr<CpuEngine>(std::move(*engine));
        }
        case EngineKind::Soft: {
            // One clock and timer service for every soft engine a test process makes; they
            // outlive the engines (static storage, destroyed after the tests).
            static MachineClock clock;
            static TimerService timers(clock);
            return soft::create_soft_engine(memory, cpus, timers);
        }
    }
    return fail("unknown engine kind {}", static_cast<int>(kind));
}

}  // namespace strata::testing
