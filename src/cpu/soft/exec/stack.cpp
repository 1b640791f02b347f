// (being written: the stack family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_stack(HandlerTable&) {}

}  // namespace strata::soft
