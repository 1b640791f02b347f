// (being written: the segment family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_segment(HandlerTable&) {}

}  // namespace strata::soft
