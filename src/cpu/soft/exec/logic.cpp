// (being written: the logic family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_logic(HandlerTable&) {}

}  // namespace strata::soft
