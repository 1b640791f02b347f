// (being written by the system family: exception and interrupt delivery)
#include "cpu/soft/interrupts.hpp"

namespace strata::soft {

void deliver_event(Cpu&, uint8_t, EventKind, std::optional<uint32_t>) { throw TripleFault{}; }

}  // namespace strata::soft
