// (being written: the shift family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_shift(HandlerTable&) {}

}  // namespace strata::soft
