// (being written: the x87 family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_x87(HandlerTable&) {}

}  // namespace strata::soft
