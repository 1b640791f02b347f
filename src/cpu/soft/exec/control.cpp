// (being written: the control family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_control(HandlerTable&) {}

}  // namespace strata::soft
