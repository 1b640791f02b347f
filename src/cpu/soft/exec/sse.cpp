// (being written: the sse family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_sse(HandlerTable&) {}

}  // namespace strata::soft
