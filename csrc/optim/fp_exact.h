// Included first by the optimizer kernels. They reproduce torch's float32
// arithmetic operation by operation (see adamw.cpp), so the compiler must not
// fuse a multiply and an add into one FMA where torch rounds twice; the FMAs
// torch does use are written out with std::fma.
#pragma once
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
