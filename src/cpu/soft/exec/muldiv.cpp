// (being written: the muldiv family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_muldiv(HandlerTable&) {}

}  // namespace strata::soft
