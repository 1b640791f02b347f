// (being written: the flagops family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_flagops(HandlerTable&) {}

}  // namespace strata::soft
