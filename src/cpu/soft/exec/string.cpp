// (being written: the string family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_string(HandlerTable&) {}

}  // namespace strata::soft
