// (being written: the system family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_system(HandlerTable&) {}

}  // namespace strata::soft
