// (being written: the io family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_io(HandlerTable&) {}

}  // namespace strata::soft
