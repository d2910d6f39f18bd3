/* cuda_runtime.h for tests/cuda-kernels.cpp: empty. The host build of the CUDA backend's kernels gets its
 * types and intrinsics from cuda-host/emulate.h instead (included first, by the compiler's -include). */
#pragma once
