// (being written: the data_movement family of the soft CPU)
#include "cpu/soft/exec/exec.hpp"

namespace strata::soft {

void bind_data_movement(HandlerTable&) {}

}  // namespace strata::soft
