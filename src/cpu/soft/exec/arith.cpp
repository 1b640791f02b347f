// (being written: the arith family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_arith(HandlerTable&) {}

}  // namespace strata::soft
