// (being written: the bit family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_bit(HandlerTable&) {}

}  // namespace strata::soft
