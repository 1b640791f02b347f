// The 512-byte FXSAVE image of the x87, MMX and SSE state (Intel SDM vol. 1 §10.5.1, tables 10-2
// and 10-3), in two parts so that XSAVE's legacy region (vol. 1 §13.4.1: the x87 part is state
// component 0, XMM registers and MXCSR component 1) can use them one at a time:
//   bytes 0-23 and 32-159: FCW, FSW, the abridged tag word, FOP, FIP/FCS, FDP/FDS, ST0-ST7;
//   bytes 24-31 and 160-415: MXCSR, MXCSR_MASK, XMM0-XMM15.
// `wide_pointers` selects the REX.W layout (64-bit FIP and FDP, no selectors); `xmm_count` is 16
// in 64-bit mode and 8 elsewhere. Reserved bytes of the image are written as zeros, except 416-511
// which FXSAVE leaves alone.
#pragma once

#include <cstdint>

#include "cpu/soft/cpu.hpp"

namespace strata::soft::fpu {

constexpr unsigned kFxsaveSize = 512;

void save_x87_image(const Cpu& cpu, uint8_t* image, bool wide_pointers);
void save_sse_image(const Cpu& cpu, uint8_t* image, unsigned xmm_count);
void load_x87_image(Cpu& cpu, const uint8_t* image, bool wide_pointers);
// False (and nothing loaded) when the image's MXCSR sets a bit MXCSR_MASK does not allow: the
// caller raises #GP(0).
[[nodiscard]] bool load_sse_image(Cpu& cpu, const uint8_t* image, unsigned xmm_count);

}  // namespace strata::soft::fpu
